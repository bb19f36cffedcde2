"""Guard bench: what the guard (the HTTP filter that decides every request,
image frames included) costs a viewer, and whether a bcrypt login slows
everyone else down.

What it measures, in one run:
  (1) in-process, no Orthanc: the guard's decision for one DICOMweb frame
      request, `Guard.check` and `App.allows` (what the HTTP filter calls),
      100 000 times each. The guard and its accounts, API keys, scope and
      audit log are built as plugin/app.py builds them, over a temporary
      SQLite database (migrated; one radiologist, logged in); `App.allows`
      runs on a stand-in App holding only that guard. With the session
      cookie and with an API key; microseconds per call, p50 and mean. This
      leaves out what the Python plugin costs per call (a Python thread
      state, the GIL, the headers as a dict): (2) includes it.
  (2) DICOMweb frames per second, guard on and off: the same CT study (same
      UIDs, stored with dcmtk's stock storescu) in
        off:        plain Orthanc, the same orthanc.json without the Python
                    plugin (there is deliberately no switch that turns
                    authentication off in the product);
        on-cookie:  the PACS (Python plugin, HTTP filter), logged in through
                    POST /pacs/api/auth/login and sending the pacs_session
                    cookie, as a browser does;
        on-apikey:  the PACS, the same user's API key as a Bearer token.
      --threads client threads, each with its own keep-alive requests.Session,
      GET /dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1
      with OHIF's Accept header (multipart/related;
      type=application/octet-stream; transfer-syntax=*), cycling over the
      slices. Each configuration gets --seconds per round, in slices of 2 s
      interleaved (A B C C B A ...; the first order alternates by round) so
      that load from elsewhere on the machine hits every configuration
      alike; --rounds rounds. Reported: median over rounds of frames/s,
      latency p50/p95, and Orthanc's CPU time per frame (from /proc: the
      server's own cost, which a busy shared client cannot hide). The
      ratio on/off is the median over the paired slices (each on-slice
      against the off-slice of the same position, seconds apart), which
      outside load disturbs far less than a ratio of two medians (also
      shown). Target: on/off >= 0.9.
  (3) a login under load, on the PACS with BcryptCost 12: --browsers
      clients, each its own user with its own session cookie, "browse" in a
      loop (GET /pacs/api/me, a QIDO /dicom-web/studies?StudyInstanceUID=,
      the series' metadata, a frame; --think-ms between requests). Each round
      has a baseline window of --seconds, then one more client logs in
      --logins times in a row (POST /pacs/api/auth/login, a fresh
      connection each). Reported: login p50/p95, and the browsers' p95
      latency in the baseline windows vs the login windows (by request
      start), per kind of request and overall, with Orthanc's CPU in each
      (bcrypt included). Target: p95 during / p95 baseline <= 2, taken as
      the median over rounds of each login window against the baseline
      window just before it (the pooled ratio is shown too).
      The default think time keeps the baseline under one core of Orthanc
      CPU: a login's bcrypt takes a whole core for its ~0.25 s (the Hasher
      runs one at a time), so on two cores a browsing load that already
      needs more than one core must queue behind it whatever the code does
      (with --think-ms 250 the baseline took ~1.1 cores and p95 rose ~4x).

Client and server share the machine (loopback only), so a client-bound
measurement understates a server-side difference: the CPU-per-frame column
says what the server alone spent.

Run from the repository root: .venv/bin/python bench/guard.py [--seconds S]
"""

import argparse
import itertools
import os
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import requests

# bench/ is sys.path[0]; importing common puts the repository root and tests/ on it.
from common import (
    FRAME_ACCEPT,
    choose_root,
    kept_on_failure,
    percentile,
    process_cpu_seconds,
    production_overrides,
    verdict,
    write_ct_study,
)
from pacs_server import PacsServer

