"""The one permission table: (methods, route pattern) -> permission, for every
HTTP route of the server: ours, Orthanc's REST API, DICOMweb, WADO-URI, the
viewer and Orthanc Explorer. The first rule that matches decides; a route no
rule names is denied.

``study`` says where a rule's StudyInstanceUID is: the path group ``study``
or a query parameter. Referrers are held to the studies in their scope there;
a scoped search that names no study is refused to them.

``params``: for a scoped route whose query reaches Orthanc (DICOMweb, WADO-URI,
our QIDO layer), the only query parameters a referrer may send, each by its
exact name and with a value of the given form. Anything else (another spelling
of a tag, an empty value, a wildcard, a %-escape) is refused: Orthanc then
answers only from parameters the guard parsed and approved.

``body``: how large a request body the route takes (``BODY_LIMITS``), checked
on Content-Length by the HTTP filter before Orthanc reads the body.
``gateway``: an Orthanc route that takes a body is answered through the plugin
(plugin/gateway.py), which checks the body before Orthanc parses it; Orthanc's
own body routes that the PACS's API already offers are denied instead.
"""

import re
from dataclasses import dataclass

PUBLIC = "public"
AUTHENTICATED = "authenticated"
DENY = "deny"

# The roles, the only place their names are compared: everything else asks `can`.
ADMIN = "admin"
STAFF = {  # what every role but the referrer has
    "studies.read",
    "studies.read_all",  # every study, not only a scope's
    "dashboard.read",
    "images.read",
    "images.send",
    "orthanc.read",
    "nodes.read",
    "jobs.read",
    "reports.read",
}
ROLE_PERMISSIONS = {
    "radiologist": STAFF
    | {
        "studies.claim",  # and can be assigned studies
        "studies.prioritise",
        "images.download",
        "nodes.query",
        "reports.write",
        "orders.read",
    },
    "technologist": STAFF | {"studies.prioritise", "images.upload", "orders.read", "orders.write"},
    "referrer": {"studies.read", "images.read", "reports.read"},
}
ROLE_PERMISSIONS[ADMIN] = set().union(*ROLE_PERMISSIONS.values()) | {
    "admin",
    "users.manage",
    "audit.read",
    "images.delete",
    "nodes.manage",
    "jobs.manage",
    "templates.manage",
    "studies.release_any",  # a colleague's claim
    "studies.assign_any",  # to anyone who reads, over a colleague's assignment
    "reports.edit_any",  # a colleague's draft
}
ALL_PERMISSIONS = frozenset(ROLE_PERMISSIONS[ADMIN])
ROLES = (ADMIN, "radiologist", "technologist", "referrer")  # in the order forms offer them
NEW_USER_ROLE = "referrer"  # the least a new account can do: an admin raises it

STUDY_UID_PARAMS = ("StudyInstanceUID", "0020000D", "studyUID")

# Request bodies, in bytes, by kind. "upload" is replaced by Pacs.MaxUploadMB at start.
BODY_LIMITS = {"none": 0, "json": 1024 * 1024, "upload": 512 * 1024 * 1024}

# The forms a referrer's query values may take (whole value, raw as Orthanc reads it).
_UID = r"[0-9]{1,64}(?:\.[0-9]{1,64}){0,40}"
UID_LIST = re.compile(rf"{_UID}(?:[\\,]{_UID}){{0,99}}")
_VALUE_FORMS = {
    "uid": re.compile(_UID),
    "uids": UID_LIST,
    "number": re.compile(r"[0-9]{1,9}"),
    "bool": re.compile(r"true|false"),
    # includefield: keywords, tags, "all"; OHIF sends the commas as %2C (DICOMweb reads the
    # value undecoded): it only adds attributes to answers the study parameter scopes.
    "fields": re.compile(r"[A-Za-z0-9,%]{1,2048}"),
    "media": re.compile(r"[A-Za-z0-9.+/*;=\-]{1,200}"),  # a media type, transfer-syntax=... included
    "code": re.compile(r"[A-Za-z0-9_]{1,16}"),
    "numbers": re.compile(r"[0-9.,\-]{1,64}"),  # viewport, window, region
}
QIDO = {
    "limit": "number",
    "offset": "number",
    "fuzzymatching": "bool",
    "includefield": "fields",
    "SeriesInstanceUID": "uids",
    "SOPInstanceUID": "uids",
    "Modality": "code",
}
QIDO_BY_STUDY = dict(QIDO, StudyInstanceUID="uids")
WADO_RS = {"accept": "media", "quality": "number", "viewport": "numbers", "window": "numbers"}
WADO_URI = {
    "requestType": "code",
    "studyUID": "uid",
    "seriesUID": "uid",
    "objectUID": "uid",
    "contentType": "media",
    "transferSyntax": "uid",
    "frameNumber": "number",
    "rows": "number",
    "columns": "number",
    "region": "numbers",
    "windowCenter": "numbers",
    "windowWidth": "numbers",
    "imageQuality": "number",
}


