"""The bundled OHIF viewer in Chromium (Debian's, through Playwright) against a
real PACS: a radiologist logs in through the form, opens a CT and an MR study
from the worklist (row -> study page -> "Open viewer") and each viewport
shows a real image; a referrer's in-scope study renders, a study outside
their scope answers 403 and shows nothing.

The viewer opens clean: OHIF's onboarding tour and its "investigational use
only" banner never enter the page (a MutationObserver watches every page and
frame from its first script; a control run with OHIF's defaults proves the
watch sees both). Its header leads back: to the worklist, and to the study's
report page; embedded in the report page, to the worklist in the whole window.
A referrer's open, OHIF's search for the patient's other studies included,
writes no "denied" audit entry, and that search answers only studies in their
scope. The screenshots are kept in build/screenshots (or $PACS_SCREENSHOT_DIR)."""

import time

import dicomgen
import pytest
from conftest import log_in
from pacs_server import PacsServer, shown_status
from PIL import Image
from viewer_page import CANVAS, FIRST_IMAGE, SCREENSHOTS, centre, grey_stats, viewport_image

PASSWORD = "Viewer-UI-tests-2026!"
VIEWPORT = {"width": 1280, "height": 800}
IMAGE_SECONDS = 30
MIN_STDDEV = 8.0  # grey levels: a blank or flat viewport has ~0
MIN_LEVELS = 16
SETTLE_MS = 1500  # after the first image: OHIF starts its tour within 0.5 s of the viewport
PATIENT_SEARCH = "00100020="  # OHIF's search for the patient's other studies (QIDO by PatientID)

# Records, in every page and frame, each element of OHIF's tour (Shepherd) or banner that
# enters the document, from before OHIF's first script runs.
POPUP_WATCH = """
window.__pacsPopups = [];
new MutationObserver(function (changes) {
  changes.forEach(function (change) {
    change.addedNodes.forEach(function (node) {
      if (node.nodeType !== 1) { return; }
      var selector = '.shepherd-element, [data-cy="confirm-and-hide-button"]';
      var found = node.matches(selector) ? node : node.querySelector(selector);
      if (found) { window.__pacsPopups.push(found.getAttribute('data-cy') || 'tour: ' + found.textContent); }
      if (/investigational use/i.test(node.textContent || '')) { window.__pacsPopups.push('banner text'); }
    });
  });
}).observe(document, { childList: true, subtree: true });
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer-ui")
    server = PacsServer(folder / "pacs").start()
    try:
        ct = dicomgen.StudySpec(patient_name="Tomo^Carla", referring_physician="REF^ONE", description="CT HEAD VIEWER")
        mr = dicomgen.StudySpec(patient_name="Reson^Marc", referring_physician="REF^TWO", description="MR KNEE VIEWER")
        # The CT patient's earlier study, referred by someone else: a prior the referrer may not see.
        prior = dicomgen.StudySpec(
            patient_name="Tomo^Carla",
            patient_id=ct.patient_id,
            referring_physician="REF^TWO",
            description="CT CHEST PRIOR",
            study_date="20250110",
        )
        server.storescu(
            dicomgen.write(dicomgen.ct_series(ct, slices=20, rows=128, cols=128), folder / "ct")
            + dicomgen.write(dicomgen.mr_series(mr, slices=16, rows=128, cols=128), folder / "mr")
            + dicomgen.write(dicomgen.ct_series(prior, slices=3, rows=64, cols=64), folder / "prior")
        )
        server.wait_indexed(ct.study_uid, instances=20)
        server.wait_indexed(mr.study_uid, instances=16)
        server.wait_indexed(prior.study_uid, instances=3)
        for username, role, names in [("reader", "radiologist", []), ("viewref", "referrer", ["Ref^One"])]:
            server.post(
                "/pacs/api/users",
                json={"username": username, "password": PASSWORD, "role": role, "referring_names": names},
            ).raise_for_status()
        server.ct, server.mr, server.prior = ct, mr, prior
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(POPUP_WATCH)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


# --- what the viewport shows ------------------------------------------------------


def is_real_image(image):
    """(verdict, stddev, distinct grey levels) of the viewport's centre."""
    stddev, levels, _ = grey_stats(centre(image))
    return stddev > MIN_STDDEV and levels >= MIN_LEVELS, stddev, levels


