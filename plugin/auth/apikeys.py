"""API keys for machine clients (scripts, other PACS, DICOMweb clients).

A key is 256 random bits shown once; the database keeps its SHA-256 (a
random key needs no slow hash). The guard checks a key against an in-memory
map reloaded every few seconds: no bcrypt and no database access per request.
"""

import datetime
import hashlib
import secrets
import time

from plugin import db
from plugin.auth.accounts import Principal
from plugin.auth.models import ApiKey, User
from plugin.auth.refreshing import Refreshing
from plugin.db import utcnow
from plugin.errors import Invalid, NotFound
from plugin.permissions import ROLES

PREFIX = "pacs_"
CACHE_TTL = 5.0
MAX_DAYS = 3650


def key_hash(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(value):
    return isinstance(value, str) and value.startswith(PREFIX) and len(value) < 200


class ApiKeys:
    def __init__(self, audit, permissions_of):
        self._audit = audit
        self._permissions_of = permissions_of
        self._keys = Refreshing(self._load, CACHE_TTL)

    def create(self, name, user_id, role, expires_days, actor):
        """(the key itself, shown once; the ApiKey row)."""
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise Invalid("name must be 1-100 characters")
        user = User.get_or_none(User.id == user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        role = role or user.role
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}")
        if not self._permissions_of(role) <= self._permissions_of(user.role):
            raise Invalid(f"a key cannot have more rights than its user ({user.role})")
        expires_at = None
        if expires_days not in (None, ""):
            if not isinstance(expires_days, int) or isinstance(expires_days, bool) or not 0 < expires_days <= MAX_DAYS:
                raise Invalid(f"expires_days must be a whole number from 1 to {MAX_DAYS}")
            expires_at = utcnow() + datetime.timedelta(days=expires_days)
        key = PREFIX + secrets.token_urlsafe(32)
        row = ApiKey.create(
            name=name.strip(),
            user=user,
            role=role,
            prefix=key[:12],
            key_hash=key_hash(key),
            created_by=actor.username,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        self._keys.invalidate()
        self._audit.record(
            "apikey_created",
            username=actor.username,
            role=actor.role,
            details={"key_id": row.id, "name": row.name, "for": user.username, "role": role},
        )
        return key, row

    def revoke(self, key_id, actor):
        row = ApiKey.get_or_none(ApiKey.id == key_id)
        if row is None:
            raise NotFound(f"no API key with id {key_id}")
        if row.revoked_at is None:
            ApiKey.update(revoked_at=utcnow()).where(ApiKey.id == key_id).execute()
            self._keys.invalidate()
            self._audit.record(
                "apikey_revoked", username=actor.username, role=actor.role, details={"key_id": row.id, "name": row.name}
            )
        return ApiKey.get_by_id(key_id)

    def list(self):
        return list(ApiKey.select(ApiKey, User).join(User).order_by(ApiKey.created_at.desc()))

    def principal(self, key, username=None):
        """The Principal for a valid key (and matching user name, for HTTP Basic), else None."""
        entry = self._keys.get().get(key_hash(key))
        if entry is None:
            return None
        user_id, owner, role, expires = entry
        if expires is not None and expires <= time.time():
            return None
        if username is not None and username != owner:
            return None
        return Principal(user_id, owner, role, via="apikey")

    @db.unit_of_work
    def _load(self):
        """{key hash: (user id, username, role, expiry)} of every usable key."""
        rows = (
            ApiKey.select(ApiKey.key_hash, ApiKey.role, ApiKey.expires_at, User.id, User.username, User.role)
            .join(User)
            .where(ApiKey.revoked_at.is_null(), User.disabled == False)  # noqa: E712 (SQL, not Python)
        )
        # A key never has more rights than its user has now (a demoted user's keys stop).
        return {
            row.key_hash: (
                row.user.id,
                row.user.username,
                row.role,
                row.expires_at.replace(tzinfo=datetime.timezone.utc).timestamp() if row.expires_at else None,
            )
            for row in rows
            if self._permissions_of(row.role) <= self._permissions_of(row.user.role)
        }
