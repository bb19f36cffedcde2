"""GET /pacs/api/studies and the claim/assign/priority actions, against a real
PACS holding a known set of studies."""

import concurrent.futures
import datetime

import dicomgen
import pytest
import requests
from pacs_server import PacsServer

TODAY = datetime.date.today()
PASSWORD = "Reading-room-2026!"

STUDIES = [
    # name, patient id, accession, date offset (days ago), series modalities, referring, description
    ("Müller^Anna", "P-100", "ACC-100", 0, ["CT"], "WHO^DR", "CT HEAD"),
    ("MULLER^JOHN", "P-101", "ACC-101", 1, ["MR"], "SMITH^JOHN", "MR KNEE"),
    ("Yamada^Taro=山田^太郎=やまだ^たろう", "P-102", "ACC-102", 3, ["CT", "MR"], "WHO^DR", "COMBO"),
    ("O'Brien^Seán", "P-103", "ACC-103", 10, ["CR"], "JONES^AMY", "CHEST PA"),
    ("Ωμέγα^Άλφα", "P-104", "ACC-104", 40, ["US"], "JONES^AMY", "ABDOMEN US"),
    ("Müller^Anna", "P-100", "ACC-105", 400, ["CT"], "WHO^DR", "CT HEAD PRIOR"),
]


