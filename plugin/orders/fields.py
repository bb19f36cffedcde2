"""The fields of an order as the API takes them: names, checks, DICOM limits.

Every value ends up in a DICOM attribute of the worklist answer, so each is
held to its value representation (PS3.5 6.2): length, no "\\" (the value
separator) where one value is meant, no control characters. Every problem is
an Invalid error that names the field.
"""

import datetime
import re
from typing import Annotated, Any

from pydantic import ConfigDict, WithJsonSchema, create_model

from plugin.errors import Invalid
from plugin.models import PRIORITIES

SEXES = ("M", "F", "O", "")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
MAX_PN_GROUP = 64


def _string(data, name):
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string")
    return value.strip()


def _checked(value, name, limit, multiline=False):
    if len(value) > limit:
        raise Invalid(f"{name} is longer than {limit} characters")
    if (_CONTROL_EXCEPT_LINES if multiline else _CONTROL).search(value):
        raise Invalid(f"{name} contains control characters")
    return value


def short_string(limit):
    """SH (16), LO (64): one value, no backslash."""

    def parse(data, name):
        value = _checked(_string(data, name), name, limit)
        if "\\" in value:
            raise Invalid(f"{name} must not contain a backslash")
        return value

    return parse


def long_text(data, name):
    """LT: up to 10 240 characters, line breaks allowed."""
    return _checked(_string(data, name), name, 10240, multiline=True)


def person_name(data, name):
    """PN: up to three groups (alphabetic=ideographic=phonetic) of five ^-separated parts."""
    value = _checked(_string(data, name), name, 3 * MAX_PN_GROUP + 2)
    if "\\" in value:
        raise Invalid(f"{name} must not contain a backslash")
    groups = value.split("=")
    if len(groups) > 3 or any(len(g) > MAX_PN_GROUP or g.count("^") > 4 for g in groups):
        raise Invalid(
            f"{name} is not a DICOM person name (Family^Given^Middle^Prefix^Suffix, "
            f"at most {MAX_PN_GROUP} characters per group)",
        )
    return value


def code_string(choices):
    def parse(data, name):
        value = _string(data, name).upper()
        if value not in choices:
            raise Invalid(f"{name} must be one of {', '.join(c for c in choices if c) or 'empty'}")
        return value

    return parse


def modality(data, name):
    value = _string(data, name).upper()
    if not _MODALITY.match(value):
        raise Invalid(f"{name} must be a modality code such as CT or MR")
    return value


def priority(data, name):
    value = _string(data, name).lower() or "routine"
    if value not in PRIORITIES:
        raise Invalid(f"{name} must be one of {', '.join(PRIORITIES)}")
    return value


def station_aets(data, name):
    """One AE title or several (a list, or "\\"-separated): stored "\\"-joined."""
    raw = data.get(name)
    if raw is None:
        return ""
    if isinstance(raw, str):
        values = raw.split("\\")
    elif isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        values = raw
    else:
        raise Invalid(f"{name} must be an AE title or a list of AE titles")
    values = [v.strip() for v in values]
    if values == [""]:
        return ""
    for value in values:
        if not value or len(value) > 16 or _CONTROL.search(value):
            raise Invalid(f"{name}: {value!r} is not an AE title (1-16 characters)")
    return "\\".join(values)


def past_date(data, name, clock):
    """A date YYYY-MM-DD, not after the clinic's today."""
    value = _string(data, name)
    if not value:
        return None
    try:
        date = datetime.date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{name} must be a date YYYY-MM-DD") from None
    if len(value) != 10:
        raise Invalid(f"{name} must be a date YYYY-MM-DD")
    if date > clock.today():
        raise Invalid(f"{name} is in the future")
    return date


