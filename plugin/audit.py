"""The audit trail: who did what, to which study, when, and with what outcome.

Append-only and tamper-evident: every entry is chained to the one before it
by ``hash = sha256(prev_hash + canonical)`` (hex), where ``prev_hash`` is the
previous entry's hash (64 zeros for the first entry) and ``canonical`` is
the UTF-8 text of::

    json.dumps({"action": ..., "address": ..., "at": ..., "details": ...,
                "outcome": ..., "role": ..., "study_uid": ..., "username": ...},
               sort_keys=True, separators=(",", ":"), ensure_ascii=False)

with ``at`` written ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC) and ``details`` the
stored JSON text as it is. The id is not hashed (the database assigns it
after the hash is computed); the order is held by the ``prev_hash`` links.
Editing, deleting, inserting or moving an entry breaks the chain where it
happened. Two things no keyless chain can show: entries cut off the end,
and a chain rewritten from some point on. Keep the head hash that `verify`
reports somewhere else to catch both.

The chain stays linear because appends are serialised: a lock within the
process and a database lock across processes and nodes (SQLite's
``BEGIN IMMEDIATE``, a PostgreSQL transaction-scoped advisory lock).

Access to patient data is audited from the HTTP filter, which runs for every
request (every image frame): `record_access` touches memory only (a throttle
dict and a queue) and a writer thread appends what is queued, in batches. It
keeps one entry per (user, action, target) per window, the target being the
study, the Orthanc resource in the path or the search's query. The writer
resolves an Orthanc resource (/patients|studies|series|instances/<id>) to its
patient ID and StudyInstanceUID, then keeps one entry per (user, action,
study) per window: a viewer reading 500 instances of a study is one entry.

Command line: ``python -m plugin.audit verify [--database-url URL]``.
"""

import argparse
import collections
import contextvars
import csv
import datetime
import hashlib
import io
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from peewee import BigAutoField, DateTimeField, SqliteDatabase, TextField

from plugin import db
from plugin.db import BaseModel, database

# The client address of the HTTP request being answered, set by the app for
# the length of a request: entries recorded deep inside a service get it
# without every call passing it along.
request_address = contextvars.ContextVar("request_address", default="")

LOGGER = logging.getLogger(__name__)

ACTIONS = frozenset(
    {
        # sign-in and accounts
        "login",
        "logout",
        "login_failed",
        "lockout",
        "access_denied",
        "password_changed",
        "password_reset",
        "user_created",
        "user_updated",
        "user_disabled",
        "user_enabled",
        "user_unlocked",
        "apikey_created",
        "apikey_revoked",
        # studies and reports
        "study_viewed",
        "images_retrieved",
        "report_saved",
        "report_finalized",
        "report_addended",
        "report_printed",
        "export",
        "send",
        "delete",
        "study_claimed",
        "study_released",
        "study_assigned",
        "priority_changed",
        "report_viewed",
        "node_saved",
        "node_deleted",
        "node_queried",
        "retrieve",
        # reading patient data (record_access): Orthanc's REST and DICOMweb, our searches, DICOM nodes
        "resource_read",
        "archive_downloaded",
        "media_downloaded",
        "search",
        "thumbnail_viewed",
        "dicom_query",
        "dicom_retrieve",
        # orders (the modality worklist)
        "order_created",
        "order_updated",
        "order_cancelled",
        # the audit trail itself
        "audit_exported",
        "audit_verified",
    }
)
OUTCOMES = frozenset({"success", "failure", "denied", "error"})
HASHED_FIELDS = ("at", "username", "role", "address", "action", "study_uid", "outcome", "details")
CSV_COLUMNS = ("id",) + HASHED_FIELDS + ("prev_hash", "hash")
GENESIS_HASH = "0" * 64

