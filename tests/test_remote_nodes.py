"""Other DICOM nodes: our Query/Retrieve SCP for known AEs (dcmtk findscu,
movescu, getscu; a pynetdicom storage peer), and from the PACS: C-ECHO, send,
query and retrieve against a second DICOM node (a plain Orthanc)."""

import socket
import subprocess
import time

import dicomgen
import pytest
from conftest import log_in
from pacs_server import ADMIN_PASSWORD, PacsServer, free_port
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification

FAST = {"Pacs": {"RemoteTimeoutSeconds": 3}}


class StoragePeer:
    """A DICOM storage SCP on 127.0.0.1 (dcmtk's storescp cannot bind loopback only)."""

    def __init__(self, aet="STORAGEPEER"):
        self.aet, self.port, self.received = aet, free_port(), []
        ae = AE(ae_title=aet)
        ae.add_supported_context(Verification)
        for sop in (CTImageStorage, MRImageStorage):
            ae.add_supported_context(sop)
        self._server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event):
        self.received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    def stop(self):
        self._server.shutdown()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nodes")
    pacs = PacsServer(folder / "pacs", overrides=FAST).start()
    peer = PacsServer(
        folder / "peer",
        plugin=False,
        overrides={"DicomAet": "PEER", "DicomAlwaysAllowFind": True, "DicomAlwaysAllowMove": True},
    ).start()
    peer.aet = "PEER"
    peer.put("/modalities/PACS", json={"AET": "PACS", "Host": "127.0.0.1", "Port": pacs.dicom_port})
    storage = StoragePeer()
    pacs.add_node("peer", "PEER", peer.dicom_port)
    pacs.add_node("storagepeer", storage.aet, storage.port)
    pacs.add_node("findscu", "FINDSCU", 11119)
    ours = dicomgen.StudySpec(patient_id="P-OURS", description="OURS")
    theirs = dicomgen.StudySpec(patient_id="P-THEIRS", description="THEIRS")
    pacs.storescu(dicomgen.write(dicomgen.ct_series(ours, slices=3), folder / "ours"))
    peer.storescu(dicomgen.write(dicomgen.mr_series(theirs, slices=2), folder / "theirs"))
    pacs.wait_indexed(ours.study_uid, instances=3)
    pacs.ours, pacs.theirs, pacs.folder = ours, theirs, folder
    yield pacs, peer, storage
    storage.stop()
    peer.stop()
    pacs.stop()


def wait_job(pacs, job_id, timeout=60):
    def finished():
        job = pacs.get(f"/pacs/api/jobs/{job_id}").json()
        return job if job["state"] in ("Success", "Failure") else None

    return pacs.wait_for(finished, timeout=timeout, interval=0.3, what=f"job {job_id}")


