"""A referrer sees only their own studies, however the request is spelled.

Generated requests (hypothesis) over every scoped route (DICOMweb QIDO and WADO-RS,
WADO-URI, our QIDO layer, our study, report and thumbnail pages and APIs), with the
path naming the referrer's study or another patient's, starting at times from OHIF's
search for a patient's studies (QIDO by PatientID: the referrer's patient, whose
other study is not in their scope, or another patient), and query strings built by
hand from every spelling DICOM and DICOMweb accept for the identifying tags (keyword
in any case, ggggeeee, gggg,eeee, (gggg,eeee), 0x forms, %-escaped letters, '+' and
spaces), repeated and shuffled, with values that are the referrer's UIDs, another
patient's, empty, wildcards, lists and %-escapes. Sent raw (http.client) as the
referrer, by API key or session cookie.

Invariants: no answer contains another patient's name, patient ID, accession, study,
series or instance UID, or their pixels, nor the UIDs, accession or pixels of the
referrer's patient's study outside their scope, unless the request itself carried that
identifier; an image answer (frames, rendered, WADO-URI) is only ever one of the
referrer's images; Orthanc stays up.
"""

import re
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pacs_server import PacsServer
from scoped_data import REFERRING_NAME, alive, make_account, raw_request, session_cookie, store_study

from plugin import route_table

EXAMPLES = 600
SEEN = {"requests": 0, "statuses": {}, "patient_searches": {}}  # the last: OHIF's, on our QIDO layer


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scope")
    server = PacsServer(folder / "pacs").start()
    try:
        mine = store_study(server, folder / "mine", "MINEPATIENT^ALBA", REFERRING_NAME)
        others = [
            store_study(
                server, folder / "other1", "QUAGGAMIRE^THEODOLINDA", "JONES^MARY", marker=b"PIXELS-OF-QUAGGAMIRE"
            ),
            store_study(server, folder / "other2", "XYLOPHAGE^PERPETUA", "", marker=b"PIXELS-OF-XYLOPHAGE"),
            # the referrer's patient's earlier study, referred by someone else: out of scope
            store_study(
                server,
                folder / "sibling",
                "MINEPATIENT^ALBA",
                "JONES^MARY",
                marker=b"PIXELS-OF-THE-SIBLING",
                patient_id=mine.spec.patient_id,
            ),
        ]
        referrer = make_account(server, "gen-referrer", "referrer", referring_names=[REFERRING_NAME])
        referrer["cookie"] = session_cookie(server, "gen-referrer", referrer["password"])
        yield server, mine, others, referrer
    finally:
        server.stop()


# --- the requests -------------------------------------------------------------------

ROUTES = (
    "/dicom-web/studies",
    "/dicom-web/series",
    "/dicom-web/instances",
    "/dicom-web/studies/{study}",
    "/dicom-web/studies/{study}/series",
    "/dicom-web/studies/{study}/instances",
    "/dicom-web/studies/{study}/metadata",
    "/dicom-web/studies/{study}/series/{series}",
    "/dicom-web/studies/{study}/series/{series}/instances",
    "/dicom-web/studies/{study}/series/{series}/metadata",
    "/dicom-web/studies/{study}/series/{series}/instances/{instance}",
    "/dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata",
    "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/1",
    "/dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered",
    "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/1/rendered",
    "/dicom-web/studies/{study}/series/{series}/rendered",
    "/dicom-web/studies/{study}/rendered",
    "/wado",
    "/pacs/dicom-web/studies",
    "/pacs/dicom-web/series",
    "/pacs/dicom-web/instances",
    "/pacs/dicom-web/studies/{study}/series",
    "/pacs/dicom-web/studies/{study}/instances",
    "/pacs/dicom-web/studies/{study}/series/{series}/instances",
    "/pacs/studies/{study}",
    "/pacs/api/studies/{study}",
    "/pacs/api/studies",
    "/pacs/studies/{study}/report",
    "/pacs/api/studies/{study}/report",
    "/pacs/api/studies/{study}/report/pdf",
    "/pacs/studies/{study}/series/{series}/thumbnail",
)
IMAGE_ROUTES = ("/frames/", "/rendered", "/thumbnail")
API_PATHS = sorted({route.path for route in route_table.ROUTES if route.documented and not route.page})

