"""Orders (scheduled procedures: the modality worklist) and the Modality
Performed Procedure Steps that modalities report about them.

An order owns one `study` row (status `scheduled`, no Orthanc ID) so that it
shows on the reading worklist before any image exists; the images take that
row over when they arrive (plugin/studyindex.store)."""

from peewee import CharField, DateField, DateTimeField, ForeignKeyField, Model, TextField


class Study(Model):
    class Meta:
        table_name = "study"


class Order(Model):
    accession_number = CharField(max_length=16, unique=True)
    requested_procedure_id = TextField()
    scheduled_procedure_step_id = TextField()
    study_instance_uid = CharField(max_length=64, unique=True)
    study = ForeignKeyField(Study, null=True, on_delete="SET NULL", index=True)
    patient_id = TextField(index=True)
    patient_name = TextField()
    patient_birth_date = DateField(null=True)
    patient_sex = TextField()
    modality = TextField(index=True)
    scheduled_station_aet = TextField()
    scheduled_date = CharField(max_length=8)
    scheduled_time = CharField(max_length=16)
    procedure = TextField()
    step_description = TextField()
    referring_physician = TextField()
    requesting_physician = TextField()
    performing_physician = TextField()
    station_name = TextField()
    location = TextField()
    medical_alerts = TextField()
    allergies = TextField()
    contrast_agent = TextField()
    pre_medication = TextField()
    comments = TextField()
    priority = CharField(max_length=16)
    status = CharField(max_length=16)
    created_by = TextField()
    created_at = DateTimeField()
    updated_at = DateTimeField()
    arrived_at = DateTimeField(null=True)

    class Meta:
        table_name = "orders"
        indexes = ((("status", "scheduled_date"), False),)


class PerformedStep(Model):
    sop_instance_uid = CharField(max_length=64, unique=True)
    order = ForeignKeyField(Order, null=True, on_delete="SET NULL", index=True)
    status = CharField(max_length=16)
    calling_aet = TextField()
    study_instance_uid = TextField()
    patient_id = TextField()
    patient_name = TextField()
    started_at = TextField()
    ended_at = TextField()
    performed_series = TextField()
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "performed_step"


def up(db):
    with db.bind_ctx([Study, Order, PerformedStep]):
        db.create_tables([Order, PerformedStep])
