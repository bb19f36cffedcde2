"""GET /pacs/health: is each part of the PACS working? No login, no patient data."""

import logging
import shutil
from typing import Literal

from pydantic import BaseModel

from plugin import db
from plugin.http import Response
from plugin.permissions import PUBLIC
from plugin.routing import Route

LOGGER = logging.getLogger(__name__)


def health_report(host, settings):
    """(HTTP status, body): 200 when every part is ok, 503 naming what is not."""
    report = {"status": "ok", "database": _database_state(), "orthanc": _orthanc_state(host)}
    report.update(_disk_state(settings))
    failing = [part for part in ("database", "orthanc", "disk") if report[part] != "ok"]
    if failing:
        report["status"] = "failing"
        report["failing"] = failing
    return (503 if failing else 200), report


def _database_state():
    try:
        db.check()
        return "ok"
    except Exception as error:  # any driver error means "not ok", never a 500
        LOGGER.warning("event=health_database_failed error=%r", error)
        return "unavailable"


def _orthanc_state(host):
    try:
        return "ok" if host.get_json("/system") else "unavailable"
    except Exception as error:
        LOGGER.warning("event=health_orthanc_failed error=%r", error)
        return "unavailable"


def _disk_state(settings):
    try:
        usage = shutil.disk_usage(settings.storage_dir)
    except OSError:
        return {"disk": "unavailable"}
    free_mb = usage.free // (1024 * 1024)
    return {
        "disk": "ok" if free_mb >= settings.min_free_disk_mb else "low",
        "disk_free_mb": free_mb,
        "disk_free_percent": round(100.0 * usage.free / usage.total, 1) if usage.total else 0.0,
    }


class HealthReport(BaseModel):
    status: Literal["ok", "failing"]
    database: Literal["ok", "unavailable"]
    orthanc: Literal["ok", "unavailable"]
    disk: Literal["ok", "low", "unavailable"]
    disk_free_mb: int | None = None
    disk_free_percent: float | None = None
    failing: list[str] = []


def health(app, request):
    status, body = health_report(app.host, app.settings)
    return Response.json(body, status, headers={"Cache-Control": "no-store"})


ROUTES = (
    Route(
        "GET",
        "/pacs/health",
        health,
        PUBLIC,
        summary="Health of database, Orthanc and disk; 503 names the failing part",
        answer=HealthReport,
        responses=(("503", "a part is failing"),),
    ),
)
