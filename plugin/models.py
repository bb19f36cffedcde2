"""The study index as the plugin uses it today (the schema itself is built by
plugin/migrations)."""

from peewee import CharField, DateField, DateTimeField, ForeignKeyField, IntegerField, TextField

from plugin.db import BaseModel, is_pooled
from plugin.dicomnames import search_text

STATUSES = ("scheduled", "arrived", "in_progress", "final", "amended", "cancelled")
PRIORITIES = ("routine", "urgent", "stat")
# Series of documents, not images: the signed reports' Encapsulated PDF copies
# (plugin/reports/copies.py). They are not counted as images nor as a modality.
DOCUMENT_MODALITIES = frozenset({"DOC"})
MAX_SEARCH_TEXT = 64  # the longest search text a list filter takes (worklist, audit)


class Patient(BaseModel):
    orthanc_id = CharField(max_length=64, unique=True)
    patient_id = TextField(index=True)
    name = TextField()
    birth_date = DateField(null=True)
    sex = TextField()
    updated_at = DateTimeField()

    class Meta:
        table_name = "patient"


class Study(BaseModel):
    orthanc_id = CharField(max_length=64, unique=True, null=True)
    study_instance_uid = TextField(index=True)
    patient = ForeignKeyField(Patient, backref="studies", null=True, on_delete="CASCADE")
    accession_number = TextField(index=True)
    study_date = DateField(null=True, index=True)
    study_time = TextField()
    description = TextField()
    referring_physician = TextField()
    referring_key = TextField(default="", index=True)
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
    # Copied from the patient so that worklist queries need no join.
    patient_name = TextField(default="", index=True)
    patient_dicom_id = TextField(default="", index=True)
    patient_sex = TextField(default="")
    patient_birth_date = DateField(null=True)
    search_text = TextField(default="")
    # The reading workflow (plugin/worklist): users by id, no foreign key to
    # keep the study index free of the accounts package.
    assignee_id = IntegerField(null=True, index=True)
    claimed_by_id = IntegerField(null=True)
    claim_expires_at = DateTimeField(null=True)
    final_at = DateTimeField(null=True)
    updated_at = DateTimeField(null=True, index=True)

    class Meta:
        table_name = "study"


class Series(BaseModel):
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


class StudyTerm(BaseModel):
    """One word of a study's folded search text (see save_search_terms)."""

    study = ForeignKeyField(Study, backref="terms", on_delete="CASCADE")
    term = TextField()

    class Meta:
        table_name = "study_term"


def save_search_terms(study_id, text):
    """Keep the study's searchable words in step with its folded search text.

    Every writer of ``Study.search_text`` calls this: the worklist finds
    words by prefix through the term index (plugin/worklist/query.py).
    """
    StudyTerm.delete().where(StudyTerm.study == study_id).execute()
    terms = sorted(set(text.split()))
    if terms:
        StudyTerm.insert_many([(study_id, term) for term in terms], fields=[StudyTerm.study, StudyTerm.term]).execute()


INDEX_MODELS = (Patient, Study, Series)


def studies_of_patient(text, limit=1000):
    """StudyInstanceUIDs of a patient named by ID (exactly) or by name (words of it,
    each the start of a word of the name, accents and case aside: "mull an" finds
    Müller^Anna), for the audit trail's patient filter (checked by its query model)."""
    uids = {
        row.study_instance_uid
        for row in Study.select(Study.study_instance_uid).where(Study.patient_dicom_id == text).limit(limit)
    }
    words = search_text(text).split()
    if words:
        named = (
            Study.select(Study.study_instance_uid, Study.patient_name)
            .where(*(Study.id.in_(studies_with_word(word)) for word in words))
            .limit(limit)
        )
        for row in named:
            name_words = search_text(row.patient_name).split()
            if all(any(n.startswith(word) for n in name_words) for word in words):
                uids.add(row.study_instance_uid)
    return sorted(uids)


def studies_by_uid(uids):
    """{StudyInstanceUID: Study} of those the index holds (one query)."""
    uids = sorted({uid for uid in uids if uid})
    return {s.study_instance_uid: s for s in Study.select().where(Study.study_instance_uid.in_(uids))} if uids else {}


def studies_with_word(prefix):
    """Studies with a search word starting with ``prefix``: an index range on study_term."""
    term = StudyTerm.term.collate('"C"') if is_pooled() else StudyTerm.term  # PostgreSQL: byte order
    return StudyTerm.select(StudyTerm.study).where((term >= prefix) & (term < prefix + "\U0010ffff"))
