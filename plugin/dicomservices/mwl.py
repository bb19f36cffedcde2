"""Modality Worklist matching: a C-FIND identifier against orders, answered
as datasets (PS3.4 K.6 and C.2.2.2). Plain Python: no Orthanc, no database.

What a query may ask, and how it is matched:
- single value (exact; person names case-insensitive unless Orthanc's
  ``CaseSensitivePN`` is true), wildcards ``*`` and ``?``, several values
  separated by "\\" (any of them: list of UID matching, and wlmscpfs does the
  same for other attributes);
- date and time ranges ``A-B``, ``-B``, ``A-`` (a partial time is padded
  with zeros: ``0856`` is 08:56:00);
- universal matching: an empty key returns the attribute;
- sequence matching on the Scheduled Procedure Step Sequence: its one item
  holds the step's keys; an empty sequence, or an empty item, asks for every
  step attribute (as dcmtk's wlmscpfs expands it);
- keys we do not hold are ignored (neither matched nor returned), as wlmscpfs
  does; a malformed date, time or sequence fails the whole query.

Orthanc 1.10 post-processes every answer (WorklistAddAnswer): it keeps only
the query's keys, converts the text to its DefaultEncoding and matches the
step item again, constraint by constraint, dropping the item when one fails.
Hence two choices here:
- the step's date and time are matched each on its own (not as the one
  combined date-time range of PS3.4 C.2.2.2.5): an item matched as combined
  would come out of Orthanc without its step;
- a multi-valued Scheduled Station AE Title is answered with the values the
  query asked for (Orthanc compares the whole multi-value with the key).
"""

import datetime
import io
import logging
import re
from dataclasses import dataclass, field

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian

LOGGER = logging.getLogger(__name__)

MWL_SOP_CLASS = "1.2.840.10008.5.1.4.31"
STEP_SEQUENCE = "ScheduledProcedureStepSequence"
ANSWER_CHARSET = "ISO_IR 192"

STEP_STATUS = {"scheduled": "SCHEDULED", "in_progress": "STARTED"}
REQUESTED_PRIORITY = {"stat": "STAT", "urgent": "HIGH", "routine": "ROUTINE"}


def _date(value):
    return value.strftime("%Y%m%d") if value else ""


# keyword -> (VR, value of an order). Top-level attributes first, then the
# step item's, each in the order wlmscpfs expands an empty step item.
PATIENT_AND_PROCEDURE = {
    "AccessionNumber": ("SH", lambda o: o.accession_number),
    "ReferringPhysicianName": ("PN", lambda o: o.referring_physician),
    "PatientName": ("PN", lambda o: o.patient_name),
    "PatientID": ("LO", lambda o: o.patient_id),
    "PatientBirthDate": ("DA", lambda o: _date(o.patient_birth_date)),
    "PatientSex": ("CS", lambda o: o.patient_sex),
    "MedicalAlerts": ("LO", lambda o: o.medical_alerts),
    "Allergies": ("LO", lambda o: o.allergies),
    "StudyInstanceUID": ("UI", lambda o: o.study_instance_uid),
    "RequestingPhysician": ("PN", lambda o: o.requesting_physician),
    "RequestedProcedureDescription": ("LO", lambda o: o.procedure),
    "RequestedProcedureID": ("SH", lambda o: o.requested_procedure_id),
    "RequestedProcedurePriority": ("SH", lambda o: REQUESTED_PRIORITY.get(o.priority, "ROUTINE")),
}
STEP = {
    "Modality": ("CS", lambda o: o.modality),
    "RequestedContrastAgent": ("LO", lambda o: o.contrast_agent),
    "ScheduledStationAETitle": ("AE", lambda o: [a for a in o.scheduled_station_aet.split("\\") if a]),
    "ScheduledProcedureStepStartDate": ("DA", lambda o: o.scheduled_date),
    "ScheduledProcedureStepStartTime": ("TM", lambda o: o.scheduled_time),
    "ScheduledProcedureStepEndDate": ("DA", lambda o: ""),
    "ScheduledProcedureStepEndTime": ("TM", lambda o: ""),
    "ScheduledPerformingPhysicianName": ("PN", lambda o: o.performing_physician),
    "ScheduledProcedureStepDescription": ("LO", lambda o: o.step_description),
    "ScheduledProcedureStepID": ("SH", lambda o: o.scheduled_procedure_step_id),
    "ScheduledStationName": ("SH", lambda o: o.station_name),
    "ScheduledProcedureStepLocation": ("SH", lambda o: o.location),
    "PreMedication": ("LO", lambda o: o.pre_medication),
    "ScheduledProcedureStepStatus": ("CS", lambda o: STEP_STATUS.get(o.status, "")),
    "CommentsOnTheScheduledProcedureStep": ("LT", lambda o: o.comments),
}
# Exact keys that narrow the database query before matching (orders columns).
PREFILTER_COLUMNS = {
    "AccessionNumber": "accession_number",
    "PatientID": "patient_id",
    "StudyInstanceUID": "study_instance_uid",
    "RequestedProcedureID": "requested_procedure_id",
    "Modality": "modality",
    "ScheduledStationAETitle": "scheduled_station_aet",
    "ScheduledProcedureStepStartDate": "scheduled_date",
}

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