from plugin import db, launcher, migrations
from plugin.app import App
from plugin.audit import AuditLog
from plugin.auth.accounts import Accounts
from plugin.auth.apikeys import ApiKeys
from plugin.auth.guard import SESSION_COOKIE, Guard
from plugin.auth.passwords import Hasher
from plugin.auth.scope import ReferrerScope
from plugin.auth.tokens import TokenCodec, load_or_create_secret
from plugin.config import Settings
from plugin.http import decode_query
from plugin.permissions import permissions_of
from plugin.route_table import TABLE

RATIO_TARGET = 0.9
P95_RISE_TARGET = 2.0
BCRYPT_COST = 12
MICRO_CALLS = 100_000
REQUEST_TIMEOUT = 30
WARMUP_SECONDS = 1.0
SLICE_SECONDS = 2.0
SETTLE_SECONDS = 1.0
ROLE = "radiologist"
READER = ("bench-reader", "Frames-Reader-pw-4711")
LOGIN_USER = ("bench-login", "Login-Storm-pw-9021")
BROWSER_PASSWORD = "Browsing-Client-pw-3358"


# --- servers -----------------------------------------------------------------


def own_cpu_seconds():
    times = os.times()
    return times.user + times.system


# --- data ----------------------------------------------------------------------


def store(server, study):
    """storescu the study, then wait until Orthanc lists every instance."""
    server.storescu(study.paths)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = server.post("/tools/lookup", data=study.study_uid).json()
        if found:
            count = server.get(f"/studies/{found[0]['ID']}/statistics").json()["CountInstances"]
            if count == len(study.sop_uids):
                return
        time.sleep(0.1)
    raise RuntimeError(f"study not complete on port {server.http_port}\n{server.log_tail()}")


# --- accounts on the PACS ------------------------------------------------------


def create_user(pacs, username, password):
    answer = pacs.post("/pacs/api/users", json={"username": username, "password": password, "role": ROLE})
    if answer.status_code != 201:
        raise RuntimeError(f"creating {username}: {answer.status_code} {answer.text[:300]}")
    return answer.json()["id"]


def login_cookie(pacs, username, password):
    """Log in as a browser does; returns the pacs_session cookie's value."""
    session = requests.Session()
    answer = pacs.login(username, password, session=session)
    if answer.status_code != 200:
        raise RuntimeError(f"login {username}: {answer.status_code} {answer.text[:300]}")
    token = session.cookies.get(SESSION_COOKIE)
    if not token:
        raise RuntimeError(f"login {username}: no {SESSION_COOKIE} cookie in {answer.headers}")
    return token


def create_api_key(pacs, user_id):
    answer = pacs.post("/pacs/api/apikeys", json={"name": "bench-guard", "user_id": user_id})
    if answer.status_code != 201:
        raise RuntimeError(f"creating an API key: {answer.status_code} {answer.text[:300]}")
    return answer.json()["key"]


# --- (1) the decision in-process ---------------------------------------------------


