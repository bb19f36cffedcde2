"""Reports bench: draft saves and signatures while images arrive.

What it measures, in one run:
  (1) draft save (PUT /pacs/api/studies/{uid}/report): --clients radiologists
      (20), each a thread with its own account, session and study, save their
      draft every --interval seconds (2) for --seconds (30). The first save
      creates the report and claims the study; each later one sends the five
      sections (a few kB, growing) with the version the previous save
      returned. Target: p95 <= 20 ms.
  (2) signing (POST .../report/finalize): when its saving time is up, each
      client signs its report; the request renders the PDF and stores the
      Encapsulated PDF into the study before it answers. Client k stops
      saving k x --sign-spacing seconds (0.5) after the first, so each
      signature comes while the other clients still save, as in a reading
      room, rather than all at one instant. Target: p95 <= 300 ms.
  Meanwhile a storescu loop keeps storing new CT studies (--store-images
  512x512 images per association, new UIDs each time), so Orthanc, the
  ingest worker and the study index write while reports are saved.

How: a fresh PACS on a data folder on /dev/shm when it has room, with the
production StableAge, disk guard and log level (bench/ingest.py's choices);
one small CT study per radiologist is stored and indexed first; the accounts
are made through the admin API and each client logs in once (a bearer token:
the browser's cookie and CSRF header go through the same guard). Times are
the client's wall time for the whole answer over loopback HTTP. A save or
signature answered with anything but 200 counts as an error. Before the load
starts, one client times GET /pacs/api/me (the guard, a plugin route, one
user lookup) as the HTTP floor. The load average is printed: other work on
the same cores inflates p95.

Run from the repository root: .venv/bin/python bench/reports.py [--clients N]
"""

import argparse
import multiprocessing
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import dicomgen
import requests

# bench/ is sys.path[0]; importing common puts the repository root and tests/ on it.
from common import choose_root, load_averages, percentile_nearest, pixel_buffer, production_overrides
from ingest import ROWS, storescu, write_study
from pacs_server import PacsServer

SAVE_TARGET_MS = 20.0
FINALIZE_TARGET_MS = 300.0
PASSWORD = "Bench-reports-2026!"
HTTP_TIMEOUT_SECONDS = 30
BYTES_PER_STORED_IMAGE = 600 * 1024
PARAGRAPH = (
    "Liver: normal size and echotexture, no focal lesion. Gallbladder: no stones. "
    "Kidneys: normal size, no hydronephrosis. "
)


@dataclass
class Timings:
    """(start, milliseconds) of successful requests, and the failures' statuses."""

    samples: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, started, answer):
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            if answer.status_code == 200:
                self.samples.append((started, elapsed))
            else:
                self.errors.append(f"{answer.status_code} {answer.text[:120]}")

    def ms(self, since=float("-inf"), until=float("inf")):
        return [ms for started, ms in self.samples if since <= started < until]


# --- the PACS and its data ---------------------------------------------------------


def start_server(root):
    server = PacsServer(root / "pacs", overrides=production_overrides()).start()
    print(f"PACS on {server.url('')} (data in {root})", flush=True)
    return server


def reading_studies(server, folder, count):
    """One small CT study per radiologist, stored and indexed; their UIDs."""
    specs = [dicomgen.StudySpec(patient_id=f"BENCH-{n:03d}", description="CT ABDOMEN") for n in range(count)]
    paths = []
    for number, spec in enumerate(specs):
        paths += dicomgen.write(dicomgen.ct_series(spec, slices=2), folder / f"read-{number}")
    server.storescu(paths)
    for spec in specs:
        server.wait_indexed(spec.study_uid, instances=2, timeout=120)
    return [spec.study_uid for spec in specs]


def radiologists(server, count):
    """Accounts bench-rad-NN, each with a logged-in session."""
    sessions = []
    for number in range(count):
        username = f"bench-rad-{number:02d}"
        server.post(
            "/pacs/api/users",
            json={
                "username": username,
                "password": PASSWORD,
                "role": "radiologist",
                "display_name": f"Dr Bench {number}",
            },
        ).raise_for_status()
        session = requests.Session()
        token = server.login(username, PASSWORD).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        sessions.append(session)
    return sessions


# --- load: images arriving -------------------------------------------------------------


class Storer(multiprocessing.Process):
    """New CT studies over stock storescu, one association each, until
    stopped. A process of its own: writing DICOM files is Python work that
    would otherwise hold up the clients' threads and inflate their timings."""

    def __init__(self, server, folder, images):
        super().__init__(daemon=True)
        self.server, self.folder, self.images = server, folder, images
        self.stop_event = multiprocessing.Event()
        self.stored = multiprocessing.Value("i", 0)
        self.milliseconds = multiprocessing.Value("i", 0)  # storescu's wall time

    def run(self):
        pixels = pixel_buffer(ROWS)
        number = 0
        while not self.stop_event.is_set():
            _uid, paths = write_study(self.folder / f"store-{number}", self.images, pixels)
            seconds, _ = storescu(self.server, paths)
            self.stored.value += len(paths)
            self.milliseconds.value += int(seconds * 1000)
            for path in paths:
                path.unlink()
            number += 1

    def rate(self):
        return self.stored.value * 1000 / self.milliseconds.value if self.milliseconds.value else 0.0


# --- the radiologists ---------------------------------------------------------------


def report_text(round_number):
    """The five sections of a draft that grows with every save."""
    return {
        "clinical_information": "Abdominal pain, fever.",
        "technique": "CT abdomen with contrast.",
        "comparison": "None.",
        "findings": PARAGRAPH * (1 + round_number),
        "impression": f"No acute abnormality (draft {round_number}).",
    }


