"""Orthanc killed (SIGKILL) or restarted: once it is back, the plugin's
start-up reconcile makes the index equal to what Orthanc holds, and nothing
Orthanc acknowledged is lost."""

import contextlib
import sqlite3
import threading
import time

import dicomgen
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

BIG_STUDY_INSTANCES = 400
KILL_AFTER_INSTANCES = 40
STUDY_ROWS = "SELECT id, orthanc_id, instance_count, indexed_at FROM study ORDER BY id"


# --- helpers ---------------------------------------------------------------------


def orthanc_instance_counts(server):
    """{study orthanc_id: instances} of what Orthanc holds."""
    return {
        study_id: server.get(f"/studies/{study_id}/statistics").json()["CountInstances"]
        for study_id in server.orthanc_studies()
    }


def indexed_instance_counts(server):
    rows = server.index_rows("SELECT orthanc_id, instance_count FROM study WHERE orthanc_id IS NOT NULL")
    return {row["orthanc_id"]: row["instance_count"] for row in rows}


def reconciles_done(server):
    return server.log_text().count("event=reconcile_done")


def start_again(server):
    """Start Orthanc again on the same data folder and ports; wait for its reconcile."""
    done_before = reconciles_done(server)
    server.start()
    server.wait_for(lambda: reconciles_done(server) > done_before, what="the start-up reconcile")


def settled_index(server, quiet=1.0):
    """A condition for wait_for: the index rows once they stayed the same for ``quiet`` seconds."""
    last = {"rows": None, "since": 0.0}

    def settled():
        rows = server.index_rows(STUDY_ROWS)
        if rows != last["rows"]:
            last.update(rows=rows, since=time.monotonic())
            return None
        return rows if time.monotonic() - last["since"] >= quiet else None

    return settled


def assert_index_equals_orthanc(server):
    orthanc = orthanc_instance_counts(server)
    assert indexed_instance_counts(server) == orthanc
    assert server.indexed_studies() == server.orthanc_studies()
    return orthanc


def store_studies(server, folder, *sizes):
    """Store one study per size over one association; return their index rows once indexed."""
    specs = [dicomgen.StudySpec() for _ in sizes]
    datasets = [ds for spec, size in zip(specs, sizes) for ds in dicomgen.ct_series(spec, slices=size)]
    server.storescu(dicomgen.write(datasets, folder))
    return [server.wait_indexed(spec.study_uid, instances=size) for spec, size in zip(specs, sizes)]


@contextlib.contextmanager
def index_behind_its_back(server):
    """The plugin's SQLite index, written directly (Orthanc must be down); committed on exit."""
    conn = sqlite3.connect(server.data_dir / "pacs.sqlite", timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")  # a study's series go with it
        with conn:
            yield conn
    finally:
        conn.close()


def insert_copy(conn, source_orthanc_id, **changes):
    """Insert a study row copied from another one, with some columns changed."""
    row = dict(conn.execute("SELECT * FROM study WHERE orthanc_id = ?", (source_orthanc_id,)).fetchone())
    row.update(id=None, **changes)
    conn.execute(f"INSERT INTO study ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


class Sender(threading.Thread):
    """Stores one big study over one association and counts the acknowledged instances."""

    def __init__(self, server, datasets):
        super().__init__(daemon=True)
        self.server, self.datasets = server, datasets
        self.acknowledged = 0

    def run(self):
        ae = AE(ae_title="BIGSENDER")
        ae.add_requested_context(CTImageStorage)
        ae.dimse_timeout = ae.network_timeout = 2
        assoc = ae.associate("127.0.0.1", self.server.dicom_port, ae_title=self.server.aet)
        for dataset in self.datasets:
            if not assoc.is_established:
                return
            status = assoc.send_c_store(dataset)
            if status.get("Status") == 0:
                self.acknowledged += 1
        assoc.release()


def big_study(instances):
    spec = dicomgen.StudySpec(description="BIG")
    return spec, dicomgen.ct_series(spec, slices=instances, rows=8, cols=8, pixels=bytes(128))


# --- tests ---------------------------------------------------------------------------


def test_sigkill_during_ingestion_then_restart_reconciles(fresh_pacs, tmp_path):
    server = fresh_pacs
    [complete] = store_studies(server, tmp_path, 3)
    spec, datasets = big_study(BIG_STUDY_INSTANCES)
    sender = Sender(server, datasets)
    sender.start()
    server.wait_for(
        lambda: sender.acknowledged >= KILL_AFTER_INSTANCES,
        interval=0.005,
        what=f"{KILL_AFTER_INSTANCES} instances acknowledged",
    )

    server.kill()
    acknowledged = sender.acknowledged
    sender.join(timeout=15)
    assert not sender.is_alive()
    assert acknowledged < BIG_STUDY_INSTANCES, "the kill came too late to test anything"

    start_again(server)

    counts = assert_index_equals_orthanc(server)
    assert counts[complete["orthanc_id"]] == 3
    partial = server.indexed_study(spec.study_uid)
    assert acknowledged <= partial["instance_count"] < BIG_STUDY_INSTANCES
    assert server.get("/pacs/health").status_code == 200


def test_rows_changed_behind_the_plugins_back_are_repaired_at_start(fresh_pacs, tmp_path):
    server = fresh_pacs
    lost, stale = store_studies(server, tmp_path, 2, 3)
    server.kill()  # right after both were indexed

    with index_behind_its_back(server) as conn:
        conn.execute("DELETE FROM study WHERE orthanc_id = ?", (lost["orthanc_id"],))
        conn.execute(
            "UPDATE study SET instance_count = 99, orthanc_last_update = 'stale' WHERE orthanc_id = ?",
            (stale["orthanc_id"],),
        )
        insert_copy(
            conn,
            stale["orthanc_id"],
            study_instance_uid="1.2.3.4.5.bogus",
            orthanc_id="00000000-00000000-00000000-00000000-00000000",
        )  # not in Orthanc

    start_again(server)

    counts = assert_index_equals_orthanc(server)
    assert counts == {lost["orthanc_id"]: 2, stale["orthanc_id"]: 3}
    assert server.indexed_study("1.2.3.4.5.bogus") is None
    assert server.index_rows("SELECT COUNT(*) AS n FROM series")[0]["n"] == 2


def test_clean_restart_loses_nothing_and_reindexes_nothing(fresh_pacs, tmp_path):
    server = fresh_pacs
    stored = {row["orthanc_id"]: row["instance_count"] for row in store_studies(server, tmp_path, 1, 2)}
    # The plugin indexes a study on its own clock, then again on Orthanc's STABLE_STUDY:
    # compare with the index once both have happened.
    server.wait_for(
        lambda: all(server.get(f"/studies/{oid}").json()["IsStable"] for oid in stored),
        what="Orthanc calling the studies stable",
    )
    index_before = server.wait_for(settled_index(server), what="the index to settle")
    assert orthanc_instance_counts(server) == stored

    server.stop()
    start_again(server)

    assert orthanc_instance_counts(server) == stored
    assert server.index_rows(STUDY_ROWS) == index_before  # same rows, not even re-indexed
    assert_index_equals_orthanc(server)
