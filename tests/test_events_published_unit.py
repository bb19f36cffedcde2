"""What the services publish (plugin/events.py), in process on a migrated SQLite
database: orders when created, changed and cancelled; accounts when created and
changed. (Ingest's study.indexed and study.removed: test_studyindex_unit.py.
Reports publish report.signed and report.amended beside their audit entries; signing
needs a claimed, indexed study, so that is left to an in-process reports fixture still
to come: the end-to-end report tests run the code path, without asserting it.)"""

import itertools

import pytest
from fakes import RecordingAudit, principal

from plugin.auth.accounts import Accounts
from plugin.auth.passwords import Hasher
from plugin.auth.tokens import TokenCodec
from plugin.clock import Clock
from plugin.events import Events
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
