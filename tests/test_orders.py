"""Orders: the API (create, list, read, edit, cancel), who may use it, what
it refuses, how orders show on the reading worklist, and how arriving images
are linked to them (by accession number or Study Instance UID)."""

import datetime
import re

import dicomgen
import pytest
import requests
from pacs_server import PacsServer, free_port, shown_status, utc_of_local

PASSWORD = "Orders-desk-2026!"
ORDER = {
    "patient_id": "OP-1",
    "patient_name": "Doe^Jane",
    "patient_birth_date": "1980-05-06",
    "patient_sex": "F",
    "modality": "CT",
    "scheduled_station_aet": "CT_ROOM1",
    "scheduled_at": "2026-11-23T09:30:00",
    "procedure": "CT ABDOMEN",
    "referring_physician": "Who^Dr",
    "priority": "urgent",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pacs = PacsServer(
        tmp_path_factory.mktemp("orders") / "pacs",
        overrides={"Pacs": {"MppsPort": free_port(), "MppsBind": "127.0.0.1"}},
    ).start()
    for username, role, names in [
        ("tech", "technologist", []),
        ("rad", "radiologist", []),
        ("drwho", "referrer", ["Who^Dr"]),
    ]:
        pacs.post(
            "/pacs/api/users",
            json={
                "username": username,
                "password": PASSWORD,
                "role": role,
                "display_name": username,
                "referring_names": names,
            },
        ).raise_for_status()
    yield pacs
    pacs.stop()


def as_user(server, username):
    return server.bearer_session(username, PASSWORD)


def create(server, session=None, **changes):
    return (session or server.http).post(server.url("/pacs/api/orders"), json=dict(ORDER, **changes), timeout=30)


def worklist_row(server, uid):
    items = server.get("/pacs/api/studies", params={"page_size": 200}).json()["items"]
    return next((i for i in items if i["study_instance_uid"] == uid), None)


def test_create_generates_what_is_missing_and_shows_on_the_worklist(server):
    answer = create(server, as_user(server, "tech"))
    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert answer.headers["Location"] == f"/pacs/api/orders/{order['id']}"
    assert re.fullmatch(r"A\d{11}", order["accession_number"])
    assert order["status"] == "scheduled" and order["created_by"] == "tech"
    assert order["requested_procedure_id"] == order["scheduled_procedure_step_id"] == order["accession_number"]
    assert order["step_description"] == "CT ABDOMEN" and order["scheduled_at"] == utc_of_local("2026-11-23T09:30")
    assert re.fullmatch(r"[\d.]+", order["study_instance_uid"])
    row = worklist_row(server, order["study_instance_uid"])
    assert (row["status"], row["priority"], row["accession_number"]) == (
        "scheduled",
        "urgent",
        order["accession_number"],
    )
    assert (row["patient_name"], row["study_date"], row["modalities"], row["description"]) == (
        "Doe^Jane",
        "2026-11-23",
        ["CT"],
        "CT ABDOMEN",
    )
    assert row["referring_physician"] == "Who^Dr" and row["instance_count"] == 0
    scheduled = server.get("/pacs/api/studies", params={"status": "scheduled"}).json()
    assert order["study_instance_uid"] in {i["study_instance_uid"] for i in scheduled["items"]}


def test_a_known_patient_needs_only_the_patient_id(server):
    create(
        server, patient_id="OP-KNOWN", patient_name="Known^Karl", patient_sex="M", patient_birth_date="1950-01-01"
    ).raise_for_status()
    order = server.post(
        "/pacs/api/orders",
        json={"patient_id": "OP-KNOWN", "modality": "MR", "scheduled_at": "2026-11-24T08:00", "procedure": "MR HEAD"},
    )
    assert order.status_code == 201, order.text
    body = order.json()
    assert (body["patient_name"], body["patient_sex"], body["patient_birth_date"]) == ("Known^Karl", "M", "1950-01-01")
    assert body["priority"] == "routine" and body["scheduled_station_aet"] == ""
    unknown = server.post(
        "/pacs/api/orders",
        json={
            "patient_id": "NOBODY-KNOWS",
            "modality": "MR",
            "scheduled_at": "2026-11-24T08:00",
            "procedure": "MR HEAD",
        },
    )
    assert unknown.status_code == 400 and "patient_name" in unknown.json()["error"]


def test_several_station_aets_and_a_time_zone(server):
    order = create(server, scheduled_station_aet=["US1", "US2"], scheduled_at="2026-11-23T08:15:00Z").json()
    assert order["scheduled_station_aet"] == "US1\\US2"
    assert order["scheduled_at"] == "2026-11-23T08:15:00Z"  # the moment, in UTC: as it was posted
    worklist_time = datetime.datetime(2026, 11, 23, 8, 15, tzinfo=datetime.timezone.utc).astimezone()
    assert worklist_row(server, order["study_instance_uid"])["study_time"] == worklist_time.strftime("%H%M%S")


def test_duplicate_accession_or_study_uid_is_a_conflict(server):
    first = create(server, accession_number="DUP-1").json()
    again = create(server, accession_number="DUP-1")
    assert again.status_code == 409 and "DUP-1" in again.json()["error"]
    same_uid = create(server, study_instance_uid=first["study_instance_uid"])
    assert same_uid.status_code == 409 and "StudyInstanceUID" in same_uid.json()["error"]
    other = create(server).json()
    edit = server.put(f"/pacs/api/orders/{other['id']}", json={"accession_number": "DUP-1"})
    assert edit.status_code == 409 and "DUP-1" in edit.json()["error"]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"colour": "blue"}, "colour"),
        ({"patient_id": ""}, "patient_id"),
        ({"modality": None}, "modality"),
        ({"scheduled_at": "2026-11-23"}, "scheduled_at"),
        ({"scheduled_at": "tomorrow morning"}, "scheduled_at"),
        ({"scheduled_at": "0005-01-01T08:00"}, "scheduled_at"),
        ({"scheduled_at": "0001-01-01T00:00+14:00"}, "scheduled_at"),
        ({"scheduled_at": 20261123}, "scheduled_at"),
        ({"patient_birth_date": "06/05/1980"}, "patient_birth_date"),
        ({"patient_birth_date": "2999-01-01"}, "patient_birth_date"),
        ({"patient_birth_date": "1980-02-30"}, "patient_birth_date"),
        ({"patient_sex": "X"}, "patient_sex"),
        ({"modality": "C T"}, "modality"),
        ({"priority": "asap"}, "priority"),
        ({"scheduled_station_aet": "A_STATION_NAME_TOO_LONG"}, "scheduled_station_aet"),
        ({"scheduled_station_aet": ["CT1", 7]}, "scheduled_station_aet"),
        ({"accession_number": "A" * 17}, "accession_number"),
        ({"accession_number": "A\\B"}, "accession_number"),
        ({"patient_name": "A=B=C=D"}, "patient_name"),
        ({"patient_name": "A^B^C^D^E^F"}, "patient_name"),
        ({"patient_name": "x" * 65}, "patient_name"),
        ({"procedure": "line\nbreak"}, "procedure"),
        ({"study_instance_uid": "1.2.abc"}, "study_instance_uid"),
        ({"study_instance_uid": "1.02.3"}, "study_instance_uid"),
        ({"patient_id": ["P1"]}, "patient_id"),
    ],
)
def test_bad_fields_are_refused_by_name(server, changes, field):
    answer = create(server, **changes)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"]


