"""The worklist query: GET /pacs/api/studies parameters -> one indexed query
on the study table (patient fields are copied onto it, so no join)."""

import datetime
import functools
import operator
import re
from dataclasses import dataclass, field
from typing import Annotated

from peewee import SQL, Value
from pydantic import Field

from plugin.auth.models import StudyShare, User
from plugin.db import utcnow
from plugin.dicomnames import age_at, display_name, pn_from_text, pn_key, search_text
from plugin.errors import Invalid
from plugin.listquery import Choices, Codes, Date, ListQuery, OneOf, Sort, Text, Whole
from plugin.models import MAX_SEARCH_TEXT, PRIORITIES, STATUSES, Study, studies_with_word

MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000  # OFFSET = page x page size must stay a database integer
DEFAULT_PAGE_SIZE = 50
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


class WorklistQuery(ListQuery):
    """The worklist's filters, sort and page (GET /pacs/api/studies)."""

    status: Annotated[list, Choices(STATUSES)] = Field([], description="comma list of " + ", ".join(STATUSES))
    modality: Annotated[list, Codes(MODALITY, "a DICOM modality code (e.g. CT, MR)")] = Field(
        [], description="comma list of modality codes, e.g. CT,MR"
    )
    priority: Annotated[list, Choices(PRIORITIES)] = Field([], description="comma list of " + ", ".join(PRIORITIES))
    assignee: Annotated[str, Text(lower=True)] = Field("", description="a username, me or none")
    date: Annotated[str, OneOf(DATE_PRESETS, " (or date_from/date_to)")] = Field(
        "", description="today, yesterday, 7d or 30d"
    )
    date_from: Annotated[datetime.date | None, Date()] = Field(None, description="YYYY-MM-DD (study date)")
    date_to: Annotated[datetime.date | None, Date()] = Field(None, description="YYYY-MM-DD")
    referring: Annotated[str, Text(MAX_SEARCH_TEXT)] = Field("", description="referring physician (DICOM PN)")
    q: Annotated[str, Text(MAX_SEARCH_TEXT)] = Field(
        "",
        description="name, patient ID or accession: each word is the start of a word (accent- and "
        "case-insensitive), e.g. 'mül an' finds MÜLLER^ANNA",
    )
    sort: Annotated[list, Sort(SORTS)] = Field(
        DEFAULT_SORT,
        validate_default=True,
        description="up to 3 columns, '-' for descending; default -priority,arrived_at",
    )
    page: Annotated[int, Whole(1, MAX_PAGE)] = Field(1, description="1-based")
    page_size: Annotated[int, Whole(1, cap=MAX_PAGE_SIZE)] = Field(
        DEFAULT_PAGE_SIZE, description=f"1-{MAX_PAGE_SIZE} (larger is capped)"
    )


@dataclass
class Filters:
    statuses: list = field(default_factory=list)
    modalities: list = field(default_factory=list)
    priorities: list = field(default_factory=list)
    assignee: str = ""  # "", "me", "none" or a username
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    referring: str = ""
    q: str = ""
    sort: list = field(default_factory=list)
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE


def parse_filters(values, today):
    """The filters of a query string's ``values``; every problem is Invalid, naming it."""
    return filters_from(WorklistQuery.model_validate(values), today)


def filters_from(query, today):
    """The filters of a checked `WorklistQuery`: its date preset (days before ``today``)
    stands for date_from and date_to."""
    date_from, date_to = _dates(query, today)
    return Filters(
        statuses=query.status,
        modalities=query.modality,
        priorities=query.priority,
        assignee=query.assignee,
        date_from=date_from,
        date_to=date_to,
        referring=query.referring,
        q=query.q,
        sort=query.sort,
        page=query.page,
        page_size=query.page_size,
    )


def search(filters, principal, scope_keys=None, now=None):
    """(items as dicts, total) for one page of the worklist."""
    users = user_names()
    query = Study.select().where(*_conditions(filters, principal, scope_keys, users))
    total = query.count()
    order: list = []
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
        terms = (wrapped.contains("\\" + modality + "\\") for modality in filters.modalities)
        conditions.append(functools.reduce(operator.or_, terms))
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
            conditions.append(Study.id.in_(studies_with_word(word)))
    if scope_keys is not None:  # a referrer: their names, and what was shared with them
        shared = StudyShare.select(StudyShare.study_instance_uid).where(StudyShare.user == principal.user_id)
        in_scope = Study.study_instance_uid.in_(shared)
        if scope_keys:
            in_scope = in_scope | Study.referring_key.in_(list(scope_keys))
        conditions.append(in_scope)
    return conditions or [True]


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


def _dates(query, today):
    if query.date:
        back_from, back_to = DATE_PRESETS[query.date]
        return today - datetime.timedelta(days=back_from), today - datetime.timedelta(days=back_to)
    if query.date_from and query.date_to and query.date_from > query.date_to:
        raise Invalid("date_from is after date_to")
    return query.date_from, query.date_to
