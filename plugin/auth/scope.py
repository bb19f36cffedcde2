"""Which studies a referrer may see: those whose referring physician matches
one of the names on their account, and those shared with them."""

import threading
import time

from plugin import db
from plugin.auth.models import StudyShare, User
from plugin.models import Study

TTL = 10.0


class ReferrerScope:
    """Study UIDs per referrer, cached for TTL seconds (the guard asks per frame)."""

    def __init__(self, ttl=TTL, clock=time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._cache = {}
        self._lock = threading.Lock()

    def studies(self, user_id):
        """The user's study UIDs. Never waits on a reload in flight (the filter
        asks per frame): the old set serves until the one reload is done."""
        entry = self._cache.get(user_id)
        if entry is not None and self._clock() - entry[0] <= self._ttl:
            return entry[1]
        if not self._lock.acquire(blocking=entry is None):
            return entry[1]
        try:
            entry = self._cache.get(user_id)
            if entry is None or self._clock() - entry[0] > self._ttl:
                entry = self._cache[user_id] = (self._clock(), self._load(user_id))
            return entry[1]
        finally:
            self._lock.release()

    @staticmethod
    @db.unit_of_work
    def _load(user_id):
        user = User.get_or_none(User.id == user_id)
        if user is None or user.disabled:
            return frozenset()
        keys = user.referring_keys
        uids = set()
        if keys:
            query = Study.select(Study.study_instance_uid).where(Study.referring_key.in_(list(keys)))
            uids.update(row.study_instance_uid for row in query)
        shares = StudyShare.select(StudyShare.study_instance_uid).where(StudyShare.user == user_id)
        uids.update(row.study_instance_uid for row in shares)
        return frozenset(uids)
