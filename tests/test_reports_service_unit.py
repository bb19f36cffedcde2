"""The report service (plugin/reports/service.py) in process, on a migrated SQLite
index: drafts saved, signed and amended; a colleague's claim and draft refused, or
taken over when given back; and what it publishes (report.signed, report.amended).
Orthanc, the audit trail and the DICOM copies are fakes (tests/fakes.py); the HTTP
side of the same routes is tests/test_reports_api.py, on a real Orthanc."""

from types import SimpleNamespace

import pytest
from fakes import FakeCopies, FakeOrthanc, RecordingAudit, signed_in, stored

from plugin.clock import Clock
from plugin.errors import Conflict, Forbidden, Invalid, NotFound
from plugin.events import EVENTS, Events
from plugin.models import Study
from plugin.reports.models import ReportEvent
from plugin.reports.service import Addendum, Draft, Reports, Signing
from plugin.worklist.actions import Worklist

UID = "1.2.840.s1"  # FakeOrthanc's StudyInstanceUID of study "s1"


@pytest.fixture
def desk(index_db):
    """One indexed study, two radiologists (ann, ben) and an admin, and the services
    they use, with what was audited, published and queued for DICOM copies."""
    orthanc = FakeOrthanc()
    orthanc.add("s1", StudyDescription="CT HEAD")
    stored("s1", orthanc)
    audit, events = RecordingAudit(), Events()
    events.heard = []
    for name in ("report.signed", "report.amended"):
        events.subscribe(name, lambda name=name, **payload: events.heard.append((name, payload)))
    worklist = Worklist(audit, thumbnails=None)
    reports = Reports(audit, worklist, FakeCopies, Clock.named("UTC"), events=events)
    return SimpleNamespace(
        audit=audit,
        events=events,
        worklist=worklist,
        reports=reports,
        ann=signed_in("ann", "radiologist", "Dr Ann"),
        ben=signed_in("ben", "radiologist", "Dr Ben"),
        admin=signed_in("boss", "admin"),
    )


def save(desk, who, version, findings, **extra):
    return desk.reports.save_draft(UID, Draft(version=version, findings=findings, **extra), who)


def signed(desk):
    """A report ann wrote and signed."""
    draft = save(desk, desk.ann, 0, "No bleed.")
    return desk.reports.finalize(UID, Signing(version=draft["version"]), desk.ann)


# --- drafts ------------------------------------------------------------------------------------


def test_a_first_save_claims_the_study_and_starts_the_draft(desk):
    view = save(desk, desk.ann, 0, "No bleed.", impression="Normal.")
    assert (view["status"], view["version"], view["author_name"]) == ("draft", 1, "Dr Ann")
    assert view["sections"]["findings"] == "No bleed." and view["sections"]["technique"] == ""
    assert view["study"]["description"] == "CT HEAD"
    study = Study.get(Study.study_instance_uid == UID)
    assert (study.status, study.claimed_by_id) == ("in_progress", desk.ann.user_id)
    assert desk.audit.actions() == ["study_claimed", "report_saved"]
    assert desk.audit.entries[-1][1]["details"] == {"version": 1}


def test_autosaves_within_a_minute_are_one_history_entry_and_a_stale_save_conflicts(desk):
    save(desk, desk.ann, 0, "No bleed.")
    view = save(desk, desk.ann, 1, "No bleed. No fracture.")
    assert view["version"] == 2 and view["sections"]["findings"] == "No bleed. No fracture."
    assert [(e.kind, e.version) for e in ReportEvent.select()] == [("saved", 2)]
    assert desk.audit.actions() == ["study_claimed", "report_saved"]  # the second save coalesced
    with pytest.raises(Conflict, match="it is now version 2"):
        save(desk, desk.ann, 1, "Something else.")
    again = save(desk, desk.ann, 1, "No bleed. No fracture.")  # one's own text again: nothing to refuse
    assert again["version"] == 2


def test_a_colleague_holding_the_study_is_a_conflict(desk):
    desk.worklist.claim(UID, desk.ann)
    with pytest.raises(Conflict, match="being read by Dr Ann"):
        save(desk, desk.ben, 0, "Mine.")
    save(desk, desk.ann, 0, "No bleed.")
    with pytest.raises(Conflict, match="this draft is Dr Ann's"):
        save(desk, desk.ben, 1, "Mine.")
    with pytest.raises(Conflict, match="being read by Dr Ann"):  # taking the draft needs the claim too
        save(desk, desk.ben, 1, "Mine.", take_over=True)
    assert save(desk, desk.ann, 1, "No bleed.")["author_name"] == "Dr Ann"