def per_call_microseconds(function, calls):
    """(p50, mean) microseconds of ``function()``."""
    clock = time.perf_counter_ns
    for _ in range(min(calls, 1000)):  # warm up: first token decode, caches
        function()
    samples = []
    append = samples.append
    started = clock()
    for _ in range(calls):
        before = clock()
        function()
        append(clock() - before)
    total = clock() - started
    samples.sort()
    return samples[len(samples) // 2] / 1000, total / calls / 1000


def build_guard(data_dir):
    """The guard and what it needs, built as plugin/app.py builds them, over a fresh
    SQLite database (the rest of the App needs Orthanc and has no part in a decision)."""
    config = launcher.build_config(data_dir, 8042, 4242, {"Pacs": {"BcryptCost": 4, "LogLevel": "WARNING"}})
    settings = Settings.from_configuration(config, environ={})  # as create_app reads them
    database = db.open_database(settings.database_url)
    migrations.migrate(database)
    audit = AuditLog(window_seconds=settings.image_audit_window)
    codec = TokenCodec(
        load_or_create_secret(settings.data_dir, settings.jwt_secret), int(settings.access_token_minutes * 60)
    )
    accounts = Accounts(Hasher(settings.bcrypt_cost), codec, audit, settings.session_hours, settings.idle_hours)
    apikeys = ApiKeys(audit, permissions_of)
    guard = Guard(accounts, apikeys, ReferrerScope(), audit, settings.trusted_proxies, table=TABLE)
    return database, accounts, apikeys, guard


def micro_bench(root, study, calls):
    """(label, p50 us, mean us) of the decision for one frame request, in this process."""
    data_dir = root / "micro"
    data_dir.mkdir()
    database, accounts, apikeys, guard = build_guard(data_dir)
    user = accounts.create_user(READER[0], READER[1], ROLE)
    token = accounts.login(READER[0], READER[1], "127.0.0.1")[0]
    key, _ = apikeys.create("bench", user.id, None, None, accounts.get_user(user.id))
    app = SimpleNamespace(guard=guard)  # App.allows uses nothing else of the App
    path = study.frame_path(study.sop_uids[0])
    browser = {
        "host": "127.0.0.1:8042",
        "accept": FRAME_ACCEPT,
        "connection": "keep-alive",
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) bench",
        "accept-encoding": "gzip, deflate",
        "cookie": f"other=1; {SESSION_COOKIE}={token}",
    }
    keyed = {k: v for k, v in browser.items() if k != "cookie"}
    keyed["authorization"] = f"Bearer {key}"
    for headers in (browser, keyed):
        decision = guard.check("GET", path, headers, {}, "127.0.0.1")
        if not decision.allowed or not App.allows(app, "GET", path, headers, {}, "127.0.0.1"):
            raise RuntimeError(f"in-process guard refused the frame: {decision}")
    results = []
    for label, headers in (("cookie", browser), ("apikey", keyed)):
        check = lambda h=headers: guard.check("GET", path, h, {}, "127.0.0.1")  # noqa: E731
        allows = lambda h=headers: App.allows(app, "GET", path, h, decode_query({}), "127.0.0.1")  # noqa: E731
        results.append((f"Guard.check, {label}", *per_call_microseconds(check, calls)))
        results.append((f"App.allows (the filter's call), {label}", *per_call_microseconds(allows, calls)))
    database.close()
    return results


# --- (2) frames per second -----------------------------------------------------------


@dataclass
class Config:
    key: str
    label: str
    server: PacsServer
    headers: dict = field(default_factory=dict)
    cookies: dict = field(default_factory=dict)
    sessions: list = field(default_factory=list)  # one keep-alive session per client thread
    positions: list = field(default_factory=list)  # next slice each client thread asks for
    rates: list = field(default_factory=list)  # frames/s, one per round
    slice_rates: list = field(default_factory=list)  # frames/s, one per slice (same order for every config)
    latencies: list = field(default_factory=list)
    cpu_ms: list = field(default_factory=list)  # Orthanc CPU ms per frame, one per round
    client_cpu: list = field(default_factory=list)


@dataclass
class Tally:
    frames: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    latencies: list = field(default_factory=list)

    def add(self, other):
        self.frames += other.frames
        self.seconds += other.seconds
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        self.latencies.extend(other.latencies)


