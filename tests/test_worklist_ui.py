"""The worklist, study and dashboard pages in Chromium (Debian's, through
Playwright: the `browser` fixture of conftest.py) against a real PACS: log in, filter, claim, see a colleague's
change and a new study arrive without reloading, open a study with the
keyboard, the dashboard's chart, a referrer's narrower view, and the layout
at desktop and tablet sizes (screenshots in build/screenshots, or
$PACS_SCREENSHOT_DIR)."""

import datetime
import os
import statistics
import time
from pathlib import Path

import dicomgen
import pytest
from conftest import log_in
from pacs_server import PacsServer
from test_worklist_api import PASSWORD, as_user

TODAY = datetime.date.today()
SCREENSHOTS = Path(
    os.environ.get("PACS_SCREENSHOT_DIR") or Path(__file__).resolve().parent.parent / "build" / "screenshots"
)
REFRESH_SECONDS = 5  # the page polls every 3 s
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 820, "height": 1180}

STUDIES = [
    # name, patient id, accession, days ago, modality, referring, description
    ("Müller^Anna", "P-200", "ACC-200", 0, "CT", "WHO^DR", "CT HEAD"),
    ("Müller^Anna", "P-200", "ACC-201", 300, "CT", "WHO^DR", "CT HEAD PRIOR"),
    ("Moreau^Élise", "P-201", "ACC-202", 0, "CT", "SMITH^JOHN", "CT THORAX"),
    ("Mueller^Hans", "P-202", "ACC-203", 1, "CT", "SMITH^JOHN", "CT ABDOMEN"),
    ("Nakamura^Ken", "P-203", "ACC-204", 2, "MR", "SMITH^JOHN", "MR KNEE"),
    ("O'Neill^Mary", "P-204", "ACC-205", 5, "CR", "WHO^DR", "CHEST PA"),
]


def study_files(folder, name, pid, accession, days_ago, modality, referring, description):
    spec = dicomgen.StudySpec(
        patient_name=name,
        patient_id=pid,
        accession=accession,
        study_date=(TODAY - datetime.timedelta(days=days_ago)).strftime("%Y%m%d"),
        referring_physician=referring,
        description=description,
        charset="ISO_IR 192",
    )
    make = dicomgen.mr_series if modality == "MR" else dicomgen.ct_series
    series = make(spec, slices=2)
    for ds in series:
        ds.Modality = modality
    return spec.study_uid, dicomgen.write(series, folder / accession)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("worklist-ui")
    server = PacsServer(folder / "pacs").start()
    files, server.uids = [], {}
    for study in STUDIES:
        uid, paths = study_files(folder / "dcm", *study)
        server.uids[study[2]] = uid
        files += paths
    server.storescu(files)
    for uid in server.uids.values():
        server.wait_indexed(uid)
    for username, role, names in [
        ("rad1", "radiologist", []),
        ("rad2", "radiologist", []),
        ("tech", "technologist", []),
        ("drwho", "referrer", ["Who^Dr"]),
    ]:
        server.post(
            "/pacs/api/users",
            json={
                "username": username,
                "password": PASSWORD,
                "role": role,
                "display_name": username.upper(),
                "referring_names": names,
            },
        ).raise_for_status()
    server.folder = folder
    yield server
    server.stop()


class Reader:
    """One signed-in browser page, collecting console errors."""

    def __init__(self, browser, server, username, viewport=DESKTOP):
        self.server = server
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.errors = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        log_in(self.page, server, username, PASSWORD)
        self.page.wait_for_url(server.url("/pacs/"))
        self.wait_for_rows()

    def _console(self, message):
        # Chromium logs every non-2xx fetch; a refused claim (409) is an answer the page shows.
        if message.type == "error" and "status of 409" not in message.text:
            self.errors.append(message.text)

    def row(self, accession):
        return self.page.locator("tr.study-row", has=self.page.locator("td", has_text=accession))

    def accessions(self):
        return self.page.locator('tr.study-row td[data-field="accession_number"]').all_text_contents()

    def wait_for_rows(self, expected=None):
        """Until the rows are those of `expected` accessions (any rows when None)."""
        if expected is None:
            self.page.wait_for_selector("tr.study-row")
            return
        deadline = time.monotonic() + REFRESH_SECONDS
        while sorted(self.accessions()) != sorted(expected):
            assert time.monotonic() < deadline, f"rows {self.accessions()} instead of {sorted(expected)}"
            self.page.wait_for_timeout(50)

    def close(self):
        self.context.close()
        assert self.errors == []


@pytest.fixture
def rad1(browser, server):
    reader = Reader(browser, server, "rad1")
    yield reader
    reader.close()


def reset_studies(server):
    """Every study back to unclaimed, unassigned and routine."""
    for uid in server.uids.values():
        server.post(f"/pacs/api/studies/{uid}/release").raise_for_status()
        server.post(f"/pacs/api/studies/{uid}/assign", json={"assignee": None}).raise_for_status()
        server.post(f"/pacs/api/studies/{uid}/priority", json={"priority": "routine"}).raise_for_status()


