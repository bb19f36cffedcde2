"""The reading worklist's studies: one study, its series' thumbnails, and the
reading workflow's actions on it: claim, release, assign, priority.

A claim is one conditional UPDATE: of two radiologists claiming at once,
exactly one changes the row; the other is refused (Conflict) naming who reads it. A
claim lapses after ``claim_minutes`` unless renewed (claiming again renews).
"""

import datetime
import logging

from plugin.auth.models import User
from plugin.db import utcnow
from plugin.errors import Conflict, Forbidden, Invalid, NotFound
from plugin.models import PRIORITIES, Series, Study
from plugin.permissions import can
from plugin.reports.models import has_draft
from plugin.thumbnails import NotRenderable
from plugin.worklist import query as worklist_query

LOGGER = logging.getLogger(__name__)

CLAIMABLE = ("arrived", "in_progress")


class Worklist:
    def __init__(self, audit, thumbnails, claim_minutes=30):
        self._audit = audit
        self._thumbnails = thumbnails  # plugin.thumbnails.Thumbnails
        self._claim = datetime.timedelta(minutes=claim_minutes)

    def study(self, uid):
        """The indexed study with this StudyInstanceUID (the newest, should two share it)."""
        study = Study.select().where(Study.study_instance_uid == uid).order_by(Study.id.desc()).first()
        if study is None:
            raise NotFound(f"no study with StudyInstanceUID {uid}")
        return study

    @staticmethod
    def describe(study):
        """The study as a worklist row: what other parts (reports) show of it."""
        return worklist_query.describe(study)

    def thumbnail(self, uid, series_uid):
        """PNG bytes of a small picture of one series of the study (its middle image)."""
        study = self.study(uid)
        series = Series.get_or_none(Series.study == study, Series.series_instance_uid == series_uid)
        if series is None:
            raise NotFound(f"no series {series_uid} in this study")
        try:
            return self._thumbnails.get(series.orthanc_id)
        except NotRenderable as error:
            raise NotFound(str(error)) from None

    def claim(self, uid, principal, take_over=False):
        """Claim, or renew one's own claim. A fresh own claim (more than half
        its time left) is left alone: autosaving drafts claim on every save.
        A colleague's live claim is refused (Conflict, naming them) unless ``take_over``:
        then the claim becomes this reader's, and the audit names the colleague
        (whose next save is refused as being read by someone else)."""
        study = self.study(uid)
        now = utcnow()
        own = study.claimed_by_id == principal.user_id and study.claim_expires_at and study.claim_expires_at > now
        if own and study.status == "in_progress" and study.claim_expires_at - now > self._claim / 2:
            return study
        free = (
            Study.claimed_by_id.is_null() | (Study.claim_expires_at <= now) | (Study.claimed_by_id == principal.user_id)
        )
        taken_from = _live_claimer(study, now) if take_over and not own else None
        if taken_from is not None:  # only the claim seen here: a third reader's claim meanwhile is not taken
            free = free | (Study.claimed_by_id == taken_from.id)
        changed = (
            Study.update(
                claimed_by_id=principal.user_id,
                claim_expires_at=now + self._claim,
                status="in_progress",
                updated_at=now,
            )
            .where(Study.id == study.id, Study.status.in_(CLAIMABLE), free)
            .execute()
        )
        if not changed:
            self._refuse_claim(self.study(uid), now)
        if taken_from is not None:
            self._record(principal, "study_claimed", uid, {"taken_over_from": taken_from.username})
            LOGGER.info(
                "event=claim_taken_over study_uid=%s by=%s from=%s", uid, principal.username, taken_from.username
            )
        elif not own:
            self._record(principal, "study_claimed", uid)
        return self.study(uid)

    def claimed_by_other(self, uid, principal):
        """The colleague (a User) whose live claim holds the study, or None."""
        study = self.study(uid)
        claimer = _live_claimer(study, utcnow())
        return claimer if claimer is not None and claimer.id != principal.user_id else None

    def release(self, uid, principal):
        """The claimer, or an admin, gives the study back to the list."""
        study = self.study(uid)
        if study.claimed_by_id is None:
            return study
        if not can(principal, "studies.release", study):
            raise Forbidden("only the radiologist reading it, or an admin, can release this study")
        status = "arrived" if study.status == "in_progress" and not has_draft(uid) else study.status
        Study.update(claimed_by_id=None, claim_expires_at=None, status=status, updated_at=utcnow()).where(
            Study.id == study.id
        ).execute()
        self._record(principal, "study_released", uid)
        return self.study(uid)

    def assign(self, uid, username, principal):
        """Assign to a radiologist (admins: anyone who reads; radiologists: themselves)."""
        study = self.study(uid)
        assignee = None
        if username:
            assignee = User.get_or_none(User.username == str(username).strip().lower())
            if assignee is None or assignee.disabled or not can(assignee, "studies.claim"):
                raise Invalid(f"assignee: {username!r} is not an active radiologist")
        if not can(principal, "studies.assign", (study, assignee)):
            raise Forbidden(
                "radiologists can take unassigned studies or give back their own; an admin reassigns a colleague's",
            )
        Study.update(assignee_id=assignee.id if assignee else None, updated_at=utcnow()).where(
            Study.id == study.id
        ).execute()
        self._record(principal, "study_assigned", uid, {"assignee": assignee.username if assignee else None})
        return self.study(uid)

    def set_priority(self, uid, priority, principal):
        if priority not in PRIORITIES:
            raise Invalid(f"priority must be one of {', '.join(PRIORITIES)}")
        study = self.study(uid)
        Study.update(priority=priority, updated_at=utcnow()).where(Study.id == study.id).execute()
        self._record(principal, "priority_changed", uid, {"from": study.priority, "to": priority})
        return self.study(uid)

    @staticmethod
    def _refuse_claim(study, now):
        if study.status not in CLAIMABLE:
            raise Conflict(f"a study that is {study.status} cannot be claimed")
        reader = User.get_or_none(User.id == study.claimed_by_id)
        name = reader.display_name if reader else "another user"
        until = study.claim_expires_at.isoformat(timespec="minutes") if study.claim_expires_at else ""
        raise Conflict(f"being read by {name} (claim until {until}Z)")

    def _record(self, principal, action, uid, details=None):
        self._audit.record(action, username=principal.username, role=principal.role, study_uid=uid, details=details)


def _live_claimer(study, now):
    """The User whose unexpired claim holds the study, or None."""
    if study.claimed_by_id is None or not study.claim_expires_at or study.claim_expires_at <= now:
        return None
    return User.get_or_none(User.id == study.claimed_by_id)