MAX_PAGE_SIZE = 500
MAX_TEXT = 1024  # a login name typed by an attacker must not bloat the log
MAX_DETAILS = 64 * 1024
QUEUE_LIMIT = 100_000
WRITE_BATCH = 500
WRITE_ATTEMPTS = 3
RETRY_DELAY = 1.0
MAX_THROTTLE_KEYS = 100_000
MAX_RESOLVED = 10_000  # Orthanc resource id -> (patient ID, study UID), in the writer thread
MAX_QUERY_TEXT = 2048
NODE_SERVICES = {"C-FIND": "dicom_query", "C-MOVE": "dicom_retrieve", "C-GET": "dicom_retrieve"}
STUDY_UID_TAG = "0020,000d"  # as Orthanc's Lua names it
SEARCHES = frozenset({"search", "dicom_query"})
# Paging a search is the same search: one entry for all its pages.
PAGING_PARAMS = frozenset({"limit", "offset", "page", "page_size", "since", "sort"})
_SECRET_PARAM = re.compile(r"token|passw|secret|key|auth|session|csrf", re.IGNORECASE)
_RESOURCE_PATH = re.compile(r"/(patients|studies|series|instances)/([^/?]+)")

_ADVISORY_LOCK_KEY = 0x4155_4454  # "AUDT"; migrations use "PACS"
_APPEND_LOCK = threading.Lock()
_STOP = object()
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class AuditEntry(BaseModel):
    id = BigAutoField()
    at = DateTimeField(index=True)  # naive UTC
    username = TextField(index=True)
    role = TextField()
    address = TextField()
    action = TextField(index=True)
    study_uid = TextField(index=True)
    outcome = TextField()
    details = TextField()  # JSON
    prev_hash = TextField()
    hash = TextField()

    class Meta:
        table_name = "audit_log"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int  # entries examined, the failing one included
    first_bad_id: int | None
    message: str
    last_hash: str = ""  # hash of the last entry that verified


