"""Reports: drafts that are never lost or silently overwritten, signatures
that lock, addenda, the PDF and the DICOM copies.

Every change is a conditional UPDATE on (status, version): a stale editor
gets 409 instead of overwriting a colleague's text, and of two signatures
at once exactly one wins.

A draft belongs to its author. Once the author's claim on the study is gone
(released, expired), a colleague may continue it only by taking it over
explicitly (``"take_over": true`` with the version they loaded): the draft's
author becomes them, and the history and the audit's ``report_saved`` name
the previous author. Without it their save is a 409 saying whose draft it is.
"""

import contextlib
import datetime
import json
import logging

from peewee import IntegrityError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plugin.auth.models import User
from plugin.db import database, utcnow
from plugin.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from plugin.events import Events
from plugin.http import path_id
from plugin.models import Study
from plugin.permissions import can
from plugin.reports import pdf
from plugin.reports.models import SECTIONS, SIGNED, Report, ReportAddendum, ReportEvent, ReportTemplate

LOGGER = logging.getLogger(__name__)

MAX_SECTION = 20_000
COALESCE = datetime.timedelta(seconds=60)  # autosaves by one author within this are one history entry
MAX_ID = 2**63  # a database integer: larger numbers overflow the driver
VERSION = "the report version you loaded (0 for a new report)"


class Draft(BaseModel):
    """A save of the draft: the sections sent (a section not sent stays as it is)."""

    model_config = ConfigDict(extra="forbid")

    # A section's null is refused as not text: None is only the default of one not sent
    # (pydantic does not validate defaults; its Field typing cannot say so, hence the ignores).
    clinical_information: str = Field(None, strict=True, description="text")  # type: ignore[assignment]
    technique: str = Field(None, strict=True, description="text")  # type: ignore[assignment]
    comparison: str = Field(None, strict=True, description="text")  # type: ignore[assignment]
    findings: str = Field(None, strict=True, description="text")  # type: ignore[assignment]
    impression: str = Field(None, strict=True, description="text")  # type: ignore[assignment]
    version: int = Field(0, strict=True, ge=0, lt=MAX_ID, description=VERSION)
    template_id: int | None = Field(None, strict=True, description="the id of a report template")
    take_over: bool = Field(False, strict=True, description="true or false")

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data):
        unknown = set(data) - set(cls.model_fields) if isinstance(data, dict) else ()
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        return data

    def sections(self):
        """The sections sent, each checked against MAX_SECTION (too long: TooLarge, 413)."""
        sent = {name: getattr(self, name) for name in SECTIONS if name in self.model_fields_set}
        for name, text in sent.items():
            if len(text) > MAX_SECTION:
                raise TooLarge(f"{name} is longer than {MAX_SECTION} characters")
        return sent


class Signing(BaseModel):
    version: int = Field(0, strict=True, ge=0, lt=MAX_ID, description=VERSION)


class Addendum(BaseModel):
    text: str = Field("", strict=True, description="the addendum's text")


class TemplateFields(BaseModel):
    """A template's fields; those not sent stay as they are (a new template needs a name)."""

    # None is only the default of a field not sent (not validated, as in Draft).
    name: str = Field(None, strict=True, max_length=100, description="text of at most 100 characters")  # type: ignore[assignment]
    modality: str = Field(None, strict=True, max_length=16, description="text of at most 16 characters")  # type: ignore[assignment]
    body_part: str = Field(None, strict=True, max_length=64, description="text of at most 64 characters")  # type: ignore[assignment]
    sections: dict = Field(None, description="an object of section names to text")  # type: ignore[arg-type]
    disabled: bool = Field(None, strict=True, description="true or false")  # type: ignore[assignment]

    @field_validator("sections")
    @classmethod
    def _texts(cls, sections):
        if not all(isinstance(text, str) and len(text) <= MAX_SECTION for text in sections.values()):
            raise ValueError("not text")  # the message is the field's description
        return sections

    def columns(self):
        """The fields sent, as the table stores them."""
        sent = {name: getattr(self, name) for name in self.model_fields_set}
        for name in ("modality", "body_part"):
            if name in sent:
                sent[name] = sent[name].strip().upper()
        if "name" in sent:
            sent["name"] = sent["name"].strip()
            if not sent["name"]:
                raise Invalid("a template needs a name")
        if "sections" in sent:
            sent["sections"] = json.dumps(sent["sections"])
        return sent


class TemplateQuery(BaseModel):
    modality: str = Field("", description="e.g. CT")
    body_part: str = Field("", description="e.g. HEAD")