def wait_for_real_image(page, name):
    """Until the viewport holds a non-uniform image; saves it as viewer-<name>.png."""
    deadline = time.monotonic() + IMAGE_SECONDS
    while True:
        image = viewport_image(page)
        verdict, stddev, levels = is_real_image(image)
        if verdict or time.monotonic() > deadline:
            break
        page.wait_for_timeout(200)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    image.save(SCREENSHOTS / f"viewer-{name}.png")
    assert verdict, f"{name}: the viewport stayed flat (stddev {stddev:.1f}, {levels} grey levels)"


def popups_seen(frame):
    """What of OHIF's tour and banner ever entered this page or frame."""
    return frame.evaluate("window.__pacsPopups")


def assert_opened_clean(page, frame=None, name=None):
    """No tour and no banner, ever, once OHIF had time to show them."""
    page.wait_for_timeout(SETTLE_MS)
    if name:
        page.screenshot(path=str(SCREENSHOTS / f"viewer-{name}.png"))
    assert popups_seen(frame or page) == []
    for label in ("Skip all", "Confirm and hide"):
        assert (frame or page).get_by_role("button", name=label).count() == 0


# --- the way a person opens a study -------------------------------------------------


def worklist_studies(page, server):
    """The StudyInstanceUIDs of the worklist's rows."""
    page.goto(server.url("/pacs/"))
    page.wait_for_selector("tr.study-row")
    return [row.get_attribute("data-uid") for row in page.locator("tr.study-row").all()]


def open_from_worklist(page, server, spec):
    """Worklist row -> study page -> "Open viewer"; returns when OHIF says it drew the first image."""
    assert spec.study_uid in worklist_studies(page, server)
    page.locator(f'tr.study-row[data-uid="{spec.study_uid}"] a[data-field="patient_name"]').click()
    page.wait_for_url(server.url(f"/pacs/studies/{spec.study_uid}"))
    with page.expect_console_message(lambda message: FIRST_IMAGE in message.text, timeout=IMAGE_SECONDS * 1000):
        page.get_by_role("link", name="Open viewer").click()
    assert page.url == server.url(f"/pacs/viewer/viewer?StudyInstanceUIDs={spec.study_uid}")


def open_viewer_and_patient_search(page, server, spec):
    """Open the viewer on a study; the answer to OHIF's search for the patient's studies."""
    with page.expect_response(lambda answer: PATIENT_SEARCH in answer.url, timeout=IMAGE_SECONDS * 1000) as found:
        open_from_worklist(page, server, spec)
    return found.value


def found_studies(answer):
    return sorted(study["0020000D"]["Value"][0] for study in answer.json())


def audit_entries(server, **filters):
    return server.get("/pacs/api/audit", params=dict(filters, page_size=500)).json()["items"]


def test_a_flat_viewport_is_not_an_image():
    assert not is_real_image(Image.new("L", (955, 742), 0))[0]
    assert not is_real_image(Image.new("L", (955, 742), 128))[0]


def test_the_popup_watch_sees_ohifs_tour_and_banner(server, page):
    """Control: with OHIF's defaults (our two settings taken out of app-config.js) the
    watch records the tour and the banner, so an empty record means they never came."""

    def defaults(route):
        config = route.fetch().text()
        for setting in ("investigationalUseDialog:", "customizationService:"):
            assert setting in config
            config = "\n".join(line for line in config.splitlines() if setting not in line)
        route.fulfill(body=config, content_type="application/javascript")

    log_in(page, server, "reader", PASSWORD)
    page.route("**/pacs/viewer/app-config.js", defaults)
    page.goto(server.url(f"/pacs/viewer/viewer?StudyInstanceUIDs={server.ct.study_uid}"))
    page.get_by_role("button", name="Skip all").wait_for()
    page.get_by_role("button", name="Confirm and hide").wait_for()
    seen = popups_seen(page)
    assert "confirm-and-hide-button" in seen and any(item.startswith("tour: ") for item in seen), seen


