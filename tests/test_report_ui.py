"""The report page in Chromium (Debian's, through Playwright) against a real
PACS: a radiologist writes a report from a template beside the viewer, loses
the tab, finds the draft again, signs it, adds an addendum, downloads the PDF,
and the signed copy is in the study over DICOMweb and C-FIND; a referrer reads
signed reports only; two editors of one draft are told of the conflict; a
network cut is retried; typed markup stays text; the viewer moves to a second
window and back; the layout at desktop and tablet sizes (screenshots in
build/screenshots, or $PACS_SCREENSHOT_DIR)."""

import subprocess
from pathlib import Path

import dicomgen
import pytest
from conftest import log_in
from pacs_server import ADMIN_PASSWORD, PacsServer, shown_status
from test_reports_api import PASSWORD, pdf_text, user
from test_webui_unit import ATTRIBUTE_BREAK, SCRIPT, Document, render_body, report_sample_contexts
from test_worklist_ui import DESKTOP, SCREENSHOTS, TABLET

from plugin import viewer

VIEWER_INSTALLED = (viewer.DEFAULT_ROOT / "index.html").exists()
SAVE_SECONDS = 10  # autosave waits 1.5 s after the last key; the PACS answers in milliseconds
MARKUP = "<b>bold?</b> <script>window.injected = 1</script>"
STUDIES = {  # key: (patient ID, description, study date, referring physician)
    "head": ("P-UI-1", "CT HEAD", "20261120", "WHO^DR"),
    "prior": ("P-UI-1", "CT HEAD OLD", "20250101", "WHO^DR"),
    "signed": ("P-UI-2", "CT CHEST", "20261121", "WHO^DR"),
    "draft": ("P-UI-3", "CT ABDOMEN", "20261121", "WHO^DR"),
    "conflict": ("P-UI-4", "CT SPINE", "20261122", "SMITH^JOHN"),
    "layout": ("P-UI-5", "CT HEAD", "20261122", "SMITH^JOHN"),
}