class MwlQueryError(ValueError):
    """A query that cannot be answered (the C-FIND fails)."""


@dataclass
class Constraint:
    keyword: str
    vr: str
    kind: str = "universal"  # universal | single | wildcard | range | list (of Constraints)
    value: object = None

    def matches(self, stored, fold_case):
        """Whether a stored value (a string, or a list for multi-valued) matches."""
        if self.kind == "universal":
            return True
        values = stored if isinstance(stored, list) else [stored]
        return any(self._matches_one(v, fold_case) for v in values if v)

    def _matches_one(self, stored, fold_case):
        fold = fold_case and self.vr == "PN"
        if self.kind == "range":
            low, high = self.value
            point = _time_key(stored) if self.vr == "TM" else stored
            return (low is None or point >= low) and (high is None or point <= high)
        if self.kind == "list":
            return any(one._matches_one(stored, fold_case) for one in self.value)
        if self.kind == "wildcard":
            return self.value.fullmatch(stored.casefold() if fold else stored) is not None
        if self.vr == "TM":
            return _time_key(stored) == self.value
        return (stored.casefold() == self.value.casefold()) if fold else stored == self.value

    def matching_values(self, stored, fold_case):
        """The values of a multi-valued attribute that this key matched."""
        if self.kind == "universal":
            return stored
        return [v for v in stored if self._matches_one(v, fold_case)]


def parse_constraint(keyword, vr, raw):
    """A key's value -> Constraint; MwlQueryError if it is malformed."""
    text = raw.strip(" ")
    if text in ("", "*"):
        return Constraint(keyword, vr)
    if vr in ("DA", "TM"):
        return _date_or_time(keyword, vr, text)
    if "\\" in text:  # several values: any of them (list of UID matching, and wlmscpfs' AE lists)
        return Constraint(keyword, vr, "list", [parse_constraint(keyword, vr, one) for one in text.split("\\")])
    if "*" in text or "?" in text:
        return Constraint(keyword, vr, "wildcard", _wildcard(text, vr == "PN"))
    return Constraint(keyword, vr, "single", text)


def _date_or_time(keyword, vr, text):
    check = _valid_date if vr == "DA" else _valid_time
    if "-" not in text:
        check(keyword, text)
        return Constraint(keyword, vr, "single", text if vr == "DA" else _time_key(text))
    if text.count("-") > 1 or text == "-":
        raise MwlQueryError(f"{keyword}: {text!r} is not a {vr} range")
    low, high = text.split("-")
    for bound in (low, high):
        if bound:
            check(keyword, bound)
    if vr == "TM":
        low, high = (_time_key(low) if low else None), (_time_key(high) if high else None)
    return Constraint(keyword, vr, "range", (low or None, high or None))


def _valid_date(keyword, text):
    try:
        if _DATE.match(text):
            datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            return
    except ValueError:
        pass
    raise MwlQueryError(f"{keyword}: {text!r} is not a date YYYYMMDD")


def _valid_time(keyword, text):
    if _TIME.match(text):
        padded = text.split(".")[0].ljust(6, "0")
        if int(padded[:2]) < 24 and int(padded[2:4]) < 60 and int(padded[4:6]) < 61:
            return
    raise MwlQueryError(f"{keyword}: {text!r} is not a time HHMMSS.FFFFFF")


def _time_key(text):
    """A TM as comparable text: HHMMSS.ffffff, missing parts as zeros."""
    main, _, fraction = text.strip().partition(".")
    return f"{main.ljust(6, '0')}.{fraction.ljust(6, '0')}"


def _wildcard(text, fold):
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(pattern, re.DOTALL | (re.IGNORECASE if fold else 0))