def radiologist(server, session, uid, start_at, interval, stop_at, saves, signatures):
    url = server.url(f"/pacs/api/studies/{uid}/report")
    version = 0
    next_at = start_at
    round_number = 0
    while next_at < stop_at:
        time.sleep(max(0.0, next_at - time.monotonic()))
        started = time.perf_counter()
        answer = session.put(url, json=dict(report_text(round_number), version=version), timeout=HTTP_TIMEOUT_SECONDS)
        saves.add(started, answer)
        if answer.status_code == 200:
            version = answer.json()["version"]
        round_number += 1
        next_at += interval
    started = time.perf_counter()
    signatures.add(started, session.post(url + "/finalize", json={"version": version}, timeout=HTTP_TIMEOUT_SECONDS))


def http_floor(server, session, count=100):
    """Milliseconds of sequential GET /pacs/api/me on an idle server."""
    timings = Timings()
    for _ in range(count):
        started = time.perf_counter()
        timings.add(started, session.get(server.url("/pacs/api/me"), timeout=HTTP_TIMEOUT_SECONDS))
    return timings


def run_clients(server, sessions, uids, args):
    """Client k starts k/N of an interval after the first and signs k x
    sign_spacing seconds after the first one signs."""
    saves, signatures = Timings(), Timings()
    start = time.monotonic() + 0.5
    count = len(sessions)
    threads = [
        threading.Thread(
            target=radiologist,
            daemon=True,
            args=(
                server,
                session,
                uid,
                start + number * args.interval / count,
                args.interval,
                start + args.seconds + number * args.sign_spacing,
                saves,
                signatures,
            ),
        )
        for number, (session, uid) in enumerate(zip(sessions, uids))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.seconds + count * args.sign_spacing + 4 * HTTP_TIMEOUT_SECONDS)
    return saves, signatures


# --- output ------------------------------------------------------------------------


def print_line(name, values, suffix=""):
    if values:
        print(
            f"{name:<34} n={len(values):<4} p50 {statistics.median(values):7.1f} ms   "
            f"p95 {percentile_nearest(values, 0.95):7.1f} ms   max {max(values):7.1f} ms{suffix}"
        )
    else:
        print(f"{name:<34} n=0")


def print_verdict(name, timings, target_ms):
    """The line of all requests with the target; errors listed."""
    values = timings.ms()
    ok = bool(values) and percentile_nearest(values, 0.95) <= target_ms and not timings.errors
    print_line(
        name, values, f"   errors {len(timings.errors)}   target p95 <= {target_ms:.0f} ms: {'met' if ok else 'MISSED'}"
    )
    for error in timings.errors[:5]:
        print(f"    error: {error}")
    return ok


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="radiologists saving at once")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between a client's saves")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the clients save")
    parser.add_argument("--sign-spacing", type=float, default=0.5, help="seconds between two clients' signatures")
    parser.add_argument(
        "--store-images", type=int, default=50, help="images per storescu association (0: no images stored, a baseline)"
    )
    parser.add_argument("--data-dir", help="parent folder for the server's data (default: /dev/shm if it has room)")
    args = parser.parse_args(argv)
    if not (
        1 <= args.clients <= 100
        and 0.2 <= args.interval <= 60
        and 1 <= args.seconds <= 180
        and 0 <= args.sign_spacing <= 5
        and 0 <= args.store_images <= 500
    ):
        parser.error(
            "keep to 1-100 clients, 0.2-60 s interval, 1-180 s, 0-5 s between signatures, 0-500 images per association"
        )
    return args


def main(argv):
    args = parse_args(argv)
    root, why = choose_root(args.data_dir, 4 * args.store_images * BYTES_PER_STORED_IMAGE, "reports")
    print(
        f"reports bench: {args.clients} radiologists saving every {args.interval:g} s for {args.seconds:g} s, "
        f"then signing {args.sign_spacing:g} s apart; storescu storing {args.store_images}-image CT studies "
        f"meanwhile (data: {why})"
    )
    print(f"load average before: {load_averages()}", flush=True)
    server = start_server(root)
    try:
        uids = reading_studies(server, root / "dicom", args.clients)
        sessions = radiologists(server, args.clients)
        floor = http_floor(server, sessions[0])
        storer = Storer(server, root / "dicom", args.store_images)
        if args.store_images:
            storer.start()
            time.sleep(1.0)  # images are flowing before the first save
        saves, signatures = run_clients(server, sessions, uids, args)
        storer.stop_event.set()
        if args.store_images:
            storer.join(HTTP_TIMEOUT_SECONDS * 4)
            if storer.exitcode != 0:
                print(f"the storer failed (exit code {storer.exitcode}): the images stored are counted")
    finally:
        server.stop()
        shutil.rmtree(root)
    print(f"\nimages stored meanwhile: {storer.stored.value} ({storer.rate():.0f} images/s while storescu ran)")
    print_line("HTTP floor (GET /pacs/api/me, idle)", floor.ms())
    saves_ok = print_verdict("draft save (PUT)", saves, SAVE_TARGET_MS)
    first_signature = min((started for started, _ in signatures.samples), default=float("inf"))
    print_line("  before the first signature", saves.ms(until=first_signature))
    print_line("  while colleagues sign", saves.ms(since=first_signature))
    signatures_ok = print_verdict("finalize (PDF + DICOM store)", signatures, FINALIZE_TARGET_MS)
    print(f"load average after: {load_averages()}")
    return 0 if saves_ok and signatures_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
