"""SQLite under concurrent writers: a transaction that reads and then writes while
another connection writes must wait its turn, never fail with "database is locked".
And `unit_of_work`: what it guarantees about the connection of the calling thread."""

import threading

import pytest
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


# --- unit_of_work -----------------------------------------------------------------


@pytest.fixture
def pooled(tmp_path, monkeypatch):
    """An SQLite database that `unit_of_work` treats as the PostgreSQL pool: it
    borrows a connection per unit of work instead of keeping one per thread."""
    database = db.open_database(f"sqlite:///{tmp_path / 'units.sqlite'}")
    database.close()
    monkeypatch.setattr(db, "is_pooled", lambda: True)
    yield database
    if not database.is_closed():
        database.close()


def test_each_call_opens_a_connection_and_closes_it_after(pooled):
    @db.unit_of_work
    def work():
        assert not pooled.is_closed()
        return pooled.execute_sql("SELECT 1").fetchone()[0]

    assert pooled.is_closed()
    assert work() == 1
    assert pooled.is_closed()
    assert work() == 1
    assert pooled.is_closed()


def test_a_nested_unit_reuses_the_outer_connection_and_leaves_it_open(pooled):
    @db.unit_of_work
    def inner():
        return pooled.connection()

    @db.unit_of_work
    def outer():
        before = pooled.connection()
        assert inner() is before
        assert not pooled.is_closed()  # the inner call did not close its caller's connection
        return before

    outer()
    assert pooled.is_closed()


def test_a_unit_of_work_inside_a_connection_held_anyway_leaves_it_open(pooled):
    pooled.connect()
    held = pooled.connection()
    assert db.unit_of_work(pooled.connection)() is held
    assert not pooled.is_closed()


def test_an_exception_still_closes_the_connection(pooled):
    @db.unit_of_work
    def failing():
        pooled.execute_sql("SELECT 1")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing()
    assert pooled.is_closed()


def test_a_unit_of_work_on_another_thread_has_its_own_connection(pooled):
    seen = {}

    @db.unit_of_work
    def on_thread():
        seen["open"] = not pooled.is_closed()
        seen["connection"] = pooled.connection()

    @db.unit_of_work
    def outer():
        thread = threading.Thread(target=lambda: (on_thread(), seen.update(closed_after=pooled.is_closed())))
        thread.start()
        thread.join(5)
        return pooled.connection()

    mine = outer()
    assert seen["open"]
    assert seen["connection"] is not mine
    assert seen["closed_after"]
    assert pooled.is_closed()


def test_with_sqlite_a_unit_of_work_keeps_the_thread_connection(tmp_path):
    database = db.open_database(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    database.connect()
    held = database.connection()
    assert db.unit_of_work(database.connection)() is held
    assert not database.is_closed()
    database.close()


def test_the_decorator_keeps_the_function_name_and_doc():
    @db.unit_of_work
    def documented():
        """Says what it does."""

    assert (documented.__name__, documented.__doc__) == ("documented", "Says what it does.")