def test_filter_claim_and_colleague_changes_without_reload(server, rad1):
    page = rad1.page
    page.set_viewport_size({"width": 1280, "height": 420})  # short enough for the page to scroll
    page.select_option("#filter-modality", "CT")
    rad1.wait_for_rows(["ACC-200", "ACC-201", "ACC-202", "ACC-203"])
    page.fill("#filter-q", "mull")  # accent-insensitive, partial: Müller, not Mueller
    rad1.wait_for_rows(["ACC-200", "ACC-201"])
    assert "modality=CT" in page.url and "q=mull" in page.url
    page.fill("#filter-q", "")
    rad1.wait_for_rows(["ACC-200", "ACC-201", "ACC-202", "ACC-203"])

    rad1.row("ACC-202").locator('[data-action="claim"]').click()
    status = rad1.row("ACC-202").locator("td", has=page.locator('[data-field="status"]'))
    page.wait_for_function("el => el.textContent.includes('being read by RAD1')", arg=status.element_handle())
    assert "In progress" in status.text_content()

    # A colleague's changes arrive by themselves; the page is not reloaded.
    rad1.row("ACC-203").locator('[data-field="description"]').click()  # select a row
    page.evaluate("window.scrollTo(0, document.body.scrollHeight); window.notReloaded = true")
    scroll = page.evaluate("window.scrollY")
    assert scroll > 0
    rad2 = as_user(server, "rad2")
    rad2.post(server.url(f"/pacs/api/studies/{server.uids['ACC-200']}/claim")).raise_for_status()
    rad2.post(server.url(f"/pacs/api/studies/{server.uids['ACC-201']}/priority"), json={"priority": "stat"})
    page.wait_for_function(
        "() => document.body.textContent.includes('being read by RAD2')", timeout=REFRESH_SECONDS * 1000
    )
    priority = rad1.row("ACC-201").locator('select[data-action="priority"]')
    page.wait_for_function(
        "select => select.value === 'stat'", arg=priority.element_handle(), timeout=REFRESH_SECONDS * 1000
    )
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("window.scrollY") == scroll
    assert "modality=CT" in page.url and page.input_value("#filter-modality") == "CT"
    assert "is-selected" in rad1.row("ACC-203").get_attribute("class")

    # The second radiologist to claim is told who reads it (409).
    rad1.row("ACC-203").locator('[data-field="description"]').click()
    rad2.post(server.url(f"/pacs/api/studies/{server.uids['ACC-203']}/claim")).raise_for_status()
    page.keyboard.press("c")
    message = page.locator("#worklist-message")
    message.wait_for(state="visible")
    assert "being read by RAD2" in message.text_content()
    reset_studies(server)


def test_new_study_reaches_an_open_worklist_within_seconds(server, rad1):
    """Time from the study's indexing (its STABLE_STUDY event, StableAge=1)
    to its row in the browser. Target: 3 s. Each study is sent at another
    moment of the page's 3 s polling cycle."""
    delays = []
    for number, offset in enumerate([0, 1, 2]):
        accession = f"ACC-NEW{number}"
        uid, files = study_files(
            server.folder / "new", f"Newcomer^N{number}", f"P-30{number}", accession, 0, "CT", "SMITH^JOHN", "CT NEW"
        )
        with rad1.page.expect_response(lambda response: "/pacs/api/studies" in response.url):
            pass  # the next poll
        time.sleep(offset)
        server.storescu(files)
        appeared_ms = rad1.page.wait_for_function(
            'uid => document.querySelector(`tr[data-uid="${uid}"]`) ? Date.now() : null',
            arg=uid,
            timeout=30_000,
            polling=20,
        ).json_value()
        indexed_at = datetime.datetime.fromisoformat(server.wait_indexed(uid)["indexed_at"])
        delay = appeared_ms / 1000 - indexed_at.replace(tzinfo=datetime.timezone.utc).timestamp()
        delays.append(delay)
        server.uids[accession] = uid
        assert "row-new" in rad1.row(accession).get_attribute("class")  # highlighted as it arrives
    print(
        f"\nstable study -> row in the browser: {', '.join(f'{d:.2f}' for d in delays)} s "
        f"(median {statistics.median(delays):.2f} s, target 3 s)"
    )
    assert max(delays) < 4.5


