"""The audit trail on a throw-away SQLite database per test: the hash chain,
its verification, concurrent appends, image-access throttling, the admin
query and CSV export, and the verify command."""

import csv
import datetime
import hashlib
import io
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakes import ManualClock

from plugin import audit, db, migrations
from plugin.audit import GENESIS_HASH, AuditEntry, AuditLog

REPO = Path(__file__).resolve().parent.parent

# Appends from another process: url, entries, threads.
APPENDER = """
import sys, threading
from plugin import audit, db
db.open_database(sys.argv[1])
log = audit.AuditLog()
def work(n):
    for i in range(int(sys.argv[2])):
        log.record("study_viewed", username=f"proc{sys.argv[4]}-t{n}", study_uid=f"1.2.{i}")
threads = [threading.Thread(target=work, args=(n,)) for n in range(int(sys.argv[3]))]
[t.start() for t in threads]
[t.join() for t in threads]
"""


@pytest.fixture
def database(tmp_path):
    url = "sqlite:///" + str(tmp_path / "pacs.sqlite")
    handle = db.open_database(url)
    migrations.migrate(handle)
    handle.url = url
    yield handle
    handle.close()


@pytest.fixture
def log():
    audit_log = AuditLog()
    audit_log.start()
    yield audit_log
    audit_log.stop()


def sql(database, statement, params=()):
    with database.connection_context():
        database.execute_sql(statement, params)


def test_entries_chain_as_documented_and_verify(database, log):
    for i in range(1205):  # more than one verify batch
        log.record(
            "study_viewed",
            username=f"user{i % 7}",
            role="radiologist",
            address="10.0.0.5",
            study_uid=f"1.2.840.{i}",
            details={"n": i},
        )
    result = log.verify(batch=500)
    assert (result.ok, result.checked, result.first_bad_id) == (True, 1205, None)

    first, second = AuditEntry.select().order_by(AuditEntry.id).limit(2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    canonical = json.dumps(
        {
            "action": "study_viewed",
            "address": "10.0.0.5",
            "at": first.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "details": '{"n":0}',
            "outcome": "success",
            "role": "radiologist",
            "study_uid": "1.2.840.0",
            "username": "user0",
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert first.hash == hashlib.sha256((GENESIS_HASH + canonical).encode()).hexdigest()
    assert result.last_hash == AuditEntry.select().order_by(AuditEntry.id.desc()).get().hash


def test_empty_log_verifies(database, log):
    assert log.verify() == audit.VerifyResult(True, 0, None, "audit log is empty", GENESIS_HASH)


def test_record_returns_the_stored_entry_with_microseconds(database):
    entry = AuditLog(clock=ManualClock(1_700_000_000.123456)).record(
        "login", username="anna", role="admin", address="192.0.2.1"
    )
    stored = AuditEntry.get_by_id(entry.id)
    assert stored.at == datetime.datetime(2023, 11, 14, 22, 13, 20, 123456)
    assert (stored.username, stored.outcome, stored.details, stored.hash) == ("anna", "success", "{}", entry.hash)


@pytest.mark.parametrize(
    "column, value",
    [
        ("username", "mallory"),
        ("outcome", "failure"),
        ("study_uid", "9.9.9"),
        ("details", '{"n":99}'),
        ("at", "2020-01-01 00:00:00.000000"),
        ("hash", "f" * 64),
        ("action", "login"),
    ],
)
def test_an_edited_entry_is_found_by_its_id(database, log, column, value):
    for i in range(20):
        log.record("report_saved", username="bob", study_uid=f"1.2.{i}", details={"n": i})
    sql(database, f"UPDATE audit_log SET {column} = ? WHERE id = 12", (value,))
    result = log.verify(batch=5)
    assert (result.ok, result.first_bad_id, result.checked) == (False, 12, 12)
    assert "altered" in result.message


def test_a_deleted_entry_is_found(database, log):
    for i in range(20):
        log.record("export", username="bob", study_uid=f"1.2.{i}")
    sql(database, "DELETE FROM audit_log WHERE id = 7")
    result = log.verify(batch=4)
    assert (result.ok, result.first_bad_id) == (False, 8)
    assert "deleted, inserted or moved" in result.message


def test_a_deleted_first_entry_is_found(database, log):
    for _ in range(3):
        log.record("login", username="bob")
    sql(database, "DELETE FROM audit_log WHERE id = 1")
    assert log.verify().first_bad_id == 2


def test_swapped_entries_are_found(database, log):
    for i in range(10):
        log.record("send", username=f"u{i}", study_uid=f"1.2.{i}")
    sql(database, "UPDATE audit_log SET id = -1 WHERE id = 4")
    sql(database, "UPDATE audit_log SET id = 4 WHERE id = 5")
    sql(database, "UPDATE audit_log SET id = 5 WHERE id = -1")
    assert log.verify().first_bad_id == 4


def test_an_inserted_entry_is_found(database, log):
    for i in range(10):
        log.record("delete", username="bob", study_uid=f"1.2.{i}")
    sql(database, "DELETE FROM audit_log WHERE id = 6")
    before = AuditEntry.get_by_id(5)
    forged = {name: getattr(before, name) for name in audit.HASHED_FIELDS}
    forged["username"] = "someone-else"
    AuditEntry.insert(id=6, prev_hash=before.hash, hash=audit.chain_hash(before.hash, forged), **forged).execute()
    assert log.verify().first_bad_id == 7  # the forged row itself hashes right


def test_concurrent_appends_from_threads_stay_linear(database, log):
    errors = []

    def work(n):
        try:
            for i in range(50):
                log.record("images_retrieved", username=f"t{n}", study_uid=f"1.2.{i}")
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = list(AuditEntry.select(AuditEntry.prev_hash, AuditEntry.hash).order_by(AuditEntry.id))
    assert len(rows) == 400
    assert len({row.prev_hash for row in rows}) == 400  # no fork: every hash has one successor
    assert log.verify() == audit.VerifyResult(True, 400, None, "chain intact: 400 entries", rows[-1].hash)


def test_concurrent_appends_from_two_processes_stay_linear(database, log):
    workers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, database.url, "60", "3", str(n)], cwd=REPO) for n in range(2)
    ]
    log.record("login", username="main")
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    result = log.verify()
    assert (result.ok, result.checked) == (True, 361)