# Every identifying tag: its keyword and (group, element).
TAGS = {
    "StudyInstanceUID": (0x0020, 0x000D),
    "SeriesInstanceUID": (0x0020, 0x000E),
    "SOPInstanceUID": (0x0008, 0x0018),
    "PatientID": (0x0010, 0x0020),
    "PatientName": (0x0010, 0x0010),
    "AccessionNumber": (0x0008, 0x0050),
}
HARMLESS = (
    "limit",
    "offset",
    "includefield",
    "fuzzymatching",
    "studyUID",
    "seriesUID",
    "objectUID",
    "requestType",
    "contentType",
    "Modality",
    "accept",
    "quality",
)


def tag_spellings(keyword):
    group, element = TAGS[keyword]
    g, e = f"{group:04X}", f"{element:04X}"
    return [
        keyword,
        keyword.lower(),
        keyword.upper(),
        g + e,
        (g + e).lower(),
        f"{g},{e}",
        f"{g}-{e}",
        f"({g},{e})",
        f"0x{g},0x{e}",
        f"{group:x},{element:x}",
        f"{g}, {e}",
        f"1{g},{e}",
        f"{g}|{e}",
    ]


def percent_escape(draw, text):
    """Escape some characters as %XX (hex in either case); spaces become '+' or %20."""
    out = []
    for char in text:
        if char == " ":
            out.append(draw(st.sampled_from(["+", "%20"])))
        elif draw(st.integers(0, 5)) == 0:
            code = f"%{ord(char):02X}"
            out.append(code if draw(st.booleans()) else code.lower())
        else:
            out.append(urllib.parse.quote(char, safe="*\\,.()-|+"))
    return "".join(out)


@st.composite
def parameter_name(draw):
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(HARMLESS))
        name = draw(st.sampled_from([name, name.lower(), name.upper()]))
    else:
        # The study's tag half of the time: the one a referrer's scope is checked on.
        keyword = draw(st.sampled_from(["StudyInstanceUID"] * 5 + sorted(TAGS)))
        name = draw(st.sampled_from(tag_spellings(keyword)))
    padding = draw(st.sampled_from(["", " ", "  "]))
    name = draw(st.sampled_from([name, padding + name, name + padding]))
    return percent_escape(draw, name) if draw(st.integers(0, 5)) == 0 else name.replace(" ", "+")


@st.composite
def parameter_value(draw, world_ids):
    mine, other = world_ids
    uid = draw(st.sampled_from(mine + other))
    another = draw(st.sampled_from(other))
    if draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(["", "", "*", "%2A", "+", "%20"]))
    value = draw(
        st.sampled_from(
            [
                uid,
                another,
                "",
                " ",
                "*",
                "?",
                "1*",
                "1.2.*",
                uid[:12] + "*",
                "*" + uid[-6:],
                uid[:-1] + "?",
                f"{mine[0]}\\{another}",
                f"{another}\\{mine[0]}",
                f"{mine[0]},{another}",
                f"{uid} ",
                f" {uid}",
                "QUAGGA*",
                "X*",
                "-",
                "0",
                "100",
                "-1",
                "all",
                "true",
                "WADO",
                "application/dicom",
                "image/jpeg",
            ]
        )
    )
    if draw(st.integers(0, 3)) == 0:
        return percent_escape(draw, value)
    return urllib.parse.quote(value, safe="*\\,.?-/")


QUERY_SCOPED = (
    "/dicom-web/studies",
    "/dicom-web/series",
    "/dicom-web/instances",
    "/wado",
    "/pacs/dicom-web/studies",
    "/pacs/dicom-web/series",
    "/pacs/dicom-web/instances",
)
# OHIF's search for the other studies of the patient shown (the viewer's study panel).
PATIENT_SEARCH = [
    ("limit", "101"),
    ("offset", "0"),
    ("fuzzymatching", "false"),
    ("includefield", "00081030%2C00080060%2C00080090%2C00100030"),
]


def legitimate_query(path, study, series, instance, patient_id=None):
    """What a client in scope sends on this route: an attacker starts from it.
    With ``patient_id``, a study search is OHIF's search for that patient's studies."""
    if path == "/wado":
        return [("requestType", "WADO"), ("studyUID", study), ("seriesUID", series), ("objectUID", instance)]
    if patient_id and path.endswith("/dicom-web/studies"):
        return [("00100020", urllib.parse.quote(patient_id))] + PATIENT_SEARCH
    if path in QUERY_SCOPED:
        return [("StudyInstanceUID", study)]
    return []


