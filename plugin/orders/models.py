"""Orders and performed procedure steps as the plugin uses them (the schema
itself is built by plugin/migrations/m0006_orders)."""

from peewee import CharField, DateField, DateTimeField, ForeignKeyField, TextField

from plugin.db import BaseModel
from plugin.models import Study

ORDER_STATUSES = ("scheduled", "in_progress", "completed", "discontinued", "cancelled", "arrived")
# What a modality still finds on the worklist.
OPEN_STATUSES = ("scheduled", "in_progress")


class Order(BaseModel):
    accession_number = CharField(max_length=16, unique=True)
    requested_procedure_id = TextField()
    scheduled_procedure_step_id = TextField()
    study_instance_uid = CharField(max_length=64, unique=True)
    # The study row that shows the order on the reading worklist and that the
    # images take over on arrival.
    study = ForeignKeyField(Study, null=True, on_delete="SET NULL")
    patient_id = TextField()
    patient_name = TextField()
    name_key = TextField(default="")  # patient_name casefolded: worklist queries by name prefix
    patient_birth_date = DateField(null=True)
    patient_sex = TextField(default="")
    modality = TextField()
    # One AE title, or several separated by "\" (DICOM's value separator).
    scheduled_station_aet = TextField(default="")
    scheduled_date = CharField(max_length=8)  # DICOM DA, local time
    scheduled_time = CharField(max_length=16)  # DICOM TM, local time
    procedure = TextField(default="")
    step_description = TextField(default="")
    referring_physician = TextField(default="")
    requesting_physician = TextField(default="")
    performing_physician = TextField(default="")
    station_name = TextField(default="")
    location = TextField(default="")
    medical_alerts = TextField(default="")
    allergies = TextField(default="")
    contrast_agent = TextField(default="")
    pre_medication = TextField(default="")
    comments = TextField(default="")
    priority = CharField(max_length=16, default="routine")
    status = CharField(max_length=16, default="scheduled")
    created_by = TextField(default="")
    created_at = DateTimeField()
    updated_at = DateTimeField()
    arrived_at = DateTimeField(null=True)

    class Meta:
        table_name = "orders"

    @property
    def station_aets(self):
        return [aet for aet in self.scheduled_station_aet.split("\\") if aet]


class PerformedStep(BaseModel):
    """One MPPS instance as the modality reported it (with or without an order)."""

    sop_instance_uid = CharField(max_length=64, unique=True)
    order = ForeignKeyField(Order, null=True, on_delete="SET NULL", backref="performed_steps")
    order_id: int | None  # the foreign key's column, which peewee adds (its type stubs do not know it)
    status = CharField(max_length=16)  # IN PROGRESS, COMPLETED, DISCONTINUED
    calling_aet = TextField(default="")
    study_instance_uid = TextField(default="")
    patient_id = TextField(default="")
    patient_name = TextField(default="")
    started_at = TextField(default="")  # DICOM DA+TM as sent
    ended_at = TextField(default="")
    performed_series = TextField(default="[]")  # JSON list
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "performed_step"