class AuditLog:
    def __init__(self, window_seconds=300, clock=time.time):
        self._window = window_seconds
        self._clock = clock
        self._queue = queue.Queue(maxsize=QUEUE_LIMIT)
        self._thread = None
        self._lock = threading.Lock()  # guards _seen and _dropped
        self._seen = collections.OrderedDict()  # throttle key -> time, oldest first
        self._dropped = 0
        # The writer thread's own: where Orthanc resources are, and its per-study throttle.
        self.resolver = None  # (level, orthanc_id or study UID) -> (patient ID, study UID); see set_resolver
        self._resolved = collections.OrderedDict()
        self._written = collections.OrderedDict()

    # --- appending ---------------------------------------------------------

    @db.unit_of_work
    def record(self, action, *, username="", role="", address="", study_uid="", outcome="success", details=None):
        """Append one entry now and return it.

        Inside a caller's transaction the entry commits or rolls back with
        it (a user change and its audit entry, say) and the chain stays
        locked until that transaction ends. The in-process lock is skipped
        there: taking it while holding SQLite's write lock could make
        another thread wait on us for the database's busy timeout.
        """
        address = address or request_address.get()
        content = self._content(action, username, role, address, study_uid, outcome, details)
        if database.in_transaction():
            return _append([content])[0]
        return _append_locked([content])[0]

    def record_async(self, action, *, username="", role="", address="", study_uid="", outcome="success", details=None):
        """Queue one entry for the writer thread; never touches the database.

        Returns False when the queue is full: the entry is dropped, and the
        writer logs how many were.
        """
        return self._enqueue(self._content(action, username, role, address, study_uid, outcome, details))

    def _enqueue(self, content):
        try:
            self._queue.put_nowait(content)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            return False
        return True

    def record_access(self, action, *, username, role, address, path, study_uid="", query=None):
        """Audit a read of patient data (the HTTP filter, our routes, DICOM nodes): memory only.

        Queues ``action`` at most once per (username, action, target) per window in
        this process, target being ``study_uid``, else the Orthanc resource in
        ``path``, else the path; for searches the query too, without its paging.
        Returns whether it queued an entry. The writer thread fills in the
        patient and the study of an Orthanc resource.
        """
        resource = None if study_uid else _resource_in(path)
        target = study_uid or ("/".join(resource) if resource else path)
        if action in SEARCHES:
            target += "?" + _query_text(query, drop=PAGING_PARAMS)
        if not self._first_in_window((username, action, target)):
            return False
        details = {
            key: value for key, value in (("path", _clean(path, 512)), ("query", _query_text(query, drop=()))) if value
        }
        content = self._content(action, username, role, address, study_uid, "success", details)
        content["resolve"] = resource or (("study", study_uid) if study_uid else None)
        return self._enqueue(content)

    def record_request(self, action, request, study_uid=""):
        """`record_access` for one of our own routes' requests (plugin.http.Request)."""
        principal = request.principal
        return self.record_access(
            action,
            username=principal.username,
            role=principal.role,
            address=request.client_ip,
            path=request.path,
            study_uid=study_uid,
            query=request.query,
        )

    def record_node_access(self, report):
        """Audit a DICOM node's query or retrieve as Orthanc reports it (plugin/dicom_audit.lua):
        ``{"service": "C-FIND", "origin": {"RemoteAet", "RemoteIp", ...}, "query": {tag: value}}``.
        The node is the user ("dicom:<calling AET>", role "node"), its IP the address; the
        query's matching keys (non-empty, not "*") are what was searched. ValueError for
        a service that is not one of NODE_SERVICES."""
        origin = report.get("origin") if isinstance(report.get("origin"), dict) else {}
        query = report.get("query") if isinstance(report.get("query"), dict) else {}
        matching = {
            str(tag).lower(): value
            for tag, value in query.items()
            if isinstance(value, str) and value.strip() not in ("", "*")
        }
        study_uid = matching.get(STUDY_UID_TAG, "")
        action = NODE_SERVICES.get(report.get("service"))
        if action is None:
            raise ValueError(f"unknown DICOM service: {str(report.get('service'))[:32]!r}")
        return self.record_access(
            action,
            username=f"dicom:{origin.get('RemoteAet', '')}",
            role="node",
            address=str(origin.get("RemoteIp", "")),
            path=str(report.get("service", "")),
            study_uid=study_uid if "\\" not in study_uid else "",
            query=matching,
        )

    def set_resolver(self, resolver):
        """``resolver(level, key)``: (patient ID, study UID) of an Orthanc resource
        (level patients|studies|series|instances, key its Orthanc id) or of a study
        (level "study", key its UID); ("", "") when unknown. Called in the writer
        thread only, each call a unit of work of its own."""
        self.resolver = db.unit_of_work(resolver)

    def _first_in_window(self, key):
        now = self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and 0 <= now - last < self._window:
                return False
            self._seen[key] = now
            self._seen.move_to_end(key)
            self._prune(now)
        return True

    def _prune(self, now):
        """Forget keys older than the window, oldest first: amortised O(1)."""
        horizon = now - self._window
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest > horizon and len(self._seen) <= MAX_THROTTLE_KEYS:
                return
            self._seen.popitem(last=False)

    def _content(self, action, username, role, address, study_uid, outcome, details):
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action: {action!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome: {outcome!r}")
        at = datetime.datetime.fromtimestamp(self._clock(), datetime.timezone.utc)
        return {
            "at": at.replace(tzinfo=None),
            "username": _clean(username),
            "role": _clean(role),
            "address": _clean(address),
            "action": action,
            "study_uid": _clean(study_uid),
            "outcome": outcome,
            "details": _details_text(details),
        }

    # --- the writer thread ---------------------------------------------------

    def start(self):
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="pacs-audit", daemon=True)
        self._thread.start()

    def stop(self, timeout=10.0):
        """Write everything queued so far, then end the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def flush(self):
        """Block until every queued entry is written (tests and tools)."""
        if self._thread is None:
            raise RuntimeError("the audit writer is not started")
        self._queue.join()

    def _run(self):
        while True:
            batch = self._next_batch()
            stopping = batch[-1] is _STOP
            try:
                self._write(batch[:-1] if stopping else batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stopping:
                return

    def _next_batch(self):
        batch = [self._queue.get()]
        while batch[-1] is not _STOP and len(batch) < WRITE_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, contents):
        """Append a batch, retrying a few times; log what cannot be written."""
        self._report_dropped()
        contents = [content for content in map(self._completed, contents) if content is not None]
        if not contents:
            return
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                _append_locked(contents)
                return
            except Exception:
                LOGGER.exception("event=audit_write_failed entries=%d attempt=%d", len(contents), attempt)
                if attempt < WRITE_ATTEMPTS:
                    time.sleep(RETRY_DELAY * attempt)
        for content in contents:  # details may hold patient data: left out
            LOGGER.error(
                "event=audit_entry_lost at=%s action=%s username=%r study_uid=%s outcome=%s",
                format_at(content["at"]),
                content["action"],
                content["username"],
                content["study_uid"],
                content["outcome"],
            )

    def _completed(self, content):
        """An access entry with its patient and study filled in (writer thread), or
        None when this user's same access to the same study is already in the window."""
        resolve = content.pop("resolve", None)
        if resolve is None:
            return content
        patient_id, study_uid = self._resolve(*resolve)
        if study_uid and not content["study_uid"]:
            content["study_uid"] = _clean(study_uid)
        details = json.loads(content["details"])
        if patient_id:
            details["patient_id"] = patient_id
        content["details"] = _details_text(details)
        if content["action"] in SEARCHES:  # each search is its own entry (the filter bounds them)
            return content
        key = (content["username"], content["action"], content["study_uid"] or patient_id or resolve)
        now = content["at"].replace(tzinfo=datetime.timezone.utc).timestamp()
        last = self._written.get(key)
        if last is not None and 0 <= now - last < self._window:
            return None
        self._written[key] = now
        self._written.move_to_end(key)
        while len(self._written) > MAX_THROTTLE_KEYS or (
            self._written and next(iter(self._written.values())) <= now - self._window
        ):
            self._written.popitem(last=False)
        return content

    def _resolve(self, level, key):
        """(patient ID, study UID) through the resolver, remembered; ("", "") without one."""
        if self.resolver is None:
            return "", (key if level == "study" else "")
        found = self._resolved.get((level, key))
        if found is None:
            try:
                found = self.resolver(level, key)
            except Exception:
                LOGGER.exception("event=audit_resolve_failed level=%s", level)
                found = ("", key if level == "study" else "")
            self._resolved[(level, key)] = found
            if len(self._resolved) > MAX_RESOLVED:
                self._resolved.popitem(last=False)
        return found

    def _report_dropped(self):
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            LOGGER.error("event=audit_queue_full dropped=%d", dropped)

    # --- reading -----------------------------------------------------------

    @db.unit_of_work
    def verify(self, batch=1000):
        """Walk the whole chain in id order, recomputing every hash and link."""
        started = time.monotonic()
        result = _verify_chain(max(1, int(batch)))
        took_ms = (time.monotonic() - started) * 1000
        if result.ok:
            LOGGER.info(
                "event=audit_verified ok=true checked=%d last_hash=%s took_ms=%.1f",
                result.checked,
                result.last_hash,
                took_ms,
            )
        else:
            LOGGER.error(
                "event=audit_verified ok=false checked=%d first_bad_id=%s took_ms=%.1f",
                result.checked,
                result.first_bad_id,
                took_ms,
            )
        return result

    @db.unit_of_work
    def query(
        self,
        username=None,
        action=None,
        study_uid=None,
        outcome=None,
        date_from=None,
        date_to=None,
        page=1,
        page_size=50,
    ):
        """(entries as dicts, total matching), newest first.

        Dates are UTC datetimes, dates or their ISO text; a bare date covers
        its whole day (``date_to`` included). Bad filters raise ValueError.
        """
        page = max(1, int(page))
        page_size = min(MAX_PAGE_SIZE, max(1, int(page_size)))
        selected = _filtered(username, action, study_uid, outcome, date_from, date_to)
        total = selected.count()
        rows = selected.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).paginate(page, page_size).dicts()
        return [_public(row) for row in rows], total

    @db.unit_of_work
    def export_csv(self, username=None, action=None, study_uid=None, outcome=None, date_from=None, date_to=None):
        """Every matching entry as CSV text (header first, newest first).

        Cells that a spreadsheet would run as a formula get a leading quote.
        The caller sends it as UTF-8; a byte-order mark lets Excel see that.
        """
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        selected = _filtered(username, action, study_uid, outcome, date_from, date_to)
        rows = selected.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).dicts()
        for row in rows.iterator():
            row["at"] = format_at(row["at"])
            writer.writerow([_csv_cell(row[column]) for column in CSV_COLUMNS])
        return out.getvalue()


