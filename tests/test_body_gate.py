"""Hostile request bodies on every Orthanc route that takes one, for every role.

Each POST/PUT route of the permission table outside /pacs/ gets, from the admin, a
radiologist, a technologist and a referrer: JSON nested 5000 deep, a 2 MB+ body,
a Content-Length far beyond the body, a gzip bomb (Content-Encoding), a chunked
body, invalid UTF-8 and malformed JSON. Invariants: every answer is a 4xx (none of
these requests is valid), and Orthanc is still up after each (its process runs and
/pacs/health answers 200). A request that kills it is reported and the server is
restarted so the rest still runs. A control checks that valid bodies still pass.
"""

import json

import dicomgen
import pytest
from pacs_server import PacsServer, free_port
from scoped_data import REFERRING_NAME, alive, gzip_bomb, make_account, raw_request, store_study

from plugin.route_table import TABLE

ROLES = ("admin", "radiologist", "technologist", "referrer")
DEEP = b"[" * 5000 + b"]" * 5000
BIG = json.dumps({"Query": {"PatientName": "x" * (2 * 1024 * 1024 + 100)}}).encode()


def attacks():
    """(name, headers, body) of each hostile body; Content-Type is JSON throughout."""
    return (
        ("json nested 5000 deep", {}, DEEP),
        ("2 MB+ body", {}, BIG),
        ("Content-Length 2**40, 2-byte body", {"Content-Length": str(2**40)}, b"{}"),
        ("gzip bomb (64 MB of zeros)", {"Content-Encoding": "gzip"}, gzip_bomb(64)),
        (
            "chunked, nested 5000 deep",
            {"Transfer-Encoding": "chunked"},
            f"{len(DEEP):x}\r\n".encode() + DEEP + b"\r\n0\r\n\r\n",
        ),
        ("invalid UTF-8", {}, b'{"Level": "Study", "Query": {"PatientName": "\xff\xfe\xc3\x28"}}'),
        ("malformed JSON", {}, b'{"Level": "Study", "Query": {"PatientName": [1, 2,'),
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bodies")
    server = PacsServer(folder / "pacs").start()
    try:
        study = store_study(server, folder / "study", "BODYGATE^PATIENT", REFERRING_NAME)
        ids = {"study_uid": study.uid}
        for level in ("patients", "studies", "series", "instances"):
            ids[level] = server.get(f"/{level}").json()[0]
        server.add_node("gatenode", "GATENODE", free_port())
        job = server.post(f"/studies/{ids['studies']}/anonymize", json={"Asynchronous": True})
        ids["job"] = job.json().get("ID", "no-such-job") if job.ok else "no-such-job"
        keys = {"admin": server.http.headers["Authorization"]}
        for role in ROLES[1:]:
            extra = {"referring_names": [REFERRING_NAME]} if role == "referrer" else {}
            keys[role] = make_account(server, f"gate-{role}", role, **extra)["authorization"]
        yield server, ids, keys
    finally:
        server.stop()


def body_routes(ids):
    """(method, path) with real ids for every Orthanc route that takes a body."""
    r = ids
    routes = [
        ("POST", "/tools/execute-script"),
        ("POST", f"/studies/{r['studies']}/export"),
        ("POST", "/modalities/gatenode/store"),
        ("POST", "/modalities/gatenode/query"),
        ("POST", "/modalities/gatenode/move"),
        ("POST", "/modalities/gatenode/echo"),
        ("PUT", "/modalities/gatenode"),
        ("POST", "/peers/nopeer/store"),
        ("PUT", "/peers/nopeer"),
        ("POST", "/queries/no-such-query/answers/0/retrieve"),
        ("POST", "/queries/no-such-query/retrieve"),
        ("POST", f"/studies/{r['studies']}/archive"),
        ("POST", f"/patients/{r['patients']}/media"),
        ("POST", "/tools/create-archive"),
        ("POST", "/tools/create-media"),
        ("POST", "/tools/create-media-extended"),
        ("PUT", f"/instances/{r['instances']}/attachments/dicom"),
        ("PUT", f"/studies/{r['studies']}/metadata/1024"),
        ("POST", "/dicom-web/servers/nowhere/stow"),
        ("PUT", "/dicom-web/servers/nowhere"),
        ("POST", "/dicom-web/studies"),
        ("POST", f"/dicom-web/studies/{r['study_uid']}"),
        ("POST", "/instances"),
        ("POST", "/tools/find"),
        ("POST", "/tools/lookup"),
        ("POST", f"/studies/{r['studies']}/merge"),
        ("POST", f"/studies/{r['studies']}/split"),
        ("POST", f"/jobs/{r['job']}/cancel"),
        ("POST", f"/jobs/{r['job']}/pause"),
        ("POST", f"/jobs/{r['job']}/resume"),
        ("POST", f"/jobs/{r['job']}/resubmit"),
        ("POST", "/tools/create-dicom"),
        ("POST", "/tools/reconstruct"),
        ("POST", "/tools/bulk-modify"),
        ("POST", "/tools/bulk-anonymize"),
        ("POST", "/tools/bulk-delete"),
        ("POST", "/tools/bulk-content"),
        ("PUT", "/tools/log-level"),
        ("PUT", "/tools/metrics"),
        ("PUT", "/tools/default-encoding"),
        ("PUT", "/tools/accepted-transfer-syntaxes"),
        ("PUT", "/tools/unknown-sop-class-accepted"),
        ("POST", "/tools/no-such-tool"),
        ("POST", "/tools/reset"),
        ("POST", "/tools/shutdown"),
    ]
    for level in ("patients", "studies", "series", "instances"):
        routes += [("POST", f"/{level}/{r[level]}/{action}") for action in ("anonymize", "modify", "reconstruct")]
        routes.append(("PUT", f"/{level}/{r[level]}/protected"))
    return routes


def test_every_body_rule_is_attacked(world):
    """Each POST/PUT rule of the table outside /pacs/ has a concrete path above: a rule
    added later without one fails here."""
    _, ids, _ = world
    routes = body_routes(ids)
    for rule in TABLE.rules:
        methods = rule.methods & {"POST", "PUT"}
        if not methods or rule.pattern.pattern.startswith("^(?:/pacs"):
            continue
        hit = [(m, p) for m, p in routes if m in methods and TABLE.match(m, p)[0] is rule]
        assert hit, f"no attacked path for {sorted(methods)} {rule.pattern.pattern}"


def send(server, method, path, authorization, headers, body):
    """Send one hostile request; (status or None, what happened)."""
    sent = {"Authorization": authorization, "Content-Type": "application/json", **headers}
    try:
        status, _, answer = raw_request(server, method, path, sent, body, timeout=15)
        return status, answer[:200]
    except TimeoutError:
        return None, "no answer within 15 s"
    except OSError as error:  # the server closed the connection without answering
        return None, f"connection failed: {error!r}"


@pytest.mark.timeout(900)
def test_hostile_bodies_get_a_4xx_and_orthanc_stays_up(world):
    server, ids, keys = world
    routes = body_routes(ids)
    failures, sent, statuses = [], 0, {}
    for name, headers, body in attacks():
        for role in ROLES:
            for method, path in routes:
                status, what = send(server, method, path, keys[role], headers, body)
                sent += 1
                statuses[status] = statuses.get(status, 0) + 1
                request = f"{role}: {method} {path} with {name}"
                if status is None or not 400 <= status < 500:
                    failures.append(f"{request} -> {status}: {what!r}")
                if not alive(server):
                    failures.append(f"{request} KILLED ORTHANC (exit {server.process.poll()}):\n{server.log_tail(8)}")
                    server.stop()
                    server.start()
                    server.wait_for(lambda: alive(server), what="Orthanc healthy after a restart")
    print(
        f"\nbody gate: {sent} hostile requests ({len(routes)} routes x {len(ROLES)} roles x "
        f"{len(attacks())} bodies); statuses {statuses}"
    )
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])


