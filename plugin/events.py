"""Named events: what happened, published once by the part that made it happen.

Ingest, reports, orders and accounts publish (``events.publish("report.signed",
study_uid=..., ...)``); metrics, routing, HL7 and the like subscribe without
the publisher knowing them. Listeners are notifications: each runs in turn on
the publisher's thread, and one that raises is logged and skipped, never
breaking the publisher or the listeners after it (pynetdicom keeps its
notification handlers apart from intervention hooks the same way). A listener
with slow work hands it to its own queue.

Every name is declared in `EVENTS` with the fields it carries, so a typo in a
publisher or subscriber fails at once instead of never firing.
"""

import logging
import threading
from collections import defaultdict

LOGGER = logging.getLogger(__name__)

# name -> the payload fields every publication carries (more may follow).
EVENTS = {
    "study.indexed": ("study_uid", "orthanc_id"),
    "study.removed": ("study_uid",),
    "study.status_changed": ("study_uid", "status"),
    "report.signed": ("study_uid", "report_id", "version"),
    "report.amended": ("study_uid", "report_id", "version"),
    "order.created": ("order_id", "accession_number"),
    "order.changed": ("order_id", "accession_number", "status"),
    "account.created": ("user_id", "username"),
    "account.changed": ("user_id", "username"),
}


class UnknownEvent(ValueError):
    pass


class Events:
    def __init__(self, declared=None):
        self._declared = dict(EVENTS if declared is None else declared)
        self._listeners = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, name, listener):
        """Call ``listener(**payload)`` after every publication of ``name``."""
        self._check(name)
        with self._lock:
            self._listeners[name] = [*self._listeners[name], listener]

    def publish(self, name, **payload):
        """Tell every listener of ``name``; returns how many ran without raising."""
        self._check(name)
        missing = [field for field in self._declared[name] if field not in payload]
        if missing:
            raise ValueError(f"event {name} published without {', '.join(missing)}")
        done = 0
        for listener in self._listeners.get(name, ()):  # a copy: subscribing meanwhile is safe
            try:
                listener(**payload)
                done += 1
            except Exception:
                LOGGER.exception(
                    "event=event_listener_failed name=%s listener=%s",
                    name,
                    getattr(listener, "__qualname__", repr(listener)),
                )
        return done

    def _check(self, name):
        if name not in self._declared:
            raise UnknownEvent(f"unknown event {name!r}")
