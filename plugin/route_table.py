"""Every route of ours, each declared once (plugin/routing.py) by the package it
belongs to, and the permission table the guard decides by: the rules generated
from these declarations, then the hand-written ones of plugin/auth/permissions.py
(Orthanc's routes, and ours not yet declared)."""

from plugin import health, openapi, routing
from plugin.auth import permissions

ROUTES = routing.check_unique(health.ROUTES + openapi.ROUTES)
TABLE = permissions.PermissionTable(routing.rules(ROUTES) + permissions.RULES)
