"""The bundled OHIF viewer in Chromium (Debian's, through Playwright) against a
real PACS: a radiologist logs in through the form, opens a CT and an MR study
from the worklist (row -> study page -> "Open viewer") and each viewport
shows a real image; a referrer's in-scope study renders, a study outside
their scope answers 403 and shows nothing. The viewport screenshots are kept
in build/screenshots (or $PACS_SCREENSHOT_DIR)."""

import time

import pytest
from PIL import Image

import dicomgen
from conftest import log_in
from pacs_server import PacsServer
from viewer_page import CANVAS, SCREENSHOTS, FIRST_IMAGE, centre, dismiss_popups, grey_stats, viewport_image

PASSWORD = "Viewer-UI-tests-2026!"
VIEWPORT = {"width": 1280, "height": 800}
IMAGE_SECONDS = 30
MIN_STDDEV = 8.0  # grey levels: a blank or flat viewport has ~0
MIN_LEVELS = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer-ui")
    server = PacsServer(folder / "pacs").start()
    ct = dicomgen.StudySpec(patient_name="Tomo^Carla", referring_physician="REF^ONE",
                            description="CT HEAD VIEWER")
    mr = dicomgen.StudySpec(patient_name="Reson^Marc", referring_physician="REF^TWO",
                            description="MR KNEE VIEWER")
    server.storescu(dicomgen.write(dicomgen.ct_series(ct, slices=20, rows=128, cols=128), folder / "ct")
                    + dicomgen.write(dicomgen.mr_series(mr, slices=16, rows=128, cols=128), folder / "mr"))
    server.wait_indexed(ct.study_uid, instances=20)
    server.wait_indexed(mr.study_uid, instances=16)
    for username, role, names in [("reader", "radiologist", []), ("viewref", "referrer", ["Ref^One"])]:
        server.post("/pacs/api/users", json={"username": username, "password": PASSWORD, "role": role,
                                             "referring_names": names}).raise_for_status()
    server.ct, server.mr = ct, mr
    yield server
    server.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
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
        dismiss_popups(page)
        image = viewport_image(page)
        verdict, stddev, levels = is_real_image(image)
        if verdict or time.monotonic() > deadline:
            break
        page.wait_for_timeout(200)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    image.save(SCREENSHOTS / f"viewer-{name}.png")
    assert verdict, f"{name}: the viewport stayed flat (stddev {stddev:.1f}, {levels} grey levels)"


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


def test_a_flat_viewport_is_not_an_image():
    assert not is_real_image(Image.new("L", (955, 742), 0))[0]
    assert not is_real_image(Image.new("L", (955, 742), 128))[0]


def test_radiologist_opens_ct_and_mr_from_the_worklist(server, page):
    log_in(page, server, "reader", PASSWORD)
    for name, spec in (("ct", server.ct), ("mr", server.mr)):
        open_from_worklist(page, server, spec)
        wait_for_real_image(page, name)
        assert page.get_by_text(spec.description).first.is_visible()  # OHIF's study panel names it


def test_referrer_sees_their_study_and_nothing_outside_their_scope(server, page):
    log_in(page, server, "viewref", PASSWORD)
    assert worklist_studies(page, server) == [server.ct.study_uid]
    open_from_worklist(page, server, server.ct)
    wait_for_real_image(page, "referrer-in-scope")

    outside = server.mr.study_uid
    assert page.goto(server.url(f"/pacs/studies/{outside}")).status == 403
    answers = []
    page.on("response", lambda response: answers.append((response.status, response.url))
            if outside in response.url and "/dicom-web/" in response.url else None)
    page.goto(server.url(f"/pacs/viewer/viewer?StudyInstanceUIDs={outside}"))  # a link from elsewhere
    page.get_by_text("not available").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "viewer-referrer-out-of-scope.png"))
    assert answers and {status for status, _ in answers} == {403}, answers
    assert any("/pacs/dicom-web/studies?" in url for _, url in answers)  # OHIF's QIDO search
    assert not any("/frames/" in url or "/metadata" in url for _, url in answers)
    assert page.locator(CANVAS).count() == 0
