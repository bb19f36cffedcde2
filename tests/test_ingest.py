"""A modality stores a study; it reaches the plugin's study index."""

import datetime
import time

import dicomgen
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage


def send_with_pynetdicom(pacs, datasets, calling_aet="PYNETDICOM"):
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title=pacs.aet)
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def test_health_reports_every_part(pacs):
    answer = pacs.get("/pacs/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == body["database"] == body["orthanc"] == body["disk"] == "ok"
    assert body["disk_free_mb"] > 0


def test_storescu_study_is_indexed_with_its_summaries(pacs, tmp_path):
    spec = dicomgen.StudySpec(
        patient_name="Müller^Anna",
        sex="F",
        birth_date="19800215",
        description="CT HEAD",
        referring_physician="WHO^DR",
        charset="ISO_IR 100",
    )
    files = dicomgen.write(
        dicomgen.ct_series(spec, slices=12, series_number=1, body_part="HEAD", description="AXIAL")
        + dicomgen.ct_series(spec, slices=5, series_number=2, body_part="HEAD", description="CORONAL"),
        tmp_path,
    )
    pacs.storescu(files)

    row = pacs.wait_indexed(spec.study_uid, instances=17)
    assert row["patient_name"] == "Müller^Anna"
    assert row["patient_dicom_id"] == spec.patient_id
    assert row["patient_birth_date"] == "1980-02-15"
    assert row["patient_sex"] == "F"
    assert row["accession_number"] == spec.accession
    assert row["study_date"] == "2026-11-23"
    assert row["description"] == "CT HEAD"
    assert row["referring_physician"] == "WHO^DR"
    assert row["institution_name"] == "Test Clinic"
    assert row["modalities"] == "CT"
    assert row["body_parts"] == "HEAD"
    assert (row["series_count"], row["instance_count"]) == (2, 17)
    assert row["status"] == "arrived" and row["priority"] == "routine"
    series = pacs.index_rows(
        "SELECT number, modality, description, instance_count FROM series WHERE study_id = ? ORDER BY number",
        (row["id"],),
    )
    assert series == [
        {"number": 1, "modality": "CT", "description": "AXIAL", "instance_count": 12},
        {"number": 2, "modality": "CT", "description": "CORONAL", "instance_count": 5},
    ]
    assert "event=study_indexed" in pacs.log_text()


def test_pynetdicom_study_with_two_modalities(pacs):
    spec = dicomgen.StudySpec(description="PET-ish combo")
    datasets = dicomgen.ct_series(spec, slices=3) + dicomgen.mr_series(spec, slices=4, series_number=2)
    assert send_with_pynetdicom(pacs, datasets) == [0] * 7
    row = pacs.wait_indexed(spec.study_uid, instances=7)
    assert row["modalities"] == "CT\\MR"
    assert row["body_parts"] == "HEAD\\KNEE"


def test_same_study_twice_is_one_row(pacs, tmp_path):
    spec = dicomgen.StudySpec()
    files = dicomgen.write(dicomgen.ct_series(spec, slices=4), tmp_path)
    pacs.storescu(files)
    pacs.storescu(files)  # again before it is stable
    first = pacs.wait_indexed(spec.study_uid, instances=4)
    pacs.storescu(files)  # and after: Orthanc keeps one copy of each instance
    time.sleep(3)  # past StableAge: any (unexpected) re-index would have happened
    rows = pacs.index_rows(
        "SELECT id, instance_count, series_count FROM study WHERE study_instance_uid = ?", (spec.study_uid,)
    )
    assert rows == [{"id": first["id"], "instance_count": 4, "series_count": 1}]


def test_one_study_over_two_associations(pacs, tmp_path):
    spec = dicomgen.StudySpec()
    part_one = dicomgen.write(dicomgen.ct_series(spec, slices=6, series_number=1), tmp_path / "a")
    part_two = dicomgen.mr_series(spec, slices=3, series_number=2)
    pacs.storescu(part_one)
    assert send_with_pynetdicom(pacs, part_two) == [0] * 3
    row = pacs.wait_indexed(spec.study_uid, instances=9)
    assert row["series_count"] == 2


def test_deleted_study_and_series_leave_the_index(pacs, tmp_path):
    spec = dicomgen.StudySpec()
    pacs.storescu(
        dicomgen.write(
            dicomgen.ct_series(spec, slices=3) + dicomgen.ct_series(spec, slices=2, series_number=2), tmp_path
        )
    )
    row = pacs.wait_indexed(spec.study_uid, instances=5)
    series = pacs.get(f"/studies/{row['orthanc_id']}/series").json()
    second = next(s for s in series if s["MainDicomTags"]["SeriesNumber"] == "2")
    assert pacs.delete(f"/series/{second['ID']}").status_code == 200
    pacs.wait_indexed(spec.study_uid, instances=3)

    assert pacs.delete(f"/studies/{row['orthanc_id']}").status_code == 200
    pacs.wait_for(lambda: pacs.indexed_study(spec.study_uid) is None, what="study removed")
    assert not pacs.index_rows("SELECT id FROM series WHERE study_id = ?", (row["id"],))


def test_index_delay_after_stable_is_short(pacs, tmp_path):
    """Indexed within StableAge + 1 s of the last image (our own quiet timer:
    Orthanc's STABLE_STUDY can come up to 1.1 s after StableAge)."""
    spec = dicomgen.StudySpec()
    pacs.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=2), tmp_path))
    sent = datetime.datetime.now(datetime.timezone.utc)
    row = pacs.wait_indexed(spec.study_uid, instances=2)
    indexed = datetime.datetime.fromisoformat(row["indexed_at"]).replace(tzinfo=datetime.timezone.utc)
    assert (indexed - sent).total_seconds() < 1 + 1.0  # StableAge is 1 s in tests
