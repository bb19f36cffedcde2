"""A draft is never overwritten silently by a second radiologist.

After the author's claim is gone (released or expired), a colleague sees the
draft with its author; a save of theirs is a 409 naming the author unless it
takes the draft over explicitly (``take_over``), and then the draft's author
becomes them and the history and the audit name the previous author. All
through the real API of a real PACS; the model-based test runs generated
sequences of claims, releases and saves by two radiologists and checks the
draft against a model after every step."""

import json
import re

import dicomgen
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from pacs_server import PacsServer

PASSWORD = "Claim-drafts-2026!"
READERS = ("rad1", "rad2")
EXAMPLES = 40


def add_readers(server):
    for name in READERS:
        server.post(
            "/pacs/api/users",
            json={"username": name, "password": PASSWORD, "role": "radiologist", "display_name": f"Dr {name.upper()}"},
        ).raise_for_status()


def store_studies(server, folder, count):
    specs = [dicomgen.StudySpec(description=f"CT {n}") for n in range(count)]
    datasets = [ds for spec in specs for ds in dicomgen.ct_series(spec, slices=1, rows=8, cols=8)]
    server.storescu(dicomgen.write(datasets, folder))
    for spec in specs:
        server.wait_indexed(spec.study_uid, instances=1)
    return [spec.study_uid for spec in specs]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("claim-drafts")
    pacs = PacsServer(folder / "pacs").start()
    add_readers(pacs)
    pacs.uids = iter(store_studies(pacs, folder / "dicom", EXAMPLES + 4))
    yield pacs
    pacs.stop()


