"""Reports through the API against a real PACS: drafts, versions, claims,
signing, addenda, PDF, the DICOM copy in the study, and bad input."""

import concurrent.futures
import io
import subprocess

import dicomgen
import pypdf
import pytest
from pacs_server import PacsServer

PASSWORD = "Report-writing-2026!"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports")
    server = PacsServer(folder / "pacs", overrides={"Pacs": {"InstitutionName": "Clinique Saint-Étienne"}}).start()
    server.add_node("findscu", "FINDSCU", 11112)
    specs = {}
    for key, description, date in (
        ("head", "CT HEAD", "20261120"),
        ("prior", "CT HEAD OLD", "20250101"),
        ("chest", "CT CHEST", "20261121"),
        ("gone", "CT GONE", "20261122"),
    ):
        spec = dicomgen.StudySpec(
            patient_id="P-REP" if key in ("head", "prior") else "P-" + key,
            patient_name="Ünal^Özlem",
            description=description,
            study_date=date,
            referring_physician="REF^ERRER",
            charset="ISO_IR 192",
        )
        server.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=2), folder / key))
        specs[key] = spec
    for spec in specs.values():
        server.wait_indexed(spec.study_uid, instances=2)
    for username, role, names in [
        ("rad1", "radiologist", []),
        ("rad2", "radiologist", []),
        ("tech", "technologist", []),
        ("ref", "referrer", ["Ref^Errer"]),
    ]:
        server.post(
            "/pacs/api/users",
            json={
                "username": username,
                "password": PASSWORD,
                "role": role,
                "display_name": f"Dr {username.upper()}",
                "referring_names": names,
            },
        ).raise_for_status()
    server.specs = specs
    yield server
    server.stop()


def user(server, name):
    return server.bearer_session(name, PASSWORD)


def report_url(server, key, tail=""):
    return server.url(f"/pacs/api/studies/{server.specs[key].study_uid}/report{tail}")


def pdf_text(data):
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_new_report_offers_templates_and_comparison(server):
    blank = user(server, "rad1").get(report_url(server, "head")).json()
    assert blank["status"] == "none" and blank["version"] == 0
    assert blank["templates"][0]["name"] == "CT head"
    assert "CT HEAD OLD 2025-01-01" in blank["suggested_comparison"]


def test_draft_life_cycle_signature_addendum_and_copies(server):
    rad1, rad2, tech, ref = (user(server, n) for n in ("rad1", "rad2", "tech", "ref"))
    url = report_url(server, "head")
    saved = rad1.put(
        url, json={"version": 0, "findings": "Draft one.", "impression": "<b>x</b><script>alert(1)</script>"}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1 and saved.json()["status"] == "draft"
    study = server.get(f"/pacs/api/studies/{server.specs['head'].study_uid}").json()
    assert study["status"] == "in_progress" and study["claimed_by"] == "rad1"
    assert rad1.put(url, json={"version": 1, "findings": "Draft two."}).json()["version"] == 2
    stale = rad1.put(url, json={"version": 1, "findings": "From an old tab."})
    assert stale.status_code == 409 and "version 2" in stale.json()["error"]
    assert rad2.put(url, json={"version": 2, "findings": "Mine now"}).status_code == 409  # rad1's claim
    assert tech.get(url).status_code == 404 and ref.get(url).status_code == 404  # drafts are private
    assert ref.get(url + "/pdf").status_code == 404
    draft_pdf = rad1.get(url + "/pdf")
    assert draft_pdf.headers["Content-Type"] == "application/pdf"
    assert "PRELIMINARY" in pdf_text(draft_pdf.content)

    assert rad2.post(url + "/finalize", json={"version": 2}).status_code == 403  # not the author
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: rad1.post(url + "/finalize", json={"version": 2}), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    final = next(a for a in answers if a.status_code == 200).json()
    assert final["status"] == "final" and final["signer_name"] == "Dr RAD1" and final["signed_at"]
    assert final["dicom_copies"][0]["status"] == "stored"
    assert rad1.put(url, json={"version": final["version"], "findings": "edit"}).status_code == 409
    study = server.get(f"/pacs/api/studies/{server.specs['head'].study_uid}").json()
    assert study["status"] == "final" and study["final_at"] and study["claimed_by"] is None

    text = pdf_text(ref.get(url + "/pdf").content)  # referrer reads the signed report
    assert "Clinique Saint-Étienne" in text and "ÜNAL, Özlem" in text
    assert "<script>alert(1)</script>" in text and "Electronically signed by Dr RAD1" in text
    assert "PRELIMINARY" not in text

    assert rad2.post(url + "/addenda", json={"text": "  "}).status_code == 400
    amended = rad2.post(url + "/addenda", json={"text": "Addendum: the left kidney is fine."})
    assert amended.status_code == 200 and amended.json()["status"] == "amended"
    assert [c["status"] for c in amended.json()["dicom_copies"]] == ["stored", "stored"]
    text = pdf_text(rad1.get(url + "/pdf").content)
    assert "Draft two." in text and "Addendum: the left kidney is fine." in text
    kinds = [e["kind"] for e in rad1.get(url).json()["history"]]
    assert kinds == ["saved", "finalized", "addendum"]
    assert "history" not in ref.get(url).json()
    actions = {
        e["action"]
        for e in server.get(
            "/pacs/api/audit", params={"study_uid": server.specs["head"].study_uid, "page_size": 200}
        ).json()["items"]
    }
    assert {"report_saved", "report_finalized", "report_addended", "report_printed", "report_viewed"} <= actions


def test_signed_report_is_in_the_study_over_dicomweb_and_c_find(server):
    uid = server.specs["head"].study_uid
    series = server.get(f"/dicom-web/studies/{uid}/series", params={"Modality": "DOC"}).json()
    assert len(series) == 2
    instances = server.get(f"/dicom-web/studies/{uid}/series/{series[0]['0020000E']['Value'][0]}/instances").json()
    assert instances[0]["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.104.1"]
    found = subprocess.run(
        [
            "findscu",
            "-S",
            "-aet",
            "FINDSCU",
            "-aec",
            server.aet,
            "127.0.0.1",
            str(server.dicom_port),
            "-k",
            "QueryRetrieveLevel=SERIES",
            "-k",
            f"StudyInstanceUID={uid}",
            "-k",
            "Modality=DOC",
            "-k",
            "SeriesInstanceUID",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert found.stderr.count("Find Response:") == 2
    assert all(s["0020000E"]["Value"][0] in found.stderr for s in series)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"version": 0, "findings": "x" * 20_001}, 413, "findings is longer than"),
        ({"version": "1", "findings": "a"}, 400, "version must be"),
        ({"version": 0, "findings": 12}, 400, "findings must be text"),
        ({"version": 0, "colour": "red"}, 400, "unknown field"),
        ({"version": 0, "template_id": 9999}, 400, "template_id names no template"),
    ],
)
def test_bad_drafts(server, body, status, message):
    answer = user(server, "rad1").put(report_url(server, "chest"), json=body)
    assert answer.status_code == status and message in answer.json()["error"]


