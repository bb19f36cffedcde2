"""The plugin database: peewee over SQLite (default) or PostgreSQL.

Orthanc serves HTTP on many threads at once. SQLite gets one connection per
thread (peewee's default), WAL so readers never wait for the ingest writer,
and a busy timeout so concurrent writers queue instead of failing. Every
transaction takes the write lock when it begins (BEGIN IMMEDIATE): a deferred
one that reads, then writes after another connection has written, fails at
once with "database is locked" whatever the busy timeout (seen indexing
studies while the audit writer ran).
PostgreSQL gets a bounded pool; each request borrows a connection for its
duration (`unit_of_work`) so 50 HTTP threads cannot exhaust it.
"""

import datetime
import functools
import re
from pathlib import Path
from typing import Any

from peewee import DatabaseProxy, Model, SqliteDatabase
from playhouse import db_url

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 10000,
    "synchronous": "normal",
    "foreign_keys": 1,
}
POOL_SIZE = 16


class _SqliteDatabase(SqliteDatabase):
    def begin(self, lock_type=None):
        super().begin(lock_type or "IMMEDIATE")


class BaseModel(Model):
    id: Any  # the AutoField peewee adds (its type stubs do not know it); a model may declare its own

    class Meta:
        database = database
        legacy_table_names = False


def open_database(url):
    """Open the database named by ``url`` and bind the models to it."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        db = _SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS)
    elif url.startswith(("postgresql://", "postgres://")):
        scheme, rest = url.split("://", 1)
        db = db_url.connect(f"{scheme}+pool://{rest}", max_connections=POOL_SIZE, stale_timeout=300, timeout=10)
    else:
        raise ValueError("database URL must start with sqlite:/// or postgresql://")
    database.initialize(db)
    return db


def utcnow():
    """Now, as every time column holds it: naive UTC."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def redact(url):
    """The URL without its password, for logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def is_pooled():
    return not isinstance(database.obj, SqliteDatabase)


def unit_of_work(function):
    """Run each call of ``function`` as one unit of work on the calling thread.

    Put it on every entry where a thread starts working with the database (an
    HTTP request, a DICOM handler, a worker's task, a cache's reload). With
    PostgreSQL, a call that finds this thread without a connection borrows one
    from the pool for the call and gives it back when the call ends, however it
    ends (return or exception); a call made inside another unit of work (or
    while the thread holds a connection anyway) reuses that connection and
    leaves it open for its owner. With SQLite it does nothing: peewee keeps one
    connection per thread for the thread's life.
    """

    @functools.wraps(function)
    def in_unit_of_work(*args, **kwargs):
        if is_pooled() and database.is_closed():
            with database.connection_context():
                return function(*args, **kwargs)
        return function(*args, **kwargs)

    return in_unit_of_work


def close_connections():
    """At shutdown: the pool's connections (PostgreSQL), or this thread's (SQLite)."""
    if is_pooled():
        database.obj.close_all()
    elif not database.is_closed():
        database.close()


@unit_of_work
def check():
    """Raise if the database does not answer a trivial query."""
    database.execute_sql("SELECT 1").fetchone()
