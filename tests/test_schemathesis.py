"""The PACS API against its own OpenAPI document (schemathesis), on a real Orthanc,
as the admin: no generated request, valid or not, gets a 5xx, and Orthanc is alive
afterwards.

Left out, because a generated call would end the run's own access or reach outside
the machine: login (wrong passwords lock the admin and then the loopback address),
logout, password changes and resets, user updates (may disable or demote the admin),
API key revocation (may revoke the key these tests use), and the calls that open a
DICOM association to a node (echo, query, retrieve, send: a generated host would be
dialled).
"""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from pacs_server import PacsServer
from schemathesis.checks import not_a_server_error
from scoped_data import REFERRING_NAME, alive, store_study

EXCLUDED = (
    ("POST", "/pacs/api/auth/login"),
    ("POST", "/pacs/api/auth/logout"),
    ("POST", "/pacs/api/me/password"),
    ("POST", "/pacs/api/users/{id}/password"),
    ("PUT", "/pacs/api/users/{id}"),
    ("DELETE", "/pacs/api/apikeys/{id}"),
    ("POST", "/pacs/api/nodes/{name}/echo"),
    ("POST", "/pacs/api/nodes/{name}/query"),
    ("POST", "/pacs/api/nodes/{name}/retrieve"),
    ("POST", "/pacs/api/studies/{uid}/send"),
)
EXAMPLES = 30
SEEN = {"requests": 0, "unauthenticated": 0, "server_errors": []}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schemathesis")
    pacs = PacsServer(folder / "pacs").start()
    store_study(pacs, folder / "study", "SCHEMA^PATIENT", REFERRING_NAME)
    yield pacs
    print(
        f"\nschemathesis: {SEEN['requests']} requests, {len(SEEN['server_errors'])} answered 5xx, "
        f"{SEEN['unauthenticated']} answered 401"
    )
    for error in SEEN["server_errors"]:
        print(error)
    pacs.stop()


@pytest.fixture(scope="module")
def api_schema(server):
    document = server.get("/pacs/api/openapi.json")
    assert document.status_code == 200, document.text
    return schemathesis.openapi.from_dict(document.json())


def without_excluded(lazy):
    """The exclusions go on the lazy schema: its filters replace the loaded schema's."""
    for method, path in EXCLUDED:
        lazy = lazy.exclude(method=method, path=path)
    return lazy


schema = without_excluded(schemathesis.pytest.from_fixture("api_schema"))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_never_answers_a_server_error(case, server):
    headers = {"Authorization": server.http.headers["Authorization"]}
    response = case.call(base_url=server.url(""), headers=headers, timeout=30)
    SEEN["requests"] += 1
    SEEN["unauthenticated"] += response.status_code == 401
    if response.status_code >= 500:
        SEEN["server_errors"].append(
            f"{case.method} {case.formatted_path} -> {response.status_code}: "
            f"query={case.query} body={str(case.body)[:300]} answer={response.text[:300]}"
        )
    case.validate_response(response, checks=[not_a_server_error])


def test_orthanc_alive_after_the_run(server):
    """Also: the run stayed the admin's (a revoked key would have made it a test of 401s)."""
    assert alive(server), server.log_tail()
    assert SEEN["unauthenticated"] < SEEN["requests"] / 4, SEEN
    assert (
        requests.get(
            server.url("/pacs/api/me"), headers={"Authorization": server.http.headers["Authorization"]}, timeout=10
        ).status_code
        == 200
    )
