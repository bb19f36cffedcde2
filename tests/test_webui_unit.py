"""The web UI base without Orthanc: escaping, templates, security headers,
languages and static files; then the pages and pacs.js in Chromium (the
browser `make test` installs), served from memory through Playwright."""

import datetime
import gzip
import hashlib
import json
import re
import shutil
import struct
import textwrap
from html.parser import HTMLParser
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import jinja2
import pytest

from plugin import routing, site, webui
from plugin.http import Request, Response, Router
from plugin.models import PRIORITIES, STATUSES
from plugin.reports.models import SECTIONS
from plugin.webui import WebUI, default_webui, render, security_headers
from plugin.webui.i18n import Catalogues
from plugin.webui.pages import TEMPLATE_DIR, json_script, url_with_query
from plugin.webui.static import STATIC_DIR, StaticFiles, accepts_gzip

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE_BREAK = '"><img src=x onerror=alert(1)>'
TOKEN = "csrf-7f3a"

ADMIN = {"id": 1, "username": "admin", "display_name": "Ada Admin", "role": "admin"}
RADIOLOGIST = {"id": 2, "username": "rad", "display_name": "Dr Rad", "role": "radiologist"}


def sample_contexts(hostile=""):
    """A context for every template; `hostile` is appended to every string
    that could come from DICOM headers or users."""
    h = hostile
    admin = dict(ADMIN, display_name="Ada Admin" + h)
    return {
        "base.html": {
            "user": admin,
            "csrf_token": TOKEN,
            "error": "Study locked by " + admin["display_name"],
            "page_data": {"patient_name": "DOE^JANE" + h},
        },
        "login.html": {
            "csrf_token": TOKEN,
            "error": "Wrong username or password" + h,
            "username": "admin" + h,
            "next_url": "/pacs/study/1" + h,
        },
        "error.html": {"user": admin, "csrf_token": TOKEN, "message": "No study 1.2.3" + h, "back_url": "/pacs/"},
        "account.html": {
            "user": admin,
            "csrf_token": TOKEN,
            "active_nav": "account",
            "messages": [{"level": "success", "text": "Password changed" + h}],
        },
        "admin_users.html": {
            "user": admin,
            "csrf_token": TOKEN,
            "active_nav": "users",
            "users": [
                {
                    "id": 1,
                    "username": "admin",
                    "display_name": "Ada Admin" + h,
                    "role": "admin",
                    "referrer_names": [],
                    "disabled": False,
                    "last_login": datetime.datetime(2026, 3, 1, 14, 5, 9),
                },
                {
                    "id": 7,
                    "username": "drwho" + h,
                    "display_name": "Dr Who" + h,
                    "role": "referrer",
                    "referrer_names": ["WHO^JOHN" + h, "WHO^J"],
                    "disabled": True,
                    "last_login": None,
                },
            ],
        },
        "admin_apikeys.html": {
            "user": admin,
            "csrf_token": TOKEN,
            "active_nav": "apikeys",
            "api_keys": [
                {
                    "id": 3,
                    "name": "modality bridge" + h,
                    "username": "rad" + h,
                    "role": "technologist",
                    "created_at": datetime.datetime(2026, 1, 2, 3, 4),
                    "expires_at": None,
                    "last_used_at": "2026-02-01 10:00",
                    "revoked": False,
                },
                {
                    "id": 4,
                    "name": "old" + h,
                    "username": "rad",
                    "role": "radiologist",
                    "created_at": "2025-01-01",
                    "expires_at": datetime.date(2025, 6, 1),
                    "last_used_at": None,
                    "revoked": True,
                },
            ],
            "users": [{"id": 1, "username": "admin" + h}, {"id": 2, "username": "rad"}],
            "new_key": {"name": "modality bridge" + h, "secret": "pacs_k_0123456789abcdef" + h},
        },
        "report.html": report_sample_contexts(h)["draft"],
        "admin_templates.html": report_sample_contexts(h)["admin_templates"],
        "nodes.html": {
            "user": admin,
            "csrf_token": TOKEN,
            "active_nav": "nodes",
            "can_manage": True,
            "can_query": True,
            "nodes": [
                {
                    "name": "ct1",
                    "aet": "CT1" + h,
                    "host": "10.0.0.9" + h,
                    "port": 104,
                    "allow_echo": True,
                    "allow_find": False,
                    "allow_move": True,
                    "allow_get": False,
                    "allow_store": True,
                }
            ],
        },
        **worklist_samples(admin, h),
        **order_samples(admin, h),
        "admin_audit.html": {
            "user": admin,
            "csrf_token": TOKEN,
            "active_nav": "audit",
            "chain": {"ok": False, "first_bad_id": 42},
            "filters": {
                "patient": "doe" + h,
                "user": "rad" + h,
                "action": "report_finalized",
                "study_uid": "",
                "outcome": "success",
                "date_from": "2026-01-01",
                "date_to": "",
            },
            "entries": [
                {
                    "id": 42,
                    "timestamp": datetime.datetime(2026, 1, 5, 8, 0),
                    "username": "rad",
                    "action": "report_finalized",
                    "action_label": "Report signed",
                    "study_uid": "1.2.840.1" + h,
                    "study_known": True,
                    "patient_name": "DOE^JANE" + h,
                    "patient_id": "P-1" + h,
                    "accession_number": "ACC-1" + h,
                    "outcome": "success",
                    "ip_address": "10.0.0.5",
                    "detail": "version: 3" + h,
                },
                {
                    "id": 41,
                    "timestamp": datetime.datetime(2026, 1, 5, 7, 0),
                    "username": "rad",
                    "action": "images_retrieved",
                    "action_label": "Images viewed",
                    "study_uid": "1.2.840.2",
                    "study_known": False,
                    "patient_name": "",
                    "patient_id": "P-2" + h,
                    "accession_number": "",
                    "outcome": "success",
                    "ip_address": "10.0.0.5",
                    "detail": None,
                },
            ],
            "page": 2,
            "page_size": 50,
            "total": 120,
            "actions": [("login", "Signed in"), ("report_finalized", "Report signed")],
        },
    }


