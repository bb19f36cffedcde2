"""Generated pathological files against a real Orthanc: whatever arrives by C-STORE or
HTTP, Orthanc stays up, and what it stored it also serves (preview, thumbnail, DICOMweb
metadata, WADO-URI) without crashing. Run with -s to see how many files were tried."""

import contextlib
import struct
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pacs_server import PacsServer
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
)
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage
from test_ingest_screen_unit import NATIVE_SYNTAXES, body, ct, encode, nest, part10

from plugin.ingest_screen import MAX_SEQUENCE_DEPTH, TRANSFER_SYNTAXES

OFFERED_SYNTAXES = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
]
OTHER_SYNTAXES = ["1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.201", "1.2.3.4"]
NO_ANSWER_SECONDS = 3  # Orthanc does not answer a C-STORE whose data set DCMTK cannot parse
TRIED = []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A PACS of this module's own: a crash here takes nobody else's server down."""
    pacs = PacsServer(tmp_path_factory.mktemp("fuzz")).start()
    yield pacs
    pacs.stop()
    if TRIED:
        print(f"\ningest fuzz: {len(TRIED)} files tried, {sum(TRIED)} stored, {len(TRIED) - sum(TRIED)} refused")


def c_store(server, path):
    """C-STORE a file's data set bytes unparsed (as a broken modality would).

    The status, None when Orthanc gave no answer, or "unsent" when the file's own meta
    group is too broken for the sender to offer it."""
    ae = AE(ae_title="FUZZER")
    for syntax in OFFERED_SYNTAXES:  # one context each: Orthanc accepts one syntax per context
        ae.add_requested_context(CTImageStorage, [syntax])
    ae.dimse_timeout = NO_ANSWER_SECONDS
    saved, _config.STORE_SEND_CHUNKED_DATASET = _config.STORE_SEND_CHUNKED_DATASET, True
    try:
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
        if not assoc.is_established:
            assert_alive(server)
            raise AssertionError("Orthanc refused the association")
        try:
            status = assoc.send_c_store(str(path))
        except (ValueError, AttributeError, KeyError, TypeError, NotImplementedError, OSError, struct.error):
            return "unsent"
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved
    return status.Status if "Status" in status else None


def c_store_failed(status):
    """No answer, not sent, or a failure status (0xA000-0xAFFF, 0xC000-0xCFFF; 0xBxxx are
    warnings: stored)."""
    return status in (None, "unsent") or 0xA000 <= status < 0xB000 or status >= 0xC000


def assert_alive(server):
    assert server.process.poll() is None, f"Orthanc exited:\n{server.log_tail()}"
    deadline = time.monotonic() + 5
    while True:
        try:
            if server.get("/pacs/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"no healthy answer within 5 s:\n{server.log_tail()}"
        time.sleep(0.1)


def serve_and_delete(server, instance_id):
    """Ask for everything that makes Orthanc parse the instance, then remove it."""
    instance = server.get(f"/instances/{instance_id}").json()
    series = server.get(f"/series/{instance['ParentSeries']}").json()
    study = server.get(f"/studies/{series['ParentStudy']}").json()
    uids = (
        study["MainDicomTags"].get("StudyInstanceUID", ""),
        series["MainDicomTags"].get("SeriesInstanceUID", ""),
        instance["MainDicomTags"].get("SOPInstanceUID", ""),
    )
    for path in (
        f"/instances/{instance_id}/preview",
        f"/instances/{instance_id}/tags",
        "/dicom-web/studies/{}/series/{}/instances/{}/metadata".format(*uids),
        "/wado?requestType=WADO&studyUID={}&seriesUID={}&objectUID={}&contentType=application/dicom".format(*uids),
        "/wado?requestType=WADO&studyUID={}&seriesUID={}&objectUID={}&contentType=image/jpeg".format(*uids),
        "/pacs/api/studies/{}/series/{}/thumbnail".format(*uids[:2]),
    ):
        try:
            server.get(path, timeout=20)
        except requests.ConnectionError:
            pass  # assert_alive says whether Orthanc went down
        assert_alive(server)
    server.delete(f"/studies/{series['ParentStudy']}")


def send_everywhere(server, data, folder):
    """Send ``data`` by C-STORE and HTTP; check the invariants; True when it was stored."""
    path = folder / "fuzz.dcm"
    path.write_bytes(data)
    status = c_store(server, path)
    assert_alive(server)
    answer = server.post("/instances", data=data, headers={"Content-Type": "application/dicom"})
    assert_alive(server)
    assert answer.status_code < 500, answer.text
    stored = answer.status_code == 200
    # One screen guards both doors (Orthanc may refuse more by itself). A defect of the file
    # meta group alone is HTTP's: C-STORE carries the data set, and the sender makes a new meta.
    # Over C-STORE, DCMTK parses the data set on receipt and the screen checks DCMTK's own
    # encoding of it, which is what Orthanc stores: a defect DCMTK repaired or dropped on the
    # way (a length it cut to the data, say) is gone. Whatever C-STORE stored must then be
    # served without harm, like every stored file.
    if stored:
        serve_and_delete(server, answer.json()["ID"])
    if not c_store_failed(status):
        for instance_id in server.get("/instances").json():
            serve_and_delete(server, instance_id)
    TRIED.append(stored)
    return stored


def test_the_screen_is_wired(server, tmp_path):
    data = encode(nest(ct(), 60, undefined=True))
    path = tmp_path / "deep.dcm"
    path.write_bytes(data)
    assert c_store(server, path) == 0xC000
    answer = server.post("/instances", data=data, headers={"Content-Type": "application/dicom"})
    assert answer.status_code == 400 and "nested deeper" in answer.json()["error"]
    assert server.get("/instances").json() == []
    log = server.log_text()
    assert "event=instance_refused source=dicom calling_aet=FUZZER reason=sequences nested deeper" in log
    assert_alive(server)


@pytest.mark.parametrize("depth", [MAX_SEQUENCE_DEPTH - 1, MAX_SEQUENCE_DEPTH])
def test_the_deepest_nesting_accepted_is_served(server, tmp_path, depth):
    assert send_everywhere(server, encode(nest(ct(), depth, undefined=True), ImplicitVRLittleEndian), tmp_path)
    assert send_everywhere(server, encode(nest(ct(), depth), ExplicitVRLittleEndian), tmp_path)


@st.composite
def pathological(draw):
    """A small CT, mutated. Positions are drawn as fractions of the file's length: its UIDs
    (hence length) differ from one draw to the next."""

    def position(data, start, margin=1):
        return start + draw(st.integers(0, 10**6)) * (len(data) - margin - start) // 10**6

    ds = nest(ct(rows=16, cols=16), draw(st.integers(0, 80)), draw(st.booleans()))
    action = draw(st.sampled_from(["none", "pixels", "syntax", "truncate", "length", "flip"]))
    if action == "pixels":
        ds.PixelData = bytes(draw(st.sampled_from([0, 2, 510, 514, 1024, 4096])))
    data = bytearray(encode(ds, draw(st.sampled_from(NATIVE_SYNTAXES))))
    if action == "syntax":
        uid = draw(st.sampled_from(sorted(TRANSFER_SYNTAXES) + OTHER_SYNTAXES))
        data = bytearray(part10(uid, body(bytes(data))))
    elif action == "truncate":
        del data[position(data, 132) :]
    elif action == "length":  # a length field (or whatever lies there) rewritten
        at = position(data, 132, 4)
        data[at : at + 4] = struct.pack("<I", draw(st.sampled_from([0, 2, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])))
    elif action == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[position(data, 132)] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=pathological())
def test_no_file_takes_orthanc_down(server, tmp_path, data):
    with contextlib.suppress(FileNotFoundError):
        (tmp_path / "fuzz.dcm").unlink()
    send_everywhere(server, data, tmp_path)
