"""Modality Worklist bench: C-FIND latency with 10 000 scheduled orders, ours
(Orthanc's worklist callback answered from the orders table) against dcmtk's
reference server `wlmscpfs` serving the same orders as 10 000 worklist files,
in one run. Target: our p95 <= 100 ms.

How:
  - a data folder (on /dev/shm when it has room); the PACS is started once so
    its migrations run, then stopped;
  - N orders (--orders, 10 000) are bulk-inserted into <data>/pacs.sqlite with
    the plugin's own models and column builders (plugin.orders.service:
    each order with its scheduled study row, as the API makes them): 20
    stations (one modality each), scheduled over 30 days from two days ago,
    ~17 per station and day, upper-case ASCII names (so that person-name case
    rules cannot make the two servers differ), unique accession numbers;
  - each order is written as a worklist file holding every attribute we
    answer (the answer of plugin.mwl.service to a query asking all keys)
    into a wlmscpfs data folder;
  - the PACS is started again (production log level, any AE may query the
    worklist) and wlmscpfs beside it;
  - --queries C-FINDs (100) go to each server, interleaved, round-robin over
    five kinds a modality sends: its station and today; a modality over today
    and tomorrow; a patient ID; an accession number; a name prefix and today.
    Each C-FIND is timed as a modality does it: a new association (pynetdicom),
    the find with every answer received, the release. The number of answers
    of both servers is compared query by query;
  - all of it twice: a client with Nagle on (pynetdicom's default, like a
    stock modality: its request goes out as two PDUs, the second waits for
    the server's delayed ACK, ~40 ms on Linux loopback), then a client with
    TCP_NODELAY (what the servers themselves take);
  - our plugin's own time per find (database, matching, answers) is read from
    its log (event=mwl_find took_ms).

Run from the repository root: .venv/bin/python bench/mwl.py [--orders N] [--queries N]
"""

import argparse
import datetime
import os
import random
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE, transport
from pynetdicom.sop_class import ModalityWorklistInformationFind

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import mwlfiles  # noqa: E402
from pacs_server import PacsServer  # noqa: E402

from plugin import db  # noqa: E402
from plugin.models import Study, save_search_terms  # noqa: E402
from plugin.mwl import service as mwl  # noqa: E402
from plugin.orders import service as order_service  # noqa: E402
from plugin.orders.models import Order  # noqa: E402

TARGET_P95_MS = 100.0
RAM_DISK = Path("/dev/shm")
BYTES_PER_ORDER = 6 * 1024  # a worklist file, its rows and indexes, generous
INSERT_BATCH = 2000
WARMUP = 3
SEED = 20261123
STATIONS = [
    (f"{modality}_ROOM{n}", modality)
    for modality, rooms in (("CT", 4), ("MR", 4), ("CR", 3), ("US", 3), ("DX", 3), ("MG", 2), ("NM", 1))
    for n in range(1, rooms + 1)
]
FAMILY = [
    "SMITH",
    "SMYTHE",
    "JOHNSON",
    "BROWN",
    "TAYLOR",
    "MULLER",
    "MULDER",
    "SCHMIDT",
    "SCHNEIDER",
    "GARCIA",
    "LOPEZ",
    "NOWAK",
    "KOWALSKI",
    "MARTIN",
    "BERNARD",
    "DUBOIS",
    "ROSSI",
    "RUSSO",
    "HANSEN",
    "JENSEN",
    "COHEN",
    "HADDAD",
    "NGUYEN",
    "KIM",
    "LEE",
    "IVANOV",
    "OBRIEN",
    "PETIT",
]
GIVEN = [
    "ANNA",
    "JOHN",
    "MARIA",
    "JOSE",
    "SEAN",
    "ZOE",
    "BJORN",
    "CHLOE",
    "AHMED",
    "FATIMA",
    "LI",
    "OLGA",
    "JAN",
    "EVA",
    "LUCAS",
    "EMMA",
    "NOAH",
    "MIA",
]
PROCEDURES = {
    "CT": ["CT HEAD", "CT CHEST", "CT ABDOMEN"],
    "MR": ["MR BRAIN", "MR KNEE", "MR SPINE"],
    "CR": ["CHEST PA", "HAND"],
    "US": ["US ABDOMEN", "US THYROID"],
    "DX": ["KNEE", "CHEST"],
    "MG": ["MAMMOGRAPHY"],
    "NM": ["BONE SCAN"],
}
RETURN_KEYS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "ReferringPhysicianName",
    "RequestedProcedurePriority",
)
STEP_RETURN_KEYS = (
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepID",
    "ScheduledProcedureStepDescription",
    "ScheduledPerformingPhysicianName",
)


# --- data ----------------------------------------------------------------------------


