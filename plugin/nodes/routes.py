"""JSON API of other DICOM nodes: list, save, delete, echo, query, retrieve;
sending a study; following an Orthanc job. Each handler gets the App."""

from plugin.errors import Conflict
from plugin.http import Response
from plugin.nodes.service import NodeSettings, Retrieval, Sending, StudyQuery
from plugin.routing import Route

NODE = "/pacs/api/nodes/{name}"


def list_nodes(app, request):
    return {"items": app.nodes.list()}


def save_node(app, request, name, body):
    return app.nodes.save(name, body, request.principal)


def delete_node(app, request, name):
    app.nodes.delete(name, request.principal)
    return {"status": "deleted"}


def echo(app, request, name):
    return app.nodes.echo(name)


def query(app, request, name, body):
    return {"items": app.nodes.query(name, body, request.principal)}


def retrieve(app, request, name, body):
    result = app.nodes.retrieve(name, body.study_instance_uid, request.principal)
    return Response.json(result, status=202 if result["job"] else 200)


def send(app, request, uid, body):
    study = app.worklist.study(uid)
    if not study.orthanc_id:
        raise Conflict("this study has no images yet")
    return Response.json({"job": app.nodes.send(study.orthanc_id, uid, body.node, request.principal)}, status=202)


def job(app, request, job_id):
    return Response.json(app.nodes.job(job_id), headers={"Cache-Control": "no-store"})


ROUTES = (
    Route("GET", "/pacs/api/nodes", list_nodes, "nodes.read", summary="Remote DICOM nodes"),
    Route("PUT", NODE, save_node, "nodes.manage", summary="Add or change a node", body=NodeSettings),
    Route("DELETE", NODE, delete_node, "nodes.manage", summary="Remove a node"),
    Route("POST", "/pacs/api/nodes/{name}/echo", echo, "nodes.read", summary="C-ECHO: {ok, message}"),
    Route(
        "POST",
        "/pacs/api/nodes/{name}/query",
        query,
        "nodes.query",
        summary="C-FIND studies on the node",
        body=StudyQuery,
        responses=(("504", "the node did not answer"),),
    ),
    Route(
        "POST",
        "/pacs/api/nodes/{name}/retrieve",
        retrieve,
        "nodes.query",
        summary="C-MOVE a study from the node to this PACS: {job, state}",
        body=Retrieval,
        responses=(("202", "moving: {job, state}"), ("502", "the node failed")),
    ),
    Route(
        "POST",
        "/pacs/api/studies/{uid}/send",
        send,
        "images.send",
        summary="C-STORE a study to a node, as a job",
        study="uid",
        body=Sending,
        responses=(("202", "{job}"), ("502", "the node failed")),
    ),
    Route("GET", "/pacs/api/jobs/{job_id}", job, "jobs.read", summary="A job's state and progress"),
)
