"""DICOM copies of signed reports: a failed store is kept, shown, retried,
and stores the very same instance; endless failures end as "failed"."""

import datetime

import pydicom
import pytest

from plugin import db, migrations
from plugin.clock import Clock
from plugin.models import Study
from plugin.reports.copies import DicomCopies
from plugin.reports.models import Report, ReportDicom

STUDY_UID = "1.2.3.4"
NOW = datetime.datetime(2026, 11, 23, 10, 0)


class FlakyOrthanc:
    def __init__(self, failures):
        self.failures = failures
        self.stored = []

    def get_json(self, path):
        return {
            "MainDicomTags": {"StudyInstanceUID": STUDY_UID, "AccessionNumber": "A1", "StudyID": "7"},
            "PatientMainDicomTags": {"PatientName": "Doe^Jane", "PatientID": "P1"},
        }

    def post_instance(self, data):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("Orthanc is busy")
        self.stored.append(pydicom.dcmread(pydicom.filebase.DicomBytesIO(data)))
        return {"Status": "Success"}


@pytest.fixture
def report(tmp_path):
    database = db.open_database(f"sqlite:///{tmp_path / 'pacs.sqlite'}")
    migrations.migrate(database)
    Study.create(
        orthanc_id="abc",
        study_instance_uid=STUDY_UID,
        accession_number="A1",
        study_time="",
        description="",
        referring_physician="",
        institution_name="",
        modalities="CT",
        body_parts="",
        orthanc_last_update="",
        indexed_at=NOW,
    )
    return Report.create(study_instance_uid=STUDY_UID, status="final", created_at=NOW, updated_at=NOW)


def copies(host, attempts=3):
    return DicomCopies(
        host,
        lambda report_id, addendum_id: (b"%PDF-1.4 test", STUDY_UID, "Radiology report"),
        Clock.named("UTC"),
        retry_seconds=0.0,
        max_attempts=attempts,
    )


def test_failed_copy_is_retried_with_the_same_instance(report):
    host = FlakyOrthanc(failures=2)
    worker = copies(host)
    row = worker.add(report.id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "Orthanc is busy")
    worker._retry_due()
    assert ReportDicom.get_by_id(row.id).status == "pending"
    worker._retry_due()
    stored = ReportDicom.get_by_id(row.id)
    assert (stored.status, stored.attempts, stored.last_error) == ("stored", 3, "")
    [instance] = host.stored
    assert instance.SOPInstanceUID == row.sop_instance_uid
    assert instance.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and instance.Modality == "DOC"
    assert instance.StudyInstanceUID == STUDY_UID and instance.PatientID == "P1"
    assert instance.EncapsulatedDocument.startswith(b"%PDF-1.4 test")


def test_endless_failures_end_as_failed_and_stay_visible(report):
    worker = copies(FlakyOrthanc(failures=100), attempts=2)
    row = worker.add(report.id)
    worker._retry_due()
    worker._retry_due()
    assert worker.states(report.id) == [
        {
            "id": row.id,
            "addendum_id": None,
            "status": "failed",
            "attempts": 2,
            "last_error": "Orthanc is busy",
            "sop_instance_uid": row.sop_instance_uid,
            "series_instance_uid": row.series_instance_uid,
        }
    ]


def test_a_study_gone_from_the_archive_is_an_error_not_a_crash(report):
    Study.update(orthanc_id=None).execute()
    row = copies(FlakyOrthanc(failures=0)).add(report.id)
    assert row.status == "pending" and "no longer in the archive" in row.last_error