def test_keyboard_opens_the_study_page(server, rad1):
    page = rad1.page
    page.goto(server.url("/pacs/?q=anna&sort=-study_date"))
    rad1.wait_for_rows(["ACC-200", "ACC-201"])
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.dataset.uid") == server.uids["ACC-200"]
    page.keyboard.press("Enter")
    uid = server.uids["ACC-200"]
    page.wait_for_url(server.url(f"/pacs/studies/{uid}"))

    assert page.text_content("h1") == "MÜLLER, Anna"  # one formatter for every page and the PDF: family in capitals
    thumbnails = page.locator(".series-card img")
    assert thumbnails.count() == 1
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnails.first.element_handle())
    prior = page.locator("table.priors tbody tr")
    assert prior.count() == 1 and "Final" not in prior.text_content() and "Arrived" in prior.text_content()
    assert prior.locator("a").get_attribute("href") == f"/pacs/studies/{server.uids['ACC-201']}"
    viewer = page.get_by_role("link", name="Open viewer", exact=True).get_attribute("href")
    assert viewer == f"/pacs/viewer/viewer?StudyInstanceUIDs={uid}"
    with_priors = page.get_by_role("link", name="Open with priors").get_attribute("href")
    assert with_priors == f"{viewer}&StudyInstanceUIDs={server.uids['ACC-201']}"
    report = page.get_by_role("link", name="Report", exact=True).get_attribute("href")
    assert report == f"/pacs/studies/{uid}/report"

    page.click('#study-actions [data-action="claim"]')
    page.wait_for_selector(".study-state >> text=being read by RAD1")
    assert page.locator('#study-actions [data-action="release"]').is_visible()
    reset_studies(server)


def test_dashboard_draws_its_chart(server, rad1):
    page = rad1.page
    page.goto(server.url("/pacs/dashboard"))
    assert page.locator(".tile").count() == 6
    if page.locator("#per-day-chart").count() == 0:
        pytest.skip("Chart.js is not vendored (make install)")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('per-day-chart'))")
    datasets = page.evaluate(
        "Chart.getChart(document.getElementById('per-day-chart')).data.datasets"
        ".map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])"
    )
    assert dict(datasets)["CT"] >= 3 and dict(datasets)["MR"] == 1
    assert page.locator("text=Waiting longest").count() == 1


def test_referrer_sees_their_studies_only_and_no_actions(browser, server):
    referrer = Reader(browser, server, "drwho")
    try:
        referrer.wait_for_rows(["ACC-200", "ACC-201", "ACC-205"])
        page = referrer.page
        assert page.locator("[data-action]").count() == 0
        assert page.locator("#filter-assignee").count() == 0
        assert page.locator("nav a[href='/pacs/dashboard']").count() == 0
        referrer.row("ACC-205").locator("a").click()
        page.wait_for_selector(".series-card img")
        assert page.locator("#study-actions [data-action]").count() == 0
    finally:
        referrer.close()


def test_turnaround_clock_turns_red_past_the_target(server, rad1):
    page = rad1.page
    server.post(f"/pacs/api/studies/{server.uids['ACC-204']}/priority", json={"priority": "stat"})
    page.clock.install()
    page.reload()
    clock = rad1.row("ACC-204").locator("[data-clock]")
    clock.wait_for()
    assert "overdue" not in clock.get_attribute("class")
    page.clock.fast_forward("01:01:00")  # the STAT target is 60 minutes
    page.wait_for_function("cell => cell.classList.contains('overdue')", arg=clock.element_handle())
    assert "overdue" not in rad1.row("ACC-205").locator("[data-clock]").get_attribute("class")
    reset_studies(server)


def busy_reading_room(server):
    """Some claims, assignments and priorities, for the screenshots."""
    rad2 = as_user(server, "rad2")
    rad2.post(server.url(f"/pacs/api/studies/{server.uids['ACC-202']}/claim")).raise_for_status()
    rad2.post(server.url(f"/pacs/api/studies/{server.uids['ACC-203']}/assign"), json={"assignee": "rad2"})
    server.post(f"/pacs/api/studies/{server.uids['ACC-204']}/priority", json={"priority": "stat"})
    server.post(f"/pacs/api/studies/{server.uids['ACC-205']}/priority", json={"priority": "urgent"})


def test_technologist_sets_priority_but_cannot_claim(browser, server):
    tech = Reader(browser, server, "tech")
    try:
        page = tech.page
        assert page.locator('[data-action="claim"], [data-action="assign"]').count() == 0
        priority = tech.row("ACC-203").locator('select[data-action="priority"]')
        assert priority.is_disabled()  # a priority changes in two steps: never by a stray click or key
        tech.row("ACC-203").locator("[data-edit-priority]").click()
        priority.select_option("urgent")
        server.wait_for(
            lambda: server.indexed_study(server.uids["ACC-203"])["priority"] == "urgent",
            timeout=REFRESH_SECONDS,
            what="the priority set in the page",
        )
    finally:
        tech.close()
        reset_studies(server)


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET], ids=["desktop", "tablet"])
def test_layout_without_horizontal_overflow(browser, server, viewport):
    busy_reading_room(server)
    reader = Reader(browser, server, "rad1", viewport)
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page = reader.page
        page.clock.install()
        size = f"{viewport['width']}x{viewport['height']}"
        for name, path in [
            ("worklist", "/pacs/"),
            ("study", f"/pacs/studies/{server.uids['ACC-200']}"),
            ("dashboard", "/pacs/dashboard"),
        ]:
            page.goto(server.url(path))
            page.clock.fast_forward("02:00:00")  # STAT and urgent studies are overdue by then
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} at {size} is {overflow}px too wide"
    finally:
        reader.close()
        reset_studies(server)