@dataclass
class Query:
    """What one C-FIND identifier asks: keys on the order, keys on its step."""
    keys: list = field(default_factory=list)
    step_keys: list = None  # None: the step sequence was not asked for
    ignored: list = field(default_factory=list)
    fold_case: bool = True

    def matches(self, order):
        return (all(k.matches(PATIENT_AND_PROCEDURE[k.keyword][1](order), self.fold_case) for k in self.keys)
                and all(k.matches(STEP[k.keyword][1](order), self.fold_case) for k in self.step_keys or ()))

    @property
    def prefilter(self):
        """{orders column: exact value or (low, high)} implied by the query."""
        found = {}
        for key in self.keys + (self.step_keys or []):
            column = PREFILTER_COLUMNS.get(key.keyword)
            if column is None:
                continue
            if key.kind == "single":
                found[column] = key.value
            elif key.kind == "range" and key.vr == "DA":
                found[column] = key.value
        return found

    def answer(self, order):
        """The answer dataset for a matching order: the asked keys and their values."""
        answer = Dataset()
        answer.SpecificCharacterSet = ANSWER_CHARSET
        for key in self.keys:
            setattr(answer, key.keyword, PATIENT_AND_PROCEDURE[key.keyword][1](order))
        if self.step_keys is not None:
            item = Dataset()
            for key in self.step_keys:
                value = STEP[key.keyword][1](order)
                if isinstance(value, list):
                    value = key.matching_values(value, self.fold_case)
                setattr(item, key.keyword, value)
            setattr(answer, STEP_SEQUENCE, [item])
        return answer


def parse_query(identifier, fold_case=True):
    """A C-FIND identifier (a Dataset) -> Query; MwlQueryError if malformed."""
    query = Query(fold_case=fold_case)
    for element in identifier:
        keyword = element.keyword
        if element.tag.element == 0 or keyword == "SpecificCharacterSet":
            continue
        if keyword == STEP_SEQUENCE:
            query.step_keys = _step_keys(element)
        elif keyword in PATIENT_AND_PROCEDURE:
            vr = PATIENT_AND_PROCEDURE[keyword][0]
            query.keys.append(parse_constraint(keyword, vr, _text(element)))
        else:
            query.ignored.append(keyword or str(element.tag))
    return query


def _step_keys(element):
    """The step item's keys; every step attribute for an empty sequence or item."""
    items = element.value or []
    if element.VR != "SQ":
        raise MwlQueryError(f"{STEP_SEQUENCE} must be a sequence")
    if len(items) > 1:
        raise MwlQueryError(f"{STEP_SEQUENCE} must hold one item, not {len(items)}")
    if not items or len(items[0]) == 0:
        return [Constraint(keyword, vr) for keyword, (vr, _) in STEP.items()]
    keys = []
    for inner in items[0]:
        if inner.keyword in STEP:
            keys.append(parse_constraint(inner.keyword, STEP[inner.keyword][0], _text(inner)))
    return keys


def _text(element):
    """An element's value as DICOM text ("\\" between values), decoded."""
    value = element.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        raise MwlQueryError(f"{element.keyword}: a {element.VR} value cannot be read as text")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def read_identifier(data):
    """A Part-10 file (as Orthanc hands the query over) -> Dataset; MwlQueryError if unreadable."""
    try:
        dataset = dcmread(io.BytesIO(data))
        dataset.decode()
        return dataset
    except (InvalidDicomError, ValueError, EOFError, LookupError, AttributeError) as error:
        raise MwlQueryError(f"the query is not a readable DICOM dataset: {error}") from None


def to_bytes(dataset):
    """A dataset as a Part-10 file, as Orthanc's WorklistAddAnswer wants it."""
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = MWL_SOP_CLASS
    dataset.file_meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.31.1"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class ModalityWorklist:
    """Answers MWL C-FINDs from the orders that ``candidates(prefilter)`` yields."""

    def __init__(self, candidates, case_sensitive_pn=False, max_answers=1000):
        self._candidates = candidates
        self._fold_case = not case_sensitive_pn
        self._max_answers = max_answers

    def find(self, query_bytes):
        """(answers as Part-10 bytes, complete?) for one C-FIND identifier."""
        query = parse_query(read_identifier(query_bytes), self._fold_case)
        if query.ignored:
            LOGGER.debug("event=mwl_keys_ignored keys=%s", ",".join(query.ignored))
        answers = []
        for order in self._candidates(query.prefilter):
            if query.matches(order):
                if len(answers) == self._max_answers:
                    return answers, False
                answers.append(to_bytes(query.answer(order)))
        return answers, True
