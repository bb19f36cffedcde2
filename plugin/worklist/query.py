"""The worklist query: GET /pacs/api/studies parameters -> one indexed query
on the study table (patient fields are copied onto it, so no join)."""

import datetime
import re
from dataclasses import dataclass, field

from peewee import SQL, Value

from plugin.auth.models import StudyShare, User
from plugin.db import is_pooled, utcnow
from plugin.dicomnames import age_at, display_name, pn_from_text, pn_key, search_text
from plugin.errors import Invalid
from plugin.http import DB_INT, whole_number
from plugin.models import PRIORITIES, STATUSES, Study, StudyTerm

MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000  # OFFSET = page x page size must stay a database integer
DEFAULT_PAGE_SIZE = 50
MAX_QUERY = 64
DATE_PRESETS = {"today": (0, 0), "yesterday": (1, 1), "7d": (6, 0), "30d": (29, 0)}
MODALITY = re.compile(r"^[A-Z0-9]{1,16}$")
# Literal SQL, the very expression of the index study_rank_arrived (m0007):
# a CASE with bound parameters would not match it.
PRIORITY_RANK = SQL("(CASE priority WHEN 'stat' THEN 3 WHEN 'urgent' THEN 2 ELSE 1 END)")

SORTS = {
    "patient_name": (Study.patient_name,),
    "patient_id": (Study.patient_dicom_id,),
    "accession_number": (Study.accession_number,),
    "study_date": (Study.study_date, Study.study_time),
    "modalities": (Study.modalities,),
    "description": (Study.description,),
    "referring_physician": (Study.referring_physician,),
    "instance_count": (Study.instance_count,),
    "status": (Study.status,),
    "priority": (PRIORITY_RANK,),
    "assignee": (Study.assignee_id,),
    "arrived_at": (Study.arrived_at,),
}
DEFAULT_SORT = "-priority,arrived_at"


@dataclass
class Filters:
    statuses: list = field(default_factory=list)
    modalities: list = field(default_factory=list)
    priorities: list = field(default_factory=list)
    assignee: str = ""  # "", "me", "none" or a username
    date_from: datetime.date = None
    date_to: datetime.date = None
    referring: str = ""
    q: str = ""
    sort: list = field(default_factory=list)
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE


def parse_filters(query, today):
    """Validate the query string; every problem is Invalid, naming it."""
    filters = Filters(
        statuses=_choices(query.get("status"), STATUSES, "status"),
        priorities=_choices(query.get("priority"), PRIORITIES, "priority"),
        modalities=_modalities(query.get("modality")),
        assignee=(query.get("assignee") or "").strip().lower(),
        referring=_text(query.get("referring"), "referring"),
        q=_text(query.get("q"), "q"),
        sort=_sort(query.get("sort") or DEFAULT_SORT),
        page=_whole(query.get("page"), "page", 1, minimum=1, maximum=MAX_PAGE),
        page_size=min(MAX_PAGE_SIZE, _whole(query.get("page_size"), "page_size", DEFAULT_PAGE_SIZE, minimum=1)),
    )
    filters.date_from, filters.date_to = _dates(query, today)
    return filters


def search(filters, principal, scope_keys=None, now=None):
    """(items as dicts, total) for one page of the worklist."""
    users = user_names()
    query = Study.select().where(*_conditions(filters, principal, scope_keys, users))
    total = query.count()
    order = []
    for name, descending in filters.sort:
        order.extend(c.desc() if descending else c.asc() for c in SORTS[name])
    order.append(Study.id.desc())
    rows = query.order_by(*order).paginate(filters.page, filters.page_size)
    now = now or utcnow()
    return [item(row, users, now) for row in rows], total


def describe(study):
    """The JSON of one study, as a worklist row."""
    return item(study, user_names(), utcnow())


def item(study, users, now):
    """The JSON of one worklist row."""
    claimed = study.claimed_by_id and study.claim_expires_at and study.claim_expires_at > now
    return {
        "study_instance_uid": study.study_instance_uid,
        "patient_name": study.patient_name,
        "patient_display_name": display_name(study.patient_name),
        "patient_id": study.patient_dicom_id,
        "patient_sex": study.patient_sex,
        "patient_birth_date": study.patient_birth_date,
        "patient_age": age_at(study.patient_birth_date, study.study_date),
        "accession_number": study.accession_number,
        "study_date": study.study_date,
        "study_time": study.study_time,
        "modalities": [m for m in study.modalities.split("\\") if m],
        "description": study.description,
        "referring_physician": study.referring_physician,
        "referring_physician_display_name": display_name(study.referring_physician),
        "body_parts": [b for b in study.body_parts.split("\\") if b],
        "series_count": study.series_count,
        "instance_count": study.instance_count,
        "status": study.status,
        "priority": study.priority,
        "assignee": users.get(study.assignee_id),
        "claimed_by": users.get(study.claimed_by_id) if claimed else None,
        "claim_expires_at": study.claim_expires_at if claimed else None,
        "arrived_at": study.arrived_at,
        "final_at": study.final_at,
        "updated_at": study.updated_at,
    }


