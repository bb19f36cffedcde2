"""The bundled OHIF viewer under /pacs/viewer/ and the QIDO layer in front of
DICOMweb: sub-path rewrite, serving rules, bad paths, scope and sessions."""

import gzip
import http.client
import re
import threading
import time

import dicomgen
import pytest
import requests

from plugin.errors import Invalid
from plugin.http import http_status
from plugin.viewer import DEFAULT_ROOT
from plugin.viewer.assets import checked_path, rewrite
from plugin.viewer.qido import orthanc_query

PASSWORD = "Viewer-tests-2026!"
FRAME_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"


# --- the pinned OHIF build, rewritten for the sub-path ------------------------


def ohif_file(name):
    path = DEFAULT_ROOT / name
    assert path.is_file(), f"{path} missing: make install vendors OHIF"
    return name, path.read_bytes()


def test_rewrite_rules_still_hold_for_the_pinned_ohif():
    index, count = rewrite(*ohif_file("index.html"))
    assert count > 5
    assert b'window.PUBLIC_URL="/pacs/viewer/"' in index
    assert not re.search(rb'(src|href)="/(?!pacs/viewer/)', index)
    bundles = [p.name for p in DEFAULT_ROOT.glob("*.bundle.*.js") if b'__webpack_require__.p = "/"' in p.read_bytes()]
    assert any(name.startswith("app.bundle.") for name in bundles)
    for name in bundles:  # the app and every worker bundle
        data, count = rewrite(*ohif_file(name))
        assert count == 1 and b'__webpack_require__.p = "/pacs/viewer/"' in data
    css, count = rewrite(*ohif_file("app.bundle.css"))
    assert count > 0 and b"url(/)" not in css and not re.search(rb"url\(/(?!pacs/viewer/)", css)
    manifest, count = rewrite(*ohif_file("manifest.json"))
    assert count > 0 and b'"src": "/assets' not in manifest


@pytest.mark.parametrize(
    "raw",
    [
        "../etc/passwd",
        "a/../../x",
        "..",
        "./index.html",
        ".hidden",
        "a//b",
        "/etc/passwd",
        "a\\b",
        "a\x00b",
        "%2e%2e/x",
        "..%2fx",
    ],
)
def test_suspicious_paths_are_refused(raw):
    with pytest.raises(Invalid) as error:
        checked_path(raw)
    assert http_status(error.value) == 400


def test_qido_query_is_decoded_and_includefield_split():
    assert (
        orthanc_query({"PatientName": "Phan*", "includefield": "00081030,00080060"})
        == "PatientName=Phan*&includefield=00081030&includefield=00080060"
    )
    with pytest.raises(Invalid):
        orthanc_query({"PatientName": "a&limit=100000"})


# --- served by a real PACS ------------------------------------------------------


