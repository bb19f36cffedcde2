"""A value reloaded from the database every few seconds, for the HTTP filter.

The filter runs for every request, image frames included: it must not wait on
the periodic reload. One thread reloads; the others keep the last value
meanwhile. The first load is waited for, and so is the reload after an
invalidation: the last value is then known to be wrong (a key just created, a
password just changed, a key revoked), so nobody is answered from it. An
invalidation made while a reload is running makes the next call reload again,
so a change is never lost to a reload that read the database just before it.
"""

import threading
import time


class Refreshing:
    def __init__(self, load, ttl, clock=time.monotonic):
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value = None
        self._loaded_at = None
        self._invalid = False  # changed since the value was read: wait for the reload
        self._generation = 0

    def get(self):
        if not self._invalid and self._loaded_at is not None and self._clock() - self._loaded_at <= self._ttl:
            return self._value
        if not self._lock.acquire(blocking=self._loaded_at is None or self._invalid):
            return self._value  # only expired: another thread is reloading, the last value a moment longer
        try:
            if self._loaded_at is None or self._invalid or self._clock() - self._loaded_at > self._ttl:
                generation = self._generation
                self._value = self._load()
                self._loaded_at = self._clock()
                self._invalid = generation != self._generation  # invalidated again meanwhile: reload again
            return self._value
        finally:
            self._lock.release()

    def invalidate(self):
        """Reload at the next call, which every caller waits for (and again, should a
        reload be running now)."""
        self._generation += 1
        self._invalid = True

    def update(self, change):
        """Apply ``change(value) -> value`` to the value now (a local revocation)."""
        with self._lock:
            self._value = change(self._value)
