"""DICOM copies of signed reports, stored into Orthanc.

Each signature (final, or an addendum) gets a row with its own SOP and
series UIDs, made before the first attempt: a retry stores the very same
instance, so a copy that did reach Orthanc is never duplicated. The first
attempt runs right away; a failure leaves the row pending with its error
(shown with the report) and a worker retries it, with back-off, until it
is stored or ``max_attempts`` mark it failed. A failure never touches the
signature itself.
"""

import datetime
import logging
import threading

from pydicom.uid import generate_uid

from plugin import db
from plugin.db import utcnow
from plugin.models import Study
from plugin.reports.dicom import encapsulated_pdf
from plugin.reports.models import ReportAddendum, ReportDicom

LOGGER = logging.getLogger(__name__)


class DicomCopies:
    def __init__(self, host, document, clock, retry_seconds=30.0, max_attempts=10):
        """``document(report_id, addendum_id)`` -> (PDF bytes, study UID, title); ``clock``
        the clinic's (the copy's content date and time are local, as DICOM's are)."""
        self._host = host
        self._document = document
        self._clock = clock
        self._retry = retry_seconds
        self._max_attempts = max_attempts
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = None

    def add(self, report_id, addendum_id=None):
        """Record a copy to make and try once now; returns the row."""
        now = utcnow()
        row = ReportDicom.create(
            report_id=report_id,
            addendum_id=addendum_id,
            sop_instance_uid=generate_uid(),
            series_instance_uid=generate_uid(),
            status="pending",
            created_at=now,
            updated_at=now,
        )
        self.attempt(row)
        return ReportDicom.get_by_id(row.id)

    def attempt(self, row):
        """One try at storing ``row``; True when Orthanc has it."""
        try:
            self._store(row)
        except Exception as error:  # any failure is recorded and retried, never lost
            attempts = row.attempts + 1
            status = "failed" if attempts >= self._max_attempts else "pending"
            ReportDicom.update(
                attempts=attempts, status=status, last_error=str(error)[:500], updated_at=utcnow()
            ).where(ReportDicom.id == row.id).execute()
            LOGGER.warning(
                "event=report_copy_failed report_id=%s copy_id=%s attempts=%d status=%s error=%r",
                row.report_id,
                row.id,
                attempts,
                status,
                str(error)[:200],
            )
            return False
        ReportDicom.update(attempts=row.attempts + 1, status="stored", last_error="", updated_at=utcnow()).where(
            ReportDicom.id == row.id
        ).execute()
        LOGGER.info(
            "event=report_copy_stored report_id=%s copy_id=%s sop_uid=%s", row.report_id, row.id, row.sop_instance_uid
        )
        return True

    def _store(self, row):
        pdf, study_uid, title = self._document(row.report_id, row.addendum_id)
        study = Study.select().where(Study.study_instance_uid == study_uid, Study.orthanc_id.is_null(False)).first()
        if study is None:
            raise RuntimeError("the study is no longer in the archive")
        tags = self._host.get_json(f"/studies/{study.orthanc_id}")
        if tags is None:
            raise RuntimeError("the study is no longer in the archive")
        number = 1 + ReportDicom.select().where(ReportDicom.report_id == row.report_id, ReportDicom.id < row.id).count()
        data = encapsulated_pdf(
            pdf, tags, row.sop_instance_uid, row.series_instance_uid, number, title, self._clock.local(_signed_at(row))
        )
        self._host.post_instance(data)

    def states(self, report_id):
        rows = ReportDicom.select().where(ReportDicom.report_id == report_id).order_by(ReportDicom.id)
        return [
            {
                "id": r.id,
                "addendum_id": r.addendum_id,
                "status": r.status,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "sop_instance_uid": r.sop_instance_uid,
                "series_instance_uid": r.series_instance_uid,
            }
            for r in rows
        ]

    # --- the retry worker ----------------------------------------------------

    def start(self):
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="pacs-report-copies", daemon=True)
            self._thread.start()

    def stop(self, timeout=10.0):
        if self._thread is not None:
            self._stopping.set()
            self._wake.set()
            self._thread.join(timeout)
            self._thread = None

    def _run(self):
        while not self._stopping.is_set():
            try:
                self._retry_due()
            except Exception:
                LOGGER.exception("event=report_copy_retry_failed")
            self._wake.wait(self._retry)
            self._wake.clear()

    @db.unit_of_work
    def _retry_due(self):
        now = utcnow()
        for row in ReportDicom.select().where(ReportDicom.status == "pending").order_by(ReportDicom.id):
            backoff = datetime.timedelta(seconds=min(3600, self._retry * 2 ** max(0, row.attempts - 1)))
            if row.updated_at + backoff <= now and not self._stopping.is_set():
                self.attempt(row)


def _signed_at(row):
    if row.addendum_id:
        addendum = ReportAddendum.get_or_none(ReportAddendum.id == row.addendum_id)
        if addendum:
            return addendum.signed_at
    return row.created_at