class Reports:
    def __init__(self, audit, worklist, copies_factory, clock, institution="", logo=None, events=None):
        self._audit = audit
        self._events = events if events is not None else Events()  # report.signed, report.amended
        self._worklist = worklist
        self._clock = clock  # the clinic's: the PDF's times and file name
        self._institution = institution
        self._logo = logo
        self.copies = copies_factory(self.document)

    # --- reading ---------------------------------------------------------------

    def get(self, uid, principal):
        report = self._visible(uid, principal)
        if report is None:
            return self._blank(uid)
        self._record(principal, "report_viewed", uid)
        return self._answer(report, principal)

    def _answer(self, report, principal):
        """The report as the API gives it (view, DICOM copies, history for writers)."""
        answer = self.view(report)
        answer["dicom_copies"] = self.copies.states(report.id)
        if can(principal, "reports.write"):
            answer["history"] = self.history(report)
            if report.status == "draft":
                answer["own_draft"] = report.author_id == principal.user_id
        return answer

    def pdf(self, uid, principal):
        """(PDF bytes, a file name a person can file) of the study's report."""
        report = self._visible(uid, principal)
        if report is None:
            raise NotFound("this study has no report yet")
        self._record(principal, "report_printed", uid)
        view = self.view(report)
        return pdf.render(view, self._institution, self._logo, self._clock), pdf.file_name(view, self._clock)

    def document(self, report_id, addendum_id):
        """(PDF, study UID, title) of a signature: the report with the addenda up to ``addendum_id``."""
        report = Report.get_by_id(report_id)
        view = self.view(report, upto_addendum=addendum_id or 0)
        title = "Radiology report" + (f" - addendum {len(view['addenda'])}" if addendum_id else "")
        return pdf.render(view, self._institution, self._logo, self._clock), report.study_instance_uid, title

    def view(self, report, upto_addendum=None):
        addenda = ReportAddendum.select().where(ReportAddendum.report_id == report.id)
        if upto_addendum is not None:
            addenda = addenda.where(ReportAddendum.id <= upto_addendum)
        return {
            "study_instance_uid": report.study_instance_uid,
            "status": report.status,
            "version": report.version,
            "template_id": report.template_id,
            "sections": report.sections(),
            "author_name": report.author_name,
            "created_at": report.created_at,
            "updated_at": report.updated_at,
            "signer_name": report.signer_name,
            "signed_at": report.signed_at,
            "study": json.loads(report.study_snapshot),
            "study_deleted": report.study_deleted_at is not None,
            "addenda": [
                {"id": a.id, "text": a.text, "author_name": a.author_name, "signed_at": a.signed_at}
                for a in addenda.order_by(ReportAddendum.id)
            ],
        }

    def history(self, report):
        events = list(ReportEvent.select().where(ReportEvent.report_id == report.id).order_by(ReportEvent.id))
        names = {
            u.username: u.display_name
            for u in User.select(User.username, User.display_name).where(
                User.username.in_({e.username for e in events})
            )
        }
        return [
            {
                "version": e.version,
                "kind": e.kind,
                "username": e.username,
                "name": names.get(e.username) or e.username,
                "at": e.at,
                "sections": json.loads(e.data),
            }
            for e in events
        ]

    # --- writing -----------------------------------------------------------------

    def save_draft(self, uid, draft, principal):
        sections, version = draft.sections(), draft.version
        template_id, take_over = _template_id(draft.template_id), draft.take_over
        study = self._worklist.study(uid)
        report = Report.get_or_none(Report.study_instance_uid == uid)
        if report is not None and report.status in SIGNED:
            raise Conflict("this report is signed and locked; add an addendum instead")
        previous = self._previous_author(report, principal, take_over)
        self._worklist.claim(uid, principal)
        if _already_saved(report, principal, sections, template_id):
            return self.view(report)
        now = utcnow()
        if report is None:
            report = self._create(study, sections, version, template_id, principal, now)
        else:
            author = {"author_id": principal.user_id, "author_name": self._signer(principal)} if previous else {}
            changed = (
                Report.update(
                    version=Report.version + 1,
                    updated_at=now,
                    template_id=template_id or report.template_id,
                    **author,
                    **sections,
                )
                .where(Report.id == report.id, Report.status == "draft", Report.version == version)
                .execute()
            )
            if not changed:
                raise Conflict(_stale(Report.get_by_id(report.id)))
            report = Report.get_by_id(report.id)
        details = {"taken_over_from": previous} if previous else None
        if self._history(report, "taken_over" if previous else "saved", principal, now, details):
            self._record(principal, "report_saved", uid, dict({"version": report.version}, **(details or {})))
        if previous:
            LOGGER.info(
                "event=draft_taken_over study_uid=%s by=%s from=%s version=%d",
                uid,
                principal.username,
                previous,
                report.version,
            )
        return self.view(report)

    @staticmethod
    def _previous_author(report, principal, take_over):
        """The username whose draft this save takes over (None: a new report or
        one's own draft). A colleague's draft without take_over is a 409."""
        if report is None or report.author_id == principal.user_id:
            return None
        if not take_over:
            raise Conflict(
                f"this draft is {report.author_name or 'a colleague'}'s: reload to read it, "
                "and save with take_over to continue it as yours (the take-over is recorded)",
            )
        author = User.get_or_none(User.id == report.author_id) if report.author_id is not None else None
        return author.username if author else (report.author_name or "unknown")

    def finalize(self, uid, signing, principal):
        version = signing.version
        report = Report.get_or_none(Report.study_instance_uid == uid)
        if report is None:
            raise NotFound("this study has no report to sign")
        if report.status in SIGNED:
            raise Conflict("this report is already signed")
        if not can(principal, "reports.edit", report):
            raise Forbidden(f"only the author ({report.author_name}) or an admin can sign this report")
        if not report.findings.strip():
            raise Invalid("the findings are empty: write them before signing")
        now = utcnow()
        signed = (
            Report.update(
                status="final",
                version=Report.version + 1,
                signed_by_id=principal.user_id,
                signer_name=self._signer(principal),
                signed_at=now,
                updated_at=now,
            )
            .where(Report.id == report.id, Report.status == "draft", Report.version == version)
            .execute()
        )
        if not signed:
            raise Conflict(_stale(Report.get_by_id(report.id)))
        Study.update(status="final", final_at=now, claimed_by_id=None, claim_expires_at=None, updated_at=now).where(
            Study.study_instance_uid == uid
        ).execute()
        report = Report.get_by_id(report.id)
        self._history(report, "finalized", principal, now)
        self._record(principal, "report_finalized", uid, {"version": report.version})
        self.copies.add(report.id)
        self._events.publish("report.signed", study_uid=uid, report_id=report.id, version=report.version)
        return self._answer(Report.get_by_id(report.id), principal)

    def add_addendum(self, uid, addendum, principal):
        text = addendum.text
        if not text.strip():
            raise Invalid("the addendum text is empty")
        if len(text) > MAX_SECTION:
            raise TooLarge(f"the addendum is longer than {MAX_SECTION} characters")
        report = Report.get_or_none(Report.study_instance_uid == uid)
        if report is None or report.status not in SIGNED:
            raise Conflict("only a signed report takes addenda; edit the draft instead")
        now = utcnow()
        addendum = ReportAddendum.create(
            report_id=report.id,
            text=text.strip(),
            author_id=principal.user_id,
            author_name=self._signer(principal),
            signed_at=now,
        )
        Report.update(status="amended", version=Report.version + 1, updated_at=now).where(
            Report.id == report.id
        ).execute()
        Study.update(status="amended", updated_at=now).where(Study.study_instance_uid == uid).execute()
        report = Report.get_by_id(report.id)
        self._history(report, "addendum", principal, now, {"addendum": text.strip()})
        self._record(principal, "report_addended", uid, {"addendum_id": addendum.id})
        self.copies.add(report.id, addendum.id)
        self._events.publish("report.amended", study_uid=uid, report_id=report.id, version=report.version)
        return self._answer(Report.get_by_id(report.id), principal)

    def study_removed(self, study_uid):
        """The study left the archive (event study.removed): keep its report, flagged, and say so."""
        flagged = Report.update(study_deleted_at=utcnow()).where(Report.study_instance_uid == study_uid).execute()
        if flagged:
            LOGGER.warning("event=study_removed_with_report study_uid=%s (the report is kept)", study_uid)

    # --- templates ---------------------------------------------------------------

    @staticmethod
    def templates(modality="", body_part=""):
        """Active templates, the best match for the study first."""

        def score(t):
            return ((t.modality == modality) * 2 + (bool(body_part) and t.body_part == body_part), -t.id)

        found = ReportTemplate.select().where(ReportTemplate.disabled == False)  # noqa: E712
        return [t.public() for t in sorted(found, key=score, reverse=True)]

    @staticmethod
    def create_template(fields):
        columns = fields.columns()
        if not columns.get("name"):
            raise Invalid("a template needs a name")
        now = utcnow()
        with _unique_name(columns):
            row = ReportTemplate.create(created_at=now, updated_at=now, **dict({"sections": "{}"}, **columns))
        return row.public()

    @staticmethod
    def change_template(template_id, fields):
        number = path_id(template_id)
        row = ReportTemplate.get_or_none(ReportTemplate.id == number) if number else None
        if row is None:
            raise NotFound(f"no template {template_id}")
        columns = fields.columns()
        with _unique_name(columns):
            ReportTemplate.update(updated_at=utcnow(), **columns).where(ReportTemplate.id == row.id).execute()
        return ReportTemplate.get_by_id(row.id).public()

    # --- helpers -------------------------------------------------------------------

    def _visible(self, uid, principal):
        """The report as this user may see it: those who do not write reports
        (technologists, referrers) see signed reports only."""
        report = Report.get_or_none(Report.study_instance_uid == uid)
        if not can(principal, "reports.view", report):
            raise NotFound("this study has no signed report yet")
        if report is None:
            self._worklist.study(uid)  # 404 for an unknown study
        return report

    def _blank(self, uid):
        study = self._worklist.study(uid)
        priors = (
            (
                Study.select()
                .where(
                    Study.patient_dicom_id == study.patient_dicom_id,
                    Study.study_instance_uid != uid,
                    Study.study_date.is_null(False),
                )
                .order_by(Study.study_date.desc())
                .limit(5)
            )
            if study.patient_dicom_id
            else []
        )
        comparison = "; ".join(f"{p.description or p.modalities} {p.study_date.isoformat()}" for p in priors)
        first_modality = study.modalities.split("\\")[0]
        return {
            "study_instance_uid": uid,
            "status": "none",
            "version": 0,
            "sections": {name: "" for name in SECTIONS},
            "suggested_comparison": comparison or "None.",
            "templates": self.templates(first_modality, study.body_parts.split("\\")[0]),
            "addenda": [],
            "study": _snapshot(self._worklist, study),
        }

    def _create(self, study, sections, version, template_id, principal, now):
        if version != 0:
            raise Conflict("this report was deleted or never existed; reload the page")
        try:
            sections = dict({name: "" for name in SECTIONS}, **sections)
            return Report.create(
                study_instance_uid=study.study_instance_uid,
                status="draft",
                version=1,
                template_id=template_id,
                author_id=principal.user_id,
                author_name=self._signer(principal),
                created_at=now,
                updated_at=now,
                study_snapshot=json.dumps(_snapshot(self._worklist, study), default=str),
                **sections,
            )
        except IntegrityError:
            raise Conflict("a colleague started this report at the same moment; reload") from None

    def _history(self, report, kind, principal, now, extra=None):
        """Append to the history; autosaves by the same author within COALESCE
        update the last entry. Returns True when a new entry was made."""
        data = json.dumps(dict(report.sections(), **(extra or {})))
        last = ReportEvent.select().where(ReportEvent.report_id == report.id).order_by(ReportEvent.id.desc()).first()
        if (
            kind == "saved"
            and last
            and last.kind == "saved"
            and last.user_id == principal.user_id
            and now - last.at < COALESCE
        ):
            ReportEvent.update(version=report.version, at=now, data=data).where(ReportEvent.id == last.id).execute()
            return False
        ReportEvent.create(
            report_id=report.id,
            version=report.version,
            kind=kind,
            user_id=principal.user_id,
            username=principal.username,
            at=now,
            data=data,
        )
        return True

    @staticmethod
    def _signer(principal):
        user = User.get_or_none(User.id == principal.user_id)
        return user.display_name if user else principal.username

    def _record(self, principal, action, uid, details=None):
        self._audit.record(action, username=principal.username, role=principal.role, study_uid=uid, details=details)


