"""JSON API of remote DICOM nodes: list, save, delete, echo, query, retrieve;
sending a study; following an Orthanc job."""

from plugin.http import HttpError, Response


def register(router, nodes, worklist):
    @router.route("GET", "/pacs/api/nodes")
    def list_nodes(request):
        return Response.json({"items": nodes.list()})

    @router.route("PUT", "/pacs/api/nodes/{name}")
    def save_node(request, name):
        return Response.json(nodes.save(name, request.json(), request.principal))

    @router.route("DELETE", "/pacs/api/nodes/{name}")
    def delete_node(request, name):
        nodes.delete(name, request.principal)
        return Response.json({"status": "deleted"})

    @router.route("POST", "/pacs/api/nodes/{name}/echo")
    def echo(request, name):
        return Response.json(nodes.echo(name))

    @router.route("POST", "/pacs/api/nodes/{name}/query")
    def query(request, name):
        return Response.json({"items": nodes.query(name, request.json(), request.principal)})

    @router.route("POST", "/pacs/api/nodes/{name}/retrieve")
    def retrieve(request, name):
        result = nodes.retrieve(name, request.json().get("study_instance_uid"), request.principal)
        return Response.json(result, status=202 if result["job"] else 200)

    @router.route("POST", "/pacs/api/studies/{uid}/send")
    def send(request, uid):
        node = request.json().get("node")
        study = worklist.study(uid)
        if not study.orthanc_id:
            raise HttpError(409, "this study has no images yet")
        return Response.json({"job": nodes.send(study.orthanc_id, uid, node, request.principal)}, status=202)

    @router.route("GET", "/pacs/api/jobs/{job_id}")
    def job(request, job_id):
        return Response.json(nodes.job(job_id), headers={"Cache-Control": "no-store"})
