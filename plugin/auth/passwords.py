"""Password hashing (bcrypt) and the password policy."""

import threading

import bcrypt
from zxcvbn import zxcvbn

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


MIN_SCORE = 3  # zxcvbn's "safely unguessable": under 10**10 guesses is refused


def check_policy(password, username):
    """Raise PasswordRejected unless the password is acceptable.

    zxcvbn estimates how many guesses the password takes (repeats, sequences,
    keyboard patterns, dates, dictionary words with l33t and capitals), not only
    whether it is on a list. Its cost grows with the length: the input is at
    most MAX_BYTES (72) bytes, measured at most ~70 ms (72 x "1") on this machine.
    """
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise PasswordRejected(f"password must be at least {MIN_LENGTH} characters long")
    if len(password.encode("utf-8")) > MAX_BYTES:
        raise PasswordRejected(f"password must be at most {MAX_BYTES} bytes long")
    if username and username.lower() in password.lower():
        raise PasswordRejected("password must not contain the username")
    result = zxcvbn(password[:MAX_BYTES], user_inputs=[username or "", "pacs", "orthanc"])
    if result["score"] < MIN_SCORE:
        feedback = result["feedback"]
        why = (
            " ".join(part for part in [feedback.get("warning", "")] + feedback.get("suggestions", []) if part)
            or "Add another word or two. Uncommon words are better."
        )
        raise PasswordRejected(
            f"password is too common or easy to guess (strength {result['score']} of 4, {MIN_SCORE} needed): {why}"
        )