@dataclass(frozen=True, eq=False)  # each rule is itself: compared and hashed by identity
class Rule:
    methods: frozenset
    pattern: re.Pattern
    permission: str
    study: str = ""  # "path" | "query" | ""
    params: dict | None = None  # a referrer's allowed query: name -> value form (see _VALUE_FORMS)
    study_param: str = ""  # with study "query": the one parameter that names the studies
    body: str = "json"  # a key of BODY_LIMITS
    gateway: bool = False  # answered through the plugin, which checks the body
    only: str = ""  # a declared path's other methods ("GET, PUT"): the guard answers 405


def _rule(methods, pattern, permission, study="", *, params=None, study_param="", body="json", gateway=False):
    # (?:...): a pattern with alternatives must be anchored as a whole, not just its
    # first and last alternatives (else "/pacs/?" matched the start of every /pacs/ path).
    return Rule(
        frozenset(methods.split("|")),
        re.compile(f"^(?:{pattern})$"),
        permission,
        study,
        params,
        study_param,
        body,
        gateway,
    )


RESOURCE = r"(patients|studies|series|instances)"
ID = r"[^/]+"

RULES = (
    # Denied to everyone, whatever else says.
    _rule("GET|POST|PUT|DELETE", r"/tools/execute-script", DENY),
    _rule("GET|POST|PUT|DELETE", rf"/{RESOURCE}/{ID}/export", DENY),  # writes to the server's disk
    # Orthanc's body routes that the PACS's own API offers with checked input (nodes, sending,
    # query/retrieve: plugin/nodes) or that no clinic workflow needs: the plugin calls
    # what it needs internally (internal calls skip this table); HTTP clients are refused.
    _rule("POST|PUT", rf"/modalities/{ID}(/.*)?|/peers/{ID}(/.*)?|/queries(/.*)?", DENY),
    # One-resource ZIP and DICOMDIR stay as GET; the POST forms and the multi-resource tools
    # would build the archive inside the plugin's call to Orthanc, stalling every request.
    _rule("POST", rf"/{RESOURCE}/{ID}/(archive|media)|/tools/create-(archive|media|media-extended)", DENY),
    # Orthanc's own bookkeeping: attachments are the stored files, metadata and the change
    # and export logs are what the index and the reconcile rely on.
    _rule("PUT|DELETE", rf"/{RESOURCE}/{ID}/(attachments|metadata)(/.*)?", DENY),
    _rule("DELETE", r"/changes|/exports", DENY),
    # DICOMweb's client (other DICOMweb servers, their credentials): configure them in
    # orthanc.json; its JSON bodies reach a parser the plugin cannot guard.
    _rule("GET|POST|PUT|DELETE", r"/dicom-web/servers(/.*)?", DENY),
    # DICOMweb (QIDO-RS, WADO-RS, STOW-RS) and WADO-URI. STOW's body is DICOMweb's to read:
    # its size is capped here and every instance in it passes the ingest screen.
    _rule(
        "GET",
        r"/dicom-web/studies/(?P<study>[^/]+)/(series|instances|series/[^/]+/instances)",
        "images.read",
        "path",
        params=QIDO,
    ),
    _rule("GET", r"/dicom-web/studies/(?P<study>[^/]+)(/.*)?", "images.read", "path", params=WADO_RS),
    _rule(
        "GET",
        r"/dicom-web/(studies|series|instances)",
        "images.read",
        "query",
        params=QIDO_BY_STUDY,
        study_param="StudyInstanceUID",
    ),
    _rule("POST", r"/dicom-web/studies(/[^/]+)?", "images.upload", body="upload"),
    _rule("GET", r"/wado", "images.read", "query", params=WADO_URI, study_param="studyUID"),
    # Orthanc's REST API. Referrers have none of it: its IDs are not study UIDs.
    _rule("GET", rf"/{RESOURCE}/{ID}/(archive|media)", "images.download"),
    _rule("POST", r"/instances", "images.upload", body="upload", gateway=True),
    _rule("POST", r"/tools/(find|lookup)", "orthanc.read", gateway=True),
    _rule("POST", rf"/{RESOURCE}/{ID}/(anonymize|modify|merge|split|reconstruct)", "admin", gateway=True),
    _rule("PUT", rf"/{RESOURCE}/{ID}/protected", "admin", gateway=True),
    _rule("DELETE", rf"/{RESOURCE}/{ID}", "images.delete"),
    _rule("GET", rf"/{RESOURCE}(/.*)?", "orthanc.read"),
    _rule("GET", r"/modalities(/[^/]+(/configuration)?)?", "nodes.read"),
    _rule("GET|DELETE", r"/queries(/.*)?", "nodes.query"),
    _rule("DELETE", rf"/modalities/{ID}", "nodes.manage"),
    _rule("GET", r"/jobs(/.*)?", "jobs.read"),
    _rule("POST", rf"/jobs/{ID}/(cancel|pause|resume|resubmit)", "jobs.manage", gateway=True),
    # Everything else Orthanc offers is for administrators.
    _rule("GET|DELETE", r"/peers(/.*)?", "admin"),
    _rule("GET", r"/(system|statistics|changes|exports|plugins(/.*)?)", "admin"),
    _rule("GET|DELETE", r"/tools(/.*)?", "admin"),
    _rule("POST|PUT", r"/tools/.+", "admin", gateway=True),
    _rule("GET", r"/(app(/.*)?|favicon\.ico)", "admin"),  # Orthanc Explorer (off in orthanc.json)
)

