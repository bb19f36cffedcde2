"""The route is the unit: one declaration per route of ours, from which the
router, the guard's rules for /pacs and the OpenAPI document are all built.

A feature package exports ``ROUTES``, a tuple of `Route`: method, path (the
only place its literal appears), handler (a module-level function), the named
permission that guards it, and the pydantic models of its query, body and
answer. Nothing else names the route, so the router, the permission table and
the documentation cannot drift apart (tests/test_routing_unit.py and
tests/test_route_table.py prove they agree).

Handlers are plain functions: ``handler(services, request, **path_params)``,
plus ``query=`` and ``body=`` (validated models) when the route declares
them. They return a `Response`, a pydantic model, or JSON-ready data, and
raise domain errors (plugin.errors); `plugin.http.Router.dispatch` maps both
to HTTP in one place.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from plugin.errors import DomainError, Invalid
from plugin.http import HttpError, Response, http_status
from plugin.permissions import AUTHENTICATED, PUBLIC, Rule

_PARAM = re.compile(r"{(\w+)(:path)?}")  # {name}: one path segment; {name:path}: the rest, slashes included
METHODS = ("GET", "POST", "PUT", "DELETE")
Model = TypeVar("Model", bound=BaseModel)
PREFIX = "/pacs"  # every route of ours is under it, Orthanc's root "/" aside
HOME = "/pacs/"  # the web UI's home: the reading worklist (plugin/worklist/pages.py declares it)


def is_ours(path):
    """Whether ``path`` is under /pacs: ours to answer, not Orthanc's."""
    return path == PREFIX or path.startswith(PREFIX + "/")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[..., Any]
    permission: str  # PUBLIC, AUTHENTICATED or a named permission (plugin.permissions)
    summary: str = ""
    study: str = ""  # the path parameter holding a StudyInstanceUID: referrers are held to their scope
    study_param: str = ""  # or the query parameter naming the studies (one of ``params``)
    params: dict | None = field(default=None, hash=False)  # a referrer's allowed query: name -> value form
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_optional: bool = False  # the body may be left out: then ``body`` is the model's defaults
    answer: type[BaseModel] | None = None
    body_limit: str = ""  # a key of permissions.BODY_LIMITS; by default none for GET and DELETE, else json
    page: bool = False  # an HTML page (not in the OpenAPI document)
    documented: bool = True  # in the OpenAPI document: not for files and other answers that are not JSON
    responses: tuple = ()  # other statuses it answers: (status, what it means) pairs
    tags: tuple = field(default_factory=tuple)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"{self.path}: method {self.method!r} is not one of {METHODS}")
        if not (is_ours(self.path) or self.path == "/"):
            raise ValueError(f"{self.path}: our routes live under /pacs (and Orthanc's root, /)")
        if self.study and self.study not in self.parameters:
            raise ValueError(f"{self.path}: study parameter {self.study!r} is not in the path")
        if self.study and self.study in self._rest_parameters:
            raise ValueError(f"{self.path}: study parameter {self.study!r} must be one path segment")
        if self.study_param and (self.study or self.study_param not in (self.params or {})):
            raise ValueError(f"{self.path}: study_param {self.study_param!r} must be one of params, without study")
        if self.params is not None and not (self.study or self.study_param):
            raise ValueError(f"{self.path}: params hold a referrer's query to a study: name it (study or study_param)")
        if not self.permission:
            raise ValueError(f"{self.path}: every route names its permission")

    @property
    def parameters(self):
        return tuple(name for name, _rest in _PARAM.findall(self.path))

    @property
    def _rest_parameters(self):
        return tuple(name for name, rest in _PARAM.findall(self.path) if rest)

    def router_pattern(self):
        """The anchored regex the router matches, every parameter a named group."""
        return re.compile("^" + _PARAM.sub(lambda m: f"(?P<{m.group(1)}>{_value(m)})", _escaped(self.path)) + "$")

    def methods_rule(self, declared):
        """The guard's rule for the methods this route's path does not declare (``declared``
        are those it does): whoever may use the path is told 405 (Method Not Allowed) by the
        guard, everyone else is refused as on the route; nothing reaches the router."""
        pattern = re.compile("^(?:" + _PARAM.sub(_value, _escaped(self.path)) + ")$")
        others = frozenset(METHODS) - frozenset(declared)
        return Rule(others, pattern, self.permission, body="none", only=", ".join(sorted(declared)))

    def rule(self):
        """The guard's rule: the study parameter, if any, is the group named ``study``."""

        def group(match):
            return f"(?P<study>{_value(match)})" if match.group(1) == self.study else _value(match)

        pattern = re.compile("^(?:" + _PARAM.sub(group, _escaped(self.path)) + ")$")
        return Rule(
            frozenset({self.method}),
            pattern,
            self.permission,
            "path" if self.study else "query" if self.study_param else "",
            params=cast(dict, self.params),  # Rule's None: no query check
            study_param=self.study_param,
            body=self.body_limit or ("none" if self.method in ("GET", "DELETE") else "json"),
        )


