"""The plugin's own index of what Orthanc holds: patient, study and series
summaries, written from Orthanc's JSON view of a study.

`summarise` is a pure function of Orthanc's answers; `store` and `remove`
write it. Only DICOM-derived columns are written here: the reading workflow
(status, priority, assignee, ...) belongs to the worklist and survives
re-indexing.
"""

import datetime
import logging
from dataclasses import dataclass, field

from peewee import IntegrityError

from plugin.db import database, utcnow
from plugin.dicomnames import pn_key, search_text
from plugin.events import Events
from plugin.models import DOCUMENT_MODALITIES, Patient, Series, Study, save_search_terms
from plugin.orders import arrivals

LOGGER = logging.getLogger(__name__)

# The range of the DICOM IS value representation (PS3.5 6.2).
IS_MIN, IS_MAX = -(2**31), 2**31 - 1


@dataclass
class SeriesSummary:
    orthanc_id: str
    series_instance_uid: str
    number: int | None
    modality: str
    description: str
    body_part: str
    instance_count: int


@dataclass
class StudySummary:
    orthanc_id: str
    study_instance_uid: str
    last_update: str
    patient_orthanc_id: str
    patient_id: str
    patient_name: str
    birth_date: datetime.date | None
    sex: str
    accession_number: str
    study_date: datetime.date | None
    study_time: str
    description: str
    referring_physician: str
    institution_name: str
    series: list = field(default_factory=list)

    @property
    def image_series(self):
        """The series of images: documents (a report's PDF copy) are not counted."""
        return [s for s in self.series if s.modality not in DOCUMENT_MODALITIES]

    @property
    def modalities(self):
        return "\\".join(_unique(s.modality for s in self.image_series))

    @property
    def body_parts(self):
        return "\\".join(_unique(s.body_part for s in self.image_series))

    @property
    def instance_count(self):
        return sum(s.instance_count for s in self.image_series)


def parse_date(value):
    """A DICOM DA (YYYYMMDD, or the old YYYY.MM.DD) as a date; None if absent or invalid."""
    text = (value or "").strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def parse_int(value):
    """A DICOM IS as an int; None if absent, invalid or outside IS's 32-bit range.

    Orthanc keeps malformed values of up to 256 characters: a 20-digit
    SeriesNumber overflowed the integer column and the study never got indexed.
    """
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if IS_MIN <= number <= IS_MAX else None


def summarise(study, series):
    """Build a StudySummary from GET /studies/{id} and GET /studies/{id}/series."""
    tags = study.get("MainDicomTags", {})
    patient = study.get("PatientMainDicomTags", {})
    return StudySummary(
        orthanc_id=study["ID"],
        study_instance_uid=tags.get("StudyInstanceUID", ""),
        last_update=study.get("LastUpdate", ""),
        patient_orthanc_id=study.get("ParentPatient", ""),
        patient_id=patient.get("PatientID", ""),
        patient_name=patient.get("PatientName", ""),
        birth_date=parse_date(patient.get("PatientBirthDate")),
        sex=patient.get("PatientSex", ""),
        accession_number=tags.get("AccessionNumber", ""),
        study_date=parse_date(tags.get("StudyDate")),
        study_time=tags.get("StudyTime", ""),
        description=tags.get("StudyDescription", ""),
        referring_physician=tags.get("ReferringPhysicianName", ""),
        institution_name=tags.get("InstitutionName", ""),
        series=sorted(
            (_summarise_series(s) for s in series),
            key=lambda s: (s.number is None, s.number or 0, s.series_instance_uid),
        ),
    )


def _summarise_series(series):
    tags = series.get("MainDicomTags", {})
    return SeriesSummary(
        orthanc_id=series["ID"],
        series_instance_uid=tags.get("SeriesInstanceUID", ""),
        number=parse_int(tags.get("SeriesNumber")),
        modality=tags.get("Modality", "").strip().upper(),
        description=tags.get("SeriesDescription", ""),
        body_part=tags.get("BodyPartExamined", "").strip().upper(),
        instance_count=len(series.get("Instances", [])),
    )


def _unique(values):
    seen = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return seen


def store(summary, now=None, events=None):
    """Insert or update the study, its patient and its series; return the Study.
    An order the study arrives for is published on ``events`` (order.changed).

    Another node sharing the database may insert the same study at the same
    moment: the loser of that race retries once as an update.
    """
    now = now or utcnow()
    events = events if events is not None else Events()
    try:
        return _store(summary, now, events)
    except IntegrityError:
        return _store(summary, now, events)