# Orthanc URIs whose every request the plugin answers (its REST callbacks win over
# Orthanc's own routes): the gateway rules' patterns, for every method on them.
GATEWAY_PATTERNS = tuple(rule.pattern.pattern for rule in RULES if rule.gateway)


_GRANTED = {role: frozenset(granted) for role, granted in ROLE_PERMISSIONS.items()}  # asked on every request


def permissions_of(role):
    return _GRANTED.get(role, frozenset())


def roles_with(permission):
    """The roles granted ``permission`` (to select the users who have it)."""
    return tuple(role for role in ROLES if permission in ROLE_PERMISSIONS[role])


def can(principal, action, target=None):
    """Whether ``principal`` (anything with a ``role``: a Principal, a User) may do
    ``action``: a named permission, or one of `OBJECT_RULES`' actions on ``target``.
    The one place the API, the pages and the templates ask; no role name is compared
    anywhere else."""
    if principal is None:
        return False
    granted = permissions_of(principal.role)
    if action in granted:
        return True
    decide = OBJECT_RULES.get(action)
    if decide is not None:
        return decide(principal, granted, target)
    if action not in ALL_PERMISSIONS:
        raise ValueError(f"no such permission: {action!r}")
    return False


def _may_release(principal, granted, study):
    """A claim is given back by its holder, or by whoever may release any."""
    return study.claimed_by_id in (None, principal.user_id) or "studies.release_any" in granted


def _may_assign(principal, granted, change):
    """``change`` is (study, new assignee User or None). Readers take an unassigned
    study or give back their own; whoever may assign any reassigns a colleague's."""
    study, assignee = change
    if "studies.assign_any" in granted:
        return True
    free_or_own = study.assignee_id in (None, principal.user_id)
    to_self_or_nobody = assignee is None or assignee.id == principal.user_id
    return "studies.claim" in granted and free_or_own and to_self_or_nobody


def _may_edit_report(principal, granted, report):
    """A draft is its author's to change, or that of whoever may edit any."""
    if "reports.write" not in granted:
        return False
    return report is None or report.author_id == principal.user_id or "reports.edit_any" in granted


def _may_view_report(principal, granted, report):
    """Writers read drafts; everyone who reads reports reads signed ones."""
    if "reports.write" in granted:
        return True
    return "reports.read" in granted and report is not None and report.is_signed


OBJECT_RULES = {
    "studies.release": _may_release,
    "studies.assign": _may_assign,
    "reports.edit": _may_edit_report,
    "reports.view": _may_view_report,
}


def normalise_path(path):
    """The path as Orthanc routes it: Orthanc ignores a trailing "/" ("/tools/execute-script/"
    runs execute-script) and empty segments, so the table must too. (It has already
    decoded %xx before the filter sees the path.)"""
    if path and "//" not in path and not path.endswith("/"):
        return path  # the common case, every image frame: no regex
    return _SLASHES.sub("/", path or "/").rstrip("/") or "/"


# DCMTK reads a tag given as text with sscanf("%x,%x") and keeps 16 bits of each
# part: besides "0020,000D" and "0020000D" it takes "20,d", "0x20,0xD", "10020,d"...
_TAG_TEXT = re.compile(r"\s*([+-]?)\s*(?:0[xX])?([0-9a-fA-F]+)\s*,\s*([+-]?)\s*(?:0[xX])?([0-9a-fA-F]+)")
_SLASHES = re.compile(r"/{2,}")
_STUDY_UID_TAG = (0x0020, 0x000D)
_STUDY_UID_NAMES = frozenset(name.lower() for name in STUDY_UID_PARAMS if not name[0].isdigit())


def _tag_part(sign, digits):
    value = min(int(digits, 16), 2**64 - 1)
    return (-value if sign == "-" else value) & 0xFFFF