def _spec(name, pid, accession, days_ago, referring, description):
    charset = "ISO_IR 192"
    return dicomgen.StudySpec(
        patient_name=name,
        patient_id=pid,
        accession=accession,
        study_date=(TODAY - datetime.timedelta(days=days_ago)).strftime("%Y%m%d"),
        referring_physician=referring,
        description=description,
        charset=charset,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("worklist")
    server = PacsServer(folder / "pacs").start()
    files, uids = [], {}
    for name, pid, accession, days_ago, modalities, referring, description in STUDIES:
        spec = _spec(name, pid, accession, days_ago, referring, description)
        for number, modality in enumerate(modalities, start=1):
            make = dicomgen.mr_series if modality == "MR" else dicomgen.ct_series
            series = make(spec, slices=1, series_number=number)
            for ds in series:
                ds.Modality = modality
            files += dicomgen.write(series, folder / "dcm")
        uids[accession] = spec.study_uid
    server.storescu(files)
    for uid in uids.values():
        server.wait_indexed(uid)
    server.uids = uids
    for username, role, names in [
        ("rad1", "radiologist", []),
        ("rad2", "radiologist", []),
        ("tech", "technologist", []),
        ("drwho", "referrer", ["Who^Dr"]),
    ]:
        server.post(
            "/pacs/api/users",
            json={
                "username": username,
                "password": PASSWORD,
                "role": role,
                "display_name": username.upper(),
                "referring_names": names,
            },
        ).raise_for_status()
    yield server
    server.stop()


def as_user(server, username):
    return server.bearer_session(username, PASSWORD)


def studies(server, session=None, **params):
    answer = (session or server.http).get(server.url("/pacs/api/studies"), params=params, timeout=30)
    return answer


def accessions(answer):
    assert answer.status_code == 200, answer.text
    return [item["accession_number"] for item in answer.json()["items"]]


def test_default_view_has_every_study_and_field(server):
    body = studies(server).json()
    assert body["total"] == len(STUDIES)
    item = next(i for i in body["items"] if i["accession_number"] == "ACC-102")
    for key in (
        "study_instance_uid",
        "patient_name",
        "patient_id",
        "accession_number",
        "study_date",
        "modalities",
        "description",
        "status",
        "priority",
        "assignee",
        "patient_age",
        "patient_sex",
        "referring_physician",
        "instance_count",
        "arrived_at",
    ):
        assert key in item
    assert item["modalities"] == ["CT", "MR"]
    assert item["patient_name"] == "Yamada^Taro=山田^太郎=やまだ^たろう"
    assert item["status"] == "arrived" and item["priority"] == "routine" and item["assignee"] is None


@pytest.mark.parametrize(
    "q, expected",
    [
        ("muller", {"ACC-100", "ACC-101", "ACC-105"}),  # accent- and case-insensitive
        ("MÜLL", {"ACC-100", "ACC-101", "ACC-105"}),
        ("anna muller", {"ACC-100", "ACC-105"}),  # words in any order
        ("山田", {"ACC-102"}),  # ideographic group of a PN
        ("αλφα", {"ACC-104"}),  # Greek, accents folded
        ("seán", {"ACC-103"}),
        ("P-10", {"ACC-100", "ACC-101", "ACC-102", "ACC-103", "ACC-104", "ACC-105"}),
        ("acc-103", {"ACC-103"}),
        ("%", set()),
        ("_", set()),
        ("'; DROP TABLE study; --", set()),
        ("<script>", set()),
    ],
)
def test_search_by_name_id_accession(server, q, expected):
    assert set(accessions(studies(server, q=q))) == expected


def test_filters(server):
    assert set(accessions(studies(server, modality="CT"))) == {"ACC-100", "ACC-102", "ACC-105"}
    assert set(accessions(studies(server, modality="MR,US"))) == {"ACC-101", "ACC-102", "ACC-104"}
    assert accessions(studies(server, modality="C")) == []  # whole codes only
    assert set(accessions(studies(server, date="today"))) == {"ACC-100"}
    assert set(accessions(studies(server, date="7d"))) == {"ACC-100", "ACC-101", "ACC-102"}
    week_ago = (TODAY - datetime.timedelta(days=11)).isoformat()
    assert set(accessions(studies(server, date_from=week_ago, date_to=TODAY.isoformat()))) == {
        "ACC-100",
        "ACC-101",
        "ACC-102",
        "ACC-103",
    }
    assert set(accessions(studies(server, referring="jones^amy"))) == {"ACC-103", "ACC-104"}
    assert len(accessions(studies(server, status="arrived"))) == len(STUDIES)
    assert accessions(studies(server, status="final")) == []


@pytest.mark.parametrize(
    "column",
    [
        "patient_name",
        "patient_id",
        "accession_number",
        "study_date",
        "modalities",
        "description",
        "status",
        "priority",
        "arrived_at",
        "instance_count",
        "referring_physician",
        "assignee",
    ],
)
def test_sort_by_any_column(server, column):
    up = studies(server, sort=column).json()["items"]
    down = studies(server, sort="-" + column).json()["items"]
    assert len(up) == len(down) == len(STUDIES)
    if column == "study_date":
        dates = [i["study_date"] for i in up]
        assert dates == sorted(dates)


def test_paging(server):
    first = studies(server, page_size=2, page=1, sort="accession_number").json()
    second = studies(server, page_size=2, page=2, sort="accession_number").json()
    assert [i["accession_number"] for i in first["items"]] == ["ACC-100", "ACC-101"]
    assert [i["accession_number"] for i in second["items"]] == ["ACC-102", "ACC-103"]
    assert first["total"] == second["total"] == len(STUDIES)
    beyond = studies(server, page=99).json()
    assert beyond["items"] == [] and beyond["total"] == len(STUDIES)
    assert studies(server, page_size=100000).json()["page_size"] == 200


@pytest.mark.parametrize(
    "params, message",
    [
        ({"status": "done"}, "status: unknown value"),
        ({"priority": "asap"}, "priority: unknown value"),
        ({"modality": "C T"}, "modality:"),
        ({"date_from": "2026-13-01"}, "date_from must be a date"),
        ({"date_to": "yesterday"}, "date_to must be a date"),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_from is after date_to"),
        ({"date": "lastyear"}, "date: use one of"),
        ({"sort": "password_hash"}, "sort: unknown column"),
        ({"page": "0"}, "page must be at least 1"),
        ({"page_size": "0"}, "page_size must be at least 1"),
        ({"page": "x"}, "page must be a whole number"),
        ({"page": "²"}, "page must be a whole number"),
        ({"page": str(10**20)}, "page must be at most"),
        ({"assignee": "nobody"}, "assignee: no user"),
        ({"q": "x" * 65}, "q: at most"),
    ],
)
def test_bad_filters_are_clear_400s(server, params, message):
    answer = studies(server, **params)
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_claim_is_exclusive_and_releasable(server):
    uid = server.uids["ACC-101"]
    rad1, rad2 = as_user(server, "rad1"), as_user(server, "rad2")
    claimed = rad1.post(server.url(f"/pacs/api/studies/{uid}/claim"))
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["status"] == "in_progress" and claimed.json()["claimed_by"] == "rad1"
    refused = rad2.post(server.url(f"/pacs/api/studies/{uid}/claim"))
    assert refused.status_code == 409 and "being read by RAD1" in refused.json()["error"]
    assert rad1.post(server.url(f"/pacs/api/studies/{uid}/claim")).status_code == 200  # renews
    assert rad2.post(server.url(f"/pacs/api/studies/{uid}/release")).status_code == 403
    released = server.post(f"/pacs/api/studies/{uid}/release")  # admin
    assert released.status_code == 200 and released.json()["status"] == "arrived"
    assert released.json()["claimed_by"] is None


def test_concurrent_claims_exactly_one_wins(server):
    uid = server.uids["ACC-103"]
    sessions = [as_user(server, "rad1"), as_user(server, "rad2")] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda s: s.post(server.url(f"/pacs/api/studies/{uid}/claim")).status_code, sessions))
    winners = {s.headers["Authorization"] for s, c in zip(sessions, codes) if c == 200}
    assert len(winners) == 1 and set(codes) <= {200, 409}
    server.post(f"/pacs/api/studies/{uid}/release").raise_for_status()