def order_values(count, today, rng):
    """API-like values of `count` orders (what orders.Orders.create would have checked)."""
    values = []
    for index in range(count):
        station, modality = rng.choice(STATIONS)
        day = today + datetime.timedelta(days=rng.randrange(-2, 28))
        minute = rng.randrange(7 * 60, 19 * 60)
        values.append(
            {
                "patient_id": f"BP{rng.randrange(10**7):07d}",
                "patient_name": f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}",
                "patient_birth_date": datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randrange(30000)),
                "patient_sex": rng.choice("MF"),
                "modality": modality,
                "scheduled_station_aet": station,
                "scheduled_date": day.strftime("%Y%m%d"),
                "scheduled_time": f"{minute // 60:02d}{minute % 60:02d}00",
                "procedure": rng.choice(PROCEDURES[modality]),
                "accession_number": f"B{index:08d}",
                "referring_physician": rng.choice(["WHO^DR", "SMITH^JOHN", "JONES^AMY", ""]),
                "priority": rng.choice(["routine"] * 8 + ["urgent", "stat"]),
                "study_instance_uid": f"2.25.{SEED}{index:08d}",
            }
        )
    return values


def insert_orders(database_path, values):
    """Bulk insert orders with their scheduled study rows, built as the API builds them."""
    database = db.open_database(f"sqlite:///{database_path}")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    started = time.perf_counter()
    with database.connection_context():
        for start in range(0, len(values), INSERT_BATCH):
            with database.atomic():
                rows = []
                for value in values[start : start + INSERT_BATCH]:
                    columns = order_service.study_columns(value, now)
                    study_id = Study.insert(
                        status="scheduled",
                        orthanc_id=None,
                        institution_name="",
                        body_parts="",
                        orthanc_last_update="",
                        indexed_at=now,
                        arrived_at=None,
                        **columns,
                    ).execute()
                    save_search_terms(study_id, columns["search_text"])
                    rows.append(
                        dict(
                            order_service.order_defaults(value),
                            study=study_id,
                            status="scheduled",
                            created_by="bench",
                            created_at=now,
                            updated_at=now,
                        )
                    )
                Order.insert_many(rows).execute()
        stored = list(Order.select())
    database.close()
    return stored, time.perf_counter() - started


def everything_query():
    """A worklist query asking every attribute we hold (the content of a worklist file)."""
    query = Dataset()
    for keyword in mwl.PATIENT_AND_PROCEDURE:
        setattr(query, keyword, "")
    query.ScheduledProcedureStepSequence = [Dataset()]
    return mwl.parse_query(query)


def write_worklists(folder, stored):
    started = time.perf_counter()
    full = everything_query()
    for order in stored:
        (folder / f"{order.accession_number}.wl").write_bytes(full.answer(order))
    return time.perf_counter() - started


# --- queries -----------------------------------------------------------------------


def worklist_query(keys=None, step=None):
    query = Dataset()
    for keyword in RETURN_KEYS:
        setattr(query, keyword, "")
    for keyword, value in (keys or {}).items():
        setattr(query, keyword, value)
    item = Dataset()
    for keyword in STEP_RETURN_KEYS:
        setattr(item, keyword, "")
    for keyword, value in (step or {}).items():
        setattr(item, keyword, value)
    query.ScheduledProcedureStepSequence = [item]
    return query


def query_plan(stored, count, today, rng):
    """(kind, dataset) x count, round-robin over the kinds a modality sends."""
    day, tomorrow = today.strftime("%Y%m%d"), (today + datetime.timedelta(days=1)).strftime("%Y%m%d")
    kinds = {
        "station + today": lambda o: worklist_query(
            step={"ScheduledStationAETitle": rng.choice(STATIONS)[0], "ScheduledProcedureStepStartDate": day}
        ),
        "modality + today..tomorrow": lambda o: worklist_query(
            step={"Modality": rng.choice(STATIONS)[1], "ScheduledProcedureStepStartDate": f"{day}-{tomorrow}"}
        ),
        "patient ID": lambda o: worklist_query({"PatientID": o.patient_id}),
        "accession number": lambda o: worklist_query({"AccessionNumber": o.accession_number}),
        "name prefix + today": lambda o: worklist_query(
            {"PatientName": o.patient_name[:3] + "*"}, {"ScheduledProcedureStepStartDate": day}
        ),
    }
    names = list(kinds)
    return [(names[i % len(names)], kinds[names[i % len(names)]](rng.choice(stored))) for i in range(count)]


_create_socket = transport.AssociationSocket._create_socket
CLIENT = {"nodelay": False}


def _client_socket(self, address):
    sock = _create_socket(self, address)
    if CLIENT["nodelay"]:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


transport.AssociationSocket._create_socket = _client_socket


