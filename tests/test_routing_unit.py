"""One declaration per route: the router, the guard's rule and the OpenAPI entry
built from a Route agree; domain errors become HTTP in one place; events reach
every listener even when one raises."""

import json
import logging

import pytest
from pydantic import BaseModel, Field

from plugin import routing
from plugin.errors import Conflict, DomainError, Forbidden, Invalid, Locked, NotFound, Unavailable
from plugin.events import Events, UnknownEvent
from plugin.http import Request, Response, Router, http_status
from plugin.permissions import AUTHENTICATED, PUBLIC


class Priority(BaseModel):
    priority: str = Field(pattern="^(routine|urgent|stat)$")


class Page(BaseModel):
    page: int = Field(1, ge=1, le=10_000)


class Done(BaseModel):
    uid: str
    priority: str


def set_priority(services, request, uid, body):
    services.append((uid, body.priority))
    if uid == "signed":
        raise Conflict("this study's report is signed")
    return Done(uid=uid, priority=body.priority)


def list_things(services, request, query):
    return {"page": query.page}


ROUTES = (
    routing.Route(
        "POST",
        "/pacs/api/studies/{uid}/priority",
        set_priority,
        "studies.prioritise",
        summary="Set a study's priority",
        study="uid",
        body=Priority,
        answer=Done,
    ),
    routing.Route("GET", "/pacs/api/things", list_things, AUTHENTICATED, query=Page),
)


def dispatch(router, method, path, body=None, query=None):
    request = Request(method, path, query or {}, {}, json.dumps(body).encode() if body is not None else b"")
    return router.dispatch(request)


@pytest.fixture
def router():
    router, calls = Router(), []
    routing.register(router, ROUTES, calls)
    router.calls = calls
    return router


def test_the_router_calls_the_handler_with_path_parameters_and_a_validated_body(router):
    answer = dispatch(router, "POST", "/pacs/api/studies/1.2.3/priority", {"priority": "stat"})
    assert answer.status == 200 and json.loads(answer.body) == {"uid": "1.2.3", "priority": "stat"}
    assert router.calls == [("1.2.3", "stat")]


def test_an_invalid_body_or_query_is_a_400_naming_the_field_and_never_reaches_the_handler(router):
    answer = dispatch(router, "POST", "/pacs/api/studies/1.2.3/priority", {"priority": "soon"})
    assert answer.status == 400 and json.loads(answer.body)["error"].startswith("priority:")
    assert dispatch(router, "GET", "/pacs/api/things", query={"page": "0"}).status == 400
    assert dispatch(router, "GET", "/pacs/api/things", query={"page": "２"}).status == 400
    assert json.loads(dispatch(router, "GET", "/pacs/api/things", query={"page": "7"}).body) == {"page": 7}
    assert router.calls == []


def test_a_domain_error_becomes_its_http_status_in_dispatch(router):
    answer = dispatch(router, "POST", "/pacs/api/studies/signed/priority", {"priority": "stat"})
    assert (answer.status, json.loads(answer.body)) == (409, {"error": "this study's report is signed"})


def test_every_domain_error_has_a_status_and_subclasses_inherit_theirs():
    class AccountLocked(Locked):
        pass

    assert [http_status(e("x")) for e in (Invalid, Forbidden, NotFound, Conflict, Locked, Unavailable)] == [
        400,
        403,
        404,
        409,
        423,
        503,
    ]
    assert http_status(AccountLocked("x")) == 423
    assert http_status(DomainError("x")) == 400


def test_the_guard_rule_names_the_study_and_matches_exactly_the_route():
    rule = ROUTES[0].rule()
    assert rule.methods == {"POST"} and rule.permission == "studies.prioritise" and rule.study == "path"
    match = rule.pattern.match("/pacs/api/studies/1.2.3/priority")
    assert match and match.group("study") == "1.2.3"
    for other in (
        "/pacs/api/studies/1.2.3/priority/x",
        "/pacs/api/studies//priority",
        "/pacs/api/studies/a/b/priority",
        "/pacs/api/studiesX1/priority",
    ):
        assert not rule.pattern.match(other), other
    assert ROUTES[1].rule().study == "" and ROUTES[1].rule().body == "none"


def test_path_literals_are_not_regexes():
    route = routing.Route("GET", "/pacs/api/audit.csv", list_things, "audit.read")
    assert route.rule().pattern.match("/pacs/api/audit.csv")
    assert not route.rule().pattern.match("/pacs/api/auditXcsv")


def test_a_route_must_be_complete_and_declared_once():
    with pytest.raises(ValueError, match="under /pacs"):
        routing.Route("GET", "/tools/find", list_things, PUBLIC)
    with pytest.raises(ValueError, match="study parameter"):
        routing.Route("GET", "/pacs/api/studies/{uid}", list_things, PUBLIC, study="study")
    with pytest.raises(ValueError, match="permission"):
        routing.Route("GET", "/pacs/api/x", list_things, "")
    with pytest.raises(ValueError, match="declared twice"):
        routing.check_unique(
            ROUTES + (routing.Route("POST", "/pacs/api/studies/{id}/priority", set_priority, "admin"),)
        )


