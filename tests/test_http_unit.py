"""The plugin's HTTP layer without Orthanc: decoding, routing, JSON errors."""

import json

import pytest

from plugin.http import HttpError, Request, Response, Router, page_shown_with_200


def make_router():
    router = Router()

    @router.route("GET", "/pacs/api/studies/{uid}")
    def one_study(request, uid):
        return Response.json({"uid": uid, "q": request.query.get("q")})

    @router.route("POST", "/pacs/api/echo")
    def echo(request):
        return Response.json(request.json())

    @router.route("GET", "/pacs/boom")
    def boom(request):
        raise RuntimeError("bug")

    return router


def body(response):
    return json.loads(response.body)


def test_query_values_are_url_decoded():
    """Orthanc 1.10.1 passes them still %-encoded."""
    request = Request.from_orthanc("GET", "/x", {"q": "SMI%2A", "name": "M%C3%BCller+Anna"}, {}, None)
    assert request.query == {"q": "SMI*", "name": "Müller Anna"}


def test_route_parameters_and_query():
    response = make_router().dispatch(Request("GET", "/pacs/api/studies/1.2.3", {"q": "a"}))
    assert response.status == 200
    assert body(response) == {"uid": "1.2.3", "q": "a"}


def test_unknown_route_is_404_json():
    response = make_router().dispatch(Request("GET", "/pacs/api/nothing"))
    assert response.status == 404
    assert "no such route" in body(response)["error"]


def test_wrong_method_is_405_with_allow():
    response = make_router().dispatch(Request("DELETE", "/pacs/api/echo"))
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


def test_bad_json_bodies_are_400_or_413():
    router = make_router()
    for raw, status in [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b"\xff\xfe", 400),
        (b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413),
    ]:
        response = router.dispatch(Request("POST", "/pacs/api/echo", body=raw))
        assert response.status == status, raw[:20]
        assert body(response)["error"]


def test_handler_bug_is_500_json_without_details():
    response = make_router().dispatch(Request("GET", "/pacs/boom"))
    assert response.status == 500
    assert body(response) == {"error": "internal error"}


def test_error_bodies_are_ascii():
    """Orthanc's SendHttpStatus counts characters: non-200 bodies stay 7-bit."""
    response = Response.error(400, "Müller ∑ 山田")
    response.body.decode("ascii")
    assert body(response)["error"] == "Müller ∑ 山田"


def test_http_error_carries_headers():
    error = HttpError(401, "login required", {"WWW-Authenticate": "Bearer"})
    assert error.headers == {"WWW-Authenticate": "Bearer"}


def test_whole_numbers_are_bounded_and_ascii():
    from plugin.http import int_param, path_id

    assert int_param("42", "page", minimum=1) == 42 and int_param(7, "n") == 7
    for bad, message in [
        ("²", "must be a whole number"),
        ("1e3", "must be a whole number"),
        (True, "whole number"),
        ("0", "at least 1"),
        (str(10**20), "at most"),
    ]:
        with pytest.raises(HttpError, match=message):
            int_param(bad, "page", minimum=1)
    assert path_id("12") == 12
    assert path_id("abc") is path_id("²") is path_id("0") is path_id(str(2**63)) is None


def test_text_no_database_can_store_is_refused_at_the_door():
    router = make_router()
    for raw in [b'{"a": "x\\u0000y"}', b'{"a": ["\\udc80"]}', b'{"\\u0000": 1}']:
        response = router.dispatch(Request("POST", "/pacs/api/echo", body=raw))
        assert response.status == 400 and "NUL" in body(response)["error"]
    response = router.dispatch(Request("GET", "/pacs/api/studies/1.2", {"q": "a\x00b"}))
    assert response.status == 400


def test_where_pages_cannot_carry_an_error_status_they_go_with_200_and_say_it():
    """Orthanc 1.12.7 sends every non-200 plugin answer as text/plain: an HTML page with an
    error status goes with 200 and its status in X-Pacs-Status, so a refused form stays
    a form; JSON errors, redirects and files keep their status."""
    from plugin.webui import error_page

    page = error_page(404, "There is no such page.")
    shown = page_shown_with_200(page)
    assert (shown.status, shown.headers["X-Pacs-Status"], shown.body) == (200, "404", page.body)
    assert all(shown.headers[name] == value for name, value in page.headers.items())
    for unchanged in (
        Response.error(404, "no such study"),
        Response.redirect("/pacs/"),
        Response(200, b"<!doctype html>", "text/html; charset=utf-8"),
        Response(415, b"x", "application/pdf"),
    ):
        assert page_shown_with_200(unchanged) is unchanged
