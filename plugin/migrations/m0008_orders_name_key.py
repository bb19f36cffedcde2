"""Orders: the patient name casefolded, indexed, so that a worklist query by
name prefix ("SMI*", case-insensitive as DICOM person names are matched
here) is narrowed by the database instead of scanning every open order."""

from peewee import Model, TextField
from playhouse.migrate import SchemaMigrator, migrate


class Order(Model):
    patient_name = TextField()
    name_key = TextField(default="")

    class Meta:
        table_name = "orders"


def up(db):
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.add_column("orders", "name_key", TextField(default="")),
        migrator.add_index("orders", ("name_key",), False),
    )
    with db.bind_ctx([Order]):
        for row in Order.select(Order.id, Order.patient_name):
            Order.update(name_key=row.patient_name.casefold()).where(Order.id == row.id).execute()