def _snapshot(worklist, study):
    item = worklist.describe(study)
    keys = (
        "patient_name",
        "patient_id",
        "patient_birth_date",
        "patient_sex",
        "accession_number",
        "study_date",
        "description",
        "modalities",
        "referring_physician",
    )
    return {key: (item[key].isoformat() if hasattr(item[key], "isoformat") else item[key]) for key in keys}


def _template_id(value):
    if value is None:
        return None
    if not 0 < value < MAX_ID or not ReportTemplate.select().where(ReportTemplate.id == value).exists():
        raise Invalid("template_id names no template")
    return value


@contextlib.contextmanager
def _unique_name(columns):
    """A template name taken by another template is a Conflict, not a database error."""
    try:
        with database.atomic():
            yield
    except IntegrityError:
        raise Conflict(f"a template named {columns.get('name')!r} exists") from None


def _already_saved(report, principal, sections, template_id):
    """Whether this save of one's own draft would change nothing: its text is what the
    draft holds already. Its version may be older: the page that sends it may not have
    seen the author's own last save (the save sent while the page was reloaded, then
    "Restore my copy" of that same text). Nothing of anyone's is overwritten, so it
    succeeds (with the current version) rather than conflict with the author's own save."""
    if report is None or report.status != "draft" or report.author_id != principal.user_id or not sections:
        return False
    if template_id is not None and template_id != report.template_id:
        return False
    current = report.sections()
    return all(current.get(name, "") == text for name, text in sections.items())


def _stale(current):
    if current.status in SIGNED:
        return "this report was signed meanwhile and is locked"
    return (
        f"the report changed since you loaded it (it is now version {current.version}, "
        f"saved by {current.author_name}); reload to see the changes"
    )