def test_the_openapi_entry_comes_from_the_same_declaration():
    paths, schemas = routing.openapi_paths(ROUTES)
    operation = paths["/pacs/api/studies/{uid}/priority"]["post"]
    assert operation["summary"] == "Set a study's priority"
    assert operation["description"] == "Permission: studies.prioritise."
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Priority"
    }
    assert schemas["Priority"]["properties"]["priority"]["pattern"] == "^(routine|urgent|stat)$"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Done")
    things = paths["/pacs/api/things"]["get"]
    [page] = things["parameters"]
    assert (page["name"], page["in"], page["required"]) == ("page", "query", False)
    assert (page["schema"]["minimum"], page["schema"]["maximum"]) == (1, 10_000)
    assert things["description"] == "Permission: any signed-in user."


def test_a_handler_may_answer_with_a_response_of_its_own():
    router = Router()
    routing.register(router, (routing.Route("GET", "/pacs/x", lambda services, request: Response(204), PUBLIC),), None)
    assert dispatch(router, "GET", "/pacs/x").status == 204


# --- events --------------------------------------------------------------------------


def test_every_listener_hears_an_event_even_when_one_raises(caplog):
    events, heard = Events(), []
    events.subscribe("report.signed", lambda **payload: heard.append(("first", payload["study_uid"])))
    events.subscribe("report.signed", lambda **payload: 1 / 0)
    events.subscribe("report.signed", lambda **payload: heard.append(("last", payload["version"])))
    with caplog.at_level(logging.ERROR):
        assert events.publish("report.signed", study_uid="1.2", report_id=7, version=3) == 2
    assert heard == [("first", "1.2"), ("last", 3)]
    assert "event=event_listener_failed name=report.signed" in caplog.text


def test_events_are_declared_with_their_fields():
    events = Events()
    with pytest.raises(UnknownEvent):
        events.subscribe("report.sigend", print)
    with pytest.raises(UnknownEvent):
        events.publish("study.arrived", study_uid="1")
    with pytest.raises(ValueError, match="without version"):
        events.publish("report.signed", study_uid="1.2", report_id=7)
    assert events.publish("study.removed", study_uid="1.2") == 0


def test_a_path_parameter_may_take_the_rest_of_the_path():
    route = routing.Route("GET", "/pacs/files/{name:path}", list_things, PUBLIC, documented=False)
    assert route.parameters == ("name",)
    assert route.router_pattern().match("/pacs/files/a/b.css").group("name") == "a/b.css"
    assert route.router_pattern().match("/pacs/files/").group("name") == ""
    assert route.rule().pattern.match("/pacs/files/a/b.css") and not route.rule().pattern.match("/pacs/filesX")
    assert routing.openapi_paths((route,))[0] == {}  # documented=False: not in the OpenAPI document
    with pytest.raises(ValueError, match="one path segment"):
        routing.Route("GET", "/pacs/files/{name:path}", list_things, PUBLIC, study="name")


def test_orthanc_root_may_be_declared_and_keeps_the_body_limit_it_is_given():
    rule = routing.Route("GET", "/", list_things, PUBLIC, body_limit="json").rule()
    assert rule.pattern.match("/") and not rule.pattern.match("/x") and rule.body == "json"
    with pytest.raises(ValueError, match="under /pacs"):
        routing.Route("GET", "//", list_things, PUBLIC)


def test_a_referrers_query_is_held_to_the_declared_parameters_and_study_parameter():
    allowed = {"limit": "number", "StudyInstanceUID": "uids"}
    by_query = routing.Route(
        "GET", "/pacs/search", list_things, "images.read", study_param="StudyInstanceUID", params=allowed
    ).rule()
    assert (by_query.study, by_query.study_param, by_query.params) == ("query", "StudyInstanceUID", allowed)
    in_path = routing.Route("GET", "/pacs/search/{uid}", list_things, "images.read", study="uid", params=allowed)
    assert (in_path.rule().study, in_path.rule().study_param, in_path.rule().params) == ("path", "", allowed)
    assert ROUTES[1].rule().params is None
    with pytest.raises(ValueError, match="study_param"):
        routing.Route("GET", "/pacs/search", list_things, "images.read", study_param="StudyInstanceUID")
    with pytest.raises(ValueError, match="params"):
        routing.Route("GET", "/pacs/search", list_things, "images.read", params=allowed)


def test_an_optional_body_left_out_is_the_models_defaults_and_a_bad_one_is_still_refused():
    class Claim(BaseModel):
        take_over: bool = Field(False, description="true or false")

    def claim(calls, request, uid, body):
        calls.append(body.take_over)
        return {"take_over": body.take_over}

    route = routing.Route(
        "POST", "/pacs/api/studies/{uid}/claim", claim, "studies.claim", study="uid", body=Claim, body_optional=True
    )
    router, calls = Router(), []
    routing.register(router, (route,), calls)
    assert dispatch(router, "POST", "/pacs/api/studies/1.2/claim").status == 200
    assert dispatch(router, "POST", "/pacs/api/studies/1.2/claim", {"take_over": True}).status == 200
    assert dispatch(router, "POST", "/pacs/api/studies/1.2/claim", {"take_over": "soon"}).status == 400
    assert dispatch(router, "POST", "/pacs/api/studies/1.2/claim", [1]).status == 400
    assert calls == [False, True]
    paths, _schemas = routing.openapi_paths((route,))
    assert paths["/pacs/api/studies/{uid}/claim"]["post"]["requestBody"]["required"] is False
    assert routing.openapi_paths(ROUTES)[0]["/pacs/api/studies/{uid}/priority"]["post"]["requestBody"]["required"]