def _value(match):
    """What a parameter matches: one path segment, or (``{name:path}``) the rest of the path,
    slashes included, possibly empty (the guard matches paths Orthanc has folded: no
    trailing "/", no empty segment; the router may see "/pacs/viewer/" as such)."""
    return ".*" if match.group(2) else "[^/]+"


def _escaped(path):
    """The path with regex metacharacters escaped, its {parameters} kept. A trailing "/"
    is optional: Orthanc hands the home page over without it, and the guard folds it away."""
    escaped = "".join(
        part if _PARAM.fullmatch(part) else re.escape(part) for part in re.split(r"({\w+(?::path)?})", path)
    )
    return escaped + "?" if len(path) > 1 and path.endswith("/") else escaped


def handler_for(route, services, page_error=None):
    """The router's callable for ``route``: validates query and body, calls the
    handler, turns what it returns into a Response. A page's refusals become
    ``page_error(status, message, request)`` (an HTML page), not JSON."""

    def handle(request, **params):
        if route.page and page_error is not None:
            try:
                return answer(request, **params)
            except HttpError as error:
                return page_error(error.status, error.message, request)
            except DomainError as error:
                return page_error(http_status(error), error.message, request)
        return answer(request, **params)

    def answer(request, **params):
        kwargs = dict(params)
        if route.query is not None:
            kwargs["query"] = validate(route.query, request.query, "query")
        if route.body is not None:
            data = request.json() if request.body or not route.body_optional else {}
            kwargs["body"] = validate(route.body, data, "body")
        return as_response(route.handler(services, request, **kwargs))

    handle.__name__ = getattr(route.handler, "__name__", "handler")
    return handle


def validate(model: type[Model], data: Any, where: str) -> Model:
    """``data`` as ``model``, or Invalid that says what is wrong with the first bad field:
    "<field> must be <its description>" where the field has one (the description is
    the OpenAPI document's too), else pydantic's words."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        location = first.get("loc", ())
        field = model.model_fields.get(location[0]) if len(location) == 1 and isinstance(location[0], str) else None
        if field is not None and field.description:
            raise Invalid(f"{location[0]} must be {field.description}") from None
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise Invalid(f"{'.'.join(str(part) for part in location)}: {message}" if location else message) from None


def as_response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    return Response.json(result)  # a pydantic model too: plugin.jsonout writes its times like the rest


def register(router, routes, services, page_error=None):
    for route in routes:
        router.add_regex(route.method, route.router_pattern(), handler_for(route, services, page_error))


def rules(routes: tuple[Route, ...]) -> tuple[Rule, ...]:
    """The guard's rules for every declared route, in declaration order; then, for each
    path of the JSON API (the OpenAPI document's), one for the methods it does not
    declare, guarded as the path's first route: a client that uses a wrong method on a
    real path is told so (405). Pages and files stay "no such page" for other methods."""
    declared: dict[str, list[Route]] = {}
    for route in routes:
        if route.documented and not route.page:
            declared.setdefault(route.path, []).append(route)
    undeclared = tuple(
        same_path[0].methods_rule({route.method for route in same_path})
        for same_path in declared.values()
        if len(same_path) < len(METHODS)
    )
    return tuple(route.rule() for route in routes) + undeclared


def check_unique(routes: tuple[Route, ...]) -> tuple[Route, ...]:
    """Each (method, path) once; two paths that would match the same URL are a mistake too."""
    seen: dict[tuple[str, str], Route] = {}
    for route in routes:
        key = (route.method, _PARAM.sub("{}", route.path))
        if key in seen:
            raise ValueError(f"{route.method} {route.path} is declared twice ({seen[key].path})")
        seen[key] = route
    return routes


# --- OpenAPI -------------------------------------------------------------------------

ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_STANDARD_ERRORS = {
    "400": "bad input",
    "401": "no or bad login",
    "403": "not allowed",
    "404": "no such thing",
    "409": "in a state that forbids this",
}


def openapi_paths(routes: tuple[Route, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas) of the OpenAPI document for the API routes."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in routes:
        if route.page or not route.documented:
            continue
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return paths, schemas


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    permission = {PUBLIC: "none (public)", AUTHENTICATED: "any signed-in user"}.get(route.permission, route.permission)
    operation: dict[str, Any] = {
        "summary": route.summary or route.handler.__doc__ or route.path,
        "description": f"Permission: {permission}.",
        "responses": {},
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in route.parameters
    ]
    if route.query is not None:
        schema = _schema(route.query, schemas)
        required = set(schema.get("required", ()))
        parameters += [
            {"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema.get("properties", {}).items()
        ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": not route.body_optional,
            "content": {"application/json": {"schema": {"$ref": _register(route.body, schemas)}}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if route.answer is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": _register(route.answer, schemas)}}}
    operation["responses"]["200"] = ok
    for status, text in _STANDARD_ERRORS.items():
        operation["responses"][status] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    for status, text in route.responses:
        operation["responses"][status] = {"description": text}
    if route.permission == PUBLIC:
        operation["security"] = []
    return operation


def _schema(model, schemas):
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    return schema


def _register(model, schemas):
    schemas[model.__name__] = _schema(model, schemas)
    return f"#/components/schemas/{model.__name__}"
