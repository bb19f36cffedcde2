"""One way to read a list's filters and paging from the query string.

A list's query is a `ListQuery` model whose fields are typed with the shared
field types below: `Whole` (a page, a page size), `Date`, `Choices` (a comma
list of allowed values), `Codes` (a comma list of codes), `Sort`, `OneOf` and
`Text`. The API declares the model as its route's ``query`` (plugin.routing
validates it); a page validates its query string with the same model.

Each type reads a query-string value and either gives the typed value or
raises `Invalid` whose message names the parameter ("page must be at least 1",
"status: unknown value 'done'; use ..."). Invalid is not a ValueError, so
pydantic lets it through unchanged and the caller's 400 says exactly that. A
blank parameter (``page=``) is a parameter not given: the field's default.
"""

import datetime
import re
from typing import Any

from pydantic import BaseModel, model_validator
from pydantic_core import core_schema

from plugin.errors import Invalid
from plugin.http import DB_INT, whole_number


class ListQuery(BaseModel):
    """A list's query: unknown parameters are ignored, blank ones take the default."""

    @model_validator(mode="before")
    @classmethod
    def blanks_are_defaults(cls, data):
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if value != ""}
        return data


class _QueryValue:
    """A field type: `parse(value, name)` gives the value or raises Invalid naming ``name``;
    `schema` is what the OpenAPI document says of it."""

    schema: dict = {"type": "string"}

    def parse(self, value: Any, name: str) -> Any:
        raise NotImplementedError

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.with_info_plain_validator_function(
            lambda value, info: self.parse(value, info.field_name or "value")
        )

    def __get_pydantic_json_schema__(self, schema, handler):
        return dict(self.schema)


def _text(value, name):
    """A query value as stripped text (anything else is refused, naming it)."""
    if not isinstance(value, str):
        raise Invalid(f"{name} must be text")
    return value.strip()


def _comma_list(value, name):
    return [part.strip() for part in _text(value, name).split(",") if part.strip()]


class Whole(_QueryValue):
    """A whole number within [minimum, maximum] (else Invalid); one above ``cap`` is taken
    as ``cap`` (a page size asked larger than served)."""

    def __init__(self, minimum: int = -DB_INT, maximum: int = DB_INT - 1, cap: int | None = None):
        self.minimum, self.maximum, self.cap = minimum, maximum, cap
        self.schema = {"type": "integer", "minimum": minimum, "maximum": maximum}

    def parse(self, value, name):
        number = whole_number(value, name, self.minimum, self.maximum)
        return number if self.cap is None else min(self.cap, number)


class Date(_QueryValue):
    """A date as YYYY-MM-DD (or YYYYMMDD, as DICOM writes it: Python's ISO reading takes
    both); with ``times``, an ISO date-time too ("2026-01-01T10:00:00Z")."""

    def __init__(self, times: bool = False):
        self.times = times

    def parse(self, value, name):
        text = _text(value, name)
        try:
            if self.times and len(text) != 10:
                return datetime.datetime.fromisoformat(text)
            return datetime.date.fromisoformat(text)
        except ValueError:
            also = " or an ISO date-time" if self.times else ""
            raise Invalid(f"{name} must be a date as YYYY-MM-DD{also}") from None


class Choices(_QueryValue):
    """A comma list of values from ``allowed`` (case aside): a list, in the order given."""

    def __init__(self, allowed):
        self.allowed = tuple(allowed)

    def parse(self, value, name):
        values = [part.lower() for part in _comma_list(value, name)]
        unknown = [v for v in values if v not in self.allowed]
        if unknown:
            raise Invalid(f"{name}: unknown value {unknown[0]!r}; use {', '.join(self.allowed)}")
        return values


class Codes(_QueryValue):
    """A comma list of codes, upper-cased, each matching ``pattern`` (when given), which
    ``what`` describes for the message."""

    def __init__(self, pattern: re.Pattern | None = None, what: str = ""):
        self.pattern, self.what = pattern, what

    def parse(self, value, name):
        values = [part.upper() for part in _comma_list(value, name)]
        bad = [v for v in values if self.pattern is not None and not self.pattern.fullmatch(v)]
        if bad:
            raise Invalid(f"{name}: {bad[0]!r} is not {self.what}")
        return values


class Sort(_QueryValue):
    """Up to ``most`` comma-separated column names from ``columns``, each with "-" for
    descending: a list of (column, descending)."""

    def __init__(self, columns, most: int = 3):
        self.columns, self.most = tuple(sorted(columns)), most

    def parse(self, value, name):
        keys = []
        for part in _text(value, name).split(",")[: self.most]:
            part = part.strip()
            column = part.lstrip("-")
            if column not in self.columns:
                raise Invalid(f"{name}: unknown column {column!r}; use one of {', '.join(self.columns)}")
            keys.append((column, part.startswith("-")))
        return keys


class OneOf(_QueryValue):
    """One value of ``allowed`` (case aside); ``hint`` ends the message of a wrong one."""

    def __init__(self, allowed, hint: str = ""):
        self.allowed, self.hint = tuple(allowed), hint
        self.schema = {"type": "string", "enum": list(self.allowed)}

    def parse(self, value, name):
        chosen = _text(value, name).lower()
        if chosen not in self.allowed:
            raise Invalid(f"{name}: use one of {', '.join(self.allowed)}{self.hint}")
        return chosen


class Text(_QueryValue):
    """Free text, stripped, of at most ``max_length`` characters (when given); ``lower``
    folds it to lower case."""

    def __init__(self, max_length: int | None = None, lower: bool = False):
        self.max_length, self.lower = max_length, lower
        self.schema = {"type": "string"} if max_length is None else {"type": "string", "maxLength": max_length}

    def parse(self, value, name):
        text = _text(value, name)
        if self.max_length is not None and len(text) > self.max_length:
            raise Invalid(f"{name}: at most {self.max_length} characters")
        return text.lower() if self.lower else text
