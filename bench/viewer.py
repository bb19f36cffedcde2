"""Viewer bench: how soon the bundled OHIF shows the first image of a CT, what
it moves over the network, and what the PACS costs the frames it fetches.

What it measures, in one run (loopback only):
  (1) a --slices CT, 512x512 16-bit uncompressed (one phantom pixel buffer
      from tests/dicomgen.py shared by every slice), stored with dcmtk's
      storescu into a PACS started with the production StableAge and log
      level, and opened in Debian's headless chromium (Playwright) at
      /pacs/viewer/viewer?StudyInstanceUIDs=<uid> by a radiologist whose
      session cookie (POST /pacs/api/auth/login) is put into the context:
        first open  the first navigation after Orthanc started: the plugin
                    rewrites and gzips OHIF's files on first use, then keeps
                    them in memory (once per Orthanc start, not per user)
        cold        chromium with a new profile (empty disk cache), --rounds
                    times
        warm        a reload in that profile, right after its cold open
      Time from just before page.goto/reload to the first image:
        image       when OHIF ran console.timeEnd('studyToFirstImage') (the
                    CDP event's own timestamp), split into
                    boot          until OHIF asked for the study (its app
                                  fetched, compiled and started), of which
                                  "scripts" is until DOMContentLoaded (the
                                  main bundle fetched, compiled and run)
                    study->image  OHIF's own figure: QIDO, series, metadata,
                                  the first frame, decoding and drawing
        canvas      when a screenshot of the viewport canvas first showed a
                    non-uniform image (polled; a screenshot takes 0.1-0.8 s
                    here, so this is a loose upper bound that confirms the
                    image is really on screen)
      Bytes moved: the on-the-wire size of every response (CDP
      Network.loadingFinished encodedDataLength; 0 when served from the
      browser's cache), as the viewer app (/pacs/viewer/) and DICOM data
      (QIDO, metadata, frames), until the first image and in all (once every
      frame has arrived, or the network has been quiet for QUIET_SECONDS).
      Target: cold first image <= 2 s.
  (2) WADO-RS frames/s through the PACS (its guard decides every request;
      the session cookie, as a browser sends it) vs plain Orthanc (the same
      orthanc.json without the Python plugin) holding the same files:
      --threads client threads, each with its own keep-alive session, GET
      .../instances/<sop>/frames/1 with OHIF's Accept header over every
      instance; each server gets --seconds per round in two halves, A B B A,
      the first server alternating by round, --rounds rounds. Reported per
      round: frames/s, MB/s, p50/p95 latency and Orthanc's CPU ms per frame
      (from /proc: what the server itself spent, which a client competing for
      the same cores cannot hide). Target: PACS/plain >= 0.9 (the median of
      the per-round ratios).

Client, browser and servers share the machine's cores: the load average is
printed and a busy machine inflates every figure.

Run from the repository root: .venv/bin/python bench/viewer.py [--slices N]
"""

import argparse
import io
import os
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import requests

# bench/ is sys.path[0]; importing common puts the repository root and tests/ on it.
from common import FRAME_ACCEPT, choose_root, percentile, process_cpu_seconds, production_overrides, write_ct_study
from conftest import CHROMIUM, CHROMIUM_ARGS
from pacs_server import PacsServer
from PIL import Image
from playwright.sync_api import sync_playwright
from test_viewer_ui import CANVAS, FIRST_IMAGE, VIEWPORT, is_real_image

from plugin.auth.guard import SESSION_COOKIE

SIZE = 512
FIRST_IMAGE_TARGET = 2.0
RATIO_TARGET = 0.9
READER = ("bench-viewer", "Viewer-bench-pw-2026!")
IMAGE_TIMEOUT = 60
QUIET_SECONDS = 2.0
SETTLE_LIMIT = 60
REQUEST_TIMEOUT = 30
WARMUP_SECONDS = 1.0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=100, help="CT slices (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="cold/warm opens and frame rounds (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        default=6,
        help="frame client threads (default 6, the connections a browser opens to one host)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per server per frame round (default 5)")
    args = parser.parse_args(argv)
    if not (1 <= args.slices <= 500 and 1 <= args.rounds <= 10 and 1 <= args.threads <= 32 and 1 <= args.seconds <= 30):
        parser.error("bounds: --slices 1-500, --rounds 1-10, --threads 1-32, --seconds 1-30")
    return args


# --- data and servers ------------------------------------------------------------


def wait_complete(server, study, timeout=120):
    """Until Orthanc lists every instance (and, on the PACS, the index has the study)."""
    if server.plugin:
        server.wait_indexed(study.study_uid, instances=len(study.sop_uids), timeout=timeout)
        return

    def complete():
        found = server.post("/tools/lookup", data=study.study_uid).json()
        return found and server.get(f"/studies/{found[0]['ID']}/statistics").json()["CountInstances"] == len(
            study.sop_uids
        )

    server.wait_for(complete, timeout, what="every instance in plain Orthanc")


