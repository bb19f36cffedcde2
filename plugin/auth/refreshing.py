"""A value reloaded from the database every few seconds, for the HTTP filter.

The filter runs for every request, image frames included: it must never
wait on a reload. One thread reloads; the others keep the last value
meanwhile (only the very first load is waited for). An invalidation made
while a reload is running makes the next call reload again, so a revocation
is never lost to a reload that read the database just before it.
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
        self._generation = 0

    def get(self):
        if self._loaded_at is not None and self._clock() - self._loaded_at <= self._ttl:
            return self._value
        if not self._lock.acquire(blocking=self._loaded_at is None):
            return self._value  # another thread is reloading: the last value a moment longer
        try:
            if self._loaded_at is None or self._clock() - self._loaded_at > self._ttl:
                generation = self._generation
                value = self._load()
                self._value = value
                self._loaded_at = self._clock() if generation == self._generation else -self._ttl
            return self._value
        finally:
            self._lock.release()

    def invalidate(self):
        """Reload at the next call (and again, should a reload be running now)."""
        self._generation += 1
        self._loaded_at = None if self._loaded_at is None else -self._ttl

    def update(self, change):
        """Apply ``change(value) -> value`` to the value now (a local revocation)."""
        with self._lock:
            self._value = change(self._value)
