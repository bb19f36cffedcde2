"""Password hashing (bcrypt) and the password policy."""

import functools
import threading

import bcrypt

MIN_LENGTH = 10
MAX_BYTES = 72  # bcrypt ignores (5.0: refuses) anything longer


class PasswordRejected(ValueError):
    """The password does not meet the policy; the message says why."""


class Hasher:
    """bcrypt at a configurable cost, at most ``parallel`` hashes at once.

    bcrypt releases the GIL, but each hash takes a core for ~0.25 s at cost
    12: bounding the parallelism keeps a burst of logins from starving the
    image traffic on a two-core machine.
    """

    def __init__(self, cost=12, parallel=1):
        self.cost = cost
        self._slots = threading.BoundedSemaphore(parallel)
        self._dummy = self.hash("dummy password for unknown users")

    def hash(self, password):
        with self._slots:
            return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(self.cost)).decode("ascii")

    def verify(self, password, hashed):
        """True if ``password`` matches; always costs one bcrypt, even with no hash."""
        data = password.encode("utf-8")
        if len(data) > MAX_BYTES:
            data, hashed = b"x", None  # still pay for one hash: no timing oracle
        with self._slots:
            try:
                return bcrypt.checkpw(data, (hashed or self._dummy).encode("ascii")) and hashed is not None
            except ValueError:
                return False


@functools.lru_cache(maxsize=1)
def _common_passwords():
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # 30 000 most common passwords
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password, username):
    """Raise PasswordRejected unless the password is acceptable."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise PasswordRejected(f"password must be at least {MIN_LENGTH} characters long")
    if len(password.encode("utf-8")) > MAX_BYTES:
        raise PasswordRejected(f"password must be at most {MAX_BYTES} bytes long")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise PasswordRejected("password must not contain the username")
    if lowered in _common_passwords() or lowered.rstrip("0123456789!") in _common_passwords():
        raise PasswordRejected("password is too common; choose a less predictable one")