def reader_cookie(pacs):
    """A radiologist logged in through the login API: the pacs_session cookie's value."""
    pacs.post(
        "/pacs/api/users", json={"username": READER[0], "password": READER[1], "role": "radiologist"}
    ).raise_for_status()
    session = requests.Session()
    pacs.login(*READER, session=session).raise_for_status()
    return session.cookies[SESSION_COOKIE]


# --- (1) the viewer in chromium ------------------------------------------------------


@dataclass
class Opening:
    label: str
    image: float  # s from navigation to OHIF's first-image mark
    canvas: float  # s from navigation to a screenshot showing the image
    scripts: float  # s from navigation to DOMContentLoaded: OHIF's main bundle fetched, compiled and run
    boot: float  # s from navigation until OHIF asks for the study (its app loaded and started)
    study_to_image: float  # s OHIF itself counts from asking for the study to the first image
    app_bytes: int
    dicom_bytes_first: int
    dicom_bytes: int
    requests: int
    frames: int


class PageRecorder:
    """One page's CDP events: responses on the wire and OHIF's first-image mark, with wall times."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.loadingFinished", self._finished)
        self.cdp.on("Runtime.consoleAPICalled", self._console)
        self.cdp.send("Network.enable")
        self.cdp.send("Runtime.enable")
        self.reset()

    def reset(self):
        self.urls = {}
        self.done = []  # (wall time, url, bytes)
        self.marks = {}  # OHIF's label -> (wall time, its own milliseconds)
        self.clock_offset = None  # CDP MonotonicTime -> wall time

    def _sent(self, event):
        self.urls[event["requestId"]] = event["request"]["url"]
        if self.clock_offset is None:
            self.clock_offset = event["wallTime"] - event["timestamp"]

    def _finished(self, event):
        url = self.urls.get(event["requestId"])
        if url is not None and self.clock_offset is not None:
            self.done.append((event["timestamp"] + self.clock_offset, url, int(event["encodedDataLength"])))

    def _console(self, event):
        """OHIF's console.timeEnd marks, "label: 123.4 ms": the first of each label is kept."""
        if event["type"] != "timeEnd" or not event.get("args"):
            return
        label, _, value = str(event["args"][0].get("value", "")).partition(": ")
        if label not in self.marks and value.endswith(" ms"):
            self.marks[label] = (event["timestamp"] / 1000, float(value[:-3]))

    def frames(self):
        return sum(1 for _, url, _ in self.done if "/frames/" in url)


def is_dicom(url):
    return "/dicom-web/" in url or "/wado" in url


def canvas_first_image(page, started):
    """Seconds from ``started`` until a screenshot of the canvas shows a real image."""
    page.wait_for_selector(CANVAS, timeout=IMAGE_TIMEOUT * 1000)
    while time.time() - started < IMAGE_TIMEOUT:
        shot = page.locator(CANVAS).first.screenshot()
        if is_real_image(Image.open(io.BytesIO(shot)).convert("L"))[0]:
            return time.time() - started
        page.wait_for_timeout(20)
    raise RuntimeError(f"no image on the canvas within {IMAGE_TIMEOUT} s")


def settle(page, recorder, frames):
    """Until every frame has arrived, or nothing has finished for QUIET_SECONDS."""
    deadline = time.time() + SETTLE_LIMIT
    while time.time() < deadline and recorder.frames() < frames:
        last = recorder.done[-1][0] if recorder.done else time.time()
        if time.time() - last > QUIET_SECONDS:
            break
        page.wait_for_timeout(100)


def open_viewer(label, page, recorder, navigate, frames):
    recorder.reset()
    started = time.time()
    navigate()
    canvas = canvas_first_image(page, started)
    settle(page, recorder, frames)
    if FIRST_IMAGE not in recorder.marks:
        raise RuntimeError(f"{label}: OHIF never logged {FIRST_IMAGE}")
    first, study_ms = recorder.marks[FIRST_IMAGE]
    scripts = page.evaluate("() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd") / 1000
    done = recorder.done
    return Opening(
        label,
        first - started,
        canvas,
        scripts,
        first - started - study_ms / 1000,
        study_ms / 1000,
        app_bytes=sum(n for _, url, n in done if "/pacs/viewer/" in url),
        dicom_bytes_first=sum(n for at, url, n in done if is_dicom(url) and at <= first),
        dicom_bytes=sum(n for _, url, n in done if is_dicom(url)),
        requests=len(done),
        frames=recorder.frames(),
    )