@pytest.mark.parametrize("state", sorted(report_sample_contexts()))
def test_pages_show_strings_as_text_with_no_inline_script(state):
    template = "admin_templates.html" if state == "admin_templates" else "report.html"
    body = render_body(template, report_sample_contexts(SCRIPT + ATTRIBUTE_BREAK)[state])
    assert SCRIPT not in body and "<img" not in body
    document = Document(body)
    assert not document.find("style") and not document.find("img")
    for tag, attributes in document.tags:
        assert "style" not in attributes and not any(name.startswith("on") for name in attributes), tag
    for script in document.find("script"):
        assert script.get("type") == "application/json" or script["src"].startswith("/pacs/static/")
    # The page scripts send JSON to the API with the CSRF header; the only form is base.html's logout.
    assert [form["attrs"]["action"] for form in document.post_forms()] == ["/pacs/logout"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report-ui")
    server = PacsServer(folder / "pacs").start()
    server.add_node("findscu", "FINDSCU", 11112)
    server.uids = {}
    for key, (patient_id, description, date, referring) in STUDIES.items():
        spec = dicomgen.StudySpec(
            patient_id=patient_id,
            patient_name="Lefèvre^Chloé",
            description=description,
            study_date=date,
            referring_physician=referring,
            charset="ISO_IR 192",
        )
        server.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=2), folder / key))
        server.uids[key] = spec.study_uid
    for uid in server.uids.values():
        server.wait_indexed(uid, instances=2)
    for username, role, names in [
        ("rad1", "radiologist", []),
        ("rad2", "radiologist", []),
        ("ref", "referrer", ["Who^Dr"]),
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
    yield server
    server.stop()


class Reader:
    """A browser context (its own cookies and storage) signed in through the
    login form; collects page errors, and console errors the test did not expect."""

    def __init__(
        self, browser, server, username, viewport=DESKTOP, viewer_window=False, expected=(), password=PASSWORD
    ):
        self.server = server
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        if viewer_window:  # spares the CPU the embedded viewer takes: these tests are about the report
            self.context.add_init_script("localStorage.setItem('pacs.viewer-placement', '\"window\"')")
        self.expected = expected
        self.errors = []
        self.page = self.new_page()
        log_in(self.page, server, username, password)

    def new_page(self):
        page = self.context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def _console(self, message):
        # Chromium logs failed fetches (expected ones are named); the viewer logs its own matters.
        if (
            message.type == "error"
            and "/pacs/viewer/" not in message.location.get("url", "")
            and not any(text in message.text for text in self.expected)
        ):
            self.errors.append(message.text)

    def open_report(self, key, page=None):
        page = page or self.page
        page.goto(self.server.url(f"/pacs/studies/{self.server.uids[key]}/report"))
        return page

    def close(self):
        self.context.close()
        assert self.errors == []


def wait_saved(page):
    page.wait_for_selector("#save-state[data-state=saved_at]", timeout=SAVE_SECONDS * 1000)
    assert page.text_content("#save-state").startswith("Saved ")


def wait_checked(page):
    """Until the report page has compared this browser's copy with the server's latest."""
    page.wait_for_function(
        "() => document.getElementById('save-state').dataset.state !== 'checking'", timeout=SAVE_SECONDS * 1000
    )


def type_at_end(page, section, text):
    page.click(f"#section-{section}")
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def accept_dialogs(page):
    page.on("dialog", lambda dialog: dialog.accept())


def find_doc_series(server, uid):
    """The SeriesInstanceUIDs of Encapsulated PDF series in the study, by C-FIND."""
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
    return found.stderr


def test_write_lose_the_tab_sign_addend_pdf_and_find_the_copy(browser, server):
    uid = server.uids["head"]
    rad1 = Reader(browser, server, "rad1")
    try:
        page = rad1.page
        page.goto(server.url(f"/pacs/studies/{uid}"))
        page.get_by_role("link", name="Report", exact=True).click()  # from the study page
        page.wait_for_url(server.url(f"/pacs/studies/{uid}/report"))
        assert "CT HEAD OLD 2025-01-01" in page.input_value("#section-comparison")
        assert page.get_attribute("#viewer-frame", "src") == f"/pacs/viewer/viewer?StudyInstanceUIDs={uid}"
        page.select_option("#template-choice", label="CT head (CT HEAD)")
        assert "Axial CT images of the head" in page.input_value("#section-technique")
        assert "CT HEAD OLD 2025-01-01" in page.input_value("#section-comparison")  # filled: kept
        type_at_end(page, "clinical_information", "Headache for two days.")
        type_at_end(page, "findings", "\nLeft frontal lesion, 12 mm. " + MARKUP)
        wait_saved(page)

        # The tab is closed a moment after the last keystroke, before the autosave.
        type_at_end(page, "impression", " Follow-up MR advised.")
        page.close(run_before_unload=True)
        page = rad1.open_report("head", rad1.new_page())
        wait_checked(page)  # the page asks for the author's latest save before offering this browser's copy
        if page.is_visible("#restore-banner"):  # the request sent on leaving did not arrive
            page.click("#restore-local")
            wait_saved(page)
        assert page.input_value("#section-impression").endswith("Follow-up MR advised.")
        saved = user(server, "rad1").get(server.url(f"/pacs/api/studies/{uid}/report")).json()
        assert saved["sections"]["impression"].endswith("Follow-up MR advised.")
        assert saved["template_id"] is not None and "Headache" in saved["sections"]["clinical_information"]

        accept_dialogs(page)
        page.click("#finalize")
        page.wait_for_selector(".report-signature")
        assert page.locator("[data-section]").count() == 0  # locked
        assert "Signed by Dr RAD1" in page.text_content(".report-signature")
        findings = page.locator("article .report-text", has_text="Left frontal lesion")
        assert MARKUP in findings.text_content()  # typed markup is text...
        assert page.locator(".report-document b, .report-document script").count() == 0  # ...never markup
        assert page.evaluate("window.injected") is None
        assert server.get(f"/pacs/api/studies/{uid}").json()["status"] == "final"

        page.fill("#addendum-text", "Addendum: the lesion was seen on the prior too.")
        page.click("#sign-addendum")
        page.wait_for_selector(".addendum")
        assert "Signed by Dr RAD1" in page.text_content(".addendum .report-signature")
        assert page.text_content(".report-head .badge") == "Amended"
        assert "Left frontal lesion" in page.text_content("article.report-document")  # the original, unchanged

        page.click(".report-history summary")
        kinds = page.locator(".report-history li > details > summary").all_text_contents()
        # One readable line per version ("Version 5 signed by Dr RAD1"), no list numbers.
        assert [
            ": addendum signed by Dr RAD1" in kinds[0],
            " signed by Dr RAD1" in kinds[1],
            ": draft saved by Dr RAD1" in kinds[-1],
            kinds[1].startswith("Version "),
        ] == [True] * 4
        assert page.locator(".report-history ol").count() == 0

        with page.expect_download() as download:
            page.click("#pdf-link")
        text = pdf_text(Path(download.value.path()).read_bytes())
        assert "Follow-up MR advised." in text and "the lesion was seen on the prior too" in text
        assert "Electronically signed by Dr RAD1" in text and "PRELIMINARY" not in text

        series = server.wait_for(
            lambda: (
                len(server.get(f"/dicom-web/studies/{uid}/series", params={"Modality": "DOC"}).json()) == 2
                and server.get(f"/dicom-web/studies/{uid}/series", params={"Modality": "DOC"}).json()
            ),
            what="two Encapsulated PDF series over DICOMweb",
        )
        found = find_doc_series(server, uid)
        assert found.count("Find Response:") == 2
        assert all(s["0020000E"]["Value"][0] in found for s in series)

        actions = {
            e["action"]
            for e in server.get("/pacs/api/audit", params={"study_uid": uid, "page_size": 200}).json()["items"]
        }
        assert {"report_viewed", "report_saved", "report_finalized", "report_addended", "report_printed"} <= actions
    finally:
        rad1.close()


@pytest.fixture(scope="module")
def referred(server):
    """A signed report and a draft in studies referred to the referrer."""
    rad2 = user(server, "rad2")
    for key, findings in (("signed", "Signed findings."), ("draft", "Draft findings, not for referrers.")):
        url = server.url(f"/pacs/api/studies/{server.uids[key]}/report")
        assert rad2.put(url, json={"version": 0, "findings": findings}).status_code == 200
    url = server.url(f"/pacs/api/studies/{server.uids['signed']}/report/finalize")
    assert rad2.post(url, json={"version": 1}).status_code == 200


def test_referrer_reads_signed_reports_only(browser, server, referred):
    referrer = Reader(browser, server, "ref", viewer_window=True)
    try:
        page = referrer.open_report("signed")
        assert "Signed findings." in page.text_content("article.report-document")
        assert "Signed by Dr RAD2" in page.text_content(".report-signature")
        assert page.locator("textarea, #finalize, #sign-addendum, .report-history").count() == 0
        assert page.get_attribute("#pdf-link", "href").endswith("/report/pdf")

        page = referrer.open_report("draft")
        assert "No signed report yet." in page.text_content(".report-panel")
        assert "Draft findings" not in page.content()
    finally:
        referrer.close()


def test_two_editors_of_one_draft_see_the_conflict(browser, server):
    first = Reader(browser, server, "rad1", viewer_window=True, expected=("status of 409",))
    second = Reader(browser, server, "rad1", viewer_window=True)
    try:
        page = first.open_report("conflict")
        type_at_end(page, "findings", "First tab.")
        wait_saved(page)
        other = second.open_report("conflict")
        type_at_end(other, "findings", " Second tab.")
        wait_saved(other)

        type_at_end(page, "impression", "Mine.")
        page.wait_for_selector("#conflict-banner", state="visible", timeout=SAVE_SECONDS * 1000)
        message = page.text_content("#conflict-text")
        assert "version 2" in message and "Dr RAD1" in message
        assert page.get_attribute("#save-state", "data-state") == "conflict"

        page.click("#load-theirs")
        page.wait_for_selector("#conflict-banner", state="hidden")
        assert page.input_value("#section-findings") == "First tab. Second tab."
        assert page.input_value("#section-impression") == ""
        assert "Mine." in page.text_content("#kept-copy")
        type_at_end(page, "impression", "Mine, again.")
        wait_saved(page)
        page.reload()
        assert "Mine." in page.text_content("#kept-copy")  # kept until dismissed
        page.click("#kept-copy-dismiss")
        assert page.is_hidden("#kept-copy")
    finally:
        first.close()
        second.close()


def test_a_network_cut_is_retried_and_nothing_is_lost(browser, server):
    rad2 = Reader(browser, server, "rad2", viewer_window=True, expected=("ERR_INTERNET_DISCONNECTED",))
    try:
        page = rad2.open_report("layout")
        rad2.context.set_offline(True)
        type_at_end(page, "findings", "Typed while offline.")
        page.wait_for_selector("#save-state[data-state=offline]", timeout=SAVE_SECONDS * 1000)
        assert "will retry" in page.text_content("#save-state")
        rad2.context.set_offline(False)
        wait_saved(page)
        saved = user(server, "rad2").get(server.url(f"/pacs/api/studies/{server.uids['layout']}/report"))
        assert saved.json()["sections"]["findings"] == "Typed while offline."
    finally:
        rad2.close()


def test_viewer_in_a_second_window_is_remembered(browser, server, referred):
    rad2 = Reader(browser, server, "rad2")
    try:
        page = rad2.open_report("signed")
        viewer = f"/pacs/viewer/viewer?StudyInstanceUIDs={server.uids['signed']}"
        assert page.get_attribute("#viewer-frame", "src") == viewer
        with page.expect_popup() as popup:
            page.check("#viewer-window-toggle")
        assert popup.value.url == server.url(viewer)
        assert page.is_hidden(".report-viewer") and page.get_attribute("#viewer-frame", "src") == "about:blank"
        page.uncheck("#viewer-window-toggle")
        assert page.is_visible(".report-viewer") and page.get_attribute("#viewer-frame", "src") == viewer
        page.wait_for_timeout(200)
        assert popup.value.is_closed()

        with page.expect_popup() as popup:
            page.check("#viewer-window-toggle")
        page.reload()
        assert page.is_checked("#viewer-window-toggle") and page.is_hidden(".report-viewer")
        assert page.get_attribute("#viewer-frame", "src") is None  # the frame does not load the viewer
        page.click("#viewer-reopen")  # a window opens on a click only (pop-up blockers)...
        page.wait_for_timeout(300)
        assert rad2.context.pages == [page, popup.value]  # ...and it is the same window
    finally:
        rad2.close()


def test_admin_manages_templates_that_reports_offer(browser, server):
    admin = Reader(browser, server, "admin", password=ADMIN_PASSWORD, expected=("status of 409",))
    try:
        page = admin.page
        page.goto(server.url("/pacs/admin/templates"))
        page.fill("#template-new-name", "CT spine trauma")
        page.fill("#template-new-modality", "ct")
        page.fill("#template-new-findings", "Alignment: normal.\nVertebral bodies: no fracture.")
        page.click("text=Create template")
        item = page.locator("details.template-item", has=page.locator("summary", has_text="CT spine trauma"))
        item.wait_for()
        assert "CT · any body part" in item.locator("summary").text_content()
        rad1 = user(server, "rad1")
        offered = rad1.get(server.url("/pacs/api/report-templates"), params={"modality": "CT"}).json()["items"]
        assert "CT spine trauma" in [t["name"] for t in offered]

        item.locator("summary").click()
        item.locator("input[name=disabled]").check()
        item.locator("button[type=submit]").click()
        item.locator(".template-state", has_text="Saved.").wait_for()
        offered = rad1.get(server.url("/pacs/api/report-templates")).json()["items"]
        assert "CT spine trauma" not in [t["name"] for t in offered]

        page.fill("#template-new-name", "Chest X-ray")  # taken: the API's 409 is shown
        page.click("text=Create template")
        page.locator(".template-state", has_text="That did not work").wait_for()
        assert "exists" in page.text_content(".template-state >> nth=-1")
    finally:
        admin.close()
    rad2 = Reader(browser, server, "rad2", viewer_window=True, expected=("status of 403",))
    try:
        answer = rad2.page.goto(server.url("/pacs/admin/templates"))
        assert shown_status(answer) == 403
    finally:
        rad2.close()


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET], ids=["desktop", "tablet"])
def test_layout_without_horizontal_overflow(browser, server, referred, viewport):
    rad2 = Reader(browser, server, "rad2", viewport)
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page = rad2.page
        size = f"{viewport['width']}x{viewport['height']}"
        for name, key in [("report-draft", "draft"), ("report-signed", "signed")]:
            rad2.open_report(key)
            page.wait_for_load_state("networkidle")
            if VIEWER_INSTALLED:
                page.frame_locator("#viewer-frame").locator("canvas").first.wait_for(timeout=30_000)
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"))
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} at {size} is {overflow}px too wide"
    finally:
        rad2.close()
