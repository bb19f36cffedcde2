"""The audit trail on PostgreSQL: values come back so that they verify, and
appends from two processes (two nodes) keep one linear chain.

Skipped, with the reason, where PostgreSQL is not reachable on 127.0.0.1:5432.
"""

import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from plugin import db, migrations
from plugin.audit import AuditEntry, AuditLog

REPO = Path(__file__).resolve().parent.parent

# Appends from another process: url, entries per thread, threads, name.
APPENDER = """
import sys, threading
from plugin import audit, db
db.open_database(sys.argv[1])
log = audit.AuditLog()
def work(n):
    for i in range(int(sys.argv[2])):
        log.record("study_viewed", username=f"{sys.argv[4]}-t{n}", study_uid=f"1.2.{i}")
threads = [threading.Thread(target=work, args=(n,)) for n in range(int(sys.argv[3]))]
[t.start() for t in threads]
[t.join() for t in threads]
"""


@pytest.fixture
def pg_url(pg_database):
    """The migrated database's URL."""
    handle = db.open_database(pg_database)
    migrations.migrate(handle)
    yield pg_database
    handle.close_all()


def _raw(url, statement):
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement)


def test_entries_verify_after_the_round_trip_and_edits_are_found(pg_url):
    log = AuditLog(clock=lambda: 1_700_000_000.000001)
    log.record("login", username="Ωμέγα 山田\x00", address="2001:db8::1", details={"note": "=1+1", "ok": True})
    AuditLog().record("report_finalized", username="anna", study_uid="1.2.3")
    assert log.verify().ok
    assert (
        subprocess.run(
            [sys.executable, "-m", "plugin.audit", "verify", "--database-url", pg_url], cwd=REPO, timeout=60
        ).returncode
        == 0
    )
    _raw(pg_url, "UPDATE audit_log SET address = '2001:db8::2' WHERE id = 1")
    assert log.verify().first_bad_id == 1
    assert (
        subprocess.run(
            [sys.executable, "-m", "plugin.audit", "verify", "--database-url", pg_url],
            cwd=REPO,
            timeout=60,
            capture_output=True,
        ).returncode
        == 1
    )


def test_appends_from_two_processes_keep_one_chain(pg_url):
    workers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, pg_url, "100", "4", f"node{n}"], cwd=REPO) for n in range(2)
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    result = AuditLog().verify(batch=128)
    assert (result.ok, result.checked) == (True, 800)
    assert AuditEntry.select(AuditEntry.prev_hash).distinct().count() == 800