def _conditions(filters, principal, scope_keys, users):
    conditions = []
    if filters.statuses:
        conditions.append(Study.status.in_(filters.statuses))
    if filters.priorities:
        conditions.append(Study.priority.in_(filters.priorities))
    if filters.modalities:
        wrapped = Value("\\").concat(Study.modalities).concat("\\")  # SQL ||, whole codes only
        any_of = None
        for modality in filters.modalities:
            term = wrapped.contains("\\" + modality + "\\")
            any_of = term if any_of is None else (any_of | term)
        conditions.append(any_of)
    if filters.assignee:
        conditions.append(_assignee(filters.assignee, principal, users))
    if filters.date_from:
        conditions.append(Study.study_date >= filters.date_from)
    if filters.date_to:
        conditions.append(Study.study_date <= filters.date_to)
    if filters.referring:
        conditions.append(Study.referring_key.contains(pn_key(pn_from_text(filters.referring))))
    if filters.q:
        for word in search_text(filters.q).split():
            conditions.append(Study.id.in_(_studies_with_word(word)))
    if scope_keys is not None:  # a referrer: their names, and what was shared with them
        shared = StudyShare.select(StudyShare.study_instance_uid).where(StudyShare.user == principal.user_id)
        in_scope = Study.study_instance_uid.in_(shared)
        if scope_keys:
            in_scope = in_scope | Study.referring_key.in_(list(scope_keys))
        conditions.append(in_scope)
    return conditions or [True]


def studies_of_patient(text, limit=1000):
    """StudyInstanceUIDs of a patient named by ID (exactly) or by name (words of it,
    each the start of a word of the name, accents and case aside: "mull an" finds
    Müller^Anna), for the audit trail's patient filter."""
    text = _text(text, "patient")
    uids = {
        row.study_instance_uid
        for row in Study.select(Study.study_instance_uid).where(Study.patient_dicom_id == text).limit(limit)
    }
    words = search_text(text).split()
    if words:
        named = (
            Study.select(Study.study_instance_uid, Study.patient_name)
            .where(*(Study.id.in_(_studies_with_word(word)) for word in words))
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


def _studies_with_word(prefix):
    """Studies with a search word starting with ``prefix``: an index range on study_term."""
    term = StudyTerm.term.collate('"C"') if is_pooled() else StudyTerm.term  # PostgreSQL: byte order
    return StudyTerm.select(StudyTerm.study).where((term >= prefix) & (term < prefix + "\U0010ffff"))


def _assignee(value, principal, users):
    if value == "none":
        return Study.assignee_id.is_null()
    if value == "me":
        return Study.assignee_id == principal.user_id
    ids = [uid for uid, name in users.items() if name == value]
    if not ids:
        raise Invalid(f"assignee: no user named {value!r} (use a username, 'me' or 'none')")
    return Study.assignee_id == ids[0]


def user_names():
    return {u.id: u.username for u in User.select(User.id, User.username)}


def _choices(raw, allowed, name):
    values = [v.strip().lower() for v in (raw or "").split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise Invalid(f"{name}: unknown value {unknown[0]!r}; use {', '.join(allowed)}")
    return values


def _modalities(raw):
    values = [v.strip().upper() for v in (raw or "").split(",") if v.strip()]
    bad = [v for v in values if not MODALITY.match(v)]
    if bad:
        raise Invalid(f"modality: {bad[0]!r} is not a DICOM modality code (e.g. CT, MR)")
    return values


def _text(raw, name):
    value = (raw or "").strip()
    if len(value) > MAX_QUERY:
        raise Invalid(f"{name}: at most {MAX_QUERY} characters")
    return value


def _whole(raw, name, default, minimum, maximum=DB_INT - 1):
    return default if raw in (None, "") else whole_number(raw, name, minimum, maximum)


def _sort(raw):
    keys = []
    for part in raw.split(",")[:3]:
        part = part.strip()
        descending = part.startswith("-")
        name = part.lstrip("-")
        if name not in SORTS:
            raise Invalid(f"sort: unknown column {name!r}; use one of {', '.join(sorted(SORTS))}")
        keys.append((name, descending))
    return keys


def _dates(query, today):
    preset = (query.get("date") or "").strip().lower()
    if preset:
        if preset not in DATE_PRESETS:
            raise Invalid(f"date: use one of {', '.join(DATE_PRESETS)} (or date_from/date_to)")
        back_from, back_to = DATE_PRESETS[preset]
        return today - datetime.timedelta(days=back_from), today - datetime.timedelta(days=back_to)
    start, end = _date(query.get("date_from"), "date_from"), _date(query.get("date_to"), "date_to")
    if start and end and start > end:
        raise Invalid("date_from is after date_to")
    return start, end


def _date(raw, name):
    if not raw:
        return None
    try:
        return datetime.date.fromisoformat(raw.strip())
    except ValueError:
        raise Invalid(f"{name} must be a date as YYYY-MM-DD") from None
