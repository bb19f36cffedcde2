"""Users, logins and sessions.

A login creates a session row and hands out a short-lived JWT naming it. The
guard checks a token with no database access: its signature and expiry, and
whether its session is in the in-memory set of revoked sessions, reloaded
from the database every few seconds (so a logout on another node counts
too). A still-open session renews its token through `refresh`.
"""

import datetime
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from peewee import IntegrityError

from plugin import db
from plugin.auth.models import LoginFailure, Session, User
from plugin.auth.passwords import PasswordRejected, check_policy
from plugin.auth.refreshing import Refreshing
from plugin.auth.tokens import TokenError
from plugin.db import utcnow
from plugin.dicomnames import pn_from_text
from plugin.errors import Conflict, Forbidden, Invalid, Locked, NotFound, Unauthenticated
from plugin.events import Events
from plugin.permissions import ADMIN, ROLES, permissions_of

LOGGER = logging.getLogger(__name__)

INITIAL_PASSWORD_FILE = "initial-admin-password"
REVOCATION_TTL = 2.0
MAX_USERNAME = 64


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user (cookie or bearer token) or an API key."""

    user_id: int
    username: str
    role: str
    session_id: str = ""
    csrf: str = ""
    via: str = "bearer"


@dataclass(frozen=True)
class LockoutPolicy:
    window_seconds: int = 900
    per_account: int = 5
    per_address: int = 20


def normalise_username(username):
    return (username or "").strip().lower() if isinstance(username, str) else ""


class Accounts:
    def __init__(self, hasher, codec, audit, session_hours=12.0, idle_hours=2.0, lockout=LockoutPolicy(), events=None):
        self._hasher = hasher
        self._events = events if events is not None else Events()  # account.created, account.changed
        self._codec = codec
        self._audit = audit
        self._session_length = datetime.timedelta(hours=session_hours)
        self._idle = datetime.timedelta(hours=idle_hours)
        self._lockout = lockout
        self._revoked = Refreshing(_revoked_sessions, REVOCATION_TTL)
        self._pending = Refreshing(_users_to_change_password, REVOCATION_TTL)

    # --- users --------------------------------------------------------------

    def create_user(
        self, username, password, role, display_name="", referring_names=(), actor=None, must_change_password=False
    ):
        username = normalise_username(username)
        _check_username(username)
        _check_role(role)
        _checked_password(password, username)
        display_name = _text(display_name or username, "display_name", 200) or username
        now = utcnow()
        try:
            user = User.create(
                username=username,
                display_name=display_name,
                role=role,
                password_hash=self._hasher.hash(password),
                referring_names=_names_text(referring_names),
                must_change_password=must_change_password,
                created_at=now,
                updated_at=now,
                password_changed_at=now,
            )
        except IntegrityError:
            raise Conflict(f"user {username!r} already exists") from None
        if must_change_password:
            self._pending.invalidate()
        self._record(actor, "user_created", details={"username": username, "role": role})
        self._events.publish("account.created", user_id=user.id, username=username)
        return user

    def update_user(self, user_id, actor=None, role=None, display_name=None, referring_names=None, disabled=None):
        user = self.get_user(user_id)
        changes = {}
        if role is not None and role != user.role:
            _check_role(role)
            changes["role"] = role
        if display_name is not None:
            changes["display_name"] = _text(display_name, "display_name", 200) or user.username
        if referring_names is not None:
            changes["referring_names"] = _names_text(referring_names)
        if disabled is not None:
            changes["disabled"] = bool(disabled)
        # Whoever manages users cannot lock themselves out of it (else no one might be left to).
        drops_own_rights = "role" in changes and "users.manage" not in permissions_of(changes["role"])
        if actor is not None and user.id == actor.user_id and (changes.get("disabled") or drops_own_rights):
            raise Conflict("you cannot disable your own account or drop your own admin role")
        if not changes:
            return user
        User.update(updated_at=utcnow(), **changes).where(User.id == user.id).execute()
        if "role" in changes or changes.get("disabled"):
            self.revoke_user_sessions(user.id)
        action = "user_disabled" if changes.get("disabled") else "user_updated"
        self._record(actor, action, details={"username": user.username, **{k: v for k, v in changes.items()}})
        self._events.publish("account.changed", user_id=user.id, username=user.username)
        return self.get_user(user_id)

    def get_user(self, user_id):
        user = User.get_or_none(User.id == user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        return user

    def list_users(self):
        return list(User.select().order_by(User.username))

    def reset_password(self, user_id, new_password, actor):
        """An admin sets a new password; the user must change it at next login."""
        user = self.get_user(user_id)
        _checked_password(new_password, user.username)
        self._set_password(user, new_password, must_change=True)
        self.revoke_user_sessions(user.id)
        self._record(actor, "password_reset", details={"username": user.username})

    def change_password(self, principal, current, new_password, address=""):
        """A wrong current password counts as a failed login of the account: a stolen
        session cannot guess it faster than the login form can."""
        user = self.get_user(principal.user_id)
        if self._failures(LoginFailure.username == user.username) >= self._lockout.per_account:
            raise self._locked("account")
        if not isinstance(current, str) or not self._hasher.verify(current, user.password_hash):
            self._record(principal, "password_changed", outcome="failure")
            self._login_failed(user.username, address)
            raise Forbidden("current password is wrong")
        _checked_password(new_password, user.username)
        if new_password == current:
            raise Invalid("the new password must differ from the current one")
        self._set_password(user, new_password, must_change=False)
        # Whoever knew the old password may hold another session: end them all but this one.
        ended = self.revoke_user_sessions(user.id, keep=principal.session_id)
        self._record(principal, "password_changed", details={"other_sessions_ended": ended})

    def _set_password(self, user, password, must_change):
        now = utcnow()
        User.update(
            password_hash=self._hasher.hash(password),
            password_changed_at=now,
            updated_at=now,
            must_change_password=must_change,
        ).where(User.id == user.id).execute()
        self._pending.invalidate()

    @db.unit_of_work
    def ensure_first_admin(self, data_dir, password=""):
        """Create ``admin`` when there is no user at all. Returns the password
        file written when no password was given, else None."""
        if User.select().exists():
            return None
        written = None
        if not password:
            password = secrets.token_urlsafe(18)
            written = _write_private(Path(data_dir) / INITIAL_PASSWORD_FILE, password + "\n")
        try:
            self.create_user("admin", password, ADMIN, "Administrator", must_change_password=written is not None)
        except Conflict:  # another node created it first
            return None
        except Invalid as error:
            raise Invalid(f"PACS_ADMIN_PASSWORD: {error.message}") from None
        LOGGER.warning("event=first_admin_created username=admin password_source=%s", written or "PACS_ADMIN_PASSWORD")
        return written

    # --- logins and sessions --------------------------------------------------

    def login(self, username, password, address=""):
        """(token, Claims, User) for good credentials; a domain error (plugin.errors) otherwise.

        The answer takes one bcrypt whether or not the user exists.
        """
        username = normalise_username(username)
        if not username or not isinstance(password, str) or not password:
            raise Invalid("username and password are required")
        username = username[:MAX_USERNAME]
        if self._failures(LoginFailure.username == username) >= self._lockout.per_account:
            self._audit.record(
                "login_failed",
                username=username,
                address=address,
                outcome="denied",
                details={"reason": "locked (account)"},
            )
            raise self._locked("account")
        user = User.get_or_none(User.username == username)
        if not self._hasher.verify(password, user.password_hash if user else None):
            if self._login_failed(username, address):
                raise self._locked("address")
            raise Unauthenticated("wrong username or password")
        assert user is not None  # verify() never accepts a missing hash
        if user.disabled:
            self._audit.record(
                "login_failed",
                username=username,
                role=user.role,
                address=address,
                outcome="denied",
                details={"reason": "disabled"},
            )
            raise Forbidden("this account is disabled")
        LoginFailure.delete().where(LoginFailure.username == username).execute()
        now = utcnow()
        User.update(last_login_at=now).where(User.id == user.id).execute()
        session = Session.create(
            id=secrets.token_urlsafe(24),
            user=user,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self._session_length,
            address=(address or "")[:64],
        )
        token, claims = self._issue(user, session.id, secrets.token_urlsafe(24), session.expires_at)
        self._audit.record("login", username=user.username, role=user.role, address=address)
        return token, claims, user

    def refresh(self, token, address=""):
        """A new token for a session that is still open (the old token may have expired)."""
        try:
            claims = self._codec.decode(token, verify_exp=False)
        except TokenError:
            raise Unauthenticated("login required") from None
        session = Session.get_or_none(Session.id == claims.session_id)
        now = utcnow()
        if (
            session is None
            or session.revoked_at is not None
            or session.expires_at <= now
            or session.last_seen_at + self._idle <= now
        ):
            raise Unauthenticated("session ended; please log in again")
        user = session.user
        if user.disabled or user.role != claims.role or user.id != claims.user_id:
            self.revoke_session(session.id)
            raise Unauthenticated("session ended; please log in again")
        Session.update(last_seen_at=now).where(Session.id == session.id).execute()
        return self._issue(user, session.id, claims.csrf, session.expires_at)

    @db.unit_of_work
    def renew(self, token, address=""):
        """``refresh`` for the guard, which may run in the HTTP filter, where the thread
        holds no database connection of its own: it borrows one when it must."""
        return self.refresh(token, address)

    def logout(self, principal, address=""):
        if principal.session_id:
            self.revoke_session(principal.session_id)
        self._audit.record("logout", username=principal.username, role=principal.role, address=address)

    def revoke_session(self, session_id):
        Session.update(revoked_at=utcnow()).where(Session.id == session_id, Session.revoked_at.is_null()).execute()
        self._revoked.invalidate()
        self._revoked.update(lambda revoked: (revoked or frozenset()) | {session_id})  # at once, here

    def revoke_user_sessions(self, user_id, keep=""):
        """End the user's open sessions, except ``keep``; returns how many were ended.

        The guard stops honouring their tokens at once on this node (and within
        REVOCATION_TTL on the others); API keys are not sessions and stay valid.
        """
        still_open = (Session.user == user_id) & (Session.id != keep) & Session.revoked_at.is_null()
        open_ids = frozenset(row.id for row in Session.select(Session.id).where(still_open))
        Session.update(revoked_at=utcnow()).where(still_open).execute()
        self._revoked.invalidate()
        self._revoked.update(lambda revoked: (revoked or frozenset()) | open_ids)  # at once, here
        return len(open_ids)

    def is_revoked(self, session_id):
        """Whether a session was ended; O(1) except one reload every REVOCATION_TTL s."""
        return session_id in self._revoked.get()

    def password_change_pending(self, principal):
        """Whether a logged-in user must change their password before anything else.

        For the guard, on every request: O(1), from a set of user ids reloaded
        every REVOCATION_TTL s (never waited on) and at once after a change of
        the flag on this node. API keys are never held back: they have no password.
        """
        return bool(principal.session_id) and principal.via != "apikey" and principal.user_id in self._pending.get()

    def principal_from_token(self, token, via):
        """(Principal, expiry as a Unix time) of a valid, unrevoked token; TokenError otherwise."""
        claims = self._codec.decode(token)
        if self.is_revoked(claims.session_id):
            raise TokenError("session ended")
        principal = Principal(claims.user_id, claims.username, claims.role, claims.session_id, claims.csrf, via)
        return principal, claims.expires

    def _issue(self, user, session_id, csrf, session_expires):
        limit = session_expires.replace(tzinfo=datetime.timezone.utc).timestamp()
        token = self._codec.issue(user.id, user.username, user.role, session_id, csrf, time.time(), not_after=limit)
        return token, self._codec.decode(token)

    def _locked(self, scope):
        minutes = self._lockout.window_seconds // 60
        # Locked (HTTP 423), not "too many requests" (429): Orthanc 1.10.1 has no 429 in its status
        # table, and a plugin answer with a status it does not know ends the connection, unanswered.
        hint = " (the right password of an account that is not locked still works)" if scope == "address" else ""
        return Locked(f"too many failed logins for this {scope}; try again in {minutes} minutes{hint}")

    def _failures(self, condition):
        since = utcnow() - datetime.timedelta(seconds=self._lockout.window_seconds)
        return LoginFailure.select().where(LoginFailure.at >= since, condition).count()

    def _login_failed(self, username, address):
        """Count a wrong password; True when its address has failed too often.

        Accounts and addresses are counted apart. An account with per_account
        failures in the window is locked for everyone: its password is under
        attack. An address with per_address failures (on any names) gets 423
        instead of 401 for its wrong passwords, but is never refused a right
        password of an account that is not locked: names guessed from one
        address (or from everyone behind one proxy) lock no real account out.
        """
        now = utcnow()
        LoginFailure.delete().where(
            LoginFailure.at < now - datetime.timedelta(seconds=self._lockout.window_seconds)
        ).execute()
        LoginFailure.create(at=now, username=username, address=(address or "")[:64])
        self._audit.record("login_failed", username=username, address=address, outcome="failure")
        on_account = self._failures(LoginFailure.username == username)
        from_address = self._failures(LoginFailure.address == address[:64]) if address else 0
        for scope, count, limit in (
            ("account", on_account, self._lockout.per_account),
            ("address", from_address, self._lockout.per_address),
        ):
            if count == limit:  # once, when the limit is reached
                LOGGER.warning("event=login_lockout scope=%s username=%s address=%s", scope, username, address)
                self._audit.record(
                    "lockout", username=username, address=address, outcome="denied", details={"scope": scope}
                )
        return from_address > self._lockout.per_address  # like an account: the limit itself still answers 401

    def _record(self, actor, action, outcome="success", details=None):
        self._audit.record(
            action,
            username=actor.username if actor else "system",
            role=actor.role if actor else "",
            outcome=outcome,
            details=details,
        )


@db.unit_of_work
def _revoked_sessions():
    """IDs of the ended sessions that could still carry a valid token."""
    rows = Session.select(Session.id).where(Session.revoked_at.is_null(False), Session.expires_at > utcnow())
    return frozenset(row.id for row in rows)


@db.unit_of_work
def _users_to_change_password():
    """IDs of the users who must change their password (few: usually none)."""
    rows = User.select(User.id).where(User.must_change_password == True)  # noqa: E712 (peewee)
    return frozenset(row.id for row in rows)


def _checked_password(password, username):
    try:
        check_policy(password, username)
    except PasswordRejected as error:
        raise Invalid(str(error)) from None


def _check_username(username):
    if not username or len(username) > MAX_USERNAME or not all(c.isalnum() or c in "._-@" for c in username):
        raise Invalid(f"username must be 1-{MAX_USERNAME} letters, digits or . _ - @")


def _check_role(role):
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")


def _text(value, name, limit):
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(f"{name} must be text of at most {limit} characters")
    return value.strip()


def _names_text(names):
    """Referring physician names (DICOM PN), one per line; "Smith, John" (family name,
    comma, given name) is taken as "Smith^John"."""
    if isinstance(names, str):
        names = names.splitlines()
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise Invalid("referring_names must be a list of DICOM person names")
    cleaned = [pn_from_text(n) for n in names if n.strip()]
    if len(cleaned) > 50 or any(len(n) > 200 for n in cleaned):
        raise Invalid("referring_names: at most 50 names of at most 200 characters")
    return "\n".join(cleaned)


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
