"""The one JSON encoder: every JSON answer of the API, and the data pages hand
their scripts, is written by `dumps`.

Times leave as ISO 8601 in UTC with a Z, to the whole second
("2026-12-04T16:18:30Z"): no client needs more (the worklist's clocks and
report.js's "saved at" count minutes and seconds), and one format is what a
client can rely on. A naive datetime is UTC: every time column holds naive UTC
(`plugin.db.utcnow`). Dates are "2026-12-04". Pydantic models are written
through the same rules (their fields dumped as Python objects, then encoded
here), so a route's answer model and a handler's dict agree.

Services hand datetimes over and leave the format to this module. The one
exception is the audit trail's ``at``, which keeps its microseconds: it is the
text the chain's hashes are computed over (see plugin.audit).

A module of its own (not plugin.http) because the page renderer
(plugin.webui.pages) writes its script data with it too, and neither should
import the other for that.
"""

import datetime
import json

from pydantic import BaseModel

UTC = datetime.timezone.utc


def utc_text(moment):
    """A moment as the API writes it: "2026-12-04T16:18:30Z" (UTC, whole seconds,
    fractions dropped); a naive moment is UTC, as stored. None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


def dumps(data):
    """``data`` as JSON text, ASCII only (Orthanc counts a non-200 body's length in
    characters, so it must stay 7-bit; a page's script data goes into HTML as is)."""
    return json.dumps(data, ensure_ascii=True, default=_encodable)


def _encodable(value):
    """What json cannot write itself, as it goes out; anything else unknown as its
    str() (as before there was one encoder)."""
    if isinstance(value, datetime.datetime):  # before date: a datetime is a date
        return utc_text(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    return str(value)