def order_samples(admin, h):
    """Contexts of the orders pages (plugin.orders.pages)."""
    order = {
        "id": 7,
        "accession_number": "A2611230001" + h,
        "status": "in_progress",
        "priority": "urgent",
        "patient_id": "P-1" + h,
        "patient_name": "DOE^JANE" + h,
        "patient_birth_date": "1970-01-01",
        "patient_sex": "F",
        "modality": "CT",
        "scheduled_station_aet": "CT1" + h,
        "scheduled_at": "2026-11-23T09:30:00",
        "procedure": "CT HEAD" + h,
        "referring_physician": "WHO^DR" + h,
        "study_instance_uid": "1.2.840.9",
        "created_by": "tech" + h,
        "study": {"study_instance_uid": "1.2.840.9", "status": "arrived", "has_images": True, "instance_count": 20},
        "performed_steps": [
            {
                "sop_instance_uid": "1.2.3",
                "status": "COMPLETED",
                "calling_aet": "CT1" + h,
                "started_at": "20261123093100",
                "ended_at": "20261123094500",
                "performed_series": [{"series_instance_uid": "1.2.3.4", "description": "AXIAL" + h, "images": 20}],
            }
        ],
    }
    shared = {
        "user": admin,
        "csrf_token": TOKEN,
        "active_nav": "orders",
        "can_write": True,
        "priorities": PRIORITIES,
        "sexes": ["M", "F", "O"],
        "modalities": ["CT", "MR"],
        "order_statuses": ["scheduled", "in_progress", "completed", "discontinued", "cancelled", "arrived"],
    }
    return {
        "orders.html": dict(
            shared,
            orders=[order],
            total=120,
            page=2,
            page_size=50,
            filters={"status": "scheduled", "q": "doe" + h, "date_from": "", "date_to": ""},
            form={"patient_name": "DOE^J" + h, "priority": "stat"},
        ),
        "order.html": dict(shared, order=order, form=order, editable=True, cancellable=True),
    }


def worklist_samples(admin, h):
    """Contexts of the worklist, study and dashboard pages (plugin.worklist.pages)."""
    study = {
        "study_instance_uid": "1.2.840.9",
        "patient_name": "DOE^JANE" + h,
        "patient_id": "P-1" + h,
        "patient_sex": "F",
        "patient_birth_date": datetime.date(1970, 1, 1),
        "patient_age": 56,
        "accession_number": "ACC-1" + h,
        "study_date": datetime.date(2026, 3, 1),
        "study_time": "101500",
        "modalities": ["CT", "MR" + h],
        "description": "CT HEAD" + h,
        "referring_physician": "WHO^DR" + h,
        "body_parts": ["HEAD" + h],
        "series_count": 1,
        "instance_count": 20,
        "status": "in_progress",
        "priority": "stat",
        "assignee": "rad",
        "claimed_by": "rad",
        "arrived_at": datetime.datetime(2026, 3, 1, 10, 20),
        "final_at": None,
        "institution_name": "Clinic" + h,
        "series": [
            {
                "series_instance_uid": "1.2.840.9.1",
                "number": 1,
                "modality": "CT",
                "description": "AXIAL" + h,
                "body_part": "HEAD",
                "instance_count": 20,
                "document": False,
                "report_copy": False,
            },
            {
                "series_instance_uid": "1.2.840.9.2",
                "number": 9001,
                "modality": "DOC",
                "description": "Radiology report" + h,
                "body_part": "",
                "instance_count": 1,
                "document": True,
                "report_copy": True,
            },
        ],
        "priors": [
            {
                "study_instance_uid": "1.2.840.8",
                "study_date": datetime.date(2025, 1, 2),
                "modalities": ["CT"],
                "description": "CT HEAD OLD" + h,
                "status": "final",
            }
        ],
    }
    shared = {"user": admin, "csrf_token": TOKEN, "statuses": STATUSES, "priorities": PRIORITIES}
    script_data = {"me": "admin", "role": "admin", "people": {"rad": "Dr Rad" + h}, "texts": {}}
    targets = {"stat": 60, "urgent": 240, "routine": 1440}
    chart = "vendor/chart.umd.min.js"
    return {
        "worklist.html": dict(
            shared,
            active_nav="worklist",
            can_claim=True,
            can_prioritise=True,
            readers=[("rad", "Dr Rad" + h)],
            modalities=["CT", "MR"],
            targets=targets,
            default_sort="-priority,arrived_at",
            page_data=dict(script_data, poll_ms=3000),
        ),
        "study.html": dict(
            shared,
            active_nav="worklist",
            can_claim=True,
            can_prioritise=True,
            can_send=True,
            study=study,
            viewer_url="/pacs/viewer/viewer?StudyInstanceUIDs=1.2.840.9",
            viewer_with_priors_url="/pacs/viewer/viewer?StudyInstanceUIDs=1.2.840.9&StudyInstanceUIDs=1.2.840.8",
            readers=[("rad", "Dr Rad" + h)],
            page_data=dict(script_data, study=study),
        ),
        "dashboard.html": dict(
            shared,
            active_nav="dashboard",
            people={"rad": "Dr Rad" + h},
            targets=targets,
            chart_url=webui.static_url(chart) if webui.default_webui().static.has(chart) else None,
            figures={
                "counts_by_status": {"arrived": 3, "final": 1},
                "per_day": {"days": ["2026-03-01", "2026-03-02"], "series": {"CT": [1, 2], "MR" + h: [0, 1]}},
                "turnaround": [
                    {
                        "modality": "CT" + h,
                        "priority": "stat",
                        "studies": 2,
                        "median_minutes": 42.5,
                        "p90_minutes": 80.0,
                    }
                ],
                "workload": [{"username": "rad", "assigned": 2, "reading": 1}],
                "waiting_longest": [study],
            },
            page_data=dict(script_data, per_day={"days": ["2026-03-01"], "series": {"CT": [1]}}),
        ),
    }


