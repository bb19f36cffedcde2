"""Schema migrations: every change to the plugin database is a module here.

A migration is a module ``mNNNN_what.py`` with ``up(db)``; it defines the
tables as they are at that point (never imports today's models) so it keeps
meaning the same thing forever. Applied names are kept in
``schema_migrations``. On PostgreSQL an advisory lock serialises nodes that
start together.
"""

import datetime
import importlib
import logging
import pkgutil
import re

from peewee import CharField, DateTimeField, Model

LOGGER = logging.getLogger(__name__)
_NAME = re.compile(r"^m\d{4}_\w+$")
_LOCK_KEY = 0x5041_4353  # "PACS"


class AppliedMigration(Model):
    name = CharField(primary_key=True)
    applied_at = DateTimeField()

    class Meta:
        table_name = "schema_migrations"


def available():
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if _NAME.match(m.name))
    return [(name, importlib.import_module(f"{__name__}.{name}")) for name in names]


def migrate(db):
    """Apply every pending migration; return the names applied."""
    postgres = db.__class__.__name__.lower().find("postgres") >= 0
    with db.connection_context():
        if postgres:
            db.execute_sql("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            applied = _apply_pending(db)
            if not postgres:
                # Planner statistics: without them SQLite picks poor indexes
                # for the worklist's combined filters.
                db.execute_sql("ANALYZE" if applied else "PRAGMA optimize")
            return applied
        finally:
            if postgres:
                db.execute_sql("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _apply_pending(db):
    with db.bind_ctx([AppliedMigration]):
        db.create_tables([AppliedMigration], safe=True)
        done = {row.name for row in AppliedMigration.select()}
        applied = []
        for name, module in available():
            if name in done:
                continue
            with db.atomic():
                module.up(db)
                AppliedMigration.create(name=name, applied_at=datetime.datetime.now(datetime.timezone.utc))
            LOGGER.info("event=migration_applied name=%s", name)
            applied.append(name)
        return applied
