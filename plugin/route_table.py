"""Every route of ours, each declared once (plugin/routing.py) by the package it
belongs to, and the permission table the guard decides by: the rules generated
from these declarations, then the hand-written ones of plugin/permissions.py
(Orthanc's routes, and the two of ours a declaration cannot say yet)."""

from plugin import health, openapi, permissions, routing, site
from plugin.auth import pages as auth_pages
from plugin.auth import routes as auth_routes
from plugin.nodes import pages as node_pages
from plugin.nodes import routes as node_routes
from plugin.orders import pages as order_pages
from plugin.orders import routes as order_routes
from plugin.reports import pages as report_pages
from plugin.reports import routes as report_routes
from plugin.viewer import routes as viewer_routes
from plugin.worklist import pages as worklist_pages
from plugin.worklist import routes as worklist_routes

ROUTES = routing.check_unique(
    health.ROUTES
    + openapi.ROUTES
    + node_routes.ROUTES
    + node_pages.ROUTES
    + order_routes.ROUTES
    + order_pages.ROUTES
    + report_routes.ROUTES
    + report_pages.ROUTES
    + auth_routes.ROUTES
    + auth_pages.ROUTES
    + viewer_routes.ROUTES
    + site.ROUTES
    + worklist_routes.ROUTES
    + worklist_pages.ROUTES
)
TABLE = permissions.PermissionTable(routing.rules(ROUTES) + permissions.RULES)
