"""DICOM copies of signed reports: a failed store is kept, shown, retried,
and stores the very same instance; endless failures end as "failed"."""

from fakes import REPORTED_STUDY_UID, FlakyOrthanc

from plugin.clock import Clock
from plugin.models import Study
from plugin.reports.copies import DicomCopies
from plugin.reports.models import ReportDicom


def copies(host, attempts=3):
    return DicomCopies(
        host,
        lambda report_id, addendum_id: (b"%PDF-1.4 test", REPORTED_STUDY_UID, "Radiology report"),
        Clock.named("UTC"),
        retry_seconds=0.0,
        max_attempts=attempts,
    )


def test_failed_copy_is_retried_with_the_same_instance(signed_report):
    host = FlakyOrthanc(failures=2)
    worker = copies(host)
    row = worker.add(signed_report.id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "Orthanc is busy")
    worker._retry_due()
    assert ReportDicom.get_by_id(row.id).status == "pending"
    worker._retry_due()
    stored = ReportDicom.get_by_id(row.id)
    assert (stored.status, stored.attempts, stored.last_error) == ("stored", 3, "")
    [instance] = host.stored
    assert instance.SOPInstanceUID == row.sop_instance_uid
    assert instance.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and instance.Modality == "DOC"
    assert instance.StudyInstanceUID == REPORTED_STUDY_UID and instance.PatientID == "P1"
    assert instance.EncapsulatedDocument.startswith(b"%PDF-1.4 test")


def test_endless_failures_end_as_failed_and_stay_visible(signed_report):
    worker = copies(FlakyOrthanc(failures=100), attempts=2)
    row = worker.add(signed_report.id)
    worker._retry_due()
    worker._retry_due()
    assert worker.states(signed_report.id) == [
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


def test_a_study_gone_from_the_archive_is_an_error_not_a_crash(signed_report):
    Study.update(orthanc_id=None).execute()
    row = copies(FlakyOrthanc(failures=0)).add(signed_report.id)
    assert row.status == "pending" and "no longer in the archive" in row.last_error