@st.composite
def scoped_request(draw, world):
    _, mine, others, _ = world
    every = [mine] + others
    study = draw(st.sampled_from([mine, mine, mine] + others))
    owner = study if draw(st.integers(0, 3)) else draw(st.sampled_from(every))
    series = draw(st.sampled_from(sorted(owner.series)))
    owner = owner if draw(st.integers(0, 3)) else draw(st.sampled_from(every))
    instance = draw(st.sampled_from([uid for instances in owner.series.values() for uid in instances]))
    # One in six is OHIF's search for the patient's studies (mostly on our QIDO layer, which answers
    # it from the scope); of the rest, two in three on the routes whose study is in the query: where
    # another spelling can widen it.
    by_patient = study.spec.patient_id if draw(st.integers(0, 5)) == 0 else None
    if by_patient:
        path = draw(st.sampled_from(["/pacs/dicom-web/studies"] * 3 + ["/dicom-web/studies"]))
    else:
        path = draw(st.sampled_from(QUERY_SCOPED)) if draw(st.integers(0, 2)) else draw(st.sampled_from(ROUTES))
    path = path.format(study=study.uid, series=series, instance=instance)

    mine_ids = [mine.uid, *mine.series, *(u for i in mine.series.values() for u in i), mine.spec.patient_id]
    other_ids = [
        u for o in others for u in (o.uid, *o.series, *(x for i in o.series.values() for x in i), o.spec.patient_id)
    ]
    base = legitimate_query(path, study.uid, series, instance, by_patient) if draw(st.integers(0, 7)) else []
    extra = draw(
        st.lists(
            st.tuples(parameter_name(), parameter_value((mine_ids, other_ids))),
            min_size=0 if by_patient else 1,
            max_size=4,
        )
    )
    repeated = base + [pair for pair in extra for _ in range(draw(st.integers(1, 3)))]
    ordered = draw(st.permutations(repeated)) if repeated else []
    query = "&".join(f"{n}={v}" if draw(st.integers(0, 5)) else n for n, v in ordered)
    via = draw(st.sampled_from(["key", "cookie"]))
    return path + ("?" + query if query else ""), via


def in_request(identifier, target):
    """Whether the request itself named this identifier (raw or %-/+-decoded)."""
    text = identifier.decode(errors="replace")
    return text in target or text in urllib.parse.unquote_plus(target) or text in urllib.parse.unquote(target)


def query_values(target, wanted):
    query = urllib.parse.urlsplit(target).query
    return [
        urllib.parse.unquote_plus(v).strip()
        for n, v in urllib.parse.parse_qsl(query, keep_blank_values=True)
        if urllib.parse.unquote_plus(n).strip().lower() == wanted
    ]


def check_answer(world, target, status, body, content_type):
    """The invariants for one answer; returns what was violated ('' when none)."""
    _, mine, others, _ = world
    for other in others:
        for identifier in sorted(other.identifiers() - mine.identifiers()):  # the sibling shares the patient
            if identifier in body and not in_request(identifier, target):
                return f"{identifier!r} of patient {other.spec.patient_name} is in the answer"
    if not 200 <= status < 300:
        return ""
    path = urllib.parse.urlsplit(target).path
    mine_uids = {mine.uid, *mine.series, *(u for i in mine.series.values() for u in i)}
    if any(part in path for part in IMAGE_ROUTES):
        named = [part for part in path.split("/") if part.count(".") > 3]
        if not set(named) <= mine_uids:
            return f"an image of a path naming another study's UIDs was served ({content_type})"
    if path == "/wado":
        objects = query_values(target, "objectuid")
        if not objects or not set(objects) <= mine_uids:
            return f"WADO-URI served an object ({content_type}) for objectUID {objects}"
    return ""


@pytest.mark.timeout(600)
def test_referrer_sees_nothing_of_other_patients(world):
    server, mine, others, referrer = world
    failures = []

    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=False, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.data())
    def attack(data):
        target, via = data.draw(scoped_request(world))
        headers = {"Authorization": referrer["authorization"]} if via == "key" else {"Cookie": referrer["cookie"]}
        status, answer_headers, body = raw_request(server, "GET", target, headers)
        SEEN["requests"] += 1
        SEEN["statuses"][status] = SEEN["statuses"].get(status, 0) + 1
        if target.startswith("/pacs/dicom-web/studies?") and "00100020=" in target:
            SEEN["patient_searches"][status] = SEEN["patient_searches"].get(status, 0) + 1
        problem = check_answer(world, target, status, body, answer_headers.get("content-type", ""))
        if status >= 500:
            problem = problem or f"server error {status}: {body[:300]!r}"
        if problem and len(failures) < 20:
            failures.append(f"GET {target} ({via}) -> {status}: {problem}")
        assert alive(server), f"Orthanc died after GET {target}\n{server.log_tail()}"

    attack()
    print(
        f"\nscope property: {SEEN['requests']} generated requests as a referrer; statuses {SEEN['statuses']}; "
        f"OHIF's patient search on /pacs/dicom-web/studies: {SEEN['patient_searches']}"
    )
    assert not failures, "\n".join(failures)