def test_a_released_draft_is_continued_only_by_taking_it_over(desk):
    save(desk, desk.ann, 0, "No bleed.")
    desk.worklist.release(UID, desk.ann)
    with pytest.raises(Conflict, match="save with take_over"):
        save(desk, desk.ben, 1, "No bleed. Old infarct.")
    view = save(desk, desk.ben, 1, "No bleed. Old infarct.", take_over=True)
    assert (view["author_name"], view["version"]) == ("Dr Ben", 2)
    assert [e.kind for e in ReportEvent.select().order_by(ReportEvent.id)] == ["saved", "taken_over"]
    details = {"version": 2, "taken_over_from": "ann"}
    assert desk.audit.entries[-1] == (
        "report_saved",
        {"username": "ben", "role": "radiologist", "study_uid": UID, "details": details},
    )


# --- signing -----------------------------------------------------------------------------------


def test_signing_locks_the_report_frees_the_study_and_publishes_report_signed(desk):
    view = signed(desk)
    assert (view["status"], view["version"], view["signer_name"]) == ("final", 2, "Dr Ann")
    study = Study.get(Study.study_instance_uid == UID)
    assert (study.status, study.claimed_by_id, study.claim_expires_at) == ("final", None, None)
    report_id = ReportEvent.get().report_id
    assert desk.events.heard == [("report.signed", {"study_uid": UID, "report_id": report_id, "version": 2})]
    assert set(desk.events.heard[0][1]) == set(EVENTS["report.signed"])
    assert desk.reports.copies.added == [(report_id, None)]
    assert desk.audit.actions()[-1] == "report_finalized"
    with pytest.raises(Conflict, match="signed and locked"):
        save(desk, desk.ann, 2, "Changed.")
    with pytest.raises(Conflict, match="already signed"):
        desk.reports.finalize(UID, Signing(version=2), desk.ann)
    assert len(desk.events.heard) == 1


def test_what_cannot_be_signed(desk):
    with pytest.raises(NotFound):
        desk.reports.finalize(UID, Signing(version=0), desk.ann)
    save(desk, desk.ann, 0, "   ")
    with pytest.raises(Invalid, match="findings are empty"):
        desk.reports.finalize(UID, Signing(version=1), desk.ann)
    save(desk, desk.ann, 1, "No bleed.")
    with pytest.raises(Forbidden, match="only the author"):
        desk.reports.finalize(UID, Signing(version=2), desk.ben)
    with pytest.raises(Conflict, match="changed since you loaded it"):
        desk.reports.finalize(UID, Signing(version=1), desk.ann)
    assert desk.events.heard == []
    assert desk.reports.finalize(UID, Signing(version=2), desk.admin)["signer_name"] == "boss"


# --- addenda -----------------------------------------------------------------------------------


def test_an_addendum_amends_a_signed_report_and_publishes_report_amended(desk):
    save(desk, desk.ann, 0, "No bleed.")
    with pytest.raises(Conflict, match="only a signed report takes addenda"):
        desk.reports.add_addendum(UID, Addendum(text="Later."), desk.ann)
    desk.reports.finalize(UID, Signing(version=1), desk.ann)
    with pytest.raises(Invalid, match="empty"):
        desk.reports.add_addendum(UID, Addendum(text="  "), desk.ann)
    view = desk.reports.add_addendum(UID, Addendum(text=" Compared with the prior: unchanged. "), desk.ben)
    assert (view["status"], view["version"]) == ("amended", 3)
    [addendum] = view["addenda"]
    assert (addendum["text"], addendum["author_name"]) == ("Compared with the prior: unchanged.", "Dr Ben")
    assert Study.get(Study.study_instance_uid == UID).status == "amended"
    report_id = ReportEvent.get().report_id
    assert desk.events.heard[1:] == [("report.amended", {"study_uid": UID, "report_id": report_id, "version": 3})]
    assert set(desk.events.heard[1][1]) == set(EVENTS["report.amended"])
    assert desk.reports.copies.added == [(report_id, None), (report_id, addendum["id"])]
    assert desk.audit.entries[-1][0] == "report_addended"
    assert desk.audit.entries[-1][1]["details"] == {"addendum_id": addendum["id"]}
    assert [e.kind for e in ReportEvent.select().order_by(ReportEvent.id)] == ["saved", "finalized", "addendum"]