def test_radiologist_opens_ct_and_mr_from_the_worklist(server, page):
    log_in(page, server, "reader", PASSWORD)
    for name, spec in (("ct", server.ct), ("mr", server.mr)):
        open_from_worklist(page, server, spec)
        wait_for_real_image(page, name)
        assert page.get_by_text(spec.description).first.is_visible()  # OHIF's study panel names it
        assert_opened_clean(page, name=f"{name}-clean")


def test_radiologist_goes_back_to_the_worklist_and_the_report(server, page):
    log_in(page, server, "reader", PASSWORD)
    uid = server.ct.study_uid
    answer = open_viewer_and_patient_search(page, server, server.ct)
    assert found_studies(answer) == sorted([uid, server.prior.study_uid])  # staff see the prior
    wait_for_real_image(page, "way-back")
    assert_opened_clean(page)
    page.screenshot(
        path=str(SCREENSHOTS / "viewer-way-back-header.png"), clip={"x": 0, "y": 0, "width": 640, "height": 48}
    )
    page.get_by_role("link", name="Worklist").click()
    page.wait_for_url(server.url("/pacs/"))
    page.wait_for_selector("tr.study-row")

    open_from_worklist(page, server, server.ct)
    page.get_by_role("link", name="Report").click()
    page.wait_for_url(server.url(f"/pacs/studies/{uid}/report"))

    # The report page embeds the viewer: there it leads to the worklist, in the whole window.
    frame = page.frame_locator("#viewer-frame")
    frame.locator(CANVAS).first.wait_for(timeout=IMAGE_SECONDS * 1000)
    back = frame.get_by_role("link", name="Worklist")
    back.wait_for()
    assert frame.get_by_role("link", name="Report").count() == 0  # the report is beside it
    assert_opened_clean(page, page.frame(url=lambda url: "/pacs/viewer/" in url), name="report-embedded")
    back.click()
    page.wait_for_url(server.url("/pacs/"))
    assert page.locator("#viewer-frame").count() == 0


def test_referrer_sees_their_study_and_nothing_outside_their_scope(server, page):
    log_in(page, server, "viewref", PASSWORD)
    assert worklist_studies(page, server) == [server.ct.study_uid]
    answer = open_viewer_and_patient_search(page, server, server.ct)
    wait_for_real_image(page, "referrer-in-scope")
    assert_opened_clean(page, name="referrer-clean")
    # OHIF's search for the patient's studies is answered from the scope: no prior of another referrer.
    assert answer.status == 200 and found_studies(answer) == [server.ct.study_uid]
    server.wait_for(
        lambda: any(PATIENT_SEARCH in str(entry) for entry in audit_entries(server, user="viewref", action="search")),
        what="the audit entry of the patient search",
    )
    assert audit_entries(server, user="viewref", outcome="denied") == []
    page.get_by_role("link", name="Report").click()
    page.wait_for_url(server.url(f"/pacs/studies/{server.ct.study_uid}/report"))

    outside = server.mr.study_uid
    assert shown_status(page.goto(server.url(f"/pacs/studies/{outside}"))) == 403
    answers = []
    page.on(
        "response",
        lambda response: (
            answers.append((response.status, response.url))
            if outside in response.url and "/dicom-web/" in response.url
            else None
        ),
    )
    page.goto(server.url(f"/pacs/viewer/viewer?StudyInstanceUIDs={outside}"))  # a link from elsewhere
    page.get_by_text("not available").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "viewer-referrer-out-of-scope.png"))
    assert answers and {status for status, _ in answers} == {403}, answers
    assert any("/pacs/dicom-web/studies?" in url for _, url in answers)  # OHIF's QIDO search
    assert not any("/frames/" in url or "/metadata" in url for _, url in answers)
    assert page.locator(CANVAS).count() == 0
