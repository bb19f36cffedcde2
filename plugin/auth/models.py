"""Accounts as the plugin uses them today (tables built by plugin/migrations)."""

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, TextField

from plugin.db import BaseModel
from plugin.dicomnames import pn_key


class User(BaseModel):
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

    @property
    def referring_name_list(self):
        return [n for n in self.referring_names.splitlines() if n.strip()]

    @property
    def referring_keys(self):
        """The referring-physician keys (plugin.dicomnames.pn_key) a referrer's studies carry."""
        return {pn_key(name) for name in self.referring_name_list} - {""}

    def public(self):
        """What the API shows of a user (never the hash)."""
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "disabled": self.disabled,
            "referring_names": self.referring_name_list,
            "must_change_password": self.must_change_password,
            "created_at": self.created_at,
            "last_login_at": self.last_login_at,
        }


class Session(BaseModel):
    id = CharField(max_length=64, primary_key=True)
    user = ForeignKeyField(User, on_delete="CASCADE")
    created_at = DateTimeField()
    last_seen_at = DateTimeField()
    expires_at = DateTimeField(index=True)
    revoked_at = DateTimeField(null=True, index=True)
    address = TextField(default="")

    class Meta:
        table_name = "session"


class ApiKey(BaseModel):
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

    def public(self):
        return {
            "id": self.id,
            "name": self.name,
            "username": self.user.username,
            "role": self.role,
            "prefix": self.prefix,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }


class LoginFailure(BaseModel):
    at = DateTimeField(index=True)
    username = CharField(max_length=64, index=True)
    address = CharField(max_length=64, index=True)

    class Meta:
        table_name = "login_failure"


class StudyShare(BaseModel):
    study_instance_uid = TextField(index=True)
    user = ForeignKeyField(User, on_delete="CASCADE")
    shared_by = TextField(default="")
    created_at = DateTimeField()

    class Meta:
        table_name = "study_share"