def test_valid_bodies_still_pass_the_gate(world, tmp_path):
    """Control: the gate refuses the hostile bodies above, not the body routes themselves."""
    server, ids, keys = world
    find = json.dumps({"Level": "Study", "Query": {"PatientName": "BODYGATE*"}}).encode()
    status, _, answer = raw_request(
        server, "POST", "/tools/find", {"Authorization": keys["radiologist"], "Content-Type": "application/json"}, find
    )
    assert status == 200 and json.loads(answer) == [ids["studies"]], answer[:300]
    status, _, answer = raw_request(
        server, "PUT", f"/patients/{ids['patients']}/protected", {"Authorization": keys["admin"]}, b"1"
    )
    assert status == 200, answer[:300]
    spec = dicomgen.StudySpec(patient_name="UPLOADED^VIA^GATE", referring_physician=REFERRING_NAME)
    [path] = dicomgen.write(dicomgen.ct_series(spec, slices=1), tmp_path)
    status, _, answer = raw_request(
        server,
        "POST",
        "/instances",
        {"Authorization": keys["technologist"], "Content-Type": "application/dicom"},
        path.read_bytes(),
    )
    assert status == 200 and json.loads(answer)["Status"] == "Success", answer[:300]
    server.wait_indexed(spec.study_uid, instances=1)
