"""Every route of ours, each declared once (plugin/routing.py) by the package it
belongs to, and the permission table the guard decides by: the rules generated
from these declarations, then the hand-written ones of plugin/auth/permissions.py
(Orthanc's routes, and ours not yet declared)."""

from plugin import health, openapi, routing
from plugin.auth import permissions
from plugin.nodes import pages as node_pages
from plugin.nodes import routes as node_routes

ROUTES = routing.check_unique(health.ROUTES + openapi.ROUTES + node_routes.ROUTES + node_pages.ROUTES)
TABLE = permissions.PermissionTable(routing.rules(ROUTES) + permissions.RULES)
