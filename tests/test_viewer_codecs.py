"""Every real image of pydicom-data, in every transfer syntax it comes in, has a
thumbnail on the study page and shows in OHIF (Debian's Chromium, through
Playwright) as something other than a black or flat viewport.

Each sample is its own study (tests/sample_images.py), stored over HTTP as the
file it is. The viewport is read the way a person sees it: a screenshot of
OHIF's canvas, sampled in the middle, clear of the corner overlays. Each
screenshot is kept in build/screenshots/codecs/ (or $PACS_SCREENSHOT_DIR).
"""

import io
import time

import numpy
import pytest
import sample_images
from conftest import log_in
from pacs_server import PacsServer
from PIL import Image
from pydicom import dcmread
from pydicom.pixels import apply_color_lut
from viewer_page import FIRST_IMAGE, SCREENSHOTS, centre, grey_stats, viewport_image

from plugin.ingest_screen import PALETTE_TO_RGB, TRANSCODE, examine

PASSWORD = "Codec-viewer-tests-2026!"
NAMES = [path.stem for path in sample_images.source_files()]
IMAGE_SECONDS = 20
MIN_LIT = 0.02  # share of the viewport's middle brighter than black: a black viewport has none
MIN_LEVELS = 2  # and not one flat grey


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codecs")
    server = PacsServer(folder / "pacs").start()
    try:
        server.samples = {sample.name: sample for sample in sample_images.samples(folder / "samples")}
        for sample in server.samples.values():
            answer = server.post("/instances", data=sample.path.read_bytes())
            assert answer.status_code == 200, (sample.name, answer.status_code, answer.text)
        for sample in server.samples.values():
            server.wait_indexed(sample.study_uid, instances=1)
        server.post(
            "/pacs/api/users", json={"username": "reader", "password": PASSWORD, "role": "radiologist"}
        ).raise_for_status()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser, server):
    """One signed-in tab for every sample: OHIF loads its bundle once."""
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, server, "reader", PASSWORD)
    yield page
    context.close()


def lit(image):
    """(verdict, share of lit pixels, grey levels) of the middle of an image."""
    _, levels, share = grey_stats(centre(image))
    return share >= MIN_LIT and levels >= MIN_LEVELS, share, levels


@pytest.mark.parametrize("name", NAMES)
def test_every_sample_has_a_thumbnail(server, name):
    sample = server.samples[name]
    answer = server.get(f"/pacs/api/studies/{sample.study_uid}/series/{sample.series_uid}/thumbnail")
    assert answer.status_code == 200, (name, sample.transfer_syntax, answer.status_code, answer.text)
    assert answer.headers["Content-Type"] == "image/png"
    thumbnail = Image.open(io.BytesIO(answer.content)).convert("L")
    _, levels, share = grey_stats(thumbnail)
    assert levels >= MIN_LEVELS and share > 0, (name, sample.transfer_syntax, levels, share)


@pytest.mark.parametrize("name", [name for name in NAMES if name not in ("liver", "liver_expb")])
def test_every_sample_image_shows_in_the_viewer(server, page, name):
    sample = server.samples[name]
    assert sample.is_image
    failures = []
    listener = lambda response: (  # noqa: E731
        failures.append((response.status, response.url))
        if response.status >= 400 and "/dicom-web/" in response.url
        else None
    )  # noqa: E731
    page.on("response", listener)
    try:
        with page.expect_console_message(lambda message: FIRST_IMAGE in message.text, timeout=IMAGE_SECONDS * 1000):
            page.goto(server.url(f"/pacs/viewer/viewer?StudyInstanceUIDs={sample.study_uid}"))
        verdict, share, levels = wait_until_lit(page)
    finally:
        page.remove_listener("response", listener)
        folder = SCREENSHOTS / "codecs"
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))
    assert verdict, (
        f"{name} ({sample.transfer_syntax}): the viewport stayed black or flat "
        f"({share:.1%} lit, {levels} grey levels); failed requests: {failures}"
    )
    assert not failures, failures


def wait_until_lit(page):
    deadline = time.monotonic() + IMAGE_SECONDS
    while True:
        verdict, share, levels = lit(viewport_image(page))
        if verdict or time.monotonic() > deadline:
            return verdict, share, levels
        page.wait_for_timeout(250)


def stored_file(server, sample):
    found = server.post("/tools/find", json={"Level": "Instance", "Query": {"StudyInstanceUID": sample.study_uid}})
    return server.get(f"/instances/{found.json()[0]}/file").content


@pytest.mark.parametrize(
    "name", [path.stem for path in sample_images.source_files() if examine(sample_images.part10(path)).viewer_fixes]
)
def test_what_the_viewer_cannot_show_is_stored_viewer_ready_with_the_same_pixels(server, name):
    sample = server.samples[name]
    sent_bytes = sample.path.read_bytes()
    fixes = examine(sent_bytes).viewer_fixes
    stored, sent = dcmread(io.BytesIO(stored_file(server, sample))), dcmread(io.BytesIO(sent_bytes))
    assert examine(stored_file(server, sample)).viewer_fixes == frozenset()
    assert stored.SOPInstanceUID == sent.SOPInstanceUID
    if TRANSCODE in fixes:
        assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    expected = sent.pixel_array
    if PALETTE_TO_RGB in fixes:
        expected = apply_color_lut(expected, sent) // 257
    assert numpy.array_equal(stored.pixel_array, expected)


def test_with_viewer_conversion_off_every_file_is_stored_as_sent(tmp_path):
    server = PacsServer(tmp_path / "pacs", overrides={"Pacs": {"ViewerConversion": False}}).start()
    try:
        for name in ("OBXXXX1A_expb", "RG1_UNCR", "image_dfl", "color-pl"):
            sample = sample_images.as_own_study(sample_images.source_by_name(name), tmp_path)
            assert server.post("/instances", data=sample.path.read_bytes()).status_code == 200
            assert stored_file(server, sample) == sample.path.read_bytes()
    finally:
        server.stop()


def test_the_samples_cover_every_syntax_the_issue_names():
    """CT, MR, CR, US, NM; native, big endian, deflated, JPEG baseline and lossless,
    JPEG-LS, JPEG 2000 (lossless and lossy), RLE."""
    syntaxes, modalities = set(), set()
    for path in sample_images.source_files():
        dataset = sample_images.read_dataset(path, stop_before_pixels=True)
        syntaxes.add(str(dataset.file_meta.TransferSyntaxUID))
        modalities.add(dataset.get("Modality"))
    assert {
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
    } <= syntaxes
    assert {"CT", "MR", "CR", "US", "NM"} <= modalities
