"""SQLite under concurrent writers: a transaction that reads and then writes while
another connection writes must wait its turn, never fail with "database is locked"."""

import threading

from peewee import SqliteDatabase

from plugin import db


def test_a_read_then_write_transaction_waits_for_another_writer(tmp_path):
    url = f"sqlite:///{tmp_path / 'locks.sqlite'}"
    database = db.open_database(url)
    database.execute_sql("CREATE TABLE t (n INTEGER)")
    other = SqliteDatabase(str(tmp_path / "locks.sqlite"), pragmas=db.SQLITE_PRAGMAS)
    read_done, other_done, errors = threading.Event(), threading.Event(), []

    def writer():
        read_done.wait(5)
        try:
            other.execute_sql("INSERT INTO t VALUES (2)")  # waits (busy timeout) for the first to commit
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)
        other_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    with database.atomic():
        database.execute_sql("SELECT COUNT(*) FROM t").fetchone()
        read_done.set()
        other_done.wait(0.5)  # with a deferred transaction the other write would land here
        database.execute_sql("INSERT INTO t VALUES (1)")
    thread.join(15)
    assert not errors, errors
    assert sorted(n for (n,) in database.execute_sql("SELECT n FROM t").fetchall()) == [1, 2]
    other.close()
    database.close()
