"""The guard's query approval for referrers, its body-size check on headers, and the
gateway's body check: plain Python, every spelling and shape generated."""

import io
import json
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin import permissions
from plugin.auth.guard import Guard
from plugin.gateway import Gateway, check_body
from plugin.http import HttpError, Request
from plugin.route_table import TABLE

MINE, OTHER = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
# The QIDO layer's study search (/pacs/dicom-web/studies) is checked by its handler, against the
# same whitelist: tests/test_viewer_qido_unit.py.
QIDO_ROUTES = ("/dicom-web/studies", "/dicom-web/series", "/dicom-web/instances", "/pacs/dicom-web/series")


def approved(path, query):
    rule, path_study = TABLE.match("GET", path)
    return permissions.approved_query(rule, path_study, query)


# Every spelling DICOM and DICOMweb accept for StudyInstanceUID, and the ways to hide one.
_SPELLINGS = st.sampled_from(
    [
        "0020000D",
        "0020000d",
        "0020,000D",
        "0020-000D",
        "(0020,000D)",
        "0x0020,0x000D",
        "20,d",
        "studyinstanceuid",
        "STUDYINSTANCEUID",
        "StudyInstanceUID ",
        " StudyInstanceUID",
        "Study%49nstanceUID",
        "StudyInstanceUID%00",
        "studyUID",
        "StudyInstanceUID[]",
        "",
    ]
)
_VALUES = st.sampled_from(
    [
        "",
        " ",
        "*",
        "1.2*",
        OTHER,
        f"{MINE}\\{OTHER}",
        f"{MINE},{OTHER}",
        f"{MINE}%5C{OTHER}",
        f"{MINE}%2C{OTHER}",
        f"{MINE}+",
        "%2A",
        MINE + "\x00",
        MINE + " ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(path=st.sampled_from(QIDO_ROUTES), name=_SPELLINGS, value=_VALUES | st.text(max_size=20))
def test_a_referrer_query_passes_only_as_parsed_and_approved(path, name, value):
    """Whatever is added to a search for my study, the request is refused or names
    exactly the studies the guard will check; a second spelling never slips through."""
    problem, studies = approved(path, {"StudyInstanceUID": MINE, name: value})
    if name != "StudyInstanceUID":
        assert problem, (name, value)
        return
    if not problem:
        assert set(studies) == set(value.replace("\\", ",").split(",")) and "" not in studies


def test_path_scoped_routes_take_no_second_study():
    assert approved(f"/dicom-web/studies/{MINE}/series", {"StudyInstanceUID": OTHER})[0]
    assert approved(f"/dicom-web/studies/{MINE}/series", {"SeriesInstanceUID": "1.2.3"}) == ("", [MINE])
    assert approved(f"/dicom-web/studies/{MINE}/series/1.2/metadata", {"0020000D": OTHER})[0]
    assert approved("/wado", {"requestType": "WADO", "studyUID": MINE, "objectUID": "1.2"}) == ("", [MINE])
    assert approved("/wado", {"requestType": "WADO", "studyUID": MINE, "StudyInstanceUID": OTHER})[0]


def guard():
    return Guard(None, None, None, None, body_limits={"upload": 1000}, table=TABLE)


@pytest.mark.parametrize(
    "method,path,headers,refused",
    [
        ("POST", "/tools/find", {"content-length": "2"}, False),
        ("POST", "/tools/find", {"content-length": str(2 * 1024 * 1024)}, True),
        ("POST", "/instances", {"content-length": "999"}, False),
        ("POST", "/instances", {"content-length": "100000000000"}, True),
        ("POST", "/instances", {"content-length": "1", "content-encoding": "gzip"}, True),
        ("POST", "/instances", {"transfer-encoding": "chunked"}, True),
        ("POST", "/instances", {"content-length": "-1"}, True),
        ("POST", "/instances", {"content-length": "1e3"}, True),
        ("POST", "/instances", {"content-length": "٣"}, True),
        ("GET", "/system", {"content-length": "5"}, False),  # a rule's default: JSON-sized
        ("POST", "/no/such/route", {"content-length": "1"}, True),
        ("POST", "/pacs/api/auth/login", {"content-length": "999"}, False),  # our handlers say 413 themselves
        ("POST", "/pacs/api/auth/login", {"content-length": "1001"}, True),
    ],
)
def test_bodies_are_refused_on_their_headers_before_orthanc_reads_them(method, path, headers, refused):
    assert bool(guard().body_refusal(method, path, headers)) == refused


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000,
        b" \n" + b'{"a":' * 100 + b"1" + b"}" * 100,
        b'{"a": 1',
        b"\xff\xfe",
        b"abc\x00def",
        b"x" + b"[" * 200,
    ],
)
def test_bodies_orthanc_would_choke_on_are_refused(body):
    with pytest.raises(HttpError) as refused:
        check_body(body)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b'{"Level": "Study", "Query": {"PatientName": "A*"}}', b"1.2.840.10008.1", b"0", b'["a", ["b"]]'],
)
def test_ordinary_bodies_pass(body):
    check_body(body)


class FakeHost:
    """Stands in for Orthanc's built-in API: records what reached it."""

    def __init__(self):
        self.stored = []

    def builtin(self, method, uri, body=b""):
        self.stored.append(body)
        return json.dumps({"ID": str(len(self.stored)), "Status": "Success"}).encode()


def upload(body, screen=lambda data: None if data.startswith(b"OK") else "bad", limit=10_000):
    host = FakeHost()
    answer = Gateway(host, screen, limit).router.dispatch(Request("POST", "/instances", body=body))
    return answer, host.stored


def zipped(files, compression=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_an_upload_is_screened_file_by_file():
    answer, stored = upload(zipped({"a.dcm": b"OK 1", "b.dcm": b"evil", "c/d.dcm": b"OK 2"}))
    assert answer.status == 200 and stored == [b"OK 1", b"OK 2"]
    refused = [item for item in json.loads(answer.body) if item["Status"] == "Refused"]
    assert refused == [{"Path": "b.dcm", "Status": "Refused", "Reason": "bad"}]
    answer, stored = upload(b"evil")
    assert answer.status == 400 and stored == [] and "bad" in json.loads(answer.body)["error"]


def test_a_zip_bomb_is_refused_before_anything_is_stored():
    bomb = zipped({f"{i}.dcm": b"OK" + bytes(9_000) for i in range(3)})  # 27 kB from a few hundred bytes
    answer, stored = upload(bomb)
    assert answer.status == 413 and stored == []
    assert upload(b"PK\x03\x04" + bytes(100))[0].status == 400