def open_sessions(config, threads, slices):
    for index in range(threads):
        session = requests.Session()
        session.headers.update({"Accept": FRAME_ACCEPT, **config.headers})
        for name, value in config.cookies.items():
            session.cookies.set(name, value)
        config.sessions.append(session)
        config.positions.append(index * slices // threads)


def check_frame(answer, study, url):
    if answer.status_code != 200 or len(answer.content) < study.frame_bytes:
        raise RuntimeError(f"GET {url}: {answer.status_code}, {len(answer.content)} bytes: {answer.text[:200]!r}")


def measure_slice(config, study, seconds):
    """Every client thread of ``config`` GETs frames for ``seconds``; returns a Tally."""
    server = config.server
    urls = [server.url(study.frame_path(uid)) for uid in study.sop_uids]
    threads = len(config.sessions)
    barrier = threading.Barrier(threads + 1)
    results = [None] * threads
    errors = []
    start_at = [0.0]

    def worker(index):
        session = config.sessions[index]
        try:
            barrier.wait(REQUEST_TIMEOUT)
            deadline = start_at[0] + seconds
            latencies, last, position = [], start_at[0], config.positions[index]
            while not errors:
                before = time.perf_counter()
                if before >= deadline:
                    break
                url = urls[position % len(urls)]
                check_frame(session.get(url, timeout=REQUEST_TIMEOUT), study, url)
                last = time.perf_counter()
                latencies.append(last - before)
                position += 1
            config.positions[index] = position
            results[index] = (last, latencies)
        except Exception as error:  # noqa: BLE001  reported by the caller
            errors.append(error)
            barrier.abort()

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    cpu_before, client_before = process_cpu_seconds(server.process.pid), own_cpu_seconds()
    start_at[0] = time.perf_counter()  # set before the barrier lets the clients go
    try:
        barrier.wait(REQUEST_TIMEOUT)
    except threading.BrokenBarrierError:
        pass
    for thread in workers:
        thread.join(seconds + 2 * REQUEST_TIMEOUT)
    cpu_after, client_after = process_cpu_seconds(server.process.pid), own_cpu_seconds()
    if errors or any(r is None for r in results):
        raise RuntimeError(f"({config.key}) frame client failed: {errors[:1] or 'a thread hung'}")
    latencies = [x for r in results for x in r[1]]
    return Tally(
        len(latencies),
        max(r[0] for r in results) - start_at[0],
        cpu_after - cpu_before,
        client_after - client_before,
        latencies,
    )


def run_frames(configs, study, args):
    """Per round, each configuration gets --seconds in slices of SLICE_SECONDS, interleaved
    (A B C, C B A, ...), so a burst of load from elsewhere on the machine hits them alike."""
    slices = max(1, round(args.seconds / SLICE_SECONDS))
    slice_seconds = args.seconds / slices
    for config in configs:
        open_sessions(config, args.threads, len(study.sop_uids))
        measure_slice(config, study, WARMUP_SECONDS)  # connections, caches: one pass, not counted
    for number in range(1, args.rounds + 1):
        tallies = {config.key: Tally() for config in configs}
        order = configs if number % 2 else list(reversed(configs))
        for index in range(slices):
            for config in order if index % 2 == 0 else list(reversed(order)):
                tally = measure_slice(config, study, slice_seconds)
                config.slice_rates.append(tally.frames / tally.seconds)
                tallies[config.key].add(tally)
        load = os.getloadavg()[0]
        for config in configs:
            tally = tallies[config.key]
            rate = tally.frames / tally.seconds
            config.rates.append(rate)
            config.latencies.extend(tally.latencies)
            config.cpu_ms.append(1000 * tally.server_cpu / tally.frames)
            config.client_cpu.append(100 * tally.client_cpu / tally.seconds)
            print(
                f"round {number}  {config.key:<9} {config.label:<34} {rate:7.1f} frames/s  "
                f"p50 {1000 * percentile(tally.latencies, 0.5):5.1f} ms  "
                f"p95 {1000 * percentile(tally.latencies, 0.95):5.1f} ms  "
                f"Orthanc CPU {config.cpu_ms[-1]:5.2f} ms/frame  client CPU {config.client_cpu[-1]:3.0f}%  "
                f"(load avg {load:.1f})",
                flush=True,
            )
    for config in configs:
        for session in config.sessions:
            session.close()


# --- (3) a login under load --------------------------------------------------------


@dataclass
class Window:
    kind: str  # "baseline" | "login"
    start: float
    end: float
    server_cpu: float = 0.0


def browse_requests(pacs, study):
    """(kind, path) a browsing client cycles through."""
    middle = study.sop_uids[len(study.sop_uids) // 2]
    return [
        ("me", "/pacs/api/me", {}),
        ("qido", f"/dicom-web/studies?StudyInstanceUID={study.study_uid}", {"Accept": "application/dicom+json"}),
        (
            "metadata",
            f"/dicom-web/studies/{study.study_uid}/series/{study.series_uid}/metadata",
            {"Accept": "application/dicom+json"},
        ),
        ("frame", study.frame_path(middle), {"Accept": FRAME_ACCEPT}),
    ]


def browser(pacs, token, plan, offset, think, stop, hard_deadline, records, errors):
    session = requests.Session()
    session.cookies.set(SESSION_COOKIE, token)
    try:
        for number in itertools.count(offset):
            if stop.is_set() or time.monotonic() > hard_deadline:
                break
            kind, path, headers = plan[number % len(plan)]
            before = time.monotonic()
            answer = session.get(pacs.url(path), headers=headers, timeout=REQUEST_TIMEOUT)
            body = answer.content
            took = time.monotonic() - before
            if answer.status_code != 200 or not body:
                raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:200]!r}")
            records.append((kind, before, took))
            stop.wait(think)
    except Exception as error:  # noqa: BLE001  reported by the caller
        errors.append(error)
    finally:
        session.close()