def test_record_inside_a_transaction_rolls_back_with_it(database, log):
    log.record("login", username="anna")
    with pytest.raises(RuntimeError):
        with database.atomic():
            log.record("user_created", username="anna", details={"user": "bob"})
            raise RuntimeError("the user change failed")
    with database.atomic():
        log.record("user_created", username="anna", details={"user": "carl"})
    assert [e.action for e in AuditEntry.select().order_by(AuditEntry.id)] == ["login", "user_created"]
    assert log.verify().ok


def test_unknown_action_or_outcome_is_rejected(database, log):
    with pytest.raises(ValueError, match="unknown audit action"):
        log.record("logged_in", username="anna")
    with pytest.raises(ValueError, match="unknown audit action"):
        log.record_async("viewed", username="anna")
    with pytest.raises(ValueError, match="unknown audit outcome"):
        log.record("login", username="anna", outcome="ok")
    with pytest.raises(ValueError, match="unknown audit action"):
        log.query(action="nope")
    assert AuditEntry.select().count() == 0


def test_hostile_text_is_stored_so_that_it_verifies(database, log):
    entry = log.record(
        "login_failed",
        outcome="failure",
        username="a\x00b" + "x" * 5000,
        address="\ud800",
        details={"why": "\x00" * 3, "big": "y" * 100_000},
    )
    stored = AuditEntry.get_by_id(entry.id)
    assert stored.username.startswith("a\ufffdb") and len(stored.username) == audit.MAX_TEXT
    assert stored.address == "?"
    assert json.loads(stored.details)["truncated"].startswith('{"big":"yyy')
    assert log.verify().ok


def test_image_access_is_recorded_once_per_user_study_and_window():
    clock = ManualClock(1_700_000_000.0)
    log = AuditLog(window_seconds=300, clock=clock)
    assert log.record_access(
        "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.3"
    )
    assert not log.record_access(
        "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.3"
    )
    assert log.record_access(
        "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.4"
    )
    assert log.record_access(
        "images_retrieved", username="bob", role="referrer", address="10.0.0.2", path="", study_uid="1.2.3"
    )
    clock.now += 299.9
    assert not log.record_access(
        "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.3"
    )
    clock.now += 0.1
    assert log.record_access(
        "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.3"
    )
    assert log._queue.qsize() == 4  # queued only: no database was opened for this test


