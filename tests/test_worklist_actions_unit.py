"""The reading workflow's actions (plugin/worklist/actions.py) in process, on a
migrated SQLite index: claim (renewal, a colleague's claim, take-over, expiry),
release, assign and priority, with what each audits. Orthanc and the audit trail
are fakes (tests/fakes.py); tests/test_worklist_api.py drives the same through HTTP."""

import datetime

import pytest
from fakes import FakeOrthanc, RecordingAudit, signed_in, stored

from plugin.db import utcnow
from plugin.errors import Conflict, Forbidden, Invalid, NotFound
from plugin.models import Study
from plugin.reports.models import Report
from plugin.worklist.actions import Worklist

UID = "1.2.840.s1"  # FakeOrthanc's StudyInstanceUID of study "s1"


@pytest.fixture
def audit():
    return RecordingAudit()


@pytest.fixture
def worklist(index_db, audit):
    orthanc = FakeOrthanc()
    orthanc.add("s1")
    stored("s1", orthanc)
    return Worklist(audit, thumbnails=None, claim_minutes=30)


@pytest.fixture
def people(index_db):
    """Two radiologists (ann, ben), an admin and a technologist."""
    return {
        "ann": signed_in("ann", "radiologist", "Dr Ann"),
        "ben": signed_in("ben", "radiologist", "Dr Ben"),
        "boss": signed_in("boss", "admin"),
        "tech": signed_in("tech", "technologist"),
    }


def study():
    return Study.get(Study.study_instance_uid == UID)


# --- claim -------------------------------------------------------------------------------------


def test_a_claim_is_one_readers_and_renewing_it_is_quiet(worklist, audit, people):
    ann, ben = people["ann"], people["ben"]
    claimed = worklist.claim(UID, ann)
    assert (claimed.status, claimed.claimed_by_id) == ("in_progress", ann.user_id)
    assert claimed.claim_expires_at - utcnow() > datetime.timedelta(minutes=29)
    worklist.claim(UID, ann)  # fresh: left alone, not audited again
    assert audit.actions() == ["study_claimed"]
    with pytest.raises(Conflict, match="being read by Dr Ann"):
        worklist.claim(UID, ben)
    assert worklist.claimed_by_other(UID, ben).username == "ann"
    assert worklist.claimed_by_other(UID, ann) is None
    with pytest.raises(NotFound):
        worklist.claim("1.2.3.unknown", ann)


def test_a_claim_is_taken_over_by_asking_and_lapses_by_itself(worklist, audit, people):
    ann, ben = people["ann"], people["ben"]
    worklist.claim(UID, ann)
    assert worklist.claim(UID, ben, take_over=True).claimed_by_id == ben.user_id
    assert audit.entries[-1] == (
        "study_claimed",
        {"username": "ben", "role": "radiologist", "study_uid": UID, "details": {"taken_over_from": "ann"}},
    )
    Study.update(claim_expires_at=utcnow() - datetime.timedelta(seconds=1)).execute()
    assert worklist.claim(UID, ann).claimed_by_id == ann.user_id  # ben's claim lapsed
    assert worklist.claimed_by_other(UID, ben).username == "ann"


def test_a_signed_study_cannot_be_claimed(worklist, people):
    Study.update(status="final").execute()
    with pytest.raises(Conflict, match="a study that is final cannot be claimed"):
        worklist.claim(UID, people["ann"])


# --- release -----------------------------------------------------------------------------------


def test_the_claimer_or_an_admin_releases(worklist, audit, people):
    ann, ben, boss = people["ann"], people["ben"], people["boss"]
    assert worklist.release(UID, ben).claimed_by_id is None and audit.entries == []  # nothing to release
    worklist.claim(UID, ann)
    with pytest.raises(Forbidden, match="only the radiologist reading it"):
        worklist.release(UID, ben)
    released = worklist.release(UID, boss)
    assert (released.status, released.claimed_by_id, released.claim_expires_at) == ("arrived", None, None)
    assert audit.actions() == ["study_claimed", "study_released"]


def test_a_study_with_a_draft_stays_in_progress_when_released(worklist, people):
    ann = people["ann"]
    worklist.claim(UID, ann)
    now = utcnow()
    Report.create(
        study_instance_uid=UID, status="draft", version=1, author_id=ann.user_id, created_at=now, updated_at=now
    )
    released = worklist.release(UID, ann)
    assert (released.status, released.claimed_by_id) == ("in_progress", None)


# --- assign ------------------------------------------------------------------------------------


def test_an_admin_assigns_to_anyone_who_reads(worklist, audit, people):
    boss = people["boss"]
    assert worklist.assign(UID, " Ann ", boss).assignee_id == people["ann"].user_id
    assert worklist.assign(UID, "ben", boss).assignee_id == people["ben"].user_id  # over a colleague's
    assert audit.entries[-1][1]["details"] == {"assignee": "ben"}
    for nobody in ("tech", "nobody"):
        with pytest.raises(Invalid, match="is not an active radiologist"):
            worklist.assign(UID, nobody, boss)
    assert worklist.assign(UID, "", boss).assignee_id is None
    assert audit.entries[-1][1]["details"] == {"assignee": None}


def test_a_radiologist_takes_free_studies_and_gives_back_their_own(worklist, people):
    ann, ben = people["ann"], people["ben"]
    with pytest.raises(Forbidden, match="an admin reassigns"):
        worklist.assign(UID, "ben", ann)  # not to a colleague
    assert worklist.assign(UID, "ann", ann).assignee_id == ann.user_id
    with pytest.raises(Forbidden):
        worklist.assign(UID, "ben", ben)  # not a colleague's
    assert worklist.assign(UID, None, ann).assignee_id is None
    assert worklist.assign(UID, "ben", ben).assignee_id == ben.user_id


# --- priority ----------------------------------------------------------------------------------


def test_priority_is_one_of_the_known_and_audited_with_its_change(worklist, audit, people):
    assert worklist.set_priority(UID, "stat", people["tech"]).priority == "stat"
    assert audit.entries[-1] == (
        "priority_changed",
        {"username": "tech", "role": "technologist", "study_uid": UID, "details": {"from": "routine", "to": "stat"}},
    )
    with pytest.raises(Invalid, match="priority must be one of routine, urgent, stat"):
        worklist.set_priority(UID, "asap", people["tech"])
    assert study().priority == "stat"
