"""Short-lived access tokens: JWT, HS256, with a secret kept 0600 in the data
folder (or given in the configuration, which several nodes must share)."""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import jwt

ALGORITHM = "HS256"
SECRET_FILE = "jwt-secret"


def load_or_create_secret(data_dir, configured=""):
    """The signing secret: the configured one, else the data folder's, created once."""
    if configured:
        if len(configured) < 32:
            raise ValueError("Pacs.JwtSecret must be at least 32 characters")
        return configured.encode("utf-8")
    path = Path(data_dir) / SECRET_FILE
    try:
        return path.read_text(encoding="ascii").strip().encode("ascii")
    except FileNotFoundError:
        pass
    value = secrets.token_hex(64)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value)
    return value.encode("ascii")


@dataclass(frozen=True)
class Claims:
    user_id: int
    username: str
    role: str
    session_id: str
    csrf: str
    expires: int


class TokenError(Exception):
    """Not a token we issued, tampered with, or expired (``expired`` says which)."""

    def __init__(self, message, expired=False):
        super().__init__(message)
        self.expired = expired


class TokenCodec:
    def __init__(self, secret, ttl_seconds=900):
        self._secret = secret
        self.ttl = ttl_seconds

    def issue(self, user_id, username, role, session_id, csrf, now, not_after=None):
        """A token valid for ``ttl`` seconds, never past ``not_after`` (the session's end)."""
        expires = int(now) + self.ttl
        if not_after is not None:
            expires = min(expires, int(not_after))
        claims = {
            "sub": str(user_id),
            "name": username,
            "role": role,
            "sid": session_id,
            "csrf": csrf,
            "iat": int(now),
            "exp": expires,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token, verify_exp=True):
        """Claims of a token we signed; TokenError otherwise (``alg: none`` included)."""
        try:
            data = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "sid"], "verify_exp": verify_exp},
            )
            return Claims(
                int(data["sub"]),
                str(data["name"]),
                str(data["role"]),
                str(data["sid"]),
                str(data.get("csrf", "")),
                int(data["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("session expired", expired=True) from None
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
            raise TokenError("invalid token") from None
