"""Every time the JSON API gives, from a real PACS, is written one way (plugin.jsonout):
ISO 8601 in UTC with a Z, to the second, or a date YYYY-MM-DD. Walks the answers of
the worklist, a study, a report (draft, signed, addendum, history), an order, users,
API keys, the caller's account, the login's token, the dashboard and the audit trail."""

import re

import dicomgen
import pytest
import requests
from pacs_server import PacsServer

PASSWORD = "Times-in-UTC-2026!"
DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
TIME_LOOKING = re.compile(r"^\d{4}-\d\d-\d\d")
AUDIT_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")  # the text its hash covers (plugin.audit)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("times")
    server = PacsServer(folder / "pacs").start()
    spec = dicomgen.StudySpec(
        patient_id="P-TIME", patient_name="Time^Tess", description="CT HEAD", study_date="20261120"
    )
    server.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=1), folder / "study"))
    server.wait_indexed(spec.study_uid, instances=1)
    server.uid = spec.study_uid
    yield server
    server.stop()


def times(value, path="$"):
    """(path, text) of every string in ``value`` that begins like a date."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in times(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in times(item, f"{path}[{index}]")]
    return [(path, value)] if isinstance(value, str) and TIME_LOOKING.match(value) else []


def wrongly_written(answer):
    """The times in a JSON answer that are neither a UTC date-time with Z nor a date."""
    return [(path, text) for path, text in times(answer) if not (DATE_TIME.match(text) or DATE.match(text))]


def ok(answer):
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_every_time_in_the_api_is_utc_with_z_or_a_date(server):
    created = ok(
        server.post(
            "/pacs/api/users",
            json={"username": "rad", "password": PASSWORD, "role": "radiologist", "display_name": "Dr Time"},
        )
    )
    key = ok(server.post("/pacs/api/apikeys", json={"name": "times", "user_id": created["id"], "expires_days": 30}))
    token = ok(server.login("rad", PASSWORD))
    rad = requests.Session()
    rad.headers["Authorization"] = "Bearer " + token["access_token"]
    report = server.url(f"/pacs/api/studies/{server.uid}/report")
    claimed = ok(rad.post(server.url(f"/pacs/api/studies/{server.uid}/claim"), json={}, timeout=30))
    draft = ok(rad.put(report, json={"version": 0, "findings": "Nothing found."}, timeout=30))
    signed = ok(rad.post(report + "/finalize", json={"version": draft["version"]}, timeout=30))
    amended = ok(rad.post(report + "/addenda", json={"text": "Also fine."}, timeout=30))
    order = ok(
        server.post(
            "/pacs/api/orders",
            json={"patient_id": "P-TIME", "modality": "CT", "scheduled_at": "2026-11-23T09:30", "procedure": "CT"},
        )
    )
    answers = {
        "created user": created,
        "created key": key,
        "login": token,
        "claim": claimed,
        "draft": draft,
        "signed": signed,
        "amended": amended,
        "created order": order,
        "worklist": ok(server.get("/pacs/api/studies")),
        "study": ok(server.get(f"/pacs/api/studies/{server.uid}")),
        "report": ok(rad.get(report, timeout=30)),
        "orders": ok(server.get("/pacs/api/orders")),
        "order": ok(server.get(f"/pacs/api/orders/{order['id']}")),
        "users": ok(server.get("/pacs/api/users")),
        "user": ok(server.get(f"/pacs/api/users/{created['id']}")),
        "keys": ok(server.get("/pacs/api/apikeys")),
        "me": ok(rad.get(server.url("/pacs/api/me"), timeout=30)),
        "dashboard": ok(server.get("/pacs/api/dashboard")),
        "templates": ok(rad.get(server.url("/pacs/api/report-templates"), timeout=30)),
    }
    audit = ok(server.get("/pacs/api/audit", params={"page_size": 200}))
    assert audit["items"] and all(AUDIT_AT.match(entry["at"]) for entry in audit["items"])
    answers["audit"] = {"items": [{k: v for k, v in e.items() if k not in ("at", "details")} for e in audit["items"]]}

    assert {name: wrongly_written(answer) for name, answer in answers.items() if wrongly_written(answer)} == {}
    # Not vacuous: the times that were written space-separated with microseconds, or pre-formatted, are here.
    seen = {path.split(".")[-1] for answer in answers.values() for path, _text in times(answer)}
    assert {"created_at", "last_login_at", "expires_at", "arrived_at", "updated_at", "signed_at", "at"} <= seen
    assert DATE_TIME.match(answers["me"]["last_login_at"]) and DATE_TIME.match(answers["report"]["signed_at"])
    assert DATE_TIME.match(answers["login"]["user"]["created_at"])  # a pydantic answer (Token) agrees
