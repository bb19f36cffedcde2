"""What the services publish (plugin/events.py), in process on a migrated SQLite
database: orders when created, changed and cancelled, moved by MPPS steps and
reached by their study (only once committed); accounts when created and
changed. (Ingest's study.indexed and study.removed: test_studyindex_unit.py.
Reports' report.signed and report.amended: test_reports_service_unit.py.)"""

import itertools

import pytest
from fakes import FakeOrthanc, RecordingAudit, principal
from pydicom.dataset import Dataset

from plugin import studyindex
from plugin.auth.accounts import Accounts
from plugin.auth.passwords import Hasher
from plugin.auth.tokens import TokenCodec
from plugin.clock import Clock
from plugin.events import Events
from plugin.ingest import Ingest
from plugin.mpps.service import COMPLETED, DISCONTINUED, IN_PROGRESS, SUCCESS, PerformedSteps
from plugin.orders.models import Order
from plugin.orders.service import Orders

ORDER = {
    "patient_id": "EV-1",
    "patient_name": "Doe^Jane",
    "modality": "CT",
    "scheduled_at": "2026-11-23T09:30:00",
    "procedure": "CT ABDOMEN",
    "accession_number": "EV-ACC-1",
}
ADMIN = principal("admin")


@pytest.fixture
def events():
    """Events whose every order and account publication is kept, in order, in ``.heard``."""
    events = Events()
    events.heard = []
    for name in ("order.created", "order.changed", "account.created", "account.changed"):
        events.subscribe(name, lambda name=name, **payload: events.heard.append((name, payload)))
    return events


def test_orders_publish_creation_changes_and_cancellation(index_db, events):
    uids = (f"1.2.826.0.1.3680043.8.498.{n}" for n in itertools.count(1))
    orders = Orders(RecordingAudit(), lambda: next(uids), Clock.named("UTC"), events=events)
    order = orders.create(dict(ORDER), ADMIN)
    orders.update(order.id, {"procedure": "CT CHEST"}, ADMIN)
    orders.update(order.id, {"procedure": "CT CHEST"}, ADMIN)  # nothing changed: nothing published
    orders.cancel(order.id, ADMIN, "duplicate")
    assert events.heard == [
        ("order.created", {"order_id": order.id, "accession_number": "EV-ACC-1"}),
        ("order.changed", {"order_id": order.id, "accession_number": "EV-ACC-1", "status": "scheduled"}),
        ("order.changed", {"order_id": order.id, "accession_number": "EV-ACC-1", "status": "cancelled"}),
    ]


def test_accounts_publish_creation_and_changes(index_db, events):
    accounts = Accounts(Hasher(4), TokenCodec(b"k" * 32), RecordingAudit(), events=events)
    user = accounts.create_user("events-user", "Harbour-lantern-47-quietly", "referrer", actor=ADMIN)
    accounts.update_user(user.id, actor=ADMIN, display_name="Dr Events")
    assert events.heard == [
        ("account.created", {"user_id": user.id, "username": "events-user"}),
        ("account.changed", {"user_id": user.id, "username": "events-user"}),
    ]


def scheduled_order(events, accession):
    """An order, scheduled (its creation is not what these tests hear)."""
    uids = (f"1.2.826.0.1.3680043.8.499.{accession}.{n}" for n in itertools.count(1))
    order = Orders(RecordingAudit(), lambda: next(uids), Clock.named("UTC")).create(
        dict(ORDER, accession_number=accession), ADMIN
    )
    events.heard.clear()
    return order


def step_for(order):
    """An MPPS N-CREATE's attributes naming ``order`` by its accession number."""
    scheduled = Dataset()
    scheduled.AccessionNumber = order.accession_number
    attributes = Dataset()
    attributes.PerformedProcedureStepStatus = IN_PROGRESS
    attributes.ScheduledStepAttributesSequence = [scheduled]
    return attributes


def final_step(status):
    modifications = Dataset()
    modifications.PerformedProcedureStepStatus = status
    return modifications


def changed(order, status):
    return ("order.changed", {"order_id": order.id, "accession_number": order.accession_number, "status": status})


@pytest.mark.parametrize("end, status", [(COMPLETED, "completed"), (DISCONTINUED, "discontinued")])
def test_mpps_steps_publish_the_order_they_move(index_db, events, end, status):
    order = scheduled_order(events, "EV-MPPS-1")
    steps = PerformedSteps(Clock.named("UTC"), events=events)
    assert steps.create("1.2.3.4.1", step_for(order), "MODALITY") == SUCCESS
    assert steps.update("1.2.3.4.1", final_step(end)) == SUCCESS
    assert events.heard == [changed(order, "in_progress"), changed(order, status)]


def test_an_mpps_step_that_cannot_move_its_order_publishes_nothing(index_db, events):
    order = scheduled_order(events, "EV-MPPS-2")
    Orders(RecordingAudit(), None, Clock.named("UTC")).cancel(order.id, ADMIN)
    events.heard.clear()
    steps = PerformedSteps(Clock.named("UTC"), events=events)
    assert steps.create("1.2.3.4.2", step_for(order), "MODALITY") == SUCCESS  # kept; a cancelled order stays so
    assert steps.update("1.2.3.4.2", final_step(COMPLETED)) == SUCCESS
    assert events.heard == []


def test_a_study_arriving_for_its_order_publishes_it_once(index_db, events):
    order = scheduled_order(events, "EV-ARRIVAL")
    orthanc = FakeOrthanc()
    orthanc.add("arriving", StudyInstanceUID=order.study_instance_uid, AccessionNumber=order.accession_number)
    ingest = Ingest(orthanc, events=events)
    ingest.index_study("arriving")
    ingest.index_study("arriving")  # re-indexed: the order has arrived already
    assert events.heard == [changed(order, "arrived")]


def test_an_arrival_rolled_back_is_not_published(index_db, events):
    order = scheduled_order(events, "EV-ROLLBACK")
    orthanc = FakeOrthanc()
    orthanc.add("arriving", StudyInstanceUID=order.study_instance_uid, AccessionNumber=order.accession_number)
    with pytest.raises(RuntimeError), index_db.atomic():
        studyindex.store(studyindex.summarise(*orthanc.studies["arriving"]), events=events)
        raise RuntimeError("the caller's transaction fails")
    assert events.heard == []
    assert Order.get_by_id(order.id).status == "scheduled"
