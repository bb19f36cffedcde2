"""Reports as the plugin uses them today (tables built by plugin/migrations)."""

import json

from peewee import BooleanField, CharField, DateTimeField, IntegerField, TextField

from plugin.db import BaseModel

SECTIONS = ("clinical_information", "technique", "comparison", "findings", "impression")


def has_draft(uid):
    """Whether the study has an unsigned report (it stays in_progress)."""
    return Report.select().where(Report.study_instance_uid == uid, Report.status == "draft").exists()


class ReportTemplate(BaseModel):
    name = TextField(unique=True)
    modality = CharField(max_length=16, default="")
    body_part = TextField(default="")
    sections = TextField()
    disabled = BooleanField(default=False)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "report_template"

    def public(self):
        return {
            "id": self.id,
            "name": self.name,
            "modality": self.modality,
            "body_part": self.body_part,
            "sections": json.loads(self.sections),
            "disabled": self.disabled,
        }


SIGNED = ("final", "amended")


class Report(BaseModel):
    study_instance_uid = TextField(unique=True)
    status = CharField(max_length=16, index=True)
    template_id = IntegerField(null=True)
    clinical_information = TextField(default="")
    technique = TextField(default="")
    comparison = TextField(default="")
    findings = TextField(default="")
    impression = TextField(default="")
    version = IntegerField(default=0)
    author_id = IntegerField(null=True)
    author_name = TextField(default="")
    created_at = DateTimeField()
    updated_at = DateTimeField()
    signed_by_id = IntegerField(null=True)
    signer_name = TextField(default="")
    signed_at = DateTimeField(null=True)
    study_deleted_at = DateTimeField(null=True)
    study_snapshot = TextField(default="{}")  # demographics, kept should the study be deleted

    @property
    def is_signed(self):
        return self.status in SIGNED

    class Meta:
        table_name = "report"

    def sections(self):
        return {name: getattr(self, name) for name in SECTIONS}


class ReportEvent(BaseModel):
    report_id = IntegerField(index=True)
    version = IntegerField()
    kind = CharField(max_length=16)
    user_id = IntegerField(null=True)
    username = TextField()
    at = DateTimeField()
    data = TextField()

    class Meta:
        table_name = "report_event"


class ReportAddendum(BaseModel):
    report_id = IntegerField(index=True)
    text = TextField()
    author_id = IntegerField(null=True)
    author_name = TextField()
    signed_at = DateTimeField()

    class Meta:
        table_name = "report_addendum"


class ReportDicom(BaseModel):
    report_id = IntegerField(index=True)
    addendum_id = IntegerField(null=True)
    sop_instance_uid = TextField()
    series_instance_uid = TextField()
    status = CharField(max_length=16, index=True)
    attempts = IntegerField(default=0)
    last_error = TextField(default="")
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "report_dicom"