def test_image_access_is_written_by_the_writer_thread(database):
    clock = ManualClock(1_700_000_000.0)
    log = AuditLog(window_seconds=60, clock=clock)
    for _ in range(1000):  # a viewer fetching 1000 frames
        log.record_access(
            "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.3"
        )
    assert AuditEntry.select().count() == 0
    log.start()
    try:
        log.flush()
        clock.now += 61
        log.record_access(
            "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.3"
        )
    finally:
        log.stop()  # drains what is still queued
    rows, total = log.query(action="images_retrieved")
    assert total == 2
    assert rows[0]["at"] == "2023-11-14T22:14:21.000000Z"
    assert (rows[1]["username"], rows[1]["role"], rows[1]["address"], rows[1]["study_uid"]) == (
        "anna",
        "radiologist",
        "10.0.0.1",
        "1.2.3",
    )
    assert log.verify().ok


def test_image_access_throttle_memory_is_bounded(monkeypatch):
    clock = ManualClock(1_700_000_000.0)
    log = AuditLog(window_seconds=10, clock=clock)
    for i in range(500):
        clock.now += 0.1
        log.record_access("images_retrieved", username="anna", role="", address="", path="", study_uid=f"1.2.{i}")
    assert len(log._seen) <= 101  # older than the window: forgotten
    monkeypatch.setattr(audit, "MAX_THROTTLE_KEYS", 50)
    for i in range(500):
        log.record_access("images_retrieved", username="bob", role="", address="", path="", study_uid=f"1.3.{i}")
    assert len(log._seen) == 50


def test_image_access_stays_in_microseconds():
    log = AuditLog()
    log.record_access(
        "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.3"
    )
    started = time.perf_counter()
    for _ in range(100_000):
        log.record_access(
            "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid="1.2.3"
        )
    throttled_us = (time.perf_counter() - started) * 10
    started = time.perf_counter()
    for i in range(2_000):
        log.record_access(
            "images_retrieved", username="anna", role="radiologist", address="10.0.0.1", path="", study_uid=f"1.2.{i}"
        )
    queued_us = (time.perf_counter() - started) * 500
    print(f"record_access: throttled {throttled_us:.2f} us, queued {queued_us:.2f} us")
    assert throttled_us < 20 and queued_us < 100


def test_a_full_queue_drops_and_is_reported(database, monkeypatch, caplog):
    monkeypatch.setattr(audit, "QUEUE_LIMIT", 3)
    log = AuditLog()
    assert [log.record_async("study_viewed", username=f"u{i}") for i in range(5)] == [True, True, True, False, False]
    log.start()
    with caplog.at_level(logging.ERROR, logger="plugin.audit"):
        log.stop()
    assert "event=audit_queue_full dropped=2" in caplog.text
    assert AuditEntry.select().count() == 3


def test_entries_the_writer_cannot_store_are_logged(database, monkeypatch, caplog):
    monkeypatch.setattr(audit, "RETRY_DELAY", 0)
    sql(database, "DROP TABLE audit_log")
    log = AuditLog(clock=ManualClock(1_700_000_000.0))
    log.start()
    with caplog.at_level(logging.ERROR, logger="plugin.audit"):
        log.record_async("report_finalized", username="anna", study_uid="1.2.3", details={"patient": "secret name"})
        log.flush()
    log.stop()
    assert caplog.text.count("event=audit_write_failed entries=1") == audit.WRITE_ATTEMPTS
    assert (
        "event=audit_entry_lost at=2023-11-14T22:13:20.000000Z action=report_finalized "
        "username='anna' study_uid=1.2.3 outcome=success"
    ) in caplog.text
    assert "secret name" not in caplog.text


def _seed_for_queries(log, clock):
    day = datetime.datetime(2024, 3, 1, 8, 0, tzinfo=datetime.timezone.utc).timestamp()
    for i in range(30):
        clock.now = day + i * 3600  # one per hour: 1 March 08:00 to 2 March 13:00
        log.record(
            "study_viewed" if i % 3 else "report_saved",
            username=("anna", "bob")[i % 2],
            study_uid=f"1.2.{i % 5}",
            outcome="denied" if i == 29 else "success",
        )