class Modality:
    def __init__(self, aet="BENCH_MOD"):
        self.ae = AE(ae_title=aet)
        self.ae.add_requested_context(ModalityWorklistInformationFind)
        self.ae.acse_timeout = self.ae.dimse_timeout = 60

    def find(self, port, called_aet, query):
        """(seconds, number of answers, final status): one association per query, as modalities do."""
        started = time.perf_counter()
        assoc = self.ae.associate("127.0.0.1", port, ae_title=called_aet)
        if not assoc.is_established:
            raise RuntimeError(f"association to {called_aet} on {port} refused")
        answers, final = 0, None
        for status, _identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
            if status and status.Status in (0xFF00, 0xFF01):
                answers += 1
            elif status:
                final = status.Status
        assoc.release()
        return time.perf_counter() - started, answers, final


# --- report ------------------------------------------------------------------------


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def figures(samples):
    ms = [s * 1000 for s in samples]
    return f"p50 {statistics.median(ms):7.1f} ms   p95 {percentile(ms, 0.95):7.1f} ms   max {max(ms):7.1f} ms"


def plugin_times(log_text, since):
    """took_ms of our own find (database and matching, inside Orthanc), from the log lines after `since`."""
    return [float(m) / 1000 for m in re.findall(r"event=mwl_find .*?took_ms=([\d.]+)", log_text[since:])]


def choose_root(requested, needed):
    if requested:
        base = Path(requested)
    elif RAM_DISK.is_dir() and shutil.disk_usage(RAM_DISK).free > 2 * needed:
        base = RAM_DISK
    else:
        base = Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="pacs-bench-mwl-", dir=base))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)
    today = datetime.date.today()
    root = choose_root(args.data_dir, args.orders * BYTES_PER_ORDER)
    print(
        f"MWL bench: {args.orders} orders, {args.queries} C-FINDs per server, data in {root}, "
        f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores"
    )
    server = PacsServer(
        root / "pacs", overrides={"DicomAlwaysAllowFindWorklist": True, "Pacs": {"LogLevel": "INFO", "MppsPort": 0}}
    )
    try:
        server.start()
        server.stop()
        stored, took = insert_orders(server.data_dir / "pacs.sqlite", order_values(args.orders, today, rng))
        print(f"  {len(stored)} orders inserted in {took:.1f} s")
        wlm = mwlfiles.Wlmscpfs(root / "wlmscpfs")
        print(f"  {len(stored)} worklist files written in {write_worklists(wlm.database, stored):.1f} s")
        server.start()
        plan = query_plan(stored, args.queries, today, rng)
        with wlm:
            for nodelay in (False, True):
                CLIENT["nodelay"] = nodelay
                print(f"\n=== client {'with TCP_NODELAY' if nodelay else 'with Nagle on (stock)'}")
                run(server, wlm, plan)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"  load average at the end {os.getloadavg()[0]:.2f}")


def run(server, wlm, plan):
    modality = Modality()
    for _, query in plan[:WARMUP]:
        modality.find(server.dicom_port, server.aet, query)
        modality.find(wlm.port, wlm.aet, query)
    log_mark = len(server.log_text())
    ours, theirs, by_kind, mismatches, answers = [], [], {}, [], []
    for kind, query in plan:
        our_time, our_count, our_status = modality.find(server.dicom_port, server.aet, query)
        their_time, their_count, their_status = modality.find(wlm.port, wlm.aet, query)
        if (our_count, our_status) != (their_count, their_status):
            mismatches.append((kind, our_count, their_count, our_status, their_status))
        ours.append(our_time)
        theirs.append(their_time)
        answers.append(our_count)
        by_kind.setdefault(kind, ([], [], []))
        for bucket, value in zip(by_kind[kind], (our_time, their_time, our_count)):
            bucket.append(value)
    inside = plugin_times(server.log_text(), log_mark)
    print(
        f"C-FIND, new association per query ({len(plan)} per server, answers per query: "
        f"median {statistics.median(answers)}, max {max(answers)})"
    )
    print(
        f"  ours       {figures(ours)}   target p95 <= {TARGET_P95_MS:.0f} ms: "
        f"{'MET' if percentile(ours, 0.95) * 1000 <= TARGET_P95_MS else 'MISSED'}"
    )
    print(f"  wlmscpfs   {figures(theirs)}")
    if inside:
        print(f"  ours, inside the plugin (orders query + matching + answers): {figures(inside)}")
    print("\n  by kind                          ours p50/p95 ms     wlmscpfs p50/p95 ms   answers (median)")
    for kind, (mine, reference, counts) in by_kind.items():
        print(
            f"  {kind:30s} {statistics.median(mine) * 1000:7.1f} / {percentile(mine, 0.95) * 1000:6.1f}"
            f"   {statistics.median(reference) * 1000:7.1f} / {percentile(reference, 0.95) * 1000:6.1f}"
            f"   {statistics.median(counts)}"
        )
    print(f"\n  same number of answers and status from both servers: {len(plan) - len(mismatches)}/{len(plan)} queries")
    for mismatch in mismatches[:10]:
        print(f"    differs: {mismatch}")


if __name__ == "__main__":
    main()
