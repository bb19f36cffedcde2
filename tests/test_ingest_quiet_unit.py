"""The ingest worker indexes a study once no image has arrived for the quiet
period, without waiting for Orthanc's coarser STABLE_STUDY (no Orthanc here)."""

import pytest
from fakes import ManualClock

from plugin.ingest import Ingest

pytestmark = pytest.mark.usefixtures("index_db")


class FakeOrthanc:
    def get_json(self, path):
        return {"/series/S1": {"ParentStudy": "ST1"}}.get(path)


def quiet_ingest(clock, indexed):
    ingest = Ingest(FakeOrthanc(), quiet_seconds=2.0, clock=clock)
    ingest.index_study = lambda orthanc_id, queued_at=None: (
        indexed.append(orthanc_id),
        ingest._receiving.discard(orthanc_id),
    )
    return ingest


def test_a_quiet_study_is_indexed_after_the_quiet_period():
    clock, indexed = ManualClock(100.0), []
    ingest = quiet_ingest(clock, indexed)
    ingest.on_change("new_series", "series", "S1")
    kind, series, _queued = ingest._queue.get_nowait()
    ingest.series_arrived(series)
    ingest.on_change("new_instance", "instance", "I1")
    clock.now += 1.9
    ingest._index_quiet_studies()
    assert indexed == []  # images came 1.9 s ago: not quiet yet
    ingest.on_change("new_instance", "instance", "I2")
    clock.now += 2.0
    ingest._index_quiet_studies()
    assert indexed == ["ST1"]
    ingest._index_quiet_studies()
    assert indexed == ["ST1"]  # once: the study is no longer receiving


def test_without_a_quiet_period_only_stable_study_indexes():
    ingest = Ingest(FakeOrthanc(), quiet_seconds=None, clock=ManualClock(100.0))
    ingest.on_change("new_series", "series", "S1")
    assert ingest._queue.empty()
