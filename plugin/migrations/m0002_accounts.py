"""Accounts: users, sessions, API keys, login failures, study shares; and a
normalised referring-physician key on studies so a referrer's scope is an
indexed look-up."""

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, Model, TextField
from playhouse.migrate import SchemaMigrator, migrate

from plugin.dicomnames import pn_key


class User(Model):
    username = CharField(max_length=64, unique=True)
    display_name = TextField()
    role = CharField(max_length=16)
    password_hash = TextField()
    disabled = BooleanField(default=False)
    referring_names = TextField(default="")
    must_change_password = BooleanField(default=False)
    created_at = DateTimeField()
    updated_at = DateTimeField()
    password_changed_at = DateTimeField()
    last_login_at = DateTimeField(null=True)

    class Meta:
        table_name = "user_account"


class Session(Model):
    id = CharField(max_length=64, primary_key=True)
    user = ForeignKeyField(User, on_delete="CASCADE")
    created_at = DateTimeField()
    last_seen_at = DateTimeField()
    expires_at = DateTimeField(index=True)
    revoked_at = DateTimeField(null=True, index=True)
    address = TextField(default="")

    class Meta:
        table_name = "session"


class ApiKey(Model):
    name = TextField()
    user = ForeignKeyField(User, on_delete="CASCADE")
    role = CharField(max_length=16)
    prefix = CharField(max_length=16, index=True)
    key_hash = CharField(max_length=64, unique=True)
    created_by = TextField(default="")
    created_at = DateTimeField()
    expires_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)
    last_used_at = DateTimeField(null=True)

    class Meta:
        table_name = "api_key"


class LoginFailure(Model):
    at = DateTimeField(index=True)
    username = CharField(max_length=64, index=True)
    address = CharField(max_length=64, index=True)

    class Meta:
        table_name = "login_failure"


class StudyShare(Model):
    study_instance_uid = TextField(index=True)
    user = ForeignKeyField(User, on_delete="CASCADE")
    shared_by = TextField(default="")
    created_at = DateTimeField()

    class Meta:
        table_name = "study_share"
        indexes = ((("study_instance_uid", "user"), True),)


class Study(Model):
    referring_physician = TextField()
    referring_key = TextField(default="")

    class Meta:
        table_name = "study"


def up(db):
    models = [User, Session, ApiKey, LoginFailure, StudyShare]
    with db.bind_ctx(models + [Study]):
        db.create_tables(models)
        migrator = SchemaMigrator.from_database(db)
        migrate(
            migrator.add_column("study", "referring_key", TextField(default="")),
            migrator.add_index("study", ("referring_key",), False),
        )
        for row in Study.select(Study.id, Study.referring_physician):
            Study.update(referring_key=pn_key(row.referring_physician)).where(Study.id == row.id).execute()