def fresh_profile(playwright, profile_dir, pacs, cookie):
    """Chromium with a new, empty profile on disk, signed in with ``cookie``.

    A profile rather than Playwright's default incognito context: incognito
    keeps its HTTP cache in memory, and there a 100-slice CT's frames pushed
    OHIF's own bundles out of it, so a "warm" reload fetched them again; a
    person's browser caches on disk."""
    context = playwright.chromium.launch_persistent_context(
        profile_dir, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport=VIEWPORT
    )
    context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": pacs.url("/")}])
    page = context.pages[0] if context.pages else context.new_page()
    return context, page, PageRecorder(page)


def run_viewer(pacs, cookie, study, rounds, profiles):
    url = pacs.url(f"/pacs/viewer/viewer?StudyInstanceUIDs={study.study_uid}")
    frames = len(study.sop_uids)
    openings = []
    with sync_playwright() as playwright:
        for number in range(rounds + 1):
            context, page, recorder = fresh_profile(playwright, profiles / str(number), pacs, cookie)
            try:
                label = "first open" if number == 0 else f"cold {number}"
                openings.append(
                    open_viewer(label, page, recorder, lambda page=page: page.goto(url, wait_until="commit"), frames)
                )
                if number:
                    openings.append(
                        open_viewer(
                            f"warm {number}", page, recorder, lambda page=page: page.reload(wait_until="commit"), frames
                        )
                    )
            finally:
                context.close()
    return openings


# --- (2) frames per second -----------------------------------------------------------


@dataclass
class Tally:
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    latencies: list = field(default_factory=list)

    @classmethod
    def joined(cls, tallies):
        return cls(
            sum(t.frames for t in tallies),
            sum(t.bytes for t in tallies),
            sum(t.seconds for t in tallies),
            sum(t.server_cpu for t in tallies),
            [x for t in tallies for x in t.latencies],
        )

    def rate(self):
        return self.frames / self.seconds

    def percentile(self, fraction):
        return percentile(self.latencies, fraction)


@dataclass
class Target:
    label: str
    server: PacsServer
    sessions: list
    tallies: list = field(default_factory=list)


def frame_sessions(threads, cookies):
    sessions = []
    for _ in range(threads):
        session = requests.Session()
        session.headers["Accept"] = FRAME_ACCEPT
        session.cookies.update(cookies)
        sessions.append(session)
    return sessions


def fetch_frames(target, study, seconds):
    """Every client thread GETs frames for ``seconds``, cycling over the slices from its own start."""
    urls = [target.server.url(study.frame_path(uid)) for uid in study.sop_uids]
    results, errors = [], []
    start = threading.Barrier(len(target.sessions) + 1)

    def client(index, session):
        position = index * len(urls) // len(target.sessions)
        count = size = 0
        latencies = []
        try:
            start.wait(REQUEST_TIMEOUT)
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline and not errors:
                before = time.perf_counter()
                answer = session.get(urls[position % len(urls)], timeout=REQUEST_TIMEOUT)
                if answer.status_code != 200 or len(answer.content) < SIZE * SIZE * 2:
                    raise RuntimeError(f"{target.label}: {answer.status_code}, {len(answer.content)} bytes")
                latencies.append(time.perf_counter() - before)
                count, size, position = count + 1, size + len(answer.content), position + 1
            results.append((count, size, latencies))
        except Exception as error:  # noqa: BLE001  reported below
            errors.append(error)

    workers = [threading.Thread(target=client, args=(i, s), daemon=True) for i, s in enumerate(target.sessions)]
    for worker in workers:
        worker.start()
    cpu_before = process_cpu_seconds(target.server.process.pid)
    start.wait(REQUEST_TIMEOUT)
    began = time.perf_counter()
    for worker in workers:
        worker.join(seconds + 2 * REQUEST_TIMEOUT)
    elapsed = time.perf_counter() - began
    if errors or len(results) != len(workers):
        raise RuntimeError(f"frame clients failed: {errors[:1] or 'a client hung'}")
    return Tally(
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        elapsed,
        process_cpu_seconds(target.server.process.pid) - cpu_before,
        [x for r in results for x in r[2]],
    )


def run_frames(targets, study, rounds, seconds):
    """Each round is A B B A (halves of --seconds), the first order alternating by round,
    so that load drifting on the shared machine hits both servers alike."""
    for target in targets:
        fetch_frames(target, study, WARMUP_SECONDS)  # connections and Orthanc's caches, not counted
    for number in range(rounds):
        order = targets if number % 2 == 0 else targets[::-1]
        halves = {target.label: [] for target in targets}
        for target in order + order[::-1]:
            halves[target.label].append(fetch_frames(target, study, seconds / 2))
        for target in targets:
            target.tallies.append(Tally.joined(halves[target.label]))


