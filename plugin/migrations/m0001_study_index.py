"""The study index: patients, studies and series as Orthanc holds them."""

from peewee import CharField, DateField, DateTimeField, ForeignKeyField, IntegerField, Model, TextField


class Patient(Model):
    orthanc_id = CharField(max_length=64, unique=True)
    patient_id = TextField(index=True)
    name = TextField()
    birth_date = DateField(null=True)
    sex = TextField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "patient"


class Study(Model):
    orthanc_id = CharField(max_length=64, unique=True, null=True)
    study_instance_uid = TextField(index=True)
    patient = ForeignKeyField(Patient, backref="studies", null=True, on_delete="CASCADE")
    accession_number = TextField(index=True)
    study_date = DateField(null=True, index=True)
    study_time = TextField()
    description = TextField()
    referring_physician = TextField()
    institution_name = TextField()
    modalities = TextField()
    body_parts = TextField()
    series_count = IntegerField(default=0)
    instance_count = IntegerField(default=0)
    orthanc_last_update = CharField(max_length=32)
    status = CharField(max_length=16, default="arrived", index=True)
    priority = CharField(max_length=16, default="routine", index=True)
    arrived_at = DateTimeField(null=True, index=True)
    indexed_at = DateTimeField()

    class Meta:
        table_name = "study"


class Series(Model):
    orthanc_id = CharField(max_length=64, unique=True)
    study = ForeignKeyField(Study, backref="series", on_delete="CASCADE")
    series_instance_uid = TextField()
    number = IntegerField(null=True)
    modality = TextField()
    description = TextField()
    body_part = TextField()
    instance_count = IntegerField(default=0)

    class Meta:
        table_name = "series"


def up(db):
    models = [Patient, Study, Series]
    with db.bind_ctx(models):
        db.create_tables(models)
