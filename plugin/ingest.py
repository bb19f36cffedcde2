"""Keeps the study index equal to what Orthanc holds.

Orthanc's change callback runs on its one change thread for every stored
instance, so `on_change` only puts work on a queue. One worker thread does
the work, in order: it reads the study from Orthanc (short SDK calls, never
on an HTTP thread) and writes the index.

A study is indexed as soon as no image has arrived for ``quiet_seconds``
(Orthanc's StableAge) on our own clock, checked every ``POLL`` seconds:
Orthanc times stability in whole seconds, so its STABLE_STUDY event comes
up to a second later than that. The worker learns which studies are
receiving from NEW_SERIES (one SDK call per series, none per image);
NEW_INSTANCE only stamps the time. STABLE_STUDY still re-indexes each study,
so a study never depends on the early path.

Nothing is lost across crashes: at start-up and then periodically,
`reconcile` walks Orthanc's studies and re-indexes any whose LastUpdate
differs from the index, and drops rows whose study is gone.
"""

import json
import logging
import queue
import threading
import time

from plugin import db, studyindex
from plugin.events import Events

LOGGER = logging.getLogger(__name__)

RECONCILE_PAGE = 200
POLL = 0.2


class Ingest:
    def __init__(self, host, reconcile_interval=900.0, quiet_seconds=None, clock=time.monotonic, events=None):
        self._host = host
        self._events = events if events is not None else Events()  # study.indexed, study.removed, order.changed
        self._interval = reconcile_interval
        self._quiet = quiet_seconds  # None: wait for STABLE_STUDY only
        self._clock = clock
        self._queue = queue.Queue()
        self._thread = None
        self._stopping = threading.Event()  # at shutdown: what is queued waits for the next reconcile
        self._receiving = set()  # Orthanc IDs of studies with new images (worker thread only)
        self._last_instance = 0.0

    # --- called on Orthanc's change thread: enqueue only -------------------

    def on_change(self, change, level, resource_id):
        if change == "new_instance":
            self._last_instance = self._clock()
        elif change == "new_series" and self._quiet is not None:
            self._queue.put(("series_arrived", resource_id, self._clock()))
        elif change == "stable_study":
            self._queue.put(("index", resource_id, self._clock()))
        elif change == "deleted" and level == "study":
            self._queue.put(("remove", resource_id, self._clock()))
        elif change == "deleted" and level == "series":
            self._queue.put(("series_deleted", resource_id, self._clock()))

    # --- worker -------------------------------------------------------------

    def start(self):
        """Start the worker; its first task is a reconcile."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._queue.put(("reconcile", None, self._clock()))
        self._thread = threading.Thread(target=self._run, name="pacs-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout=10.0):
        """End the worker after its current task (a reconcile: after its current study);
        tasks still queued are dropped: the next start's reconcile does them."""
        if self._thread is None:
            return
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def wait_idle(self):
        """Block until every queued task is done (tests and tools)."""
        self._queue.join()

    def _run(self):
        next_reconcile = self._clock() + self._interval
        while True:
            wait = max(0.0, next_reconcile - self._clock())
            try:
                task = self._queue.get(timeout=min(wait, POLL) if self._receiving else wait)
            except queue.Empty:
                if self._clock() >= next_reconcile:
                    self._queue.put(("reconcile", None, self._clock()))
                else:
                    self._index_quiet_studies()
                continue
            try:
                if task is None or self._stopping.is_set():
                    return
                if task[0] == "reconcile":
                    next_reconcile = self._clock() + self._interval
                self._perform(*task)
            except Exception:
                LOGGER.exception("event=ingest_task_failed task=%s id=%s", task[0], task[1])
            finally:
                self._queue.task_done()

    @db.unit_of_work
    def _perform(self, kind, resource_id, queued_at):
        if kind == "index":
            self.index_study(resource_id, queued_at)
        elif kind == "remove":
            self.remove_study(resource_id)
        elif kind == "series_deleted":
            self.series_deleted(resource_id)
        elif kind == "series_arrived":
            self.series_arrived(resource_id)
        elif kind == "reconcile":
            self.reconcile()

    # --- the work itself (callable directly) ---------------------------------

    def series_arrived(self, series_orthanc_id):
        series = self._host.get_json(f"/series/{series_orthanc_id}")
        if series:
            self._receiving.add(series["ParentStudy"])

    def _index_quiet_studies(self):
        if not self._receiving or self._clock() - self._last_instance < self._quiet:
            return
        for orthanc_id in list(self._receiving):
            try:
                self.index_study(orthanc_id, self._last_instance)
            except Exception:
                LOGGER.exception("event=ingest_task_failed task=quiet_index id=%s", orthanc_id)
                self._receiving.discard(orthanc_id)

    @db.unit_of_work
    def index_study(self, orthanc_id, queued_at=None, study=None):
        """(Re-)index one study; remove it from the index if Orthanc lost it."""
        self._receiving.discard(orthanc_id)
        started = self._clock()
        study = study or self._host.get_json(f"/studies/{orthanc_id}")
        series = self._host.get_json(f"/studies/{orthanc_id}/series") if study else None
        if study is None or series is None:
            self.remove_study(orthanc_id)
            return None
        summary = studyindex.summarise(study, series)
        row = studyindex.store(summary, events=self._events)
        done = self._clock()
        LOGGER.info(
            "event=study_indexed orthanc_id=%s study_uid=%s series=%d instances=%d took_ms=%.1f waited_ms=%.1f",
            orthanc_id,
            summary.study_instance_uid,
            len(summary.series),
            summary.instance_count,
            (done - started) * 1000,
            (started - (queued_at or started)) * 1000,
        )
        self._events.publish("study.indexed", study_uid=summary.study_instance_uid, orthanc_id=orthanc_id)
        return row

    def remove_study(self, orthanc_id):
        study_uid = studyindex.remove(orthanc_id)
        if study_uid is None:
            return
        LOGGER.info("event=study_removed orthanc_id=%s study_uid=%s", orthanc_id, study_uid)
        self._events.publish("study.removed", study_uid=study_uid)

    def series_deleted(self, series_orthanc_id):
        """A series went away: refresh its study (which may be gone too)."""
        study_id = studyindex.study_of_series(series_orthanc_id)
        if study_id:
            self.index_study(study_id)

    def reconcile(self):
        """Make the index equal to Orthanc: index what differs, drop what is gone."""
        started = self._clock()
        known = studyindex.indexed_versions()
        seen, indexed, since = set(), 0, 0
        while True:
            page = self._listing_page(since)
            for orthanc_id, last_update, stable, study in page:
                if self._stopping.is_set():  # shutting down: the next start reconciles again
                    return None
                seen.add(orthanc_id)
                if known.get(orthanc_id) != last_update and stable:
                    if self._index_safely(orthanc_id, study):
                        indexed += 1
            if len(page) < RECONCILE_PAGE:
                break
            since += len(page)
        removed = sum(self._remove_if_gone(orthanc_id) for orthanc_id in set(known) - seen)
        LOGGER.info(
            "event=reconcile_done studies=%d indexed=%d removed=%d took_ms=%.1f",
            len(seen),
            indexed,
            removed,
            (self._clock() - started) * 1000,
        )
        return {"studies": len(seen), "indexed": indexed, "removed": removed}

    def _remove_if_gone(self, orthanc_id):
        """Drop a study missing from the listing once Orthanc confirms it is gone.

        Paging by offset can skip a study when another is deleted meanwhile,
        hence the confirmation; an error confirming one study must not stop
        the others (it stays indexed until the next reconcile).
        """
        try:
            if self._host.get_json(f"/studies/{orthanc_id}") is not None:
                return False
            self.remove_study(orthanc_id)
            return True
        except Exception:
            LOGGER.exception("event=study_remove_failed orthanc_id=%s", orthanc_id)
            return False

    def _listing_page(self, since):
        """Orthanc's studies from ``since`` on: [(ID, LastUpdate, stable?, study JSON or None)].

        Orthanc 1.12.5 and later (its extended /tools/find) answer only what the
        reconcile compares, and the few studies that changed are read afterwards;
        1.10.1 can only list whole studies (every main tag of every study)."""
        if "extended_find" in self._host.capabilities():
            page = json.loads(
                self._host.builtin(
                    "POST",
                    "/tools/find",
                    json.dumps(
                        {
                            "Level": "Study",
                            "Query": {},
                            "ResponseContent": ["Metadata", "IsStable"],
                            "Since": since,
                            "Limit": RECONCILE_PAGE,
                        }
                    ).encode(),
                )
            )
            return [(s["ID"], s.get("Metadata", {}).get("LastUpdate"), s.get("IsStable", True), None) for s in page]
        page = self._host.get_json(f"/studies?expand&since={since}&limit={RECONCILE_PAGE}") or []
        return [(s["ID"], s.get("LastUpdate"), s.get("IsStable", True), s) for s in page]

    def _index_safely(self, orthanc_id, study=None):
        """One bad study must not stop a reconcile."""
        try:
            return self.index_study(orthanc_id, study=study) is not None
        except Exception:
            LOGGER.exception("event=study_index_failed orthanc_id=%s", orthanc_id)
            return False