# --- where an Orthanc resource is -----------------------------------------------


def orthanc_resolver(host):
    """A resolver for `AuditLog.set_resolver`: our study index first, then Orthanc
    (short SDK calls of small JSON, in the writer thread)."""
    from plugin.models import Series, Study  # the study index, not needed by the command line

    def study_of(study):
        return (study.patient_dicom_id, study.study_instance_uid) if study else None

    def resolve(level, key):
        if level == "study":
            found = study_of(Study.get_or_none(Study.study_instance_uid == key))
            return found or ("", key)
        if level == "studies":
            found = study_of(Study.get_or_none(Study.orthanc_id == key))
            if found:
                return found
            study = host.get_json(f"/studies/{key}") or {}
            return (
                study.get("PatientMainDicomTags", {}).get("PatientID", ""),
                study.get("MainDicomTags", {}).get("StudyInstanceUID", ""),
            )
        if level == "series":
            series = Series.get_or_none(Series.orthanc_id == key)
            if series is not None:
                return study_of(series.study)
            parent = (host.get_json(f"/series/{key}") or {}).get("ParentStudy")
            return resolve("studies", parent) if parent else ("", "")
        if level == "instances":
            parent = (host.get_json(f"/instances/{key}") or {}).get("ParentSeries")
            return resolve("series", parent) if parent else ("", "")
        patient = host.get_json(f"/patients/{key}") or {}
        return patient.get("MainDicomTags", {}).get("PatientID", ""), ""

    return resolve


