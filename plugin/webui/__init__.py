"""The web UI base every page of the PACS uses.

    from plugin.webui import render, error_page, security_headers, _

    return render("login.html", request, csrf_token=token, error=_("Wrong password", request))

- ``render(template_name, request=None, status=200, **context)`` -> ``Response``:
  a template of ``templates/`` in the language of the request's
  Accept-Language, with ``security_headers()``. Each template lists its
  context variables in a comment at its top.
- ``error_page(status, message, request=None)``: ``error.html`` as a Response.
- ``security_headers(frame_ancestors="'self'")``: CSP and friends for a page.
- ``default_webui().static``: the files of ``static/``, served as /pacs/static/<name>
  (plugin/site.py); ``static_url(name)`` (also a template global) is a file's
  cache-busting URL.
- ``gettext(message, request=None)`` / ``_``: a UI message for Python code.

Templates, catalogues and static files are loaded once, on first use.
Implementation: ``pages`` (templates), ``i18n`` (languages), ``static``
(files), ``headers`` (HTTP headers).
"""

import functools

from .headers import security_headers
from .pages import WebUI

__all__ = [
    "WebUI",
    "default_webui",
    "render",
    "error_page",
    "security_headers",
    "static_url",
    "gettext",
    "_",
]


@functools.cache
def default_webui():
    """The web UI of the plugin's own templates, locale and static folders."""
    return WebUI()


def render(template_name, request=None, status=200, **context):
    return default_webui().render(template_name, request, status, **context)


def error_page(status, message, request=None, **context):
    return default_webui().error_page(status, message, request, **context)


def static_url(name):
    return default_webui().static.url(name)


def gettext(message, request=None):
    return default_webui().gettext(message, request)


_ = gettext