def scheduled_at(data, name, clock):
    """ISO 8601 date and time -> (DA, TM) in the clinic's time zone.

    Modalities compare worklist dates and times with their own clock, which
    DICOM takes as local: a time with an offset is converted to the clinic's
    (09:00+01:00 is 09:00 in Paris, 08:00 in London); one without is the clinic's.
    """
    value = _string(data, name)
    moment: datetime.datetime | None  # None: no local time (below)
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{name} must be an ISO 8601 date and time, e.g. 2026-11-23T09:30") from None
    if "T" not in value.upper() and " " not in value:
        raise Invalid(f"{name} needs a time as well as a date, e.g. 2026-11-23T09:30")
    try:
        if moment.tzinfo is not None:
            moment = clock.local(moment).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01T00:00+14:00 has no local time
        moment = None
    if moment is None or not 1900 <= moment.year <= 9999:  # DA is YYYYMMDD
        raise Invalid(f"{name} must be a date and time between the years 1900 and 9999")
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")


def uid(data, name):
    value = _string(data, name)
    if value and (len(value) > 64 or not _UID.match(value)):
        raise Invalid(f"{name} is not a DICOM UID (digits and dots, at most 64 characters)")
    return value


# API name -> parser. The column of the same name holds the value, except
# scheduled_at (two columns).
FIELDS = {
    "patient_id": short_string(64),
    "patient_name": person_name,
    "patient_birth_date": past_date,
    "patient_sex": code_string(SEXES),
    "modality": modality,
    "scheduled_station_aet": station_aets,
    "scheduled_at": scheduled_at,
    "procedure": short_string(64),
    "accession_number": short_string(16),
    "referring_physician": person_name,
    "priority": priority,
    # Optional worklist details (each one a DICOM attribute of the answer).
    "study_instance_uid": uid,
    "requested_procedure_id": short_string(16),
    "scheduled_procedure_step_id": short_string(16),
    "step_description": short_string(64),
    "requesting_physician": person_name,
    "performing_physician": person_name,
    "station_name": short_string(16),
    "location": short_string(16),
    "medical_alerts": short_string(64),
    "allergies": short_string(64),
    "contrast_agent": short_string(64),
    "pre_medication": short_string(64),
    "comments": long_text,
}
REQUIRED = ("patient_id", "modality", "scheduled_at", "procedure")
CLOCKED = frozenset({"patient_birth_date", "scheduled_at"})  # parsers that read the clinic's clock


def parse(data, creating, clock):
    """Checked values of the fields present in ``data`` (all of REQUIRED when creating);
    dates and times in the clinic's zone (``clock``: plugin/clock.Clock)."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    missing = [name for name in REQUIRED if creating and not _present(data.get(name))]
    if missing:
        raise Invalid(f"missing field(s): {', '.join(missing)}")
    values = {
        name: FIELDS[name](data, name, clock) if name in CLOCKED else FIELDS[name](data, name)
        for name in FIELDS
        if name in data
    }
    for name in REQUIRED:
        if name in values and not values[name]:
            raise Invalid(f"{name} must not be empty")
    if "scheduled_at" in values:
        values["scheduled_date"], values["scheduled_time"] = values.pop("scheduled_at")
    return values


def _present(value):
    return value is not None and (not isinstance(value, str) or value.strip() != "")


# --- the body as documented (OpenAPI) ---------------------------------------------

_STRING = {"type": "string"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "scheduled_at": {"type": "string", "format": "date-time"},
    "patient_birth_date": {"type": "string", "format": "date"},
    "priority": {"enum": list(PRIORITIES)},
    "patient_sex": {"enum": list(SEXES)},
    "scheduled_station_aet": {"oneOf": [_STRING, {"type": "array", "items": _STRING}]},
}


def _body_model(name, required):
    """A model that documents the order's fields and hands the body on as posted:
    `parse` checks it, naming every missing field at once and each bad one, which a
    model's first error could not. Any field takes any value here; the service decides."""
    fields: dict[str, Any] = {
        field: (Annotated[Any, WithJsonSchema(SCHEMAS.get(field, _STRING))], None) for field in FIELDS
    }
    config = ConfigDict(extra="allow", json_schema_extra={"required": list(required), "additionalProperties": False})
    return create_model(name, __config__=config, **fields)


NewOrder = _body_model("NewOrder", REQUIRED)
OrderChanges = _body_model("OrderChanges", ())


def posted(body):
    """The fields a body model holds, exactly as they were posted (unknown ones too)."""
    return body.model_dump(exclude_unset=True)