# --- the chain ----------------------------------------------------------------


def chain_hash(prev_hash, content):
    """The hash of an entry whose HASHED_FIELDS are ``content`` (see the module doc)."""
    canonical = {name: content[name] for name in HASHED_FIELDS}
    canonical["at"] = format_at(canonical["at"])
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + text).encode("utf-8")).hexdigest()


def format_at(value):
    """``at`` as hashed and shown; a value that no longer parses (edited by
    hand in SQLite) comes back as text and simply fails to verify."""
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


@db.unit_of_work
def _append_locked(contents):
    """`_append` outside any transaction, under the in-process lock. The connection
    is taken before the lock, everywhere: a thread holding the lock never waits
    on the pool for a connection that a thread waiting on the lock holds."""
    with _APPEND_LOCK:
        return _append(contents)


def _append(contents):
    """Write entries at the end of the chain, in one transaction."""
    sqlite = isinstance(database.obj, SqliteDatabase)
    with database.atomic():  # BEGIN IMMEDIATE on SQLite (plugin/db.py)
        if not sqlite:
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
        prev = (AuditEntry.select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1).scalar()) or GENESIS_HASH
        entries = []
        for content in contents:
            digest = chain_hash(prev, content)
            entries.append(AuditEntry.create(prev_hash=prev, hash=digest, **content))
            prev = digest
        return entries


def _verify_chain(batch):
    prev, checked, after_id = GENESIS_HASH, 0, 0
    while True:
        rows = list(AuditEntry.select().where(AuditEntry.id > after_id).order_by(AuditEntry.id).limit(batch).dicts())
        for row in rows:
            checked += 1
            problem = _chain_problem(row, prev)
            if problem:
                return VerifyResult(False, checked, row["id"], f"entry {row['id']} {problem}", prev)
            prev = row["hash"]
        if len(rows) < batch:
            break
        after_id = rows[-1]["id"]
    message = f"chain intact: {checked} entries" if checked else "audit log is empty"
    return VerifyResult(True, checked, None, message, prev)


def _chain_problem(row, prev):
    if row["prev_hash"] != prev:
        return "does not follow the entry before it: an entry was deleted, inserted or moved"
    if chain_hash(prev, row) != row["hash"]:
        return "was altered: its content does not match its hash"
    return None


# --- helpers ------------------------------------------------------------------


def _clean(value, limit=MAX_TEXT):
    """Text both databases give back unchanged (no NUL, valid UTF-8), bounded."""
    text = ("" if value is None else str(value)).replace("\x00", "\ufffd")[:limit]
    return text.encode("utf-8", "replace").decode("utf-8")


