"""Modality Worklist matching: a C-FIND identifier against orders, each match
answered as a DICOM file (PS3.4 K.6 and C.2.2.2). Plain Python: no Orthanc,
no database.

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
import struct
from dataclasses import dataclass, field
from typing import Any

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

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
# Keys whose constraint can narrow the database query before matching (orders columns).
PREFILTER_COLUMNS = {
    "AccessionNumber": "accession_number",
    "PatientID": "patient_id",
    "StudyInstanceUID": "study_instance_uid",
    "RequestedProcedureID": "requested_procedure_id",
    "Modality": "modality",
    "ScheduledStationAETitle": "scheduled_station_aet",
    "ScheduledProcedureStepStartDate": "scheduled_date",
    "PatientName": "patient_name",
}

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


class MwlQueryError(ValueError):
    """A query that cannot be answered (the C-FIND fails). The message names the
    attribute, never its value: it goes to the log."""


@dataclass
class Constraint:
    keyword: str
    vr: str
    kind: str = "universal"  # universal | single | wildcard | range | list (of Constraints)
    value: Any = None  # casefolded when `fold`; its type depends on `kind`
    text: str = ""  # as the query gave it
    fold: bool = False  # compare casefolded (person names, unless CaseSensitivePN)

    def matches(self, stored):
        """Whether a stored value (a string, or a list for multi-valued) matches."""
        if self.kind == "universal":
            return True
        values = stored if isinstance(stored, list) else [stored]
        return any(self._matches_one(v) for v in values if v)

    def _matches_one(self, stored):
        stored = stored.casefold() if self.fold else stored
        if self.kind == "range":
            low, high = self.value
            point = _time_key(stored) if self.vr == "TM" else stored
            return (low is None or point >= low) and (high is None or point <= high)
        if self.kind == "list":
            return any(one._matches_one(stored) for one in self.value)
        if self.kind == "wildcard":
            return self.value.fullmatch(stored) is not None
        if self.vr == "TM":
            return _time_key(stored) == self.value
        return stored == self.value

    def matching_values(self, stored):
        """The values of a multi-valued attribute that this key matched."""
        if self.kind == "universal":
            return stored
        return [v for v in stored if self._matches_one(v)]


def parse_constraint(keyword, vr, raw, fold_case=True):
    """A key's value -> Constraint; MwlQueryError if it is malformed."""
    text = raw.strip(" ")
    if text in ("", "*"):
        return Constraint(keyword, vr)
    if vr in ("DA", "TM"):
        return _date_or_time(keyword, vr, text)
    if "\\" in text:  # several values: any of them (list of UID matching, and wlmscpfs' AE lists)
        return Constraint(
            keyword, vr, "list", [parse_constraint(keyword, vr, one, fold_case) for one in text.split("\\")], text
        )
    fold = fold_case and vr == "PN"
    value = text.casefold() if fold else text
    if "*" in text or "?" in text:
        return Constraint(keyword, vr, "wildcard", _wildcard(value), text, fold)
    return Constraint(keyword, vr, "single", value, text, fold)


def _date_or_time(keyword, vr, text):
    check = _valid_date if vr == "DA" else _valid_time
    if "-" not in text:
        check(keyword, text)
        return Constraint(keyword, vr, "single", text if vr == "DA" else _time_key(text))
    if text.count("-") > 1 or text == "-":
        raise MwlQueryError(f"{keyword} is not a {vr} range (A-B, -B or A-)")
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
    raise MwlQueryError(f"{keyword} is not a date YYYYMMDD")


def _valid_time(keyword, text):
    if _TIME.match(text):
        padded = text.split(".")[0].ljust(6, "0")
        if int(padded[:2]) < 24 and int(padded[2:4]) < 60 and int(padded[4:6]) < 61:
            return
    raise MwlQueryError(f"{keyword} is not a time HHMMSS.FFFFFF")


def _time_key(text):
    """A TM as comparable text: HHMMSS.ffffff, missing parts as zeros."""
    main, _, fraction = text.strip().partition(".")
    return f"{main.ljust(6, '0')}.{fraction.ljust(6, '0')}"


def _plain_prefix(pattern):
    """The text before a pattern's first wildcard."""
    return re.split(r"[*?]", pattern, maxsplit=1)[0]


def _wildcard(text):
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text), re.DOTALL)