@pytest.fixture(scope="module")
def viewer_pacs(pacs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer")
    mine = dicomgen.StudySpec(patient_name="Phantom^Viewer", referring_physician="REF^ONE", description="CT VIEWER")
    other = dicomgen.StudySpec(patient_name="Other^Patient", referring_physician="REF^TWO")
    pacs.storescu(
        dicomgen.write(dicomgen.ct_series(mine, slices=6), folder / "a")
        + dicomgen.write(dicomgen.mr_series(other, slices=3), folder / "b")
    )
    pacs.wait_indexed(mine.study_uid, instances=6)
    pacs.wait_indexed(other.study_uid, instances=3)
    for name, names in (("viewref", ["Ref^One"]),):
        pacs.post(
            "/pacs/api/users",
            json={"username": name, "password": PASSWORD, "role": "referrer", "referring_names": names},
        )
    pacs.mine, pacs.other = mine, other
    return pacs


def session_for(server, username):
    session = requests.Session()
    answer = server.login(username, PASSWORD, session)
    assert answer.status_code == 200, answer.text
    return session


def test_viewer_pages_and_headers(viewer_pacs):
    server = viewer_pacs
    index = server.get("/pacs/viewer/")
    assert server.get("/pacs/viewer").text == index.text
    assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
    assert 'window.PUBLIC_URL="/pacs/viewer/"' in index.text
    for name, value in [
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Embedder-Policy", "require-corp"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        ("Cache-Control", "no-cache"),
    ]:
        assert index.headers[name] == value
    spa = server.get("/pacs/viewer/viewer", params={"StudyInstanceUIDs": server.mine.study_uid})
    assert spa.status_code == 200 and spa.text == index.text  # a client route
    config = server.get("/pacs/viewer/app-config.js")
    assert "application/javascript" in config.headers["Content-Type"]
    assert "'/pacs/dicom-web'" in config.text and "showStudyList: false" in config.text


def test_assets_are_cached_and_compressed_once(viewer_pacs):
    bundle = next(p.name for p in DEFAULT_ROOT.glob("app.bundle.*.js"))
    answer = viewer_pacs.get(f"/pacs/viewer/{bundle}", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert answer.headers["Content-Encoding"] == "gzip"
    assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    raw = answer.raw.read()
    assert len(raw) < (DEFAULT_ROOT / bundle).stat().st_size / 2
    assert b'__webpack_require__.p = "/pacs/viewer/"' in gzip.decompress(raw)
    wasm = next(p.name for p in DEFAULT_ROOT.glob("*.wasm"))
    assert viewer_pacs.get(f"/pacs/viewer/{wasm}").headers["Content-Type"] == "application/wasm"


def raw_get(server, path, headers):
    """GET without any client-side path normalisation."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    status = answer.status
    conn.close()
    return status


def test_bad_viewer_paths(viewer_pacs):
    server = viewer_pacs
    auth = {"Authorization": server.http.headers["Authorization"]}
    assert server.get("/pacs/viewer/no-such-file.js").status_code == 404
    assert server.get("/pacs/viewer/assets/nothing.png").status_code == 404
    for path in [
        "/pacs/viewer/../../../etc/passwd",
        "/pacs/viewer/%2e%2e/%2e%2e/etc/passwd",
        "/pacs/viewer/..%2f..%2fetc%2fpasswd",
        "/pacs/viewer/assets/..%5c..%5cx.png",
    ]:
        assert raw_get(server, path, auth) in (400, 403, 404), path
    # no rule names these methods: a /pacs route the table does not name is a 404 (plugin/app.py)
    assert server.post("/pacs/viewer/index.html").status_code in (403, 404, 405)
    assert server.delete("/pacs/viewer/").status_code in (403, 404, 405)


def test_qido_layer_mends_dicomweb(viewer_pacs):
    server = viewer_pacs
    found = server.get("/pacs/dicom-web/studies?PatientName=Phantom%5EV%2A&includefield=00081030,00080061")
    assert found.status_code == 200, found.text
    studies = found.json()
    assert [s["0020000D"]["Value"][0] for s in studies] == [server.mine.study_uid]
    assert studies[0]["00081030"]["Value"] == ["CT VIEWER"]
    retrieve = studies[0]["00081190"]["Value"][0]
    assert retrieve.startswith(f"http://127.0.0.1:{server.http_port}/dicom-web/studies/")
    series = server.get(f"/pacs/dicom-web/studies/{server.mine.study_uid}/series").json()
    assert series[0]["00080060"]["Value"] == ["CT"]
    assert server.get("/pacs/dicom-web/studies?00100010=%26x").status_code == 400


def test_referrer_reaches_only_their_studies(viewer_pacs):
    server = viewer_pacs
    referrer = session_for(server, "viewref")
    mine, other = server.mine.study_uid, server.other.study_uid
    url = server.url
    assert referrer.get(url("/pacs/viewer/")).status_code == 200
    assert referrer.get(url(f"/pacs/dicom-web/studies?StudyInstanceUID={mine}")).status_code == 200
    assert referrer.get(url(f"/pacs/dicom-web/studies?StudyInstanceUID={other}")).status_code == 403
    assert referrer.get(url("/pacs/dicom-web/studies")).status_code == 403  # names no study
    assert referrer.get(url(f"/dicom-web/studies/{mine}/metadata")).status_code == 200
    assert referrer.get(url(f"/dicom-web/studies/{other}/metadata")).status_code == 403
    assert referrer.get(url(f"/wado?requestType=WADO&studyUID={other}&seriesUID=1&objectUID=1")).status_code == 403
    assert referrer.get(url("/dicom-web/studies/1.2.3.4.5.6/metadata")).status_code == 403  # unknown: out of scope


def test_referrer_patient_search_is_answered_from_the_scope(viewer_pacs, tmp_path):
    """OHIF's search for the patient's other studies (QIDO by PatientID): a referrer gets the
    patient's studies in their scope, and no "denied" audit entry; staff get them all."""
    server = viewer_pacs
    seen = dicomgen.StudySpec(patient_name="Priors^Patient", referring_physician="REF^ONE")
    prior = dicomgen.StudySpec(
        patient_name="Priors^Patient", patient_id=seen.patient_id, referring_physician="REF^TWO", study_date="20240101"
    )
    server.storescu(
        dicomgen.write(dicomgen.ct_series(seen, slices=2), tmp_path / "seen")
        + dicomgen.write(dicomgen.ct_series(prior, slices=2), tmp_path / "prior")
    )
    server.wait_indexed(seen.study_uid, instances=2)
    server.wait_indexed(prior.study_uid, instances=2)
    referrer = session_for(server, "viewref")
    ohif = "&limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060%2C00080090%2C00100030"

    def studies(client, patient_id):
        answer = client.get(server.url(f"/pacs/dicom-web/studies?00100020={patient_id}{ohif}"))
        assert answer.status_code == 200, answer.text
        return sorted(item["0020000D"]["Value"][0] for item in answer.json())

    # A referrer's scope is cached for up to 10 s (plugin/auth/scope.py): the new study joins it then.
    server.wait_for(lambda: studies(referrer, seen.patient_id) != [], timeout=15, what="the study in scope")
    assert studies(referrer, seen.patient_id) == [seen.study_uid]
    assert studies(referrer, server.other.patient_id) == []
    assert studies(server.http, seen.patient_id) == sorted([seen.study_uid, prior.study_uid])

    def entries(**filters):
        return server.get("/pacs/api/audit", params=dict(filters, user="viewref", page_size=500)).json()["items"]

    server.wait_for(
        lambda: any(server.other.patient_id in str(e) for e in entries(action="search")),
        what="the audit entries of the patient searches",
    )
    assert not [entry for entry in entries(outcome="denied") if "00100020" in str(entry)]


def test_frames_need_a_live_session(viewer_pacs):
    server = viewer_pacs
    metadata = server.get(f"/dicom-web/studies/{server.mine.study_uid}/metadata").json()
    series_uid = metadata[0]["0020000E"]["Value"][0]
    sop_uid = metadata[0]["00080018"]["Value"][0]
    frame = f"/dicom-web/studies/{server.mine.study_uid}/series/{series_uid}/instances/{sop_uid}/frames/1"
    assert requests.get(server.url(frame), headers={"Accept": FRAME_ACCEPT}, timeout=30).status_code == 403
    session = session_for(server, "admin") if False else requests.Session()
    answer = server.login("admin", __import__("pacs_server").ADMIN_PASSWORD, session)
    assert session.get(server.url(frame), headers={"Accept": FRAME_ACCEPT}).status_code == 200
    token = answer.json()["access_token"]
    session.post(server.url("/pacs/api/auth/logout"), headers={"X-CSRF-Token": answer.json()["csrf_token"]})
    assert (
        requests.get(
            server.url(frame), headers={"Accept": FRAME_ACCEPT, "Authorization": f"Bearer {token}"}
        ).status_code
        == 403
    )
    assert session.get(server.url(frame), headers={"Accept": FRAME_ACCEPT}).status_code == 403
    expired = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwiZXhwIjoxfQ.x"
    assert (
        requests.get(server.url(frame), cookies={"pacs_session": expired}, headers={"Accept": FRAME_ACCEPT}).status_code
        == 403
    )


def test_image_access_is_audited_once_per_window(viewer_pacs):
    server = viewer_pacs
    referrer = session_for(server, "viewref")
    for _ in range(5):
        assert referrer.get(server.url(f"/dicom-web/studies/{server.mine.study_uid}/metadata")).status_code == 200

    def entries():
        found = server.get(
            "/pacs/api/audit",
            params={"action": "images_retrieved", "user": "viewref", "study_uid": server.mine.study_uid},
        ).json()
        return found["total"]

    server.wait_for(lambda: entries() >= 1, what="the images_retrieved entry")
    time.sleep(1.5)
    assert entries() == 1


def test_long_download_does_not_stall_others(viewer_pacs, tmp_path):
    """A study ZIP is Orthanc's native work: Python requests go on meanwhile."""
    server = viewer_pacs
    spec = dicomgen.StudySpec()
    pixels = bytes(256 * 256 * 2)
    server.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=300, rows=256, cols=256, pixels=pixels), tmp_path))
    row = server.wait_indexed(spec.study_uid, instances=300)
    done = threading.Event()

    def download():
        server.get(f"/studies/{row['orthanc_id']}/archive", timeout=120).raise_for_status()
        done.set()

    worker = threading.Thread(target=download)
    worker.start()
    latencies = []
    while not done.is_set() and len(latencies) < 200:
        start = time.monotonic()
        assert server.get("/pacs/api/me").status_code == 200
        latencies.append(time.monotonic() - start)
    worker.join(120)
    assert max(latencies) < 1.0, latencies
