"""The study index and the ingest worker without Orthanc: Orthanc-shaped JSON
in, rows of a temporary SQLite index out."""

import datetime
import time

import pytest
from fakes import FakeOrthanc, orthanc_series, orthanc_study, stored

from plugin import ingest, studyindex
from plugin.events import Events
from plugin.ingest import Ingest
from plugin.models import Patient, Series, Study

# --- fixtures ---------------------------------------------------------------------


@pytest.fixture
def orthanc():
    return FakeOrthanc()


@pytest.fixture
def worker(orthanc, index_db):
    """An Ingest whose worker thread runs; stopped after the test."""
    running = Ingest(orthanc)
    running.start()
    running.wait_idle()
    yield running
    running.stop()


# --- parse_date / parse_int ----------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("20261123", datetime.date(2026, 11, 23)),
        (" 20261123 ", datetime.date(2026, 11, 23)),
        ("2026.11.23", datetime.date(2026, 11, 23)),  # the old ACR-NEMA form
        ("20261345", None),
        ("2026-11-23", None),
        ("202611", None),
        ("2026112X", None),
        ("00000000", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_date(value, expected):
    assert studyindex.parse_date(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("12", 12),
        (" 7 ", 7),
        ("-3", -3),
        ("2147483647", 2**31 - 1),
        ("-2147483648", -(2**31)),
        ("2147483648", None),
        ("9" * 20, None),
        ("1.5", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_int_keeps_to_the_is_range(value, expected):
    assert studyindex.parse_int(value) == expected


# --- summarise ------------------------------------------------------------------------------


def test_summarise_maps_orthanc_tags():
    summary = studyindex.summarise(*orthanc_study("s1", last_update="20261124T080000"))
    assert (summary.orthanc_id, summary.study_instance_uid, summary.last_update) == (
        "s1",
        "1.2.840.s1",
        "20261124T080000",
    )
    assert (summary.patient_orthanc_id, summary.patient_id, summary.patient_name, summary.sex) == (
        "patient-1",
        "PID1",
        "DOE^JANE",
        "F",
    )
    assert summary.birth_date == datetime.date(1970, 1, 1)
    assert summary.study_date == datetime.date(2026, 11, 23)
    assert (summary.accession_number, summary.study_time, summary.description) == ("ACC1", "101500", "CT HEAD")
    assert (summary.referring_physician, summary.institution_name) == ("WHO^DR", "Clinic")


def test_summarise_series_sorted_by_number_with_none_last():
    series = [
        orthanc_series(number=None, modality="SR"),
        orthanc_series(number="10"),
        orthanc_series(number="2", modality="MR"),
        orthanc_series(number="x", modality="OT"),
    ]
    summary = studyindex.summarise(*orthanc_study("s1", series=series))
    numbers = [s.number for s in summary.series]
    assert numbers[:2] == [2, 10] and numbers[2:] == [None, None]


def test_summarise_modalities_and_body_parts_unique_in_series_order():
    series = [
        orthanc_series(number="3", modality="ct", body_part=" chest "),
        orthanc_series(number="1", modality="MR", body_part="HEAD"),
        orthanc_series(number="2", modality="CT", body_part=""),
        orthanc_series(number="4", modality="MR", body_part="HEAD"),
    ]
    summary = studyindex.summarise(*orthanc_study("s1", series=series))
    assert summary.modalities == "MR\\CT"
    assert summary.body_parts == "HEAD\\CHEST"


def test_summarise_counts_instances_of_every_series():
    series = [
        orthanc_series(instances=3),
        orthanc_series(number="2", instances=5),
        orthanc_series(number="3", instances=0),
    ]
    summary = studyindex.summarise(*orthanc_study("s1", series=series))
    assert summary.instance_count == 8
    assert [s.instance_count for s in summary.series] == [3, 5, 0]


def test_summarise_tolerates_missing_tags():
    """Orthanc leaves out tags that are absent or longer than 256 characters."""
    study = {"ID": "s1", "MainDicomTags": {"StudyInstanceUID": "1.2.3"}}
    summary = studyindex.summarise(study, [{"ID": "se1", "MainDicomTags": {}}])
    assert (summary.patient_name, summary.patient_id, summary.accession_number, summary.description) == ("", "", "", "")
    assert summary.study_date is None and summary.birth_date is None
    assert summary.modalities == "" and summary.instance_count == 0
    assert summary.series[0].number is None


# --- store / remove / indexed_versions / study_of_series -------------------------------------------


def test_store_writes_patient_study_and_series(index_db, orthanc):
    orthanc.add("s1", series=[orthanc_series(instances=3), orthanc_series(number="2", modality="MR")])
    study = stored("s1", orthanc)
    row = Study.get(Study.orthanc_id == "s1")
    assert row.id == study.id and row.status == "arrived" and row.arrived_at is not None
    assert (row.series_count, row.instance_count, row.modalities) == (2, 5, "CT\\MR")
    assert row.patient.name == "DOE^JANE" and row.patient.orthanc_id == "patient-1"
    assert sorted(s.number for s in row.series) == [1, 2]


def test_store_again_updates_in_place_and_keeps_the_workflow(index_db, orthanc):
    first_series, second_series = orthanc_series(), orthanc_series(number="2")
    orthanc.add("s1", series=[first_series, second_series])
    first = stored("s1", orthanc)
    Study.update(status="final", priority="stat").where(Study.id == first.id).execute()

    orthanc.add("s1", series=[second_series], last_update="20261124T000000", StudyDescription="NEW")
    stored("s1", orthanc)

    row = Study.get_by_id(first.id)
    assert (row.status, row.priority) == ("final", "stat")
    assert (row.description, row.series_count, row.orthanc_last_update) == ("NEW", 1, "20261124T000000")
    assert [s.orthanc_id for s in row.series] == [second_series["ID"]]
    assert Study.select().count() == 1 and Patient.select().count() == 1


def test_store_takes_over_a_scheduled_order(index_db, orthanc):
    now = datetime.datetime.now(datetime.timezone.utc)
    order = Study.create(
        study_instance_uid="1.2.840.s1",
        accession_number="ACC1",
        study_time="",
        description="ordered",
        referring_physician="",
        institution_name="",
        modalities="",
        body_parts="",
        orthanc_last_update="",
        indexed_at=now,
        status="scheduled",
        arrived_at=None,
    )
    orthanc.add("s1")
    stored("s1", orthanc)
    row = Study.get_by_id(order.id)
    assert (row.orthanc_id, row.status) == ("s1", "arrived") and row.arrived_at is not None
    assert Study.select().count() == 1


def test_remove_drops_study_series_and_empty_patient(index_db, orthanc):
    orthanc.add("s1")
    orthanc.add("s2", patient="patient-2")
    orthanc.add("s3", patient="patient-2")
    for study_id in ("s1", "s2", "s3"):
        stored(study_id, orthanc)

    assert studyindex.remove("s1") == "1.2.840.s1"
    assert studyindex.remove("s2") == "1.2.840.s2"
    assert studyindex.remove("s1") is None
    assert [s.orthanc_id for s in Study.select()] == ["s3"]
    assert [p.orthanc_id for p in Patient.select()] == ["patient-2"]
    assert Series.select().count() == 1


def test_indexed_versions_leaves_out_orders_without_images(index_db, orthanc):
    orthanc.add("s1", last_update="20261123T101500")
    orthanc.add("s2", last_update="20261124T090000")
    stored("s1", orthanc)
    stored("s2", orthanc)
    Study.create(
        study_instance_uid="9.9",
        accession_number="",
        study_time="",
        description="",
        referring_physician="",
        institution_name="",
        modalities="",
        body_parts="",
        orthanc_last_update="",
        indexed_at=datetime.datetime.now(),
        status="scheduled",
    )
    assert studyindex.indexed_versions() == {"s1": "20261123T101500", "s2": "20261124T090000"}


def test_study_of_series(index_db, orthanc):
    _, series = orthanc.add("s1", series=[orthanc_series(), orthanc_series(number="2")])
    stored("s1", orthanc)
    assert studyindex.study_of_series(series[1]["ID"]) == "s1"
    assert studyindex.study_of_series("unknown-series") is None


# --- Ingest.reconcile ----------------------------------------------------------------------------


def test_reconcile_indexes_new_studies(index_db, orthanc):
    orthanc.add("s1")
    orthanc.add("s2")
    assert Ingest(orthanc).reconcile() == {"studies": 2, "indexed": 2, "removed": 0}
    assert set(studyindex.indexed_versions()) == {"s1", "s2"}


def test_reconcile_reindexes_only_what_changed(index_db, orthanc):
    orthanc.add("s1")
    orthanc.add("s2")
    Ingest(orthanc).reconcile()
    orthanc.add("s2", series=[orthanc_series(instances=7)], last_update="20261124T000000")

    assert Ingest(orthanc).reconcile() == {"studies": 2, "indexed": 1, "removed": 0}
    assert Study.get(Study.orthanc_id == "s2").instance_count == 7


def test_reconcile_skips_studies_still_arriving(index_db, orthanc):
    orthanc.add("s1", stable=False)
    assert Ingest(orthanc).reconcile()["indexed"] == 0
    assert studyindex.indexed_versions() == {}


def test_reconcile_removes_a_study_only_once_orthanc_confirms_it_is_gone(index_db, orthanc):
    orthanc.add("s1")
    orthanc.add("s2")
    Ingest(orthanc).reconcile()
    del orthanc.studies["s1"]
    orthanc.hidden_from_listing.add("s2")  # missed by paging, yet still in Orthanc

    assert Ingest(orthanc).reconcile()["removed"] == 1
    assert set(studyindex.indexed_versions()) == {"s2"}


def test_indexing_and_removal_are_published_as_named_events(index_db, orthanc):
    events, heard = Events(), []
    for name in ("study.indexed", "study.removed"):
        events.subscribe(name, lambda name=name, **payload: heard.append((name, payload)))
    orthanc.add("s1")
    running = Ingest(orthanc, events=events)
    running.reconcile()
    del orthanc.studies["s1"]
    running.reconcile()
    assert heard == [
        ("study.indexed", {"study_uid": "1.2.840.s1", "orthanc_id": "s1"}),
        ("study.removed", {"study_uid": "1.2.840.s1"}),
    ]


def test_reconcile_walks_every_page(index_db, orthanc, monkeypatch):
    monkeypatch.setattr(ingest, "RECONCILE_PAGE", 2)
    for n in range(5):
        orthanc.add(f"s{n}")
    assert Ingest(orthanc).reconcile() == {"studies": 5, "indexed": 5, "removed": 0}


@pytest.mark.parametrize("extended_find", [False, True], ids=["1.10", "1.12"])
def test_reconcile_reads_whole_studies_only_where_they_changed_on_1_12(index_db, extended_find, monkeypatch):
    monkeypatch.setattr(ingest, "RECONCILE_PAGE", 2)
    orthanc = FakeOrthanc(extended_find)
    for n in range(5):
        orthanc.add(f"s{n}", stable=n != 4)
    assert Ingest(orthanc).reconcile() == {"studies": 5, "indexed": 4, "removed": 0}
    orthanc.add("s2", last_update="20261124T000000")
    orthanc.reads.clear()
    assert Ingest(orthanc).reconcile() == {"studies": 5, "indexed": 1, "removed": 0}
    study_reads = [path for path in orthanc.reads if not path.startswith("/studies?")]
    assert study_reads == (["/studies/s2", "/studies/s2/series"] if extended_find else ["/studies/s2/series"])


def test_one_bad_study_does_not_stop_the_reconcile(index_db, orthanc):
    for study_id in ("s1", "s2", "s3", "gone1", "gone2"):
        orthanc.add(study_id)
    Ingest(orthanc).reconcile()
    orthanc.add("s2", last_update="20261124T000000")
    orthanc.add("s3", last_update="20261124T000000")
    orthanc.failing.update({"s2", "gone1"})  # Orthanc errors on these
    orthanc.hidden_from_listing.update({"gone1", "gone2"})
    del orthanc.studies["gone2"]

    result = Ingest(orthanc).reconcile()

    assert result["indexed"] == 1 and result["removed"] == 1
    versions = studyindex.indexed_versions()
    assert versions["s3"] == "20261124T000000"
    assert versions["s2"] == "20261123T101500"  # left as it was, retried next time
    assert "gone1" in versions and "gone2" not in versions


# --- Ingest worker: on_change, start, wait_idle, stop ----------------------------------------------


def test_stable_study_event_indexes_it(worker, orthanc):
    orthanc.add("s1", series=[orthanc_series(instances=4)])
    worker.on_change("stable_study", "study", "s1")
    worker.wait_idle()
    assert Study.get(Study.orthanc_id == "s1").instance_count == 4


def test_stable_study_event_for_a_vanished_study_changes_nothing(worker, orthanc):
    worker.on_change("stable_study", "study", "never-stored")
    worker.wait_idle()
    assert studyindex.indexed_versions() == {}


def test_deleted_study_event_removes_it(worker, orthanc):
    orthanc.add("s1")
    worker.on_change("stable_study", "study", "s1")
    worker.wait_idle()
    del orthanc.studies["s1"]
    worker.on_change("deleted", "study", "s1")
    worker.wait_idle()
    assert studyindex.indexed_versions() == {}


def test_deleted_series_event_refreshes_its_study(worker, orthanc):
    kept, dropped = orthanc_series(instances=2), orthanc_series(number="2", instances=3)
    orthanc.add("s1", series=[kept, dropped])
    worker.on_change("stable_study", "study", "s1")
    worker.wait_idle()
    orthanc.add("s1", series=[kept], last_update="20261124T000000")
    worker.on_change("deleted", "series", dropped["ID"])
    worker.wait_idle()
    row = Study.get(Study.orthanc_id == "s1")
    assert (row.series_count, row.instance_count) == (1, 2)


def test_a_failing_task_does_not_stop_the_worker(worker, orthanc):
    orthanc.add("bad")
    orthanc.add("good")
    orthanc.failing.add("bad")
    worker.on_change("stable_study", "study", "bad")
    worker.on_change("stable_study", "study", "good")
    worker.wait_idle()
    assert set(studyindex.indexed_versions()) == {"good"}


def test_worker_starts_with_a_reconcile_and_keeps_events_while_stopped(orthanc, index_db):
    orthanc.add("s1")
    running = Ingest(orthanc)
    running.start()
    try:
        running.wait_idle()
        assert set(studyindex.indexed_versions()) == {"s1"}
        running.stop()
        orthanc.add("s2", stable=False)  # so that only its event can index it
        running.on_change("stable_study", "study", "s2")
        time.sleep(0.2)
        assert set(studyindex.indexed_versions()) == {"s1"}
        running.start()
        running.wait_idle()
        assert set(studyindex.indexed_versions()) == {"s1", "s2"}
    finally:
        running.stop()