@dataclass
class Query:
    """What one C-FIND identifier asks: keys on the order, keys on its step."""

    keys: list = field(default_factory=list)
    step_keys: list | None = None  # None: the step sequence was not asked for
    ignored: list = field(default_factory=list)

    def matches(self, order):
        return all(k.matches(PATIENT_AND_PROCEDURE[k.keyword][1](order)) for k in self.keys) and all(
            k.matches(STEP[k.keyword][1](order)) for k in self.step_keys or ()
        )

    @property
    def prefilter(self):
        """[(orders column, operator, value)] that every match satisfies, for the
        database to narrow the candidates: "=", ">=", "<=", "contains" and
        "prefix" (both LIKE, escaped: case-insensitive for ASCII, so only ever wider)."""
        found = []
        for key in self.keys + (self.step_keys or []):
            column = PREFILTER_COLUMNS.get(key.keyword)
            if column is None:
                continue
            if key.kind == "single" and column == "scheduled_station_aet":
                found.append((column, "contains", key.value))
            elif key.kind == "single" and not key.fold:  # a folded name: equal whatever its case
                found.append((column, "=", key.value))
            elif key.kind == "range" and key.vr == "DA":
                low, high = key.value
                found += [(column, ">=", low)] if low else []
                found += [(column, "<=", high)] if high else []
            elif key.kind == "wildcard" and _plain_prefix(key.text):
                prefix = _plain_prefix(key.text.casefold() if key.fold else key.text)
                if key.fold:  # matched casefolded: so is name_key
                    found.append(("name_key", "prefix", prefix))
                elif column == "scheduled_station_aet":  # the match may be a second value
                    found.append((column, "contains", prefix))
                else:
                    found.append((column, "prefix", prefix))
        return found

    def answer(self, order):
        """The answer for a matching order: the asked keys with their values, as a
        Part-10 file (what Orthanc's WorklistAddAnswer takes), in UTF-8."""
        elements = [_element("SpecificCharacterSet", ANSWER_CHARSET)]
        elements += [_element(k.keyword, PATIENT_AND_PROCEDURE[k.keyword][1](order)) for k in self.keys]
        if self.step_keys is not None:
            item = []
            for key in self.step_keys:
                value = STEP[key.keyword][1](order)
                if isinstance(value, list):
                    value = key.matching_values(value)
                item.append(_element(key.keyword, value))
            elements.append(_sequence(STEP_SEQUENCE, [item]))
        return _FILE_PREFIX + b"".join(data for _, data in sorted(elements))


def parse_query(identifier, fold_case=True):
    """A C-FIND identifier (a Dataset) -> Query; MwlQueryError if malformed."""
    query = Query()
    for element in identifier:
        keyword = element.keyword
        if element.tag.element == 0 or keyword == "SpecificCharacterSet":
            continue
        if keyword == STEP_SEQUENCE:
            query.step_keys = _step_keys(element, fold_case)
        elif keyword in PATIENT_AND_PROCEDURE:
            vr = PATIENT_AND_PROCEDURE[keyword][0]
            query.keys.append(parse_constraint(keyword, vr, _text(element), fold_case))
        else:
            query.ignored.append(keyword or str(element.tag))
    return query


def _step_keys(element, fold_case):
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
            keys.append(parse_constraint(inner.keyword, STEP[inner.keyword][0], _text(inner), fold_case))
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


# --- the answer as bytes -------------------------------------------------------------
# Written here rather than by pydicom: with a hundred answers, pydicom's writer
# (about 2 ms an answer) was most of a C-FIND's time. Explicit VR little endian;
# every attribute we answer has a short-length VR, the step sequence and its
# item have undefined lengths.

_VR = {keyword: vr for keyword, (vr, _) in {**PATIENT_AND_PROCEDURE, **STEP}.items()}
_VR["SpecificCharacterSet"] = "CS"
_TAG = {keyword: tag_for_keyword(keyword) for keyword in list(_VR) + [STEP_SEQUENCE]}
_UNDEFINED = 0xFFFFFFFF
_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, _UNDEFINED)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQUENCE_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def _element(keyword, value):
    """(tag, bytes) of one attribute; a list is a multi-value."""
    tag, vr = _TAG[keyword], _VR[keyword]
    assert tag is not None  # every keyword of _TAG is in pydicom's dictionary
    data = ("\\".join(value) if isinstance(value, list) else value).encode("utf-8")
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return tag, struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode("ascii"), len(data)) + data


def _sequence(keyword, items):
    tag = _TAG[keyword]
    assert tag is not None  # every keyword of _TAG is in pydicom's dictionary
    body = b"".join(_ITEM + b"".join(data for _, data in sorted(item)) + _ITEM_END for item in items)
    return tag, struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"SQ", 0, _UNDEFINED) + body + _SEQUENCE_END


def _file_prefix():
    """Preamble, "DICM" and the file meta information (group 0002) every answer starts with."""
    meta = struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"
    for element, uid in (
        (0x0002, MWL_SOP_CLASS),
        (0x0003, generate_uid()),
        (0x0010, ExplicitVRLittleEndian),
        (0x0012, PYDICOM_IMPLEMENTATION_UID),
    ):
        data = uid.encode("ascii") + (b"\0" if len(uid) % 2 else b"")
        meta += struct.pack("<HH2sH", 0x0002, element, b"UI", len(data)) + data
    length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(meta))
    return b"\0" * 128 + b"DICM" + length + meta


_FILE_PREFIX = _file_prefix()


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
        answers: list[bytes] = []
        for order in self._candidates(query.prefilter):
            if query.matches(order):
                if len(answers) == self._max_answers:
                    return answers, False
                answers.append(query.answer(order))
        return answers, True
