"""The worklist's search finds the study description too, and a study's document
series (modality DOC: the signed reports' PDF copies) are not counted as images nor
as a modality: every study's counts, modalities and body parts are recomputed from
its series, and its search words rebuilt with the description."""

from peewee import ForeignKeyField, IntegerField, Model, TextField

from plugin.dicomnames import search_text

DOCUMENTS = ("DOC",)
BATCH = 1000


class Study(Model):
    accession_number = TextField()
    description = TextField()
    modalities = TextField()
    body_parts = TextField()
    series_count = IntegerField(default=0)
    instance_count = IntegerField(default=0)
    patient_name = TextField(default="")
    patient_dicom_id = TextField(default="")
    search_text = TextField(default="")

    class Meta:
        table_name = "study"


class Series(Model):
    study = ForeignKeyField(Study, on_delete="CASCADE")
    series_instance_uid = TextField()
    number = IntegerField(null=True)
    modality = TextField()
    body_part = TextField()
    instance_count = IntegerField(default=0)

    class Meta:
        table_name = "series"


class StudyTerm(Model):
    study = ForeignKeyField(Study, on_delete="CASCADE")
    term = TextField()

    class Meta:
        table_name = "study_term"


def _unique(values):
    return "\\".join(dict.fromkeys(v for v in values if v))


def up(db):
    with db.bind_ctx([Study, Series, StudyTerm]):
        series = {}
        for row in Series.select().order_by(Series.study, Series.id):
            series.setdefault(row.study_id, []).append(row)
        for study in Study.select().order_by(Study.id):
            text = search_text(study.patient_name, study.patient_dicom_id, study.accession_number, study.description)
            changes = {"search_text": text}
            if study.id in series:  # a study with images (an order without images keeps its modality)
                images = sorted(
                    (s for s in series[study.id] if s.modality not in DOCUMENTS),
                    key=lambda s: (s.number is None, s.number or 0, s.series_instance_uid),
                )
                changes.update(
                    modalities=_unique(s.modality for s in images),
                    body_parts=_unique(s.body_part for s in images),
                    series_count=len(images),
                    instance_count=sum(s.instance_count for s in images),
                )
            Study.update(**changes).where(Study.id == study.id).execute()
            if text != study.search_text:
                StudyTerm.delete().where(StudyTerm.study == study.id).execute()
                terms = [(study.id, term) for term in sorted(set(text.split()))]
                for start in range(0, len(terms), BATCH):
                    StudyTerm.insert_many(
                        terms[start : start + BATCH], fields=[StudyTerm.study, StudyTerm.term]
                    ).execute()