@pytest.mark.timeout(600)
def test_a_referrers_other_methods_change_nothing_and_show_nothing(world):
    """The same generated requests with POST, PUT or DELETE (a JSON body or none): a
    referrer may change nothing, so nothing succeeds; what is refused (the guard's 405 on
    a declared path included, which skips the scope: it shows only the methods) never
    carries another patient's data, never a 5xx, and Orthanc stays up."""
    server, _, _, referrer = world
    failures, statuses = [], {}

    @settings(max_examples=EXAMPLES // 3, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def attack(data):
        target, via = data.draw(scoped_request(world))
        if data.draw(st.booleans()):  # a declared JSON API path instead, naming a study of anyone's
            uid = data.draw(st.sampled_from([world[1].uid] + [other.uid for other in world[2]]))
            target = re.sub(r"{\w+(?::path)?}", uid, data.draw(st.sampled_from(API_PATHS)))
        method = data.draw(st.sampled_from(("POST", "PUT", "DELETE")))
        body = data.draw(st.sampled_from((b"", b"{}", b'{"take_over": true, "priority": "stat"}')))
        headers = {"Authorization": referrer["authorization"]} if via == "key" else {"Cookie": referrer["cookie"]}
        if body:
            headers["Content-Type"] = "application/json"
        status, answer_headers, answer = raw_request(server, method, target, headers, body)
        statuses[status] = statuses.get(status, 0) + 1
        problem = check_answer(world, target, status, answer, answer_headers.get("content-type", ""))
        if 200 <= status < 300 or status >= 500:
            problem = problem or f"status {status}: {answer[:300]!r}"
        if problem and len(failures) < 20:
            failures.append(f"{method} {target} ({via}) -> {status}: {problem}")
        assert alive(server), f"Orthanc died after {method} {target}\n{server.log_tail()}"

    attack()
    print(f"\nother methods as a referrer: statuses {statuses}")
    assert not failures, "\n".join(failures)
    assert statuses.get(405), "no generated request reached a declared path's 405"


@pytest.mark.parametrize("via", ["key", "cookie"])
def test_referrer_still_gets_own_study_as_ohif_asks(world, via):
    """The spellings OHIF uses keep working for the referrer's own study, and its search
    for the patient's studies answers that one, not the patient's study out of scope."""
    server, mine, others, referrer = world
    headers = {"Authorization": referrer["authorization"]} if via == "key" else {"Cookie": referrer["cookie"]}
    series, instance = mine.first()
    base = f"/dicom-web/studies/{mine.uid}"

    status, _, body = raw_request(
        server,
        "GET",
        f"/pacs/dicom-web/studies?StudyInstanceUID={mine.uid}"
        "&limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060",
        headers,
    )
    assert status == 200 and mine.uid.encode() in body, body[:300]
    status, _, body = raw_request(
        server,
        "GET",
        f"/pacs/dicom-web/studies?00100020={mine.spec.patient_id}&"
        + "&".join(f"{name}={value}" for name, value in PATIENT_SEARCH),
        headers,
    )
    sibling = others[-1]
    assert sibling.spec.patient_id == mine.spec.patient_id
    assert status == 200 and mine.uid.encode() in body and sibling.uid.encode() not in body, body[:300]
    status, _, body = raw_request(server, "GET", f"/pacs/dicom-web/studies/{mine.uid}/series", headers)
    assert status == 200 and series.encode() in body, body[:300]
    status, _, body = raw_request(server, "GET", f"{base}/series/{series}/metadata", headers)
    assert status == 200 and instance.encode() in body and b"MINEPATIENT" in body, body[:300]
    status, answer_headers, body = raw_request(
        server,
        "GET",
        f"{base}/series/{series}/instances/{instance}/frames/1",
        {**headers, "Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    assert status == 200 and answer_headers["content-type"].startswith("multipart/related"), body[:300]
    assert len(body) >= 64 * 64 * 2
