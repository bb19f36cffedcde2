"""The reading worklist: patient fields copied onto the study (one-table,
indexed list queries), a folded search column, assignment, claims, the
finalisation time (turnaround) and a change time for live refresh."""

from peewee import DateField, DateTimeField, IntegerField, Model, TextField
from playhouse.migrate import SchemaMigrator, migrate

from plugin.dicomnames import search_text


class Patient(Model):
    patient_id = TextField()
    name = TextField()
    birth_date = DateField(null=True)
    sex = TextField()

    class Meta:
        table_name = "patient"


class Study(Model):
    patient_id = IntegerField(null=True)
    accession_number = TextField()
    indexed_at = DateTimeField()

    class Meta:
        table_name = "study"


def up(db):
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.add_column("study", "patient_name", TextField(default="")),
        migrator.add_column("study", "patient_dicom_id", TextField(default="")),
        migrator.add_column("study", "patient_sex", TextField(default="")),
        migrator.add_column("study", "patient_birth_date", DateField(null=True)),
        migrator.add_column("study", "search_text", TextField(default="")),
        migrator.add_column("study", "assignee_id", IntegerField(null=True)),
        migrator.add_column("study", "claimed_by_id", IntegerField(null=True)),
        migrator.add_column("study", "claim_expires_at", DateTimeField(null=True)),
        migrator.add_column("study", "final_at", DateTimeField(null=True)),
        migrator.add_column("study", "updated_at", DateTimeField(null=True)),
        migrator.add_index("study", ("patient_name",), False),
        migrator.add_index("study", ("patient_dicom_id",), False),
        migrator.add_index("study", ("assignee_id",), False),
        migrator.add_index("study", ("updated_at",), False),
        migrator.add_index("study", ("status", "arrived_at"), False),
    )
    with db.bind_ctx([Patient, Study]):
        for study in Study.select(Study.id, Study.patient_id, Study.accession_number, Study.indexed_at):
            patient = Patient.get_or_none(Patient.id == study.patient_id)
            if patient is None:
                continue
            db.execute_sql(
                "UPDATE study SET patient_name = %s, patient_dicom_id = %s, patient_sex = %s, "
                "patient_birth_date = %s, search_text = %s, updated_at = %s WHERE id = %s".replace("%s", db.param),
                (
                    patient.name,
                    patient.patient_id,
                    patient.sex,
                    patient.birth_date,
                    search_text(patient.name, patient.patient_id, study.accession_number),
                    study.indexed_at,
                    study.id,
                ),
            )