@pytest.mark.parametrize("body", [b"[]", b"not json", b'{"patient_id": "P"', "[" * 200])
def test_bad_bodies_are_refused(server, body):
    answer = server.post("/pacs/api/orders", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400


def test_missing_fields_are_named(server):
    answer = server.post("/pacs/api/orders", json={"patient_id": "P"})
    assert answer.status_code == 400
    assert all(name in answer.json()["error"] for name in ("modality", "scheduled_at", "procedure"))


def test_list_filters_and_one_order(server):
    mine = create(
        server, patient_id="LIST-1", patient_name="Listed^Lisa", modality="MG", scheduled_at="2026-12-01T07:00"
    ).json()
    found = server.get("/pacs/api/orders", params={"q": "listed", "modality": "MG"}).json()
    assert [o["id"] for o in found["items"]] == [mine["id"]] and found["total"] == 1
    assert (
        server.get(
            "/pacs/api/orders", params={"date_from": "2026-12-01", "date_to": "2026-12-01", "status": "scheduled"}
        ).json()["total"]
        >= 1
    )
    assert server.get("/pacs/api/orders", params={"date_from": "2027-01-01"}).json()["total"] == 0
    assert server.get("/pacs/api/orders", params={"q": "%"}).json()["total"] == 0  # no LIKE wildcards
    assert server.get("/pacs/api/orders", params={"q": "_"}).json()["total"] == 0
    assert server.get(f"/pacs/api/orders/{mine['id']}").json()["patient_name"] == "Listed^Lisa"
    for params in ({"status": "lost"}, {"date_from": "yesterday"}, {"page": "0"}, {"page_size": "x"}):
        answer = server.get("/pacs/api/orders", params=params)
        assert answer.status_code == 400, params
    assert server.get("/pacs/api/orders/999999").status_code == 404
    assert server.get("/pacs/api/orders/abc").status_code == 404


def test_edit_changes_the_order_and_its_worklist_row(server):
    order = create(server).json()
    answer = server.put(
        f"/pacs/api/orders/{order['id']}",
        json={
            "patient_name": "Doe^Janet",
            "scheduled_at": "2026-11-25T14:00",
            "priority": "stat",
            "procedure": "CT CHEST",
        },
    )
    assert answer.status_code == 200, answer.text
    changed = answer.json()
    assert (changed["patient_name"], changed["scheduled_at"]) == ("Doe^Janet", utc_of_local("2026-11-25T14:00"))
    row = worklist_row(server, order["study_instance_uid"])
    assert (row["patient_name"], row["study_date"], row["priority"], row["description"]) == (
        "Doe^Janet",
        "2026-11-25",
        "stat",
        "CT CHEST",
    )
    assert server.put(f"/pacs/api/orders/{order['id']}", json={"modality": "??"}).status_code == 400
    assert server.put(f"/pacs/api/orders/{order['id']}", json={"patient_id": ""}).status_code == 400


def test_cancel_removes_it_from_work_and_is_final(server):
    order = create(server).json()
    answer = server.post(f"/pacs/api/orders/{order['id']}/cancel", json={"reason": "patient did not come"})
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert worklist_row(server, order["study_instance_uid"])["status"] == "cancelled"
    assert server.post(f"/pacs/api/orders/{order['id']}/cancel").status_code == 200  # once is enough
    edit = server.put(f"/pacs/api/orders/{order['id']}", json={"priority": "stat"})
    assert edit.status_code == 409 and "cancelled" in edit.json()["error"]
    assert server.post(f"/pacs/api/orders/{order['id']}/cancel", json={"reason": 5}).status_code == 400
    assert server.post("/pacs/api/orders/999999/cancel").status_code == 404


def test_who_may_do_what(server):
    tech, rad, referrer = (as_user(server, name) for name in ("tech", "rad", "drwho"))
    order = create(server, tech).json()
    url = server.url(f"/pacs/api/orders/{order['id']}")
    assert tech.put(url, json={"priority": "stat"}, timeout=30).status_code == 200
    assert rad.get(url, timeout=30).status_code == 200
    assert rad.get(server.url("/pacs/api/orders"), timeout=30).status_code == 200
    assert create(server, rad).status_code == 403
    assert rad.put(url, json={"priority": "routine"}, timeout=30).status_code == 403
    assert rad.post(url + "/cancel", timeout=30).status_code == 403
    assert referrer.get(url, timeout=30).status_code == 403
    assert referrer.get(server.url("/pacs/api/orders"), timeout=30).status_code == 403
    assert requests.get(url, timeout=30).status_code == 401
    assert tech.post(url + "/cancel", timeout=30).status_code == 200


def test_changes_are_audited(server):
    order = create(server, as_user(server, "tech")).json()
    server.put(f"/pacs/api/orders/{order['id']}", json={"priority": "stat"}).raise_for_status()
    server.post(f"/pacs/api/orders/{order['id']}/cancel").raise_for_status()
    entries = server.get("/pacs/api/audit", params={"study_uid": order["study_instance_uid"]}).json()["items"]
    assert {(e["action"], e["username"]) for e in entries} >= {
        ("order_created", "tech"),
        ("order_updated", "admin"),
        ("order_cancelled", "admin"),
    }


# --- images arriving for an order ------------------------------------------------------------


def send_study(server, tmp_path, **spec):
    study = dicomgen.StudySpec(**spec)
    server.storescu(dicomgen.write(dicomgen.ct_series(study, slices=2), tmp_path / study.study_uid))
    return study


def order_state(server, order_id):
    return server.get(f"/pacs/api/orders/{order_id}").json()


def test_images_with_the_accession_number_take_the_order_over(server, tmp_path):
    order = create(server, accession_number="ARRIVE-1", priority="stat", referring_physician="Who^Dr").json()
    study = send_study(server, tmp_path, accession="ARRIVE-1", referring_physician="", patient_id="OP-1")
    server.wait_for(lambda: order_state(server, order["id"])["status"] == "arrived", what="order arrived")
    row = worklist_row(server, study.study_uid)
    assert (row["status"], row["priority"], row["referring_physician"], row["instance_count"]) == (
        "arrived",
        "stat",
        "Who^Dr",
        2,
    )
    assert worklist_row(server, order["study_instance_uid"]) is None  # one row: the order's, taken over
    linked = order_state(server, order["id"])
    assert linked["study"] == {
        "study_instance_uid": study.study_uid,
        "status": "arrived",
        "has_images": True,
        "instance_count": 2,
    }
    assert linked["arrived_at"] is not None
    referrer = as_user(server, "drwho")  # the order's referring physician sees the study
    assert referrer.get(server.url(f"/pacs/api/studies/{study.study_uid}"), timeout=30).status_code == 200


def test_images_with_the_study_uid_take_the_order_over(server, tmp_path):
    order = create(server, priority="urgent", referring_physician="Smith^John").json()
    send_study(server, tmp_path, study_uid=order["study_instance_uid"], accession="", referring_physician="OTHER^DOC")
    server.wait_for(lambda: order_state(server, order["id"])["status"] == "arrived", what="order arrived")
    row = worklist_row(server, order["study_instance_uid"])
    assert (row["status"], row["priority"], row["referring_physician"]) == ("arrived", "urgent", "Smith^John")
    edit = server.put(f"/pacs/api/orders/{order['id']}", json={"priority": "stat"})
    assert edit.status_code == 409
    assert server.post(f"/pacs/api/orders/{order['id']}/cancel").status_code == 409


def test_a_cancelled_order_is_not_taken_over(server, tmp_path):
    order = create(server, accession_number="CANCEL-1").json()
    server.post(f"/pacs/api/orders/{order['id']}/cancel").raise_for_status()
    study = send_study(server, tmp_path, accession="CANCEL-1")
    server.wait_indexed(study.study_uid)
    assert worklist_row(server, study.study_uid)["status"] == "arrived"
    assert order_state(server, order["id"])["status"] == "cancelled"
    assert worklist_row(server, order["study_instance_uid"])["status"] == "cancelled"


# --- the pages --------------------------------------------------------------------------------


def browser(server, username):
    """A browser session (cookie) and its CSRF token."""
    session = requests.Session()
    session.headers["Accept"] = "text/html"
    csrf = server.login(username, PASSWORD, session).json()["csrf_token"]
    return session, csrf


# The page's form types names as a family and a given name (the API takes DICOM PN, "Page^Paula").
FORM = {
    "patient_id": "PAGE-1",
    "patient_family": "Page",
    "patient_given": "Paula",
    "patient_birth_date": "1990-09-09",
    "patient_sex": "F",
    "modality": "US",
    "scheduled_station_aet": "US_ROOM",
    "scheduled_at": "2026-11-26T08:45",
    "procedure": "US ABDOMEN",
    "accession_number": "",
    "referring_family": "Who",
    "referring_given": "Dr",
    "priority": "routine",
}


def test_technologists_schedule_change_and_cancel_orders_in_the_pages(server):
    session, csrf = browser(server, "tech")
    listing = session.get(server.url("/pacs/orders"), timeout=30)
    assert listing.status_code == 200 and "Schedule a procedure" in listing.text
    created = session.post(
        server.url("/pacs/orders"), data=dict(FORM, csrf_token=csrf), allow_redirects=False, timeout=30
    )
    assert created.status_code == 303, created.text
    page = session.get(server.url(created.headers["Location"]), timeout=30)
    assert page.status_code == 200 and "PAGE, Paula" in page.text and "Change the order" in page.text
    order_id = created.headers["Location"].rsplit("/", 1)[1]
    stored = server.get(f"/pacs/api/orders/{order_id}").json()
    assert (stored["scheduled_at"], stored["patient_name"], stored["referring_physician"]) == (
        utc_of_local("2026-11-26T08:45"),
        "Page^Paula",
        "Who^Dr",
    )

    changed = session.post(
        server.url(f"/pacs/orders/{order_id}"),
        allow_redirects=False,
        timeout=30,
        data=dict(FORM, priority="stat", csrf_token=csrf),
    )
    assert changed.status_code == 303 and server.get(f"/pacs/api/orders/{order_id}").json()["priority"] == "stat"
    cancelled = session.post(
        server.url(f"/pacs/orders/{order_id}/cancel"),
        allow_redirects=False,
        timeout=30,
        data={"reason": "no show", "csrf_token": csrf},
    )
    assert cancelled.status_code == 303
    page = session.get(server.url(f"/pacs/orders/{order_id}"), timeout=30)
    assert "Cancelled" in page.text and "Change the order" not in page.text


def test_the_page_shows_a_refusal_and_keeps_what_was_typed(server):
    session, csrf = browser(server, "tech")
    refused = session.post(
        server.url("/pacs/orders"), data=dict(FORM, scheduled_at="", csrf_token=csrf), allow_redirects=False, timeout=30
    )
    assert shown_status(refused) == 400 and "scheduled_at" in refused.text
    assert 'value="Page"' in refused.text and 'value="Paula"' in refused.text  # the two name fields, as typed
    forged = session.post(server.url("/pacs/orders"), data=FORM, allow_redirects=False, timeout=30)
    assert shown_status(forged) == 403
    assert server.get("/pacs/api/orders", params={"q": "PAGE-1", "status": "scheduled"}).json()["total"] == 0


def test_radiologists_see_orders_without_the_forms(server):
    session, csrf = browser(server, "rad")
    listing = session.get(server.url("/pacs/orders"), timeout=30)
    assert listing.status_code == 200 and "Schedule a procedure" not in listing.text
    assert (
        session.post(
            server.url("/pacs/orders"), data=dict(FORM, csrf_token=csrf), allow_redirects=False, timeout=30
        ).status_code
        == 403
    )
    referrer, _ = browser(server, "drwho")
    assert shown_status(referrer.get(server.url("/pacs/orders"), timeout=30)) == 403