def names_study_uid(name):
    """Whether a query parameter could name StudyInstanceUID to Orthanc or its DICOMweb
    plugin, in any spelling they accept (keyword, or a tag number in any of the forms
    DCMTK parses). Erring towards yes only makes a referrer's check stricter."""
    name = name.strip()
    if name.lower() in _STUDY_UID_NAMES:
        return True
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return (int(name[:4], 16), int(name[4:], 16)) == _STUDY_UID_TAG
    found = _TAG_TEXT.match(name)
    if found is None:
        return False
    return (_tag_part(*found.group(1, 2)), _tag_part(*found.group(3, 4))) == _STUDY_UID_TAG


# What an allowed request to Orthanc's own routes reads, for the audit trail: the
# first pattern that matches names the entry's action ("" for no patient data).
_ACCESS_ACTIONS = tuple(
    (re.compile(pattern), action)
    for pattern, action in (
        (
            r"/dicom-web/(studies|series|instances)|/dicom-web/studies/[^/]+/(series|instances|series/[^/]+/instances)",
            "search",
        ),
        (r"/wado|/dicom-web/studies/.+", "images_retrieved"),  # WADO: metadata, frames, rendered, bulk data
        (rf"/{RESOURCE}/{ID}/archive", "archive_downloaded"),
        (rf"/{RESOURCE}/{ID}/media", "media_downloaded"),
        (
            rf"/{RESOURCE}/{ID}/(frames|file|preview|image-uint8|image-uint16|image-int16|matlab|numpy|pdf|rendered|"
            r"attachments|content)(/.*)?",
            "images_retrieved",
        ),
        (rf"/{RESOURCE}(/.*)?", "resource_read"),
        (r"/tools/(find|lookup)", "search"),
    )
)


def access_action(path):
    """The audit action of a request for patient data on one of Orthanc's routes, or ""."""
    path = normalise_path(path)
    for pattern, action in _ACCESS_ACTIONS:
        if pattern.fullmatch(path):
            return action
    return ""


def approved_query(rule, path_study, query):
    """(refusal or "", the studies named) of a referrer's request to a route whose query
    reaches Orthanc: every parameter must be one of the rule's, by its exact name, with a
    value of its form; the studies are the path's and the study parameter's."""
    studies = [path_study] if path_study else []
    for name, value in (query or {}).items():
        form = rule.params.get(name)
        if form is None:
            return f"query parameter {name[:64]!r} is not accepted here", []
        if not isinstance(value, str) or not _VALUE_FORMS[form].fullmatch(value):
            return f"query parameter {name!r} has a value this route does not accept", []
        if name == rule.study_param:
            studies.extend(re.split(r"[\\,]", value))
    return "", studies


def literal_prefixes(pattern):
    """The literal start of each top-level alternative of a rule's pattern:
    what a path must begin with for the rule to have a chance."""
    alternatives, depth, current = [], 0, ""
    for char in pattern:
        if char == "|" and depth == 0:
            alternatives.append(current)
            current = ""
            continue
        depth += (char == "(") - (char == ")")
        current += char
    alternatives.append(current)
    prefixes = []
    for alternative in alternatives:
        prefix = ""
        for char in alternative:
            if char in ".^$*+?{}[]\\|()":
                if char in "?*{" and prefix:
                    prefix = prefix[:-1]  # the character before is optional
                break
            prefix += char
        prefixes.append(prefix)
    return prefixes


def _may_match(prefixes, segment):
    """Can a path whose first segment is ``segment`` begin with one of ``prefixes``?"""
    head = "/" + segment
    return any(head.startswith(p) if len(p) <= len(head) else p.startswith(head + "/") or p == head for p in prefixes)


_MAX_SEGMENTS = 512  # paths are the client's choice: a bounded cache


class PermissionTable:
    """The rules the guard decides by, in order: the first that matches decides.

    Built once (plugin/route_table.py): the rules generated from our routes'
    declarations (plugin/routing.py), then `RULES`. Rules are tried only if
    they can match the path's first segment (cached per segment)."""

    def __init__(self, rules):
        self.rules = tuple(rules)
        self._prefixes = [
            (rule, literal_prefixes(rule.pattern.pattern[len("^(?:") : -len(")$")])) for rule in self.rules
        ]
        self._candidates = {}  # first path segment -> the rules, in table order, that may match

    def _fill(self, segment):
        rules = tuple(rule for rule, prefixes in self._prefixes if _may_match(prefixes, segment))
        if len(self._candidates) < _MAX_SEGMENTS:
            self._candidates[segment] = rules
        return rules

    def match(self, method, path):
        """(Rule, study UID from the path or None) for a request; (None, None) if no rule names it."""
        path = normalise_path(path)
        segment = path.split("/", 2)[1] if path.startswith("/") else path
        rules = self._candidates.get(segment)
        if rules is None:
            rules = self._fill(segment)
        for rule in rules:
            if method in rule.methods:
                found = rule.pattern.match(path)
                if found:
                    return rule, found.groupdict().get("study")
        return None, None