def test_assign_and_priority(server):
    uid = server.uids["ACC-104"]
    rad1, tech = as_user(server, "rad1"), as_user(server, "tech")
    assert server.post(f"/pacs/api/studies/{uid}/assign", json={"assignee": "rad2"}).json()["assignee"] == "rad2"
    assert rad1.post(server.url(f"/pacs/api/studies/{uid}/assign"), json={"assignee": "rad1"}).status_code == 403
    assert server.post(f"/pacs/api/studies/{uid}/assign", json={"assignee": "tech"}).status_code == 400
    assert set(accessions(studies(server, assignee="rad2"))) == {"ACC-104"}
    assert rad1.post(server.url(f"/pacs/api/studies/{uid}/assign"), json={"assignee": None}).status_code == 403
    assert server.post(f"/pacs/api/studies/{uid}/assign", json={"assignee": None}).json()["assignee"] is None
    answer = tech.post(server.url(f"/pacs/api/studies/{uid}/priority"), json={"priority": "stat"})
    assert answer.status_code == 200 and answer.json()["priority"] == "stat"
    assert accessions(studies(server))[0] == "ACC-104"  # STAT first in the default view
    assert tech.post(server.url(f"/pacs/api/studies/{uid}/priority"), json={"priority": "now"}).status_code == 400
    assert tech.post(server.url(f"/pacs/api/studies/{uid}/claim")).status_code == 403
    server.post(f"/pacs/api/studies/{uid}/priority", json={"priority": "routine"}).raise_for_status()
    actions = {e["action"] for e in server.get("/pacs/api/audit", params={"study_uid": uid}).json()["items"]}
    assert {"study_assigned", "priority_changed"} <= actions


def test_unknown_study_is_404(server):
    assert server.get("/pacs/api/studies/1.2.3.4.5").status_code == 404
    assert server.post("/pacs/api/studies/1.2.3.4.5/claim").status_code == 404


def test_study_detail_has_series_and_priors(server):
    detail = server.get(f"/pacs/api/studies/{server.uids['ACC-100']}").json()
    assert [s["modality"] for s in detail["series"]] == ["CT"]
    assert [p["study_instance_uid"] for p in detail["priors"]] == [server.uids["ACC-105"]]
    series_uid = detail["series"][0]["series_instance_uid"]
    thumb = server.get(f"/pacs/api/studies/{server.uids['ACC-100']}/series/{series_uid}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/png"
    assert thumb.content.startswith(b"\x89PNG")


def test_referrer_sees_only_their_studies(server):
    drwho = as_user(server, "drwho")
    assert set(accessions(studies(server, drwho))) == {"ACC-100", "ACC-102", "ACC-105"}
    assert drwho.get(server.url(f"/pacs/api/studies/{server.uids['ACC-103']}")).status_code == 403
    detail = drwho.get(server.url(f"/pacs/api/studies/{server.uids['ACC-100']}"))
    assert detail.status_code == 200
    assert drwho.post(server.url(f"/pacs/api/studies/{server.uids['ACC-100']}/claim")).status_code == 403


def test_dashboard_figures(server):
    rad1 = as_user(server, "rad1")
    uid = server.uids["ACC-100"]
    rad1.post(server.url(f"/pacs/api/studies/{uid}/claim")).raise_for_status()
    figures = rad1.get(server.url("/pacs/api/dashboard")).json()
    assert sum(figures["counts_by_status"].values()) == len(STUDIES)
    assert figures["counts_by_status"]["in_progress"] == 1
    assert len(figures["per_day"]["days"]) == 30
    assert figures["per_day"]["series"]["CT"][-1] == 1  # today's CT HEAD
    assert {"username": "rad1", "assigned": 0, "reading": 1} in figures["workload"]
    assert figures["waiting_longest"][0]["accession_number"]
    assert figures["turnaround"] == []  # nothing final yet (reports fill final_at)
    assert as_user(server, "drwho").get(server.url("/pacs/api/dashboard")).status_code == 403
    server.post(f"/pacs/api/studies/{uid}/release").raise_for_status()


def test_login_redirect_keeps_the_filtered_view(server):
    answer = requests.get(
        server.url("/pacs/"),
        params={"status": "arrived", "modality": "CT"},
        headers={"Accept": "text/html"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/pacs/login?next=%2Fpacs%2F%3Fstatus%3Darrived%26modality%3DCT"
