"""The shared field types of list queries (plugin/listquery.py): each reads a query-string
value into a typed value or refuses it with Invalid naming the parameter; no string makes
any of them raise anything else. And the lists' query models built from them."""

import datetime
import re
from typing import Annotated

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from plugin.auth.routes import AuditQuery, audit_filters
from plugin.errors import Invalid
from plugin.http import DB_INT
from plugin.listquery import Choices, Codes, Date, ListQuery, OneOf, Sort, Text, Whole
from plugin.orders.service import OrderSearch
from plugin.routing import validate
from plugin.worklist.query import MAX_PAGE, WorklistQuery, parse_filters

TYPES = (
    Whole(),
    Whole(1, 100, cap=50),
    Date(),
    Date(times=True),
    Choices(("scheduled", "final")),
    Codes(),
    Codes(re.compile(r"[A-Z0-9]{1,16}"), "a modality code"),
    Sort(("patient_name", "study_date")),
    OneOf(("today", "7d")),
    Text(),
    Text(8, lower=True),
)
# Digits of every script, signs, separators and the odd character that once broke int().
_GARBAGE = st.one_of(
    st.text(),
    st.text("0123456789-+ ,²٣", max_size=25),
    st.from_regex(r"-?[0-9]{1,25}", fullmatch=True),
    st.text("0123456789-T:Z+ ", max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(value=_GARBAGE, kind=st.sampled_from(TYPES))
def test_any_string_is_a_value_or_invalid_naming_the_parameter(value, kind):
    try:
        kind.parse(value, "flt")
    except Invalid as refused:
        assert "flt" in refused.message


@settings(max_examples=300, deadline=None)
@given(number=st.integers(min_value=-(2**70), max_value=2**70))
def test_whole_numbers_inside_the_bounds_are_read_outside_refused(number):
    whole = Whole(1, 1000, cap=200)
    if 1 <= number <= 1000:
        assert whole.parse(str(number), "page_size") == min(number, 200)
    else:
        with pytest.raises(Invalid, match="page_size must be at (least 1|most 1000)"):
            whole.parse(str(number), "page_size")


@pytest.mark.parametrize("bad", ["x", "²", "1.5", "", " ", "1e3", "0x10", "١"])
def test_what_is_not_ascii_digits_is_not_a_whole_number(bad):
    with pytest.raises(Invalid, match="page must be a whole number"):
        Whole().parse(bad, "page")


def test_whole_numbers_stay_database_integers():
    assert Whole().parse(str(DB_INT - 1), "n") == DB_INT - 1
    with pytest.raises(Invalid, match="at most"):
        Whole().parse(str(DB_INT), "n")


def test_dates_as_iso_or_dicom_and_date_times_where_asked():
    assert Date().parse(" 2026-02-03 ", "d") == datetime.date(2026, 2, 3)
    assert Date().parse("20260203", "d") == datetime.date(2026, 2, 3)
    with pytest.raises(Invalid, match="d must be a date as YYYY-MM-DD"):
        Date().parse("2026-13-01", "d")
    with pytest.raises(Invalid, match="d must be a date"):
        Date().parse("2026-02-03T10:00:00", "d")
    moment = Date(times=True).parse("2026-02-03T10:00:00Z", "d")
    assert moment == datetime.datetime(2026, 2, 3, 10, tzinfo=datetime.timezone.utc)
    assert Date(times=True).parse("2026-02-03", "d") == datetime.date(2026, 2, 3)


def test_comma_lists_sort_choices_and_text():
    assert Choices(("final", "scheduled")).parse(" Final,, scheduled ", "status") == ["final", "scheduled"]
    with pytest.raises(Invalid, match="status: unknown value 'done'; use final, scheduled"):
        Choices(("final", "scheduled")).parse("final,done", "status")
    assert Codes().parse("ct, mr,", "modality") == ["CT", "MR"]
    with pytest.raises(Invalid, match="modality: 'C T' is not a code"):
        Codes(re.compile(r"[A-Z]+"), "a code").parse("C T", "modality")
    sort = Sort(("b", "a"))
    assert sort.parse("-a, b", "sort") == [("a", True), ("b", False)]
    assert sort.parse("a,b,a,nonsense", "sort") == [("a", False), ("b", False), ("a", False)]  # three at most
    with pytest.raises(Invalid, match="sort: unknown column 'password'; use one of a, b"):
        sort.parse("password", "sort")
    assert OneOf(("today", "7d"), " (or dates)").parse(" TODAY", "date") == "today"
    with pytest.raises(Invalid, match=re.escape("date: use one of today, 7d (or dates)")):
        OneOf(("today", "7d"), " (or dates)").parse("lastyear", "date")
    assert Text(3).parse("  abc  ", "q") == "abc"
    with pytest.raises(Invalid, match="q: at most 3 characters"):
        Text(3).parse("abcd", "q")


class Things(ListQuery):
    page: Annotated[int, Whole(1, 10)] = Field(1, description="1-based")
    status: Annotated[list, Choices(("a", "b"))] = Field([], description="comma list of a, b")


def test_a_model_of_them_takes_blank_as_not_given_and_ignores_unknown_parameters():
    blank = validate(Things, {"page": "", "status": "", "other": "x"}, "query")
    assert blank.model_dump() == {"page": 1, "status": []}
    assert validate(Things, {"page": "3", "status": "b,a"}, "query").model_dump() == {"page": 3, "status": ["b", "a"]}
    with pytest.raises(Invalid, match="^page must be at most 10$"):
        validate(Things, {"page": "11"}, "query")


def test_the_openapi_schema_says_what_each_parameter_takes():
    properties = Things.model_json_schema()["properties"]
    assert properties["page"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
        "default": 1,
        "description": "1-based",
        "title": "Page",
    }
    assert properties["status"]["type"] == "string"
    worklist = WorklistQuery.model_json_schema()["properties"]
    assert worklist["q"]["maxLength"] == 64 and worklist["sort"]["default"] == "-priority,arrived_at"
    assert worklist["date"]["enum"] == ["today", "yesterday", "7d", "30d"]


def test_the_worklist_query():
    today = datetime.date(2026, 3, 10)
    filters = parse_filters({"status": "final", "modality": "ct", "date": "7d", "page_size": "999"}, today)
    assert (filters.statuses, filters.modalities, filters.page_size) == (["final"], ["CT"], 200)
    assert (filters.date_from, filters.date_to) == (datetime.date(2026, 3, 4), today)
    assert parse_filters({}, today).sort == [("priority", True), ("arrived_at", False)]
    with pytest.raises(Invalid, match="date_from is after date_to"):
        parse_filters({"date_from": "2026-02-01", "date_to": "2026-01-01"}, today)
    with pytest.raises(Invalid, match="page must be at most"):
        parse_filters({"page": str(MAX_PAGE + 1)}, today)


def test_the_orders_query():
    search = validate(OrderSearch, {"status": "scheduled", "date_from": "2026-12-01", "page_size": "500"}, "query")
    assert (search.status, search.date_from, search.page, search.page_size) == (
        ["scheduled"],
        datetime.date(2026, 12, 1),
        1,
        200,
    )
    for bad in ({"status": "lost"}, {"date_from": "yesterday"}, {"page": "0"}, {"page_size": "x"}):
        with pytest.raises(Invalid):
            validate(OrderSearch, bad, "query")


def test_the_audit_query_keeps_what_the_trail_accepted():
    query = validate(
        AuditQuery, {"user": " rad ", "page": "-3", "page_size": "10000", "date_to": "2026-01-02"}, "query"
    )
    filters = audit_filters(query)
    assert filters["username"] == " rad "  # matched as typed
    assert (filters["page"], filters["page_size"]) == (-3, 10000)  # the trail clamps them
    assert filters["date_to"] == datetime.date(2026, 1, 2) and filters["study_uid"] is None
    with pytest.raises(Invalid, match="page must be at most"):
        validate(AuditQuery, {"page": "99999999999999999999"}, "query")
    with pytest.raises(Invalid, match="patient: at most 64 characters"):
        validate(AuditQuery, {"patient": "x" * 65}, "query")
