"""The audit trail: one append-only, hash-chained row per audited event."""

from peewee import BigAutoField, DateTimeField, Model, TextField


class AuditEntry(Model):
    id = BigAutoField()
    at = DateTimeField(index=True)
    username = TextField(index=True)
    role = TextField()
    address = TextField()
    action = TextField(index=True)
    study_uid = TextField(index=True)
    outcome = TextField()
    details = TextField()
    prev_hash = TextField()
    hash = TextField()

    class Meta:
        table_name = "audit_log"


def up(db):
    with db.bind_ctx([AuditEntry]):
        db.create_tables([AuditEntry])