def _resource_in(path):
    """(level, Orthanc id) of the resource an Orthanc REST path names, or None."""
    found = _RESOURCE_PATH.match(path or "")
    return found.groups() if found else None


def _query_text(query, drop):
    """A query as "k=v&k=v", keys sorted, secrets (tokens, keys) and ``drop`` left out,
    bounded: the same search always gives the same text. A dict, or a list of pairs."""
    if not query:
        return ""
    pairs = query.items() if isinstance(query, dict) else query
    kept = sorted(
        (str(key), "" if value is None else str(value))
        for key, value in pairs
        if str(key).lower() not in drop and not _SECRET_PARAM.search(str(key))
    )
    return _clean("&".join(f"{key}={value}" for key, value in kept), MAX_QUERY_TEXT)


def _details_text(details):
    text = json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    if len(text) > MAX_DETAILS:
        text = json.dumps({"truncated": text[:MAX_DETAILS]}, ensure_ascii=False)
    return _clean(text, limit=None)


def _filtered(username, action, study_uid, outcome, date_from, date_to):
    """``study_uid``: one UID, or a collection of them (entries of any; none: no entry)."""
    if action and action not in ACTIONS:
        raise ValueError(f"unknown audit action: {action!r}")
    selected = AuditEntry.select()
    if isinstance(study_uid, (list, tuple, set, frozenset)):
        selected, study_uid = selected.where(AuditEntry.study_uid.in_(list(study_uid))), None
    for column, value in (
        (AuditEntry.username, username),
        (AuditEntry.action, action),
        (AuditEntry.study_uid, study_uid),
        (AuditEntry.outcome, outcome),
    ):
        if value:
            selected = selected.where(column == value)
    if date_from:
        selected = selected.where(AuditEntry.at >= _bound(date_from))
    if date_to:
        selected = selected.where(AuditEntry.at < _bound(date_to, end=True))
    return selected


def _bound(value, end=False):
    """A date filter as naive UTC; as an end, the first instant after it.
    ValueError for anything else, out-of-range dates (9999-12-31 as an end) included."""
    try:
        return _bound_or_overflow(value, end)
    except OverflowError:
        raise ValueError(f"date out of range: {value!r}") from None


def _bound_or_overflow(value, end):
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.date.fromisoformat(text) if len(text) == 10 else datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO date or date-time: {value!r}") from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value + datetime.timedelta(microseconds=1) if end else value
    if isinstance(value, datetime.date):
        day = datetime.datetime.combine(value, datetime.time())
        return day + datetime.timedelta(days=1) if end else day
    raise ValueError(f"not a date: {value!r}")


def _public(row):
    row["at"] = format_at(row["at"])
    try:
        row["details"] = json.loads(row["details"])
    except ValueError:
        pass  # shown as stored; verify() reports the edit
    return row


def _csv_cell(value):
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


# --- command line -------------------------------------------------------------


def _default_database_url():
    """The database `make run` uses: PACS_DATABASE_URL, else <data>/pacs.sqlite."""
    from plugin import launcher
    from plugin.config import Settings

    config = launcher.build_config(**launcher.settings_from_environment(os.environ))
    return Settings.from_configuration(config).database_url


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m plugin.audit", description="Check the audit trail's hash chain.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify", help="exit 0 if the chain holds, 1 if not, 2 if there is no audit log to check"
    )
    verify.add_argument("--database-url", help="default: PACS_DATABASE_URL, else pacs.sqlite in PACS_DATA_DIR (./data)")
    args = parser.parse_args(argv)
    url = args.database_url or _default_database_url()
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        print(f"no database at {url}", file=sys.stderr)
        return 2
    try:
        db.open_database(url)
        if not database.table_exists(AuditEntry._meta.table_name):
            print(f"no audit log in {db.redact(url)}", file=sys.stderr)
            return 2
        result = AuditLog().verify()
    except Exception as error:
        print(f"cannot read the audit log in {db.redact(url)}: {error}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"audit chain OK: {result.message}; head hash {result.last_hash}")
        return 0
    print(f"audit chain BROKEN: {result.message} ({result.checked} entries checked)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
