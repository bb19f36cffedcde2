"""The one JSON encoder (plugin.jsonout): times as ISO 8601 UTC with a Z, whole
seconds; dates as YYYY-MM-DD; pydantic models through the same rules."""

import datetime
import json

from pydantic import BaseModel

from plugin.http import Response
from plugin.jsonout import dumps, utc_text
from plugin.routing import as_response
from plugin.webui.pages import json_script

PARIS_WINTER = datetime.timezone(datetime.timedelta(hours=1))


class Inner(BaseModel):
    at: datetime.datetime
    day: datetime.date | None = None


class Outer(BaseModel):
    name: str
    inner: Inner
    times: list[datetime.datetime] = []


def test_naive_datetime_is_utc_as_stored_to_the_whole_second():
    assert utc_text(datetime.datetime(2026, 12, 4, 16, 18, 30, 272995)) == "2026-12-04T16:18:30Z"


def test_aware_datetime_is_converted_to_utc():
    moment = datetime.datetime(2026, 12, 4, 17, 18, 30, tzinfo=PARIS_WINTER)
    assert utc_text(moment) == "2026-12-04T16:18:30Z"
    assert utc_text(moment.astimezone(datetime.timezone.utc)) == "2026-12-04T16:18:30Z"


def test_none_stays_none():
    assert utc_text(None) is None
    assert json.loads(dumps({"at": None})) == {"at": None}


def test_dates_and_nested_values():
    data = {
        "day": datetime.date(2026, 2, 3),
        "items": [{"at": datetime.datetime(2026, 1, 2, 3, 4, 5, 999999)}, ("t", datetime.date(1999, 12, 31))],
        "n": 1,
        "text": "é",
    }
    assert json.loads(dumps(data)) == {
        "day": "2026-02-03",
        "items": [{"at": "2026-01-02T03:04:05Z"}, ["t", "1999-12-31"]],
        "n": 1,
        "text": "é",
    }
    assert dumps({"text": "é"}).isascii()


def test_pydantic_models_agree_with_plain_data():
    paris = datetime.datetime(2026, 12, 4, 17, 18, 30, 5, tzinfo=PARIS_WINTER)
    model = Outer(
        name="x",
        inner=Inner(at=paris, day=datetime.date(2026, 1, 1)),
        times=[datetime.datetime(2026, 12, 4, 16, 18, 30)],
    )
    expected = {
        "name": "x",
        "inner": {"at": "2026-12-04T16:18:30Z", "day": "2026-01-01"},
        "times": ["2026-12-04T16:18:30Z"],
    }
    assert json.loads(dumps(model)) == expected
    assert json.loads(dumps({"wrapped": [model]})) == {"wrapped": [expected]}


def test_every_json_answer_goes_through_it():
    moment = datetime.datetime(2026, 12, 4, 16, 18, 30, 272995)
    assert json.loads(Response.json({"at": moment}).body) == {"at": "2026-12-04T16:18:30Z"}
    answer = as_response(Inner(at=moment))
    assert answer.content_type == "application/json"
    assert json.loads(answer.body) == {"at": "2026-12-04T16:18:30Z", "day": None}
    assert json.loads(as_response({"at": moment}).body) == {"at": "2026-12-04T16:18:30Z"}


def test_page_script_data_is_written_the_same_way():
    moment = datetime.datetime(2026, 12, 4, 16, 18, 30, 272995)
    assert '{"opened_at": "2026-12-04T16:18:30Z"}' in str(json_script({"opened_at": moment}, "page-data"))