def test_query_filters_and_pages_newest_first(database):
    clock = ManualClock(1_700_000_000.0)
    log = AuditLog(clock=clock)
    _seed_for_queries(log, clock)

    rows, total = log.query(page_size=10)
    assert total == 30 and [r["id"] for r in rows] == list(range(30, 20, -1))
    rows, total = log.query(page=3, page_size=10)
    assert [r["id"] for r in rows] == list(range(10, 0, -1))
    assert log.query(page=4, page_size=10) == ([], 30)

    assert log.query(username="anna")[1] == 15
    assert log.query(action="report_saved")[1] == 10
    assert log.query(study_uid="1.2.0", username="anna")[1] == 3  # i = 0, 10, 20
    rows, total = log.query(outcome="denied")
    assert total == 1 and rows[0]["at"] == "2024-03-02T13:00:00.000000Z"

    assert log.query(date_from="2024-03-02")[1] == 14  # 00:00 to 13:00
    assert log.query(date_to="2024-03-01")[1] == 16  # the whole day, 08:00 to 23:00
    assert log.query(date_from=datetime.date(2024, 3, 1), date_to=datetime.date(2024, 3, 1))[1] == 16
    assert log.query(date_from="2024-03-01T10:00:00", date_to="2024-03-01T12:00:00")[1] == 3
    assert log.query(date_from="2024-03-01T11:00:00+01:00", date_to=datetime.datetime(2024, 3, 1, 12, 0))[1] == 3
    with pytest.raises(ValueError, match="not an ISO date"):
        log.query(date_from="yesterday")


def test_query_page_size_is_capped(database, log):
    for _ in range(audit.MAX_PAGE_SIZE + 5):
        log.record_async("study_viewed", username="anna")
    log.flush()
    rows, total = log.query(page_size=10_000)
    assert (len(rows), total) == (audit.MAX_PAGE_SIZE, audit.MAX_PAGE_SIZE + 5)
    assert len(log.query(page=0, page_size=0)[0]) == 1


def test_query_returns_details_as_json(database, log):
    log.record("send", username="anna", study_uid="1.2.3", details={"to": "REMOTE_AE", "n": 3})
    assert log.query()[0][0]["details"] == {"n": 3, "to": "REMOTE_AE"}


def test_csv_export_has_every_match_neutralises_formulas_and_keeps_unicode(database, log):
    log.record("login", username='=HYPERLINK("http://evil")', address="+1", role="-x")
    log.record("report_printed", username="Ωμέγα 山田", study_uid="@1.2", details={"note": "=1+1"})
    for i in range(600):
        log.record_async("study_viewed", username="bulk", study_uid=f"1.2.{i}")
    log.flush()

    text = log.export_csv()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(audit.CSV_COLUMNS)
    assert len(rows) == 1 + 602
    by_action = {row[5]: dict(zip(rows[0], row)) for row in rows[1:]}
    login = by_action["login"]
    assert (login["username"], login["address"], login["role"]) == ('\'=HYPERLINK("http://evil")', "'+1", "'-x")
    printed = by_action["report_printed"]
    assert (printed["username"], printed["study_uid"]) == ("Ωμέγα 山田", "'@1.2")
    assert json.loads(printed["details"]) == {"note": "=1+1"}

    filtered = list(csv.reader(io.StringIO(log.export_csv(username="Ωμέγα 山田"))))
    assert len(filtered) == 2 and filtered[1][0] == str(printed["id"])
    assert log.export_csv(action="export").count("\n") == 1


def _verify_command(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "plugin.audit", "verify", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_verify_command_exits_0_then_1_after_tampering(database, log):
    for i in range(10):
        log.record("study_viewed", username="anna", study_uid=f"1.2.{i}")
    done = _verify_command("--database-url", database.url)
    assert done.returncode == 0, done.stderr
    assert "audit chain OK: chain intact: 10 entries" in done.stdout
    sql(database, "UPDATE audit_log SET username = 'nobody' WHERE id = 4")
    done = _verify_command("--database-url", database.url)
    assert done.returncode == 1
    assert "audit chain BROKEN: entry 4 was altered" in done.stdout


def test_verify_command_finds_the_data_folder_and_says_when_there_is_nothing(tmp_path, database, log):
    log.record("login", username="anna")
    env = {"PATH": "/usr/bin:/bin", "PACS_DATA_DIR": str(Path(database.url[len("sqlite:///") :]).parent)}
    done = _verify_command(env=env)
    assert done.returncode == 0, done.stderr
    env["PACS_DATA_DIR"] = str(tmp_path / "empty")
    done = _verify_command(env=env)
    assert done.returncode == 2 and "no database at" in done.stderr
    assert not (tmp_path / "empty").exists()