def _store(summary, now, events):
    with database.atomic():
        patient = _store_patient(summary, now)
        study = Study.get_or_none(Study.orthanc_id == summary.orthanc_id) or _scheduled_study(summary)
        order = arrivals.order_of_study(study) if study is not None else None
        if study is None:
            study = Study(status="arrived", arrived_at=now)
        elif study.status == "scheduled":
            study.status, study.arrived_at = "arrived", now
        study.orthanc_id = summary.orthanc_id
        study.patient = patient
        study.study_instance_uid = summary.study_instance_uid
        study.accession_number = summary.accession_number
        study.study_date = summary.study_date
        study.study_time = summary.study_time
        study.description = summary.description
        # An order's referring physician wins: it decides which referrer sees the study.
        study.referring_physician = (
            order.referring_physician if order and order.referring_physician else summary.referring_physician
        )
        study.referring_key = pn_key(study.referring_physician)
        study.institution_name = summary.institution_name
        study.modalities = summary.modalities
        study.body_parts = summary.body_parts
        study.series_count = len(summary.image_series)
        study.instance_count = summary.instance_count
        study.orthanc_last_update = summary.last_update
        study.patient_name = summary.patient_name
        study.patient_dicom_id = summary.patient_id
        study.patient_sex = summary.sex
        study.patient_birth_date = summary.birth_date
        study.search_text = search_text(
            summary.patient_name, summary.patient_id, summary.accession_number, summary.description
        )
        study.indexed_at = study.updated_at = now
        study.save()
        save_search_terms(study.id, study.search_text)
        _store_series(study, summary.series)
        if order is not None:
            arrivals.link_arrival(order, now, events)
        return study


def _scheduled_study(summary):
    """The row of an order (scheduled, no images yet) waiting for this study, if
    any: by StudyInstanceUID, else by accession number. The order's priority
    is already on that row."""
    for column, value in (
        (Study.study_instance_uid, summary.study_instance_uid),
        (Study.accession_number, summary.accession_number),
    ):
        if value:
            row = Study.select().where(column == value, Study.orthanc_id.is_null(), Study.status == "scheduled").first()
            if row is not None:
                return row
    return None


def _store_patient(summary, now):
    patient = Patient.get_or_none(Patient.orthanc_id == summary.patient_orthanc_id)
    if patient is None:
        patient = Patient(orthanc_id=summary.patient_orthanc_id)
    patient.patient_id = summary.patient_id
    patient.name = summary.patient_name
    patient.birth_date = summary.birth_date
    patient.sex = summary.sex
    patient.updated_at = now
    patient.save()
    return patient


def _store_series(study, summaries):
    existing = {s.orthanc_id: s for s in Series.select().where(Series.study == study)}
    wanted = {s.orthanc_id for s in summaries}
    gone = [row.id for key, row in existing.items() if key not in wanted]
    if gone:
        Series.delete().where(Series.id.in_(gone)).execute()
    for summary in summaries:
        row = existing.get(summary.orthanc_id) or Series(orthanc_id=summary.orthanc_id)
        row.study = study
        row.series_instance_uid = summary.series_instance_uid
        row.number = summary.number
        row.modality = summary.modality
        row.description = summary.description
        row.body_part = summary.body_part
        row.instance_count = summary.instance_count
        row.save()


def remove(orthanc_id):
    """Drop a study that Orthanc no longer holds, and its patient if now empty.
    Returns the removed study's StudyInstanceUID, or None."""
    with database.atomic():
        study = Study.get_or_none(Study.orthanc_id == orthanc_id)
        if study is None:
            return None
        patient_id = study.patient_id
        Series.delete().where(Series.study == study).execute()
        study.delete_instance()
        if patient_id and not Study.select().where(Study.patient == patient_id).exists():
            Patient.delete().where(Patient.id == patient_id).execute()
        return study.study_instance_uid


def study_of_series(series_orthanc_id):
    """The Orthanc ID of the indexed study holding this series, or None."""
    row = Study.select(Study.orthanc_id).join(Series).where(Series.orthanc_id == series_orthanc_id).first()
    return row.orthanc_id if row else None


def indexed_versions():
    """{orthanc_id: LastUpdate} for every indexed study that has images."""
    query = Study.select(Study.orthanc_id, Study.orthanc_last_update).where(Study.orthanc_id.is_null(False))
    return {row.orthanc_id: row.orthanc_last_update for row in query}