def dcmtk(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def test_nodes_are_listed_and_echoed(site):
    pacs, _peer, _storage = site
    names = [n["name"] for n in pacs.get("/pacs/api/nodes").json()["items"]]
    assert {"peer", "storagepeer", "findscu"} <= set(names)
    assert pacs.post("/pacs/api/nodes/peer/echo").json()["ok"] is True
    pacs.add_node("nobody", "NOBODY", free_port())
    started = time.monotonic()
    dead = pacs.post("/pacs/api/nodes/nobody/echo").json()
    assert dead["ok"] is False and "no answer" in dead["message"]
    assert time.monotonic() - started < 10
    assert pacs.delete("/pacs/api/nodes/nobody").status_code == 200
    assert pacs.post("/pacs/api/nodes/nobody/echo").status_code == 404


@pytest.mark.parametrize(
    "name, body, message",
    [
        ("bad name!", {"aet": "X", "host": "127.0.0.1", "port": 104}, "node name"),
        ("n1", {"aet": "A" * 17, "host": "127.0.0.1", "port": 104}, "aet must be"),
        ("n1", {"aet": "BACK\\SLASH", "host": "127.0.0.1", "port": 104}, "aet must be"),
        ("n1", {"aet": "X", "host": "evil host", "port": 104}, "host must be"),
        ("n1", {"aet": "X", "host": "127.0.0.1", "port": 70000}, "port must be"),
        ("n1", {"aet": "X", "host": "127.0.0.1", "port": "104"}, "port must be"),
        ("n1", {"aet": "X", "host": "127.0.0.1", "port": 104, "allow_find": "yes"}, "allow_find"),
    ],
)
def test_bad_nodes_are_refused(site, name, body, message):
    answer = site[0].put(f"/pacs/api/nodes/{name}", json=body)
    assert answer.status_code in (400, 404) and message in answer.json().get("error", message)


def test_known_aes_query_and_retrieve_from_us(site):
    pacs, _peer, storage = site
    uid = pacs.ours.study_uid
    find = dcmtk(
        "findscu",
        "-S",
        "-aet",
        "FINDSCU",
        "-aec",
        "PACS",
        "127.0.0.1",
        str(pacs.dicom_port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientID=P-OURS",
        "-k",
        "StudyInstanceUID",
    )
    assert find.returncode == 0 and uid in find.stderr
    stranger = dcmtk(
        "findscu",
        "-S",
        "-aet",
        "STRANGER",
        "-aec",
        "PACS",
        "127.0.0.1",
        str(pacs.dicom_port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientID=P-OURS",
        "-k",
        "StudyInstanceUID",
    )
    assert uid not in stranger.stderr  # unknown AEs may not query
    move = dcmtk(
        "movescu",
        "-S",
        "-aet",
        storage.aet,
        "-aem",
        storage.aet,
        "-aec",
        "PACS",
        "127.0.0.1",
        str(pacs.dicom_port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={uid}",
    )
    assert move.returncode == 0, move.stderr
    assert len(storage.received) == 3
    unknown = dcmtk(
        "movescu",
        "-S",
        "-aet",
        storage.aet,
        "-aem",
        "NOWHERE",
        "-aec",
        "PACS",
        "127.0.0.1",
        str(pacs.dicom_port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={uid}",
    )
    assert "Failed" in unknown.stderr or unknown.returncode != 0  # unknown move destination
    get_dir = pacs.folder / "getscu"
    get_dir.mkdir()
    got = dcmtk(
        "getscu",
        "-S",
        "-aet",
        "FINDSCU",
        "-aec",
        "PACS",
        "-od",
        str(get_dir),
        "127.0.0.1",
        str(pacs.dicom_port),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={uid}",
    )
    assert got.returncode == 0, got.stderr
    assert len(list(get_dir.iterdir())) == 3


def test_send_a_study_to_another_node(site):
    pacs, peer, _storage = site
    answer = pacs.post(f"/pacs/api/studies/{pacs.ours.study_uid}/send", json={"node": "peer"})
    assert answer.status_code == 202, answer.text
    assert wait_job(pacs, answer.json()["job"])["state"] == "Success"
    assert pacs.ours.study_uid in peer.orthanc_studies().values()
    audit = pacs.get("/pacs/api/audit", params={"action": "send", "study_uid": pacs.ours.study_uid}).json()
    assert audit["total"] == 1


def test_query_and_retrieve_from_another_node(site):
    pacs, _peer, _storage = site
    found = pacs.post("/pacs/api/nodes/peer/query", json={"patient_id": "P-THEIRS"})
    assert found.status_code == 200, found.text
    answers = found.json()["items"]
    assert [a["StudyInstanceUID"] for a in answers] == [pacs.theirs.study_uid]
    assert answers[0]["StudyDescription"] == "THEIRS"
    started = pacs.post("/pacs/api/nodes/peer/retrieve", json={"study_instance_uid": pacs.theirs.study_uid})
    assert started.status_code in (200, 202), started.text
    if started.json()["job"]:
        assert wait_job(pacs, started.json()["job"])["state"] == "Success"
    assert started.json()["state"] in ("Success", "Pending")
    pacs.wait_indexed(pacs.theirs.study_uid, instances=2)
    assert pacs.post("/pacs/api/nodes/peer/query", json={}).status_code == 400
    assert pacs.post("/pacs/api/nodes/peer/retrieve", json={"study_instance_uid": "x;y"}).status_code == 400


def test_a_node_that_does_not_answer_gives_a_clear_error_and_no_stuck_job(site):
    pacs, _peer, _storage = site
    with socket.socket() as silent:  # accepts connections, never speaks DICOM
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        pacs.add_node("silent", "SILENT", silent.getsockname()[1])
        query = pacs.post("/pacs/api/nodes/silent/query", json={"patient_id": "X"})
        assert query.status_code == 504 and query.json()["error"]
        job = pacs.post(f"/pacs/api/studies/{pacs.ours.study_uid}/send", json={"node": "silent"}).json()["job"]
        failed = wait_job(pacs, job, timeout=60)
        assert failed["state"] == "Failure" and failed["error"]
    assert pacs.post(f"/pacs/api/studies/{pacs.ours.study_uid}/send", json={"node": "ghost"}).status_code == 404


def test_store_can_be_limited_to_known_modalities(tmp_path):
    pacs = PacsServer(tmp_path / "closed", overrides={"DicomAlwaysAllowStore": False}).start()
    try:
        spec = dicomgen.StudySpec()
        files = dicomgen.write(dicomgen.ct_series(spec, slices=1), tmp_path / "dcm")
        refused = pacs.storescu(files, calling_aet="STRANGER", check=False)
        assert refused.returncode != 0 or "Association Rejected" in refused.stderr
        pacs.add_node("ct1", "CT1", 11120)
        pacs.storescu(files, calling_aet="CT1")
        pacs.wait_indexed(spec.study_uid, instances=1)
    finally:
        pacs.stop()


def test_nodes_page_adds_echoes_queries_and_retrieves(site, browser):
    pacs, peer, _storage = site
    spec = dicomgen.StudySpec(patient_id="P-UI", description="FOR THE UI")
    peer.storescu(dicomgen.write(dicomgen.mr_series(spec, slices=1), pacs.folder / "ui"))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        log_in(page, pacs, "admin", ADMIN_PASSWORD, "/pacs/nodes")
        page.fill("form[action='/pacs/admin/nodes'] input[name=name]", "peer2")
        page.fill("form[action='/pacs/admin/nodes'] input[name=aet]", "PEER")
        page.fill("form[action='/pacs/admin/nodes'] input[name=host]", "127.0.0.1")
        page.fill("form[action='/pacs/admin/nodes'] input[name=port]", str(peer.dicom_port))
        page.click("form[action='/pacs/admin/nodes'] button[type=submit]")
        page.wait_for_load_state()
        page.click("[data-echo=peer2]")
        page.wait_for_selector("[data-echo-result=peer2].ok")  # CSP forbids eval: selectors, not JS
        page.select_option("#query-form select[name=node]", "peer2")
        page.fill("#query-form input[name=patient_id]", "P-UI")
        page.click("#query-form button[type=submit]")
        page.wait_for_selector("#query-results tbody tr")
        assert "FOR THE UI" in page.inner_text("#query-results")
        page.click("#query-results tbody button")
        page.wait_for_selector("#query-results tbody td:has-text('Retrieved')", timeout=30000)
        pacs.wait_indexed(spec.study_uid, instances=1)
    finally:
        page.close()


def test_study_page_sends_to_a_node_with_progress(site, browser):
    pacs, peer, _storage = site
    spec = dicomgen.StudySpec(patient_id="P-SEND", description="SEND ME")
    pacs.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=2), pacs.folder / "send"))
    pacs.wait_indexed(spec.study_uid, instances=2)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        log_in(page, pacs, "admin", ADMIN_PASSWORD, f"/pacs/studies/{spec.study_uid}")
        page.wait_for_selector("#send-node option[value=peer]", state="attached")
        page.select_option("#send-node", "peer")
        page.click("#send-button")
        page.wait_for_selector("#send-status:has-text('Sent')", timeout=30000)
        assert spec.study_uid in peer.orthanc_studies().values()
    finally:
        page.close()