class Reader:
    """One radiologist on the API (a bearer token) and on the pages (a session cookie)."""

    def __init__(self, server, name):
        self.server, self.name, self.display = server, name, f"Dr {name.upper()}"
        self.http = requests.Session()
        answer = server.login(name, PASSWORD, session=self.http)
        answer.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def url(self, uid, tail=""):
        return self.server.url(f"/pacs/api/studies/{uid}{tail}")

    def report(self, uid):
        answer = self.http.get(self.url(uid, "/report"), timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def save(self, uid, version, findings, **extra):
        return self.http.put(
            self.url(uid, "/report"), json=dict(version=version, findings=findings, **extra), timeout=30
        )

    def act(self, uid, action):
        return self.http.post(self.url(uid, "/" + action), timeout=30)

    def page(self, uid):
        answer = self.http.get(self.server.url(f"/pacs/studies/{uid}/report"), timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.text


@pytest.fixture(scope="module")
def readers(server):
    return Reader(server, "rad1"), Reader(server, "rad2")


def saved_audit(server, uid):
    items = server.get("/pacs/api/audit", params={"study_uid": uid, "action": "report_saved", "page_size": 200}).json()[
        "items"
    ]
    return items[::-1]  # the API gives the newest first


def page_data(html):
    return json.loads(re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S).group(1))


def unchanged(reader, uid, before):
    after = reader.report(uid)
    return all(after[key] == before[key] for key in ("version", "author_name", "sections", "updated_at"))


def test_a_released_draft_is_seen_with_its_author_and_taken_over_only_explicitly(server, readers):
    rad1, rad2 = readers
    uid = next(server.uids)
    assert rad1.save(uid, 0, "Rad1's findings.").status_code == 200
    assert rad1.act(uid, "release").status_code == 200

    seen = rad2.report(uid)  # B sees A's draft, with its author
    assert (seen["status"], seen["author_name"], seen["sections"]["findings"], seen["own_draft"]) == (
        "draft",
        "Dr RAD1",
        "Rad1's findings.",
        False,
    )
    assert rad1.report(uid)["own_draft"] is True
    assert rad2.act(uid, "claim").status_code == 200

    refused = rad2.save(uid, seen["version"], "Rad2 overwrites.")
    assert refused.status_code == 409 and "Dr RAD1" in refused.json()["error"]
    assert rad2.save(uid, seen["version"], "x", take_over="yes").status_code == 400
    stale = rad2.save(uid, seen["version"] - 1, "From an older page.", take_over=True)
    assert stale.status_code == 409
    assert unchanged(rad1, uid, seen)

    taken = rad2.save(uid, seen["version"], "Rad2 continues.", take_over=True)
    assert taken.status_code == 200, taken.text
    assert (taken.json()["author_name"], taken.json()["version"]) == ("Dr RAD2", seen["version"] + 1)
    report = rad1.report(uid)
    assert (report["author_name"], report["sections"]["findings"], report["own_draft"]) == (
        "Dr RAD2",
        "Rad2 continues.",
        False,
    )
    history = report["history"]
    assert [(e["kind"], e["username"]) for e in history] == [("saved", "rad1"), ("taken_over", "rad2")]
    assert history[0]["sections"]["findings"] == "Rad1's findings."  # A's text stays in the history
    assert history[1]["sections"]["taken_over_from"] == "rad1"
    audit = saved_audit(server, uid)
    assert [(e["username"], e["details"].get("taken_over_from")) for e in audit] == [("rad1", None), ("rad2", "rad1")]
    assert "event=draft_taken_over" in server.log_text()

    assert rad2.save(uid, report["version"], "Rad2 again.").status_code == 200  # now rad2's own draft
    assert rad1.act(uid, "release").status_code == 403  # rad2 reads it
    assert (
        rad1.http.post(
            rad1.url(uid, "/report/finalize"), json={"version": report["version"] + 1}, timeout=30
        ).status_code
        == 403
    )  # no longer the author
    signed = rad2.http.post(rad2.url(uid, "/report/finalize"), json={"version": report["version"] + 1}, timeout=30)
    assert signed.status_code == 200 and signed.json()["signer_name"] == "Dr RAD2"


def test_the_report_page_shows_the_author_and_that_saving_takes_it_over(server, readers):
    rad1, rad2 = readers
    uid = next(server.uids)
    assert rad1.save(uid, 0, "Page findings.").status_code == 200
    assert rad1.act(uid, "release").status_code == 200

    theirs = rad2.page(uid)
    assert "Draft by Dr RAD1" in theirs and 'id="take-over-notice"' in theirs
    assert "Saving takes it over" in theirs
    assert page_data(theirs)["report"]["take_over"] is True
    mine = rad1.page(uid)
    assert "Draft by Dr RAD1" in mine and 'id="take-over-notice"' not in mine
    assert page_data(mine)["report"]["take_over"] is False

    assert rad2.save(uid, 1, "Taken.", take_over=True).status_code == 200
    assert "draft taken over by Dr RAD2" in rad1.page(uid)  # the history on the page says so (one line per version)


def test_an_expired_claim_lets_a_colleague_see_the_draft_but_not_overwrite_it_silently(tmp_path):
    pacs = PacsServer(tmp_path / "pacs", overrides={"Pacs": {"ClaimMinutes": 0.05}}).start()  # 3 s claims
    try:
        add_readers(pacs)
        [uid] = store_studies(pacs, tmp_path / "dicom", 1)
        rad1, rad2 = Reader(pacs, "rad1"), Reader(pacs, "rad2")
        assert rad1.save(uid, 0, "Before lunch.").status_code == 200
        live = rad2.save(uid, 1, "Mine.", take_over=True)
        assert live.status_code == 409 and "being read by Dr RAD1" in live.json()["error"]
        pacs.wait_for(
            lambda: rad2.act(uid, "claim").status_code == 200, timeout=15, interval=0.5, what="rad1's claim to expire"
        )
        before = rad2.report(uid)
        assert (before["author_name"], before["sections"]["findings"]) == ("Dr RAD1", "Before lunch.")
        assert rad2.save(uid, 1, "Overwritten?").status_code == 409
        assert unchanged(rad2, uid, before)
        assert rad2.save(uid, 1, "Taken over.", take_over=True).status_code == 200
        assert rad1.report(uid)["author_name"] == "Dr RAD2"
        assert [e["details"].get("taken_over_from") for e in saved_audit(pacs, uid)] == [None, "rad1"]
    finally:
        pacs.stop()


# --- the model: generated sequences by two radiologists ---------------------------------------

# (kind, who, flag): flag is take_over for a save; for a release, "the one holding the claim
# releases" (else `who` tries), so that hand-overs between the two come up often.
KINDS = ("save", "release", "save", "release", "claim")
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from((0, 1)), st.booleans()), min_size=2, max_size=10
)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(operations=OPERATIONS)
def test_the_draft_always_names_its_last_writer_and_every_take_over_is_recorded(server, readers, operations):
    uid = next(server.uids)
    model = {"author": None, "version": 0, "findings": "", "claimed_by": None}
    take_overs = []
    for step, (kind, who, flag) in enumerate(operations):
        holder = READERS.index(model["claimed_by"]) if model["claimed_by"] else who
        reader, take_over = readers[holder if kind == "release" and flag else who], flag
        if kind == "claim":
            answer = reader.act(uid, "claim")
            expected = 409 if model["claimed_by"] not in (None, reader.name) else 200
            if expected == 200:
                model["claimed_by"] = reader.name
        elif kind == "release":
            answer = reader.act(uid, "release")
            expected = 403 if model["claimed_by"] not in (None, reader.name) else 200
            if expected == 200:
                model["claimed_by"] = None
        else:
            findings = f"step {step} by {reader.name}"
            answer = reader.save(uid, model["version"], findings, take_over=take_over)
            colleagues = model["author"] not in (None, reader.name)
            if colleagues and not take_over or model["claimed_by"] not in (None, reader.name):
                expected = 409
            else:
                expected = 200
                if colleagues:
                    take_overs.append((reader.name, model["author"]))
                model.update(
                    author=reader.name, version=model["version"] + 1, findings=findings, claimed_by=reader.name
                )
        assert answer.status_code == expected, (step, kind, reader.name, take_over, answer.text)
        report = readers[0].report(uid)
        if model["author"] is None:
            assert report["status"] == "none"
            continue
        display = f"Dr {model['author'].upper()}"
        assert (report["author_name"], report["version"], report["sections"]["findings"]) == (
            display,
            model["version"],
            model["findings"],
        )
    history = readers[0].report(uid).get("history", [])
    assert [
        (e["username"], e["sections"]["taken_over_from"]) for e in history if e["kind"] == "taken_over"
    ] == take_overs
    assert [
        (e["username"], e["details"]["taken_over_from"])
        for e in saved_audit(server, uid)
        if "taken_over_from" in e["details"]
    ] == take_overs
