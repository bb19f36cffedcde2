"""The filter's caches: one reload at a time, nobody waits on it, and an
invalidation during a reload is not lost."""

import threading

from fakes import ManualClock

from plugin.auth.refreshing import Refreshing


def test_reloads_after_the_ttl_only():
    clock, loads = ManualClock(100.0), []
    value = Refreshing(lambda: loads.append(1) or len(loads), ttl=2, clock=clock)
    assert value.get() == 1 and value.get() == 1
    clock.now += 3
    assert value.get() == 2


def test_others_keep_the_last_value_while_one_reloads():
    clock, release, started = ManualClock(100.0), threading.Event(), threading.Event()
    results = iter([1, 2])

    def load():
        if value._value is not None:  # the reload: hold it until the test says so
            started.set()
            release.wait(5)
        return next(results)

    value = Refreshing(load, ttl=2, clock=clock)
    assert value.get() == 1
    clock.now += 3
    reloader = threading.Thread(target=value.get)
    reloader.start()
    started.wait(5)
    assert value.get() == 1  # did not wait for the reload in flight
    release.set()
    reloader.join(5)
    assert value.get() == 2


def test_an_invalidation_during_a_reload_forces_another():
    clock, started, release = ManualClock(100.0), threading.Event(), threading.Event()
    loads = []

    def load():
        loads.append(1)
        if len(loads) == 2:
            started.set()
            release.wait(5)
        return len(loads)

    value = Refreshing(load, ttl=2, clock=clock)
    value.get()
    value.invalidate()
    reloader = threading.Thread(target=value.get)
    reloader.start()
    started.wait(5)
    value.invalidate()  # e.g. a revocation written after that reload read the database
    release.set()
    reloader.join(5)
    assert value.get() == 3


def test_after_an_invalidation_nobody_is_answered_from_the_old_value():
    """A key just created (or a password just changed): while one thread reloads, the
    others wait for it instead of being answered from the value known to be wrong."""
    clock, started, release = ManualClock(100.0), threading.Event(), threading.Event()
    loads = []

    def load():
        loads.append(1)
        if len(loads) == 2:
            started.set()
            release.wait(5)
        return len(loads)

    value = Refreshing(load, ttl=2, clock=clock)
    assert value.get() == 1
    value.invalidate()
    reloader = threading.Thread(target=value.get)
    reloader.start()
    started.wait(5)
    seen = []
    other = threading.Thread(target=lambda: seen.append(value.get()))
    other.start()
    other.join(0.2)
    assert other.is_alive() and seen == []  # waiting, not answered with 1
    release.set()
    reloader.join(5)
    other.join(5)
    assert seen == [2] and len(loads) == 2  # the reload it waited for, not a second one