def report_sample_contexts(hostile=""):
    """report.html in its four states and admin_templates.html, with `hostile`
    appended to every string from DICOM headers or users."""
    h = hostile
    user_ = {"username": "rad", "display_name": "Dr Rad" + h, "role": "radiologist"}
    study = {
        "patient_name": "DOE^JANE" + h,
        "patient_id": "P1" + h,
        "accession_number": "A1" + h,
        "study_date": "2026-01-01",
        "description": "CT HEAD" + h,
        "modalities": ["CT"],
        "referring_physician": "WHO^DR" + h,
    }
    template = {
        "id": 1,
        "name": "CT head" + h,
        "modality": "CT",
        "body_part": "HEAD" + h,
        "disabled": False,
        "sections": {"findings": "Normal." + h},
    }
    sections = {name: name + h for name in SECTIONS}
    draft = {
        "status": "draft",
        "version": 3,
        "template_id": 1,
        "sections": sections,
        "author_name": "Dr Rad" + h,
        "updated_at": datetime.datetime(2026, 1, 1, 10),
        "signer_name": "",
        "signed_at": None,
        "addenda": [],
        "study": study,
        "history": [
            {
                "version": 3,
                "kind": "saved",
                "username": "rad" + h,
                "name": "Dr Rad" + h,
                "at": datetime.datetime(2026, 1, 1, 10),
                "sections": sections,
            }
        ],
    }
    signed = dict(
        draft,
        status="amended",
        signer_name="Dr Rad" + h,
        signed_at=datetime.datetime(2026, 1, 1, 11),
        addenda=[
            {"id": 1, "text": "Addendum" + h, "author_name": "Dr Q" + h, "signed_at": datetime.datetime(2026, 1, 2, 11)}
        ],
    )
    blank = {
        "status": "none",
        "version": 0,
        "sections": dict.fromkeys(SECTIONS, ""),
        "addenda": [],
        "suggested_comparison": "CT 2025" + h,
        "templates": [template],
        "study": study,
    }
    page = {
        "user": user_,
        "csrf_token": TOKEN,
        "active_nav": "worklist",
        "uid": "1.2.3" + h,
        "study": study,
        "patient": "DOE, Jane" + h,
        "sections": SECTIONS,
        "can_manage_templates": True,
        "claim": None,
        "page_data": {"uid": "1.2.3" + h, "texts": {}},
    }
    return {
        "draft": dict(page, report=draft, editable=True, templates=[template], can_sign=True, can_addend=False),
        "blank": dict(page, report=blank, editable=True, templates=[template], can_sign=True, can_addend=False),
        "signed": dict(page, report=signed, editable=False, templates=[], can_sign=False, can_addend=True),
        "none": dict(page, report=None, editable=False, templates=[], can_sign=False, can_addend=False),
        # A colleague reads the study: read-only, with the take-over offered.
        "claimed": dict(
            page,
            report=draft,
            editable=True,
            templates=[],
            can_sign=False,
            can_addend=False,
            claim={"name": "Dr Q" + h, "until": datetime.datetime(2026, 1, 1, 10, 30)},
        ),
        "admin_templates": {
            "user": dict(user_, role="admin"),
            "csrf_token": TOKEN,
            "sections": SECTIONS,
            "templates": [template],
            "page_data": {"texts": {}},
        },
    }


def render_body(template, context, request=None, ui=None):
    response = (ui or webui.default_webui()).render(template, request, **context)
    assert response.content_type == "text/html; charset=utf-8"
    return response.body.decode("utf-8")