def run_login_load(pacs, study, tokens, args):
    plan = browse_requests(pacs, study)
    records, errors, windows, logins = [], [], [], []
    stop = threading.Event()
    hard_deadline = time.monotonic() + args.rounds * (args.seconds + 60 + 5 * args.logins) + 60
    threads = [
        threading.Thread(
            target=browser,
            daemon=True,
            args=(pacs, token, plan, i, args.think_ms / 1000, stop, hard_deadline, records, errors),
        )
        for i, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    pid = pacs.process.pid
    try:
        time.sleep(2 * WARMUP_SECONDS)
        for number in range(1, args.rounds + 1):
            for kind in ("baseline", "login"):
                if errors:
                    raise RuntimeError(f"a browsing client failed: {errors[0]}")
                cpu, start = process_cpu_seconds(pid), time.monotonic()
                if kind == "baseline":
                    time.sleep(args.seconds)
                else:
                    for _ in range(args.logins):
                        before = time.monotonic()
                        answer = pacs.login(*LOGIN_USER)
                        logins.append(time.monotonic() - before)
                        if answer.status_code != 200:
                            raise RuntimeError(f"login under load: {answer.status_code} {answer.text[:200]}")
                end = time.monotonic()
                window = Window(kind, start, end, 100 * (process_cpu_seconds(pid) - cpu) / (end - start))
                windows.append(window)
                during = [r for r in records if start <= r[1] < end]
                extra = ""
                if kind == "login":
                    extra = f"  logins p50 {1000 * percentile(logins[-args.logins :], 0.5):6.0f} ms"
                print(
                    f"round {number}  {kind:<8} {end - start:5.1f} s  {len(during):5d} browse requests  "
                    f"p95 {1000 * percentile([r[2] for r in during], 0.95):6.1f} ms  "
                    f"Orthanc CPU {window.server_cpu:4.0f}% (of {os.cpu_count()} cores){extra}",
                    flush=True,
                )
                time.sleep(SETTLE_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 5)
    if errors:
        raise RuntimeError(f"a browsing client failed: {errors[0]}")
    return records, windows, logins


def latencies_in(records, windows, kind, request_kind=None):
    return [
        took
        for k, start, took in records
        if (request_kind is None or k == request_kind)
        and any(w.kind == kind and w.start <= start < w.end for w in windows)
    ]


# --- report --------------------------------------------------------------------


def print_summary(micro, configs, study, args, load):
    print()
    print(
        f"(1) the guard's decision in-process, {args.micro_calls} calls each, frame path "
        f"(python {sys.version.split()[0]}):"
    )
    for label, p50, mean in micro:
        print(f"    {label:<42} p50 {p50:6.1f} us   mean {mean:6.1f} us")

    print()
    print(
        f"(2) DICOMweb frames, {len(study.sop_uids)} slices {args.size}x{args.size} 16-bit "
        f"({study.frame_bytes // 1024} KiB/frame), {args.threads} client threads, {args.seconds:g} s x "
        f"{args.rounds} rounds:"
    )
    print(
        f"    {'configuration':<44} {'median':>7} {'min':>7} {'max':>7} frames/s"
        f" {'p50':>6} {'p95':>6} ms   Orthanc CPU ms/frame"
    )
    for config in configs:
        print(
            f"    {config.key:<9} {config.label:<34} {statistics.median(config.rates):7.1f} "
            f"{min(config.rates):7.1f} {max(config.rates):7.1f}         "
            f"{1000 * percentile(config.latencies, 0.5):6.1f} {1000 * percentile(config.latencies, 0.95):6.1f}"
            f"      {statistics.median(config.cpu_ms):5.2f}"
        )
    off = configs[0]
    for config in configs[1:]:
        paired = [on / base for on, base in zip(config.slice_rates, off.slice_rates)]
        ratio = statistics.median(paired)
        rounds = " ".join(f"{on / base:.2f}" for on, base in zip(config.rates, off.rates))
        extra = statistics.median(config.cpu_ms) - statistics.median(off.cpu_ms)
        print(
            f"    ratio {config.key}/off = {ratio:.3f}  (target >= {RATIO_TARGET})  {verdict(ratio >= RATIO_TARGET)}"
            f"   [median of {len(paired)} paired slices, quartiles {percentile(paired, 0.25):.2f}-"
            f"{percentile(paired, 0.75):.2f}]"
        )
        print(
            f"        ratio of the medians above {statistics.median(config.rates) / statistics.median(off.rates):.3f};"
            f" per round {rounds}; Orthanc CPU per frame {extra:+.2f} ms vs off"
        )
    print(
        f"    client CPU (this process, % of one core): median "
        f"{statistics.median(c for config in configs for c in config.client_cpu):.0f}%"
    )

    records, windows, logins = load
    print()
    print(
        f"(3) login under load: BcryptCost {BCRYPT_COST}, {args.browsers} browsing clients "
        f"(think {args.think_ms:g} ms), {args.rounds} x ({args.seconds:g} s baseline, then "
        f"{args.logins} logins in a row):"
    )
    print(
        f"    logins: n={len(logins)}  p50 {1000 * percentile(logins, 0.5):.0f} ms  "
        f"p95 {1000 * percentile(logins, 0.95):.0f} ms  max {1000 * max(logins):.0f} ms"
    )
    print(
        f"    {'browse request':<10} {'n base':>7} {'n login':>8} {'p95 base':>9} {'p95 login':>10} {'ratio':>6}"
        f"   (ms; p50 base -> login)"
    )
    for request_kind in ("me", "qido", "metadata", "frame", None):
        base = latencies_in(records, windows, "baseline", request_kind)
        during = latencies_in(records, windows, "login", request_kind)
        ratio = percentile(during, 0.95) / percentile(base, 0.95)
        print(
            f"    {request_kind or 'all':<10} {len(base):7d} {len(during):8d} {1000 * percentile(base, 0.95):9.1f} "
            f"{1000 * percentile(during, 0.95):10.1f} {ratio:6.2f}   "
            f"({1000 * percentile(base, 0.5):.1f} -> {1000 * percentile(during, 0.5):.1f})"
        )
    base_cpu = statistics.median(w.server_cpu for w in windows if w.kind == "baseline")
    login_cpu = statistics.median(w.server_cpu for w in windows if w.kind == "login")
    print(
        f"    Orthanc CPU: baseline {base_cpu:.0f}%, during logins {login_cpu:.0f}% "
        f"(100% = one core; {os.cpu_count()} cores)"
    )
    base = latencies_in(records, windows, "baseline")
    during = latencies_in(records, windows, "login")
    pooled = percentile(during, 0.95) / percentile(base, 0.95)
    rounds = [
        percentile(latencies_in(records, [login], "login"), 0.95)
        / percentile(latencies_in(records, [baseline], "baseline"), 0.95)
        for baseline, login in zip(windows[0::2], windows[1::2])
    ]
    ratio = statistics.median(rounds)
    print(
        f"    others' p95 during logins / baseline = {ratio:.2f}  (target <= {P95_RISE_TARGET:g})  "
        f"{verdict(ratio <= P95_RISE_TARGET)}   [median of the rounds, each login window against "
        f"the baseline just before it: {' '.join(f'{r:.2f}' for r in rounds)}; all windows pooled {pooled:.2f}]"
    )


# --- main ----------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=100, help="CT slices in the study")
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--threads", type=int, default=8, help="frame client threads")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of each frame measurement and of each baseline window"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (frames and login under load)")
    parser.add_argument("--browsers", type=int, default=20, help="browsing clients during the logins")
    parser.add_argument("--logins", type=int, default=20, help="logins in a row per round")
    parser.add_argument(
        "--think-ms", type=float, default=500.0, help="pause of each browsing client between two requests"
    )
    parser.add_argument("--micro-calls", type=int, default=MICRO_CALLS, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help="parent folder for the servers' data (default: /dev/shm if it has room)")
    args = parser.parse_args(argv)
    if min(args.slices, args.size, args.threads, args.rounds, args.browsers, args.logins) < 1 or args.seconds <= 0:
        parser.error("counts and --seconds must be positive")
    if args.think_ms < 0:
        parser.error("--think-ms must not be negative")
    return args


def run(args, root):
    load_before = os.getloadavg()[0]
    study = write_ct_study(root / "source", args.slices, args.size, "BENCH GUARD")
    micro = micro_bench(root, study, args.micro_calls)
    for label, p50, mean in micro:
        print(f"in-process {label:<42} p50 {p50:6.1f} us  mean {mean:6.1f} us", flush=True)

    overrides = production_overrides()  # MppsPort 0 included
    pacs = PacsServer(root / "pacs", launcher.merge(overrides, {"Pacs": {"BcryptCost": BCRYPT_COST}}))
    plain = PacsServer(root / "plain", overrides, plugin=False)
    try:
        for server in (plain, pacs):
            server.start()
            store(server, study)
        shutil.rmtree(root / "source")
        reader_id = create_user(pacs, *READER)
        create_user(pacs, *LOGIN_USER)
        reader_cookie = login_cookie(pacs, *READER)
        reader_key = create_api_key(pacs, reader_id)
        configs = [
            Config("off", "plain Orthanc (no Python plugin)", plain),
            Config("on-cookie", "PACS, session cookie (browser)", pacs, cookies={SESSION_COOKIE: reader_cookie}),
            Config("on-apikey", "PACS, API key (Bearer)", pacs, headers={"Authorization": f"Bearer {reader_key}"}),
        ]
        print(f"servers up (loopback only), study stored in both; BcryptCost {BCRYPT_COST} on the PACS", flush=True)
        run_frames(configs, study, args)
        plain.stop()

        started = time.monotonic()
        tokens = []
        for number in range(args.browsers):
            username = f"bench-browser-{number:02d}"
            create_user(pacs, username, BROWSER_PASSWORD)
            tokens.append(login_cookie(pacs, username, BROWSER_PASSWORD))
        print(f"{args.browsers} browsing users created and logged in ({time.monotonic() - started:.1f} s)", flush=True)
        load = run_login_load(pacs, study, tokens, args)
    finally:
        for server in (pacs, plain):
            server.stop()
    print_summary(micro, configs, study, args, load)
    print()
    load_after = os.getloadavg()[0]
    print(
        f"machine load average (1 min): {load_before:.1f} at the start, {load_after:.1f} at the end "
        f"({os.cpu_count()} cores; anything else running shares them with Orthanc and this client)"
    )
    if max(load_before, load_after) > os.cpu_count():
        print(
            "WARNING: other work kept the machine busy during this run: the figures above carry "
            "its noise (compare the per-round and paired values, or run again on a quiet machine)"
        )


def main(argv):
    args = parse_args(argv)
    needed = args.slices * (args.size * args.size * 2 + 4096) * 3
    root, why = choose_root(args.data_dir, needed, "guard")
    print(
        f"data folder: {root} ({why}); {args.slices} CT slices {args.size}x{args.size}; {os.cpu_count()} cores",
        flush=True,
    )
    with kept_on_failure(root):
        run(args, root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