# --- report --------------------------------------------------------------------------


def megabytes(count):
    return count / 1e6


def verdict(met):
    return "met" if met else "MISSED"


def print_openings(openings):
    print("\n(1) OHIF, navigation -> first image of the CT = boot + study->image")
    print(
        f"  {'open':<11} {'image':>7} {'canvas':>7} {'scripts':>7} {'boot':>7} {'study->image':>12} {'app MB':>7} "
        f"{'DICOM MB first/all':>18} {'requests':>8} {'frames':>6}"
    )
    for o in openings:
        print(
            f"  {o.label:<11} {o.image:>6.2f}s {o.canvas:>6.2f}s {o.scripts:>6.2f}s {o.boot:>6.2f}s "
            f"{o.study_to_image:>11.2f}s "
            f"{megabytes(o.app_bytes):>7.2f} {megabytes(o.dicom_bytes_first):>8.2f}/{megabytes(o.dicom_bytes):<9.2f} "
            f"{o.requests:>8} {o.frames:>6}"
        )


def print_frames(targets, threads):
    print(f"\n(2) WADO-RS frames, {threads} client threads, OHIF's Accept header")
    print(f"  {'round':<6} {'server':<22} {'frames/s':>9} {'MB/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'CPU ms/frame':>12}")
    for number in range(len(targets[0].tallies)):
        for target in targets:
            tally = target.tallies[number]
            print(
                f"  {number + 1:<6} {target.label:<22} {tally.rate():>9.1f} "
                f"{megabytes(tally.bytes) / tally.seconds:>7.1f} {tally.percentile(0.5) * 1000:>7.1f} "
                f"{tally.percentile(0.95) * 1000:>7.1f} {tally.server_cpu * 1000 / tally.frames:>12.2f}"
            )


def summary(openings, targets):
    cold = statistics.median(o.image for o in openings if o.label.startswith("cold"))
    warm = statistics.median(o.image for o in openings if o.label.startswith("warm"))
    pacs, plain = (statistics.median(t.rate() for t in target.tallies) for target in targets)
    ratios = [a.rate() / b.rate() for a, b in zip(targets[0].tallies, targets[1].tallies)]
    ratio = statistics.median(ratios)
    print("\nSummary")
    print(
        f"  first image, cold browser (median):  {cold:.2f} s   target <= {FIRST_IMAGE_TARGET:.1f} s: "
        f"{verdict(cold <= FIRST_IMAGE_TARGET)}"
    )
    print(f"  first image, warm reload (median):   {warm:.2f} s")
    print(f"  first image, first open after start: {openings[0].image:.2f} s")
    print(f"  frames/s (median): PACS {pacs:.1f}, plain Orthanc {plain:.1f}")
    print(
        f"  PACS/plain per round {', '.join(f'{r:.3f}' for r in ratios)}, median {ratio:.3f}   "
        f"target >= {RATIO_TARGET}: {verdict(ratio >= RATIO_TARGET)}"
    )


def main(argv):
    args = parse_args(argv)
    began = time.monotonic()
    # Twice the pixels: the PACS and plain Orthanc each hold a copy of the study (and the
    # source files sit beside them), so /dev/shm needs 4x the pixels free.
    root, _why = choose_root(None, 2 * args.slices * SIZE * SIZE * 2, "viewer")
    servers = []
    try:
        study = write_ct_study(root / "dicom", args.slices, SIZE, "BENCH VIEWER CT")
        pacs = PacsServer(root / "pacs", overrides=production_overrides()).start()
        servers.append(pacs)
        plain = PacsServer(root / "plain", overrides=production_overrides(), plugin=False).start()
        servers.append(plain)
        for server in servers:
            server.storescu(study.paths)
        for server in servers:
            wait_complete(server, study)
        cookie = reader_cookie(pacs)
        print(
            f"Viewer bench: {args.slices}-slice CT {SIZE}x{SIZE} ({megabytes(args.slices * SIZE * SIZE * 2):.1f} MB "
            f"of pixels), data in {root}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        )
        openings = run_viewer(pacs, cookie, study, args.rounds, root / "profiles")
        print_openings(openings)
        targets = [
            Target("PACS (guard, cookie)", pacs, frame_sessions(args.threads, {SESSION_COOKIE: cookie})),
            Target("plain Orthanc", plain, frame_sessions(args.threads, {})),
        ]
        run_frames(targets, study, args.rounds, args.seconds)
        print_frames(targets, args.threads)
        summary(openings, targets)
        print(f"\n{time.monotonic() - began:.0f} s in all, load {os.getloadavg()[0]:.2f}")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