class Document(HTMLParser):
    """What a browser would see: tags with attributes, text, and forms."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.forms, self._form = [], [], [], None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "form":
            self._form = {"attrs": attributes, "inputs": []}
            self.forms.append(self._form)
        elif tag in ("input", "select", "textarea") and self._form is not None:
            self._form["inputs"].append(attributes)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag):
        return [attributes for name, attributes in self.tags if name == tag]

    def post_forms(self):
        return [form for form in self.forms if form["attrs"].get("method") == "post"]


# --- templates --------------------------------------------------------------


def page_templates():
    return sorted(path.name for path in TEMPLATE_DIR.glob("*.html") if not path.name.startswith("_"))


def test_every_template_has_a_sample_and_renders():
    assert set(sample_contexts()) == set(page_templates())
    for template, context in sample_contexts().items():
        document = Document(render_body(template, context))
        assert document.find("html")[0]["lang"] == "en", template


@pytest.mark.parametrize("template", sorted(sample_contexts()))
def test_dicom_and_user_strings_are_text_never_markup(template):
    body = render_body(template, sample_contexts(SCRIPT + ATTRIBUTE_BREAK)[template])
    assert SCRIPT not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    document = Document(body)
    assert all(img["src"] != "x" for img in document.find("img"))  # thumbnails are fine
    assert all(not name.startswith("on") for _, attributes in document.tags for name in attributes)
    attribute_values = [value or "" for _, attributes in document.tags for value in attributes.values()]
    assert any(SCRIPT + ATTRIBUTE_BREAK in text for text in document.text + attribute_values)


def test_patient_name_in_a_page_of_our_own(tmp_path):
    """A page extending base.html, as the worklist will, with a DICOM patient
    name in text, an attribute, a data-* attribute and the JSON data block."""
    shutil.copytree(TEMPLATE_DIR, tmp_path / "templates")
    (tmp_path / "templates" / "study.html").write_text(
        textwrap.dedent("""\
        {% extends "base.html" %}
        {% block content %}
        <h1 title="{{ patient_name }}" data-patient="{{ patient_name }}">{{ patient_name }}</h1>
        {% endblock %}
        """)
    )
    ui = WebUI(template_dir=tmp_path / "templates")
    for name in (SCRIPT, ATTRIBUTE_BREAK, "DOE^JANE</script><script>alert(1)//"):
        body = render_body(
            "study.html",
            {"patient_name": name, "user": ADMIN, "csrf_token": TOKEN, "page_data": {"patient_name": name}},
            ui=ui,
        )
        document = Document(body)
        heading = document.find("h1")[0]
        assert heading["title"] == heading["data-patient"] == name
        assert not document.find("img")
        scripts = document.find("script")
        assert [s.get("type") for s in scripts] == [None, "application/json"]
        data_block = body.split('<script type="application/json" id="page-data">')[1].split("</script>")[0]
        assert json.loads(data_block) == {"patient_name": name}


def test_json_script_cannot_close_its_element():
    markup = str(json_script({"a": "</script><!--", "b": "&amp; é"}, 'x"y'))
    assert markup.startswith('<script type="application/json" id="x&#34;y">')
    payload = markup.split(">", 1)[1].rsplit("</script>", 1)[0]
    assert "<" not in payload and ">" not in payload and "&" not in payload
    assert payload.isascii()
    assert json.loads(payload) == {"a": "</script><!--", "b": "&amp; é"}


def test_no_inline_script_or_style_anywhere():
    for template, context in sample_contexts().items():
        document = Document(render_body(template, context))
        assert not document.find("style"), template
        for tag, attributes in document.tags:
            assert "style" not in attributes, (template, tag)
            assert not any(name.startswith("on") for name in attributes), (template, tag)
        for script in document.find("script"):
            assert script.get("type") == "application/json" or script["src"].startswith("/pacs/static/")


def test_every_post_form_carries_the_csrf_token():
    for template, context in sample_contexts().items():
        forms = Document(render_body(template, context)).post_forms()
        assert forms, template
        for form in forms:
            hidden = [i for i in form["inputs"] if i.get("name") == "csrf_token"]
            assert [(i["type"], i["value"]) for i in hidden] == [("hidden", TOKEN)], (template, form["attrs"])


def test_forms_post_where_the_routes_are():
    actions = {}
    for template, context in sample_contexts().items():
        forms = Document(render_body(template, context)).post_forms()
        actions[template] = sorted({form["attrs"]["action"] for form in forms})
    logout = "/pacs/logout"
    assert actions["login.html"] == ["/pacs/login"]
    assert actions["account.html"] == ["/pacs/account/password", logout]
    assert actions["admin_users.html"] == [
        "/pacs/admin/users",
        "/pacs/admin/users/1",
        "/pacs/admin/users/1/password",
        "/pacs/admin/users/7",
        "/pacs/admin/users/7/password",
        logout,
    ]
    assert actions["admin_apikeys.html"] == ["/pacs/admin/apikeys", "/pacs/admin/apikeys/3/revoke", logout]


def test_login_form():
    document = Document(render_body("login.html", sample_contexts()["login.html"]))
    inputs = {i["name"]: i for i in document.forms[0]["inputs"]}
    assert inputs["username"]["autocomplete"] == "username" and inputs["username"]["value"] == "admin"
    assert inputs["password"]["autocomplete"] == "current-password" and "autofocus" in inputs["password"]
    assert inputs["next"]["value"] == "/pacs/study/1"
    assert "Wrong username or password" in "".join(document.text)
    assert not document.find("nav")
    fresh = Document(render_body("login.html", {"csrf_token": TOKEN}))
    fresh_inputs = {i["name"]: i for i in fresh.forms[0]["inputs"]}
    assert "autofocus" in fresh_inputs["username"] and "next" not in fresh_inputs


def test_navigation_follows_the_role():
    def links(user):
        context = {"user": user, "csrf_token": TOKEN, "message": "no"}
        return [a["href"] for a in Document(render_body("error.html", context)).find("a")]

    assert {
        "/pacs/admin/users",
        "/pacs/admin/apikeys",
        "/pacs/admin/audit",
        "/pacs/dashboard",
        "/pacs/",
        "/pacs/account",
    } <= set(links(ADMIN))
    assert not [href for href in links(RADIOLOGIST) if href.startswith("/pacs/admin")]
    assert "/pacs/dashboard" not in links(dict(RADIOLOGIST, role="referrer"))
    anonymous = Document(render_body("error.html", {"message": "boom"}))
    assert not anonymous.find("nav")
    assert not [m for m in anonymous.find("meta") if m.get("name") == "csrf-token"]


def test_base_layout_csrf_meta_and_current_page():
    document = Document(render_body("account.html", sample_contexts()["account.html"]))
    assert {"name": "csrf-token", "content": TOKEN} in document.find("meta")
    current = [a["href"] for a in document.find("a") if a.get("aria-current") == "page"]
    assert current == ["/pacs/account"]
    assert "Password changed" in "".join(document.text)
    body = document.find("body")[0]
    assert "data-keepalive" in body


def test_new_api_key_is_shown_only_when_just_created():
    context = sample_contexts()["admin_apikeys.html"]
    assert "pacs_k_0123456789abcdef" in render_body("admin_apikeys.html", context)
    context.pop("new_key")
    assert "pacs_k_" not in render_body("admin_apikeys.html", context)


def test_audit_page_banner_filters_paging_and_csv():
    context = sample_contexts()["admin_audit.html"]
    body = render_body("admin_audit.html", context)
    document = Document(body)
    assert "BROKEN at entry 42" in "".join(document.text)
    hrefs = [a["href"] for a in document.find("a")]
    filters = "patient=doe&user=rad&action=report_finalized&outcome=success&date_from=2026-01-01"
    assert f"/pacs/api/audit.csv?{filters}" in hrefs
    assert f"/pacs/admin/audit?{filters}&page=1" in hrefs
    assert f"/pacs/admin/audit?{filters}&page=3" in hrefs
    assert f"/pacs/admin/audit?{filters}&verify=1" in hrefs
    assert "Page 2 of 3" in body and "120 entries" in body
    # Readable: the action in words (its code as a tooltip), the patient and accession, not the UID.
    assert "Report signed" in body and 'title="report_finalized"' in body
    assert "DOE, JANE" in body and "ACC-1" in body and "P-2" in body and "not in the archive" in body
    assert "/pacs/studies/1.2.840.1" in hrefs
    last_page = render_body("admin_audit.html", dict(context, page=3, chain={"ok": True, "first_bad_id": None}))
    assert "page=4" not in last_page and "intact" in last_page


def test_none_prints_nothing_and_datetimes_are_short():
    body = render_body("admin_users.html", sample_contexts()["admin_users.html"])
    assert "None" not in body
    assert "2026-03-01 14:05" in body and "14:05:09" not in body


def test_a_misspelt_variable_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        render("admin_users.html", csrf_token=TOKEN, user=ADMIN, usres=[])


def test_url_with_query_drops_empty_values():
    assert url_with_query("/a", {"x": "", "y": None, "z": "1 2"}, page=3) == "/a?z=1+2&page=3"
    assert url_with_query("/a", {}) == "/a"


# --- every visible text goes through gettext --------------------------------

_VISIBLE_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label", "data-confirm", "data-copied-text", "label")


class _BareText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        visible = list(_VISIBLE_ATTRIBUTES)
        if tag == "input" and attributes.get("type") in ("submit", "button", "reset"):
            visible.append("value")
        self.found += [
            f"{tag}[{name}]={value!r}" for name, value in attrs if name in visible and _has_words(value or "")
        ]

    def handle_data(self, data):
        if _has_words(data):
            self.found.append(repr(data.strip()))


def _has_words(text):
    """Letters make words; digits, punctuation and spaces do not."""
    return re.search(r"[^\W\d_]", text) is not None


def _template_without_jinja(source):
    """The template's HTML with every {{ }}, {% %} and {# #} (and the text
    of {% trans %} blocks) replaced by a space."""
    parts, in_trans, previous_name = [], False, None
    for _, token_type, value in jinja2.Environment(extensions=["jinja2.ext.i18n"]).lex(source):
        if token_type == "whitespace":
            continue
        if token_type == "name" and previous_name == "block_begin":
            in_trans = value == "trans" or (in_trans and value != "endtrans")
        previous_name = token_type
        if token_type == "data" and not in_trans:
            parts.append(value)
        elif token_type.endswith("_begin"):
            parts.append(" ")
    return "".join(parts)


@pytest.mark.parametrize("path", sorted(TEMPLATE_DIR.glob("*.html")), ids=lambda path: path.name)
def test_templates_have_no_untranslated_text(path):
    checker = _BareText()
    checker.feed(_template_without_jinja(path.read_text()))
    checker.close()
    assert checker.found == []


def test_the_bare_text_check_catches_bare_text():
    checker = _BareText()
    checker.feed(
        _template_without_jinja(
            '<p>{{ _("ok") }} Hello</p><input type="submit" value="Go">'
            '<b title="{{ x }}">{% trans %}fine{% endtrans %}</b>'
        )
    )
    assert checker.found == ["'Hello'", "input[value]='Go'"]


def test_messages_are_extractable():
    """What `pybabel extract -F plugin/webui/babel.cfg` will find."""
    environment = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    messages = set()
    for path in TEMPLATE_DIR.glob("*.html"):
        for _, _, message in environment.extract_translations(path.read_text()):
            messages.add(tuple(part for part in message if part) if isinstance(message, tuple) else message)
    assert {
        "Sign in",
        "Audit log",
        ("Error %(status)s",),
        "Page %(page)s of %(page_count)s",
        ("%(count)s entry", "%(count)s entries"),
    } <= messages


# --- languages --------------------------------------------------------------


def write_mo(path, messages):
    """A GNU .mo catalogue (what msgfmt writes): header, then the sorted
    original and translated string tables, no hash table."""
    catalogue = {"": "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n"}
    catalogue.update(messages)
    keys = sorted(catalogue)
    ids = [key.encode("utf-8") for key in keys]
    strs = [catalogue[key].encode("utf-8") for key in keys]
    header_size = 7 * 4
    table_size = len(keys) * 8
    offset = header_size + 2 * table_size
    originals, translations, data = [], [], b""
    for table, texts in ((originals, ids), (translations, strs)):
        for text in texts:
            table.append((len(text), offset + len(data)))
            data += text + b"\0"
    output = struct.pack("<7I", 0x950412DE, 0, len(keys), header_size, header_size + table_size, 0, 0)
    for length, position in originals + translations:
        output += struct.pack("<2I", length, position)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(output + data)


@pytest.fixture
def german(tmp_path):
    locale = tmp_path / "locale"
    write_mo(
        locale / "de" / "LC_MESSAGES" / "pacs.mo",
        {
            "Sign in": "Anmelden",
            "Username": "Benutzername",
            "Error %(status)s": "Fehler %(status)s",
            "%(count)s entry\x00%(count)s entries": "%(count)s Eintrag\x00%(count)s Einträge",
            "Wrong password": "Falsches Passwort",
        },
    )
    return WebUI(locale_dir=locale)


def german_request():
    return Request("GET", "/pacs/login", headers={"accept-language": "de-CH, de;q=0.9, en;q=0.5"})


def test_page_in_the_browsers_language(german):
    response = german.render("login.html", german_request(), csrf_token=TOKEN)
    body = response.body.decode()
    assert "Anmelden" in body and "Benutzername" in body and '<html lang="de">' in body
    assert response.headers["Content-Language"] == "de"
    assert "Password" in body  # no translation yet: English


def test_translations_keep_escaping_and_plurals(german):
    body = german.render("error.html", german_request(), 404, message=SCRIPT).body.decode()
    assert "Fehler 404" in body and SCRIPT not in body
    audit = sample_contexts()["admin_audit.html"]
    assert "120 Einträge" in german.render("admin_audit.html", german_request(), **audit).body.decode()


def test_unknown_language_falls_back_to_english(german):
    request = Request("GET", "/", headers={"Accept-Language": "fr-FR, fr;q=0.9"})
    body = german.render("login.html", request, csrf_token=TOKEN).body.decode()
    assert "Sign in" in body and '<html lang="en">' in body
    assert "Sign in" in german.render("login.html", None, csrf_token=TOKEN).body.decode()


def test_gettext_for_python_code(german):
    assert german.gettext("Wrong password", german_request()) == "Falsches Passwort"
    assert german.gettext("Wrong password") == "Wrong password"
    assert webui._("Wrong password", german_request()) == "Wrong password"  # no catalogue shipped


def test_accept_language_negotiation(tmp_path):
    for language in ("de", "pt_BR"):
        write_mo(tmp_path / language / "LC_MESSAGES" / "pacs.mo", {})
    catalogues = Catalogues(tmp_path)
    assert catalogues.languages == ["de", "en", "pt_BR"]
    for header, expected in [
        ("de", "de"),
        ("DE-at", "de"),
        ("pt", "pt_BR"),
        ("pt-br", "pt_BR"),
        ("fr, de;q=0.1", "de"),
        ("de;q=0.5, pt-BR;q=0.9", "pt_BR"),
        ("de;q=0, pt;q=0.2", "pt_BR"),
        ("en-GB, de", "en"),
        ("*", "en"),
        ("", "en"),
        (None, "en"),
        ("de;q=abc, fr", "en"),
        (",,;", "en"),
    ]:
        assert catalogues.negotiate(header) == expected, header


# --- security headers -------------------------------------------------------


def test_security_headers_on_every_page():
    response = render("login.html", csrf_token=TOKEN)
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; object-src 'none'; "
        "base-uri 'self'; form-action 'self'"
    )
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"


def test_error_page_status_and_headers():
    response = webui.error_page(403, "not yours", csrf_token=None)
    assert response.status == 403
    assert "not yours" in response.body.decode()
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_frame_ancestors_choice():
    assert security_headers("'none'")["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in security_headers("'none'")["Content-Security-Policy"]
    other = security_headers("'self' https://ris.example.org")
    assert "X-Frame-Options" not in other
    assert "frame-ancestors 'self' https://ris.example.org;" in other["Content-Security-Policy"]


# --- static files -----------------------------------------------------------


def static_router(static_files=None):
    """A router with the web UI's declared routes, serving ``static_files`` (the default web UI's when None)."""
    router = Router()
    routing.register(router, site.ROUTES, SimpleNamespace(static_files=static_files or default_webui().static))
    return router


def get(router, path, query=None, headers=None):
    return router.dispatch(Request("GET", path, dict(query or {}), dict(headers or {})))


def test_static_mime_types_and_nosniff():
    router = static_router()
    for name, mime in [
        ("pacs.css", "text/css; charset=utf-8"),
        ("pacs.js", "text/javascript; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        response = get(router, "/pacs/static/" + name)
        assert response.status == 200, name
        assert response.content_type == mime
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.body == (STATIC_DIR / name).read_bytes()


def test_static_url_busts_caches_and_earns_long_caching():
    router = static_router()
    url = webui.static_url("pacs.css")
    version = hashlib.sha256((STATIC_DIR / "pacs.css").read_bytes()).hexdigest()[:12]
    assert url == f"/pacs/static/pacs.css?v={version}"
    assert (
        get(router, "/pacs/static/pacs.css", {"v": version}).headers["Cache-Control"]
        == "public, max-age=31536000, immutable"
    )
    assert get(router, "/pacs/static/pacs.css").headers["Cache-Control"] == "no-cache"
    assert get(router, "/pacs/static/pacs.css", {"v": "0ld"}).headers["Cache-Control"] == "no-cache"
    assert url in render("login.html", csrf_token=TOKEN).body.decode()


def test_missing_static_file_is_404_json():
    response = get(static_router(), "/pacs/static/nothing.css")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert "nothing.css" in json.loads(response.body)["error"]


def test_gzip_copy_for_larger_files():
    router = static_router()
    original = (STATIC_DIR / "pacs.css").read_bytes()
    assert len(original) > 1024
    zipped = get(router, "/pacs/static/pacs.css", headers={"accept-encoding": "gzip, deflate, br"})
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(zipped.body) == original and len(zipped.body) < len(original)
    plain = get(router, "/pacs/static/pacs.css")
    assert plain.body == original and "Content-Encoding" not in plain.headers
    assert plain.headers["Vary"] == "Accept-Encoding"
    refused = get(router, "/pacs/static/pacs.css", headers={"Accept-Encoding": "gzip;q=0, *"})
    assert "Content-Encoding" not in refused.headers
    small = get(router, "/pacs/static/favicon.svg", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers and "Vary" not in small.headers


def test_accept_encoding_parsing():
    assert accepts_gzip("gzip") and accepts_gzip("br, GZIP;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("") and not accepts_gzip("br, deflate")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("*, gzip;q=0") and not accepts_gzip("gzip;q=x")


@pytest.fixture
def fenced_static(tmp_path):
    """A static folder with a secret next to it, a hidden file and a
    symbolic link pointing out of it."""
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "app.css").write_text("body {}")
    (root / "sub" / "x.js").write_text("1;")
    (root / ".env").write_text("TOP SECRET")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    return StaticFiles(root)


TRAVERSALS = [
    "../secret.txt",
    "%2e%2e/secret.txt",
    "%2E%2E%2Fsecret.txt",
    "..%2fsecret.txt",
    "....//secret.txt",
    "sub/../../secret.txt",
    "sub/%2e%2e/%2e%2e/secret.txt",
    "%252e%252e/secret.txt",
    "./app.css",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "..\\secret.txt",
    "sub\\..\\..\\secret.txt",
    "%5c..%5csecret.txt",
    "app.css\x00.js",
    "app.css%00",
    "C:/Windows/win.ini",
    ".env",
    "sub//x.js",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_static_traversal_is_refused(fenced_static, path):
    response = get(static_router(fenced_static), "/pacs/static/" + path)
    assert 400 <= response.status < 500
    assert b"SECRET" not in response.body
    assert json.loads(response.body)["error"]


def test_static_serves_sub_folders_but_not_links_out(fenced_static):
    router = static_router(fenced_static)
    assert get(router, "/pacs/static/sub/x.js").body == b"1;"
    assert get(router, "/pacs/static/link.txt").status == 404
    with pytest.raises(KeyError):
        fenced_static.url(".env")


def test_vendor_root_is_served_under_vendor_with_the_same_rules(tmp_path):
    """Libraries `make install` unpacks from npm (build/vendor/chartjs, never
    committed) are /pacs/static/vendor/<file>; without them, 404s."""
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "app.css").write_text("body {}")
    vendor = tmp_path / "chartjs"
    vendor.mkdir()
    (vendor / "chart.umd.min.js").write_text("window.Chart = {};\n" * 200)
    (vendor / ".npmrc").write_text("TOP SECRET")
    (vendor / "link.js").symlink_to(tmp_path / "secret.txt")
    files = StaticFiles(tmp_path / "static", vendor)
    router = static_router(files)
    chart = get(router, "/pacs/static/vendor/chart.umd.min.js", headers={"Accept-Encoding": "gzip"})
    assert chart.status == 200 and chart.content_type == "text/javascript; charset=utf-8"
    assert gzip.decompress(chart.body) == (vendor / "chart.umd.min.js").read_bytes()
    assert files.has("vendor/chart.umd.min.js") and not files.has("chart.umd.min.js")
    assert files.url("vendor/chart.umd.min.js").startswith("/pacs/static/vendor/chart.umd.min.js?v=")
    for path in ("vendor/.npmrc", "vendor/link.js", "vendor/../secret.txt", "vendor/%2e%2e/secret.txt"):
        refused = get(router, "/pacs/static/" + path)
        assert 400 <= refused.status < 500 and b"SECRET" not in refused.body, path
    absent = StaticFiles(tmp_path / "static", tmp_path / "not-installed")
    assert not absent.has("vendor/chart.umd.min.js")
    assert get(static_router(absent), "/pacs/static/vendor/chart.umd.min.js").status == 404
    assert get(static_router(absent), "/pacs/static/app.css").status == 200


# --- in a browser: CSP, pacs.js --------------------------------------------

ORIGIN = "http://pacs.test"


class BrowserSession:
    """A page whose every request to ORIGIN is answered by a Router with our
    static files, the sample pages and a few fake API routes."""

    def __init__(self, page):
        self.page = page
        self.requests = []
        self.refresh_status = 200
        self.console_errors = []
        self.router = Router()
        routing.register(self.router, site.ROUTES, SimpleNamespace(static_files=default_webui().static))
        self.router.add("GET", "/pacs/page/{name}", self._sample_page)
        self.router.add("GET", "/pacs/login", lambda request: render("login.html", request, csrf_token=TOKEN))
        self.router.add("POST", "/pacs/api/echo", self._echo)
        self.router.add("GET", "/pacs/api/echo", self._echo)
        self.router.add("POST", "/pacs/api/conflict", lambda request: Response.error(409, "already claimed"))
        self.router.add("POST", "/pacs/api/auth/refresh", lambda request: Response.json({}, self.refresh_status))
        self.router.add("POST", "/pacs/admin/apikeys/{key_id}/revoke", lambda request, key_id: Response.json({}))
        self.router.add(
            "GET",
            "/pacs/api/studies",
            lambda request: Response.json({"items": [], "total": 0, "page": 1, "page_size": 50}),
        )
        self.router.add(
            "GET",
            "/pacs/viewer/(?P<path>.*)",
            lambda request, path: Response(200, b"<!doctype html><title>viewer</title>", "text/html; charset=utf-8"),
        )
        self.router.add(
            "GET", "/pacs/api/nodes", lambda request: Response.json({"items": [{"name": "peer", "aet": "PEER"}]})
        )
        self.router.add(
            "GET",
            "/pacs/api/studies/{uid}/series/{series_uid}/thumbnail",
            lambda request, uid, series_uid: Response(200, (STATIC_DIR / "favicon.svg").read_bytes(), "image/svg+xml"),
        )
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        page.route(ORIGIN + "/**", self._answer)

    def open(self, template):
        self.page.goto(f"{ORIGIN}/pacs/page/{template}")
        self.page.wait_for_load_state("load")

    def posted(self, path):
        return [request for request in self.requests if request.method == "POST" and request.path == path]

    def _answer(self, route):
        url = urlsplit(route.request.url)
        request = Request(
            route.request.method,
            url.path,
            dict(parse_qsl(url.query)),
            route.request.headers,
            route.request.post_data_buffer or b"",
        )
        self.requests.append(request)
        response = self.router.dispatch(request)
        route.fulfill(
            status=response.status,
            body=response.body,
            headers={**response.headers, "Content-Type": response.content_type},
        )

    @staticmethod
    def _sample_page(request, name):
        return render(name, request, **sample_contexts()[name])

    @staticmethod
    def _echo(request):
        return Response.json(
            {"csrf": request.headers.get("x-csrf-token"), "body": request.json() if request.body else None}
        )


@pytest.fixture
def session(browser):
    context = browser.new_context()
    yield BrowserSession(context.new_page())
    context.close()


def test_pages_obey_the_csp_and_load_css_and_js(session):
    for template in sample_contexts():
        session.open(template)
        assert session.page.evaluate("typeof window.pacs.api") == "function", template
        background = session.page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 20, 23)", template
    assert session.console_errors == []


def test_page_data_reaches_scripts(session):
    session.open("base.html")
    assert session.page.evaluate("pacs.pageData()") == {"patient_name": "DOE^JANE"}


def test_pacs_api_sends_csrf_and_reports_server_errors(session):
    session.open("account.html")
    assert session.page.evaluate("pacs.api('POST', '/pacs/api/echo', {a: 1})") == {"csrf": TOKEN, "body": {"a": 1}}
    assert session.page.evaluate("pacs.api('GET', '/pacs/api/echo')") == {"csrf": None, "body": None}
    failure = session.page.evaluate(
        "pacs.api('POST', '/pacs/api/conflict').catch((e) => [e.name, e.message, e.status])"
    )
    assert failure == ["ApiError", "already claimed", 409]


def test_session_keepalive_and_login_redirect(session):
    session.page.clock.install()
    session.page.goto(f"{ORIGIN}/pacs/page/account.html?tab=password")
    session.page.clock.run_for("03:59")
    assert session.posted("/pacs/api/auth/refresh") == []
    with session.page.expect_response(f"{ORIGIN}/pacs/api/auth/refresh"):
        session.page.clock.run_for("00:02")
    assert session.posted("/pacs/api/auth/refresh")[0].headers["x-csrf-token"] == TOKEN
    session.refresh_status = 401
    session.page.clock.run_for("04:00")
    session.page.wait_for_url(f"{ORIGIN}/pacs/login?next=%2Fpacs%2Fpage%2Faccount.html%3Ftab%3Dpassword")


def test_data_confirm_asks_before_submitting(session):
    session.open("admin_apikeys.html")
    session.page.once("dialog", lambda dialog: dialog.dismiss())
    session.page.click("text=Revoke")
    session.page.wait_for_timeout(200)
    assert session.posted("/pacs/admin/apikeys/3/revoke") == []
    session.page.once("dialog", lambda dialog: dialog.accept())
    with session.page.expect_navigation():
        session.page.click("text=Revoke")
    assert session.posted("/pacs/admin/apikeys/3/revoke")[0].body.startswith(b"csrf_token=" + TOKEN.encode())