def test_unknown_study_empty_findings_and_roles(server):
    rad1, tech = user(server, "rad1"), user(server, "tech")
    unknown = server.url("/pacs/api/studies/1.2.3.4.5/report")
    assert rad1.put(unknown, json={"version": 0, "findings": "x"}).status_code == 404
    assert rad1.post(unknown + "/finalize", json={"version": 0}).status_code == 404
    url = report_url(server, "chest")
    assert rad1.put(url, json={"version": 0, "impression": "No findings written"}).status_code == 200
    empty = rad1.post(url + "/finalize", json={"version": 1})
    assert empty.status_code == 400 and "findings are empty" in empty.json()["error"]
    assert rad1.post(url + "/addenda", json={"text": "too early"}).status_code == 409
    assert tech.put(url, json={"version": 1, "findings": "x"}).status_code == 403
    assert server.http.put(url, json={"version": 1, "findings": "x"}).status_code == 409  # admin: rad1 holds the claim


def test_study_deleted_while_a_draft_exists_keeps_the_draft(server):
    rad1 = user(server, "rad1")
    url = report_url(server, "gone")
    assert rad1.put(url, json={"version": 0, "findings": "Half written."}).status_code == 200
    row = server.indexed_study(server.specs["gone"].study_uid)
    assert server.delete(f"/studies/{row['orthanc_id']}").status_code == 200
    server.wait_for(lambda: server.indexed_study(server.specs["gone"].study_uid) is None, what="study removed")
    kept = rad1.get(url)
    assert kept.status_code == 200
    assert kept.json()["sections"]["findings"] == "Half written." and kept.json()["study_deleted"] is True
    assert "event=study_removed_with_report" in server.log_text()


def test_templates_are_managed_by_admins(server):
    rad1 = user(server, "rad1")
    names = [
        t["name"]
        for t in rad1.get(
            server.url("/pacs/api/report-templates"), params={"modality": "MR", "body_part": "KNEE"}
        ).json()["items"]
    ]
    assert names[0] == "MR knee" and set(names) >= {"CT head", "Chest X-ray", "Abdominal ultrasound"}
    body = {"name": "CT sinus", "modality": "ct", "body_part": "sinus", "sections": {"findings": "Clear."}}
    assert rad1.post(server.url("/pacs/api/report-templates"), json=body).status_code == 403
    created = server.post("/pacs/api/report-templates", json=body)
    assert created.status_code == 201 and created.json()["modality"] == "CT"
    assert server.post("/pacs/api/report-templates", json=body).status_code == 409
    assert server.put(f"/pacs/api/report-templates/{created.json()['id']}", json={"disabled": True}).status_code == 200
    assert "CT sinus" not in [t["name"] for t in rad1.get(server.url("/pacs/api/report-templates")).json()["items"]]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"version": 10**20, "findings": "x"}, "version must be"),
        ({"version": 0, "template_id": 10**20}, "template_id names no template"),
        ({"version": 0, "findings": "bad\u0000byte"}, "NUL"),
    ],
)
def test_numbers_and_text_the_database_cannot_take_are_400s(server, body, message):
    answer = user(server, "rad1").put(report_url(server, "chest"), json=body)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_template_rename_to_a_taken_or_blank_name(server):
    first = server.post("/pacs/api/report-templates", json={"name": "Rename one"}).json()
    server.post("/pacs/api/report-templates", json={"name": "Rename two"}).raise_for_status()
    assert server.put(f"/pacs/api/report-templates/{first['id']}", json={"name": "Rename two"}).status_code == 409
    assert server.put(f"/pacs/api/report-templates/{first['id']}", json={"name": "  "}).status_code == 400
    for bad in ("²", str(10**20), "x"):
        assert server.put(f"/pacs/api/report-templates/{bad}", json={"disabled": True}).status_code == 404
    assert server.get("/pacs/api/audit", params={"date_to": "9999-12-31"}).status_code == 400
