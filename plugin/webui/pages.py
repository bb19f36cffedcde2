"""HTML pages: Jinja2 templates rendered in the request's language.

Every template is autoescaped and StrictUndefined (a misspelt variable is an
error, not an empty string); every UI string goes through gettext, written
``{{ _("...") }}`` or ``{% trans %}`` in templates and ``_(message, request)``
in Python.
"""

import datetime
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from plugin.dicomnames import display_name, name_parts
from plugin.http import Response
from plugin.jsonout import dumps, utc_text
from plugin.permissions import NEW_USER_ROLE, ROLES, can

from .headers import request_header, security_headers
from .i18n import LOCALE_DIR, Catalogues, html_lang
from .static import STATIC_DIR, StaticFiles

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# Variables of base.html that a page may leave out.
BASE_DEFAULTS = {
    "user": None,
    "csrf_token": None,
    "active_nav": None,
    "messages": (),
    "error": None,
    "page_data": None,
}

# "<", ">" and "&" cannot end a <script> element or start a comment when
# written as JSON escapes, and JSON.parse reads them back unchanged.
_JSON_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


class WebUI:
    """Templates, catalogues and static files, loaded once."""

    def __init__(self, template_dir=TEMPLATE_DIR, locale_dir=LOCALE_DIR, static_dir=STATIC_DIR):
        self.catalogues = Catalogues(locale_dir)
        self.static = StaticFiles(static_dir)
        # One environment per language: gettext is an environment global, and
        # requests in different languages run side by side.
        self._environments = {
            language: self._environment(template_dir, language) for language in self.catalogues.languages
        }

    def language_for(self, request):
        return self.catalogues.negotiate(request_header(request, "Accept-Language"))

    def gettext(self, message, request=None):
        """`message` in the request's language (English without a request)."""
        return self.catalogues.translations(self.language_for(request)).gettext(message)

    def render(self, template_name, request=None, status=200, **context):
        language = self.language_for(request)
        template = self._environments[language].get_template(template_name)
        body = template.render({**BASE_DEFAULTS, **context, "language": html_lang(language), "http_status": status})
        headers = security_headers()
        headers["Content-Language"] = html_lang(language)
        headers["Vary"] = "Accept-Language"
        return Response(status, body.encode("utf-8"), "text/html; charset=utf-8", headers)

    def error_page(self, status, message, request=None, **context):
        """The error page, with the navigation of the signed-in user who asked (a way
        back to every page they may use), and a link back to the worklist."""
        principal = getattr(request, "principal", None)
        if principal is not None and "user" not in context:
            context.update(
                user=SimpleNamespace(username=principal.username, display_name="", role=principal.role),
                csrf_token=principal.csrf or None,
            )
        return self.render("error.html", request, status, message=message, **context)

    def _environment(self, template_dir, language):
        environment = Environment(
            loader=FileSystemLoader(str(template_dir)),
            autoescape=select_autoescape(("html", "xml"), default_for_string=True, default=True),
            undefined=StrictUndefined,
            finalize=_blank_none,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        environment.policies["ext.i18n.trimmed"] = True
        environment.install_gettext_translations(self.catalogues.translations(language), newstyle=True)
        environment.globals.update(static_url=self.static.url, url_with_query=url_with_query)
        # Who may do what (plugin/permissions.py): the links and forms a user is offered.
        environment.globals.update(can=user_can, roles=ROLES, new_user_role=NEW_USER_ROLE)
        environment.filters.update(
            json_script=json_script,
            datetime=format_datetime,
            utc=utc_text,  # a stored time as the API writes it, for <time datetime> and page scripts
            person_name=display_name,
            name_parts=name_parts,
        )
        return environment


def user_can(user, permission):
    """`can` for templates: ``user`` is what base.html is given (a User, or a mapping
    with its role), and templates ask only about named permissions."""
    role = user.get("role") if isinstance(user, Mapping) else getattr(user, "role", None)
    return can(SimpleNamespace(role=role), permission)


def _blank_none(value):
    """`{{ none }}` prints nothing rather than "None" (a user never logged
    in, a key without expiry)."""
    return "" if value is None else value


def json_script(data, element_id):
    """``<script type="application/json" id=...>`` holding `data` for page
    scripts: CSP lets it through because it is never executed, and "</" in
    patient data cannot close it. ASCII only, so any status can carry it."""
    text = dumps(data).translate(_JSON_SCRIPT_ESCAPES)
    return Markup('<script type="application/json" id="{}">{}</script>').format(element_id, Markup(text))


def format_datetime(value):
    """A date/time for tables: "2026-03-01 14:05" (to the minute, no zone
    conversion); strings pass through, None prints nothing."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def url_with_query(path, params=None, **overrides):
    """`path` with the non-empty `params` (and `overrides`) as its query:
    paging and CSV links keep the filters the page was shown with."""
    merged = {**(params or {}), **overrides}
    query = urlencode([(key, value) for key, value in merged.items() if value not in (None, "")])
    return f"{path}?{query}" if query else path
