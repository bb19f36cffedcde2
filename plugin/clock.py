"""The clinic's clock: the one place that knows the clinic's time zone.

The PACS stores every moment in UTC (naive, `plugin.db.utcnow`). What a person
or a modality reads as a date or a time of day is the clinic's local time: the
worklist's "today", the dashboard's days, the scheduled dates and times the
modality worklist answers (DICOM DA/TM are local), an order posted with an
offset, the times printed on a report and its DICOM copy.

The zone is `Pacs.TimeZone` (an IANA name such as ``Europe/Paris``), else the
``TZ`` environment variable, else the machine's own zone (``/etc/localtime``);
a container that sets neither runs on UTC.
"""

import datetime
import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = datetime.timezone.utc
LOCALTIME = Path("/etc/localtime")


def zone_name(configured, environ):
    """The zone's name as configured: Pacs.TimeZone, else TZ (glibc's leading ':' dropped),
    else "" for the machine's own zone."""
    return (configured or environ.get("TZ", "")).strip().lstrip(":")


def zone_named(name, localtime=LOCALTIME):
    """The tzinfo for an IANA name ("" for the machine's own zone); ValueError naming
    what is wrong for a name the system's time zone database does not know."""
    if not name:
        return _machine_zone(localtime)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Paris (Debian's tzdata package holds them)"
        ) from None


def _machine_zone(localtime):
    """/etc/localtime as a zone (Debian links it into /usr/share/zoneinfo); UTC without it."""
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "/zoneinfo/" in target:
            try:
                return ZoneInfo(target.split("/zoneinfo/", 1)[1])
            except (ZoneInfoNotFoundError, ValueError):
                pass
    if localtime.is_file():
        with localtime.open("rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    return UTC


class Clock:
    """Now and conversions in the clinic's zone. ``now`` gives seconds since the epoch
    (tests pass a fixed one)."""

    def __init__(self, zone, now=time.time):
        self.zone = zone
        self._now = now

    @classmethod
    def named(cls, name):
        return cls(zone_named(name))

    @property
    def name(self):
        """The zone's name for logs and documents: "Europe/Paris", "UTC"."""
        return getattr(self.zone, "key", None) or str(self.zone)

    def now(self):
        """Now in the clinic's zone (aware)."""
        return datetime.datetime.fromtimestamp(self._now(), self.zone)

    def today(self):
        """The clinic's date."""
        return self.now().date()

    def local(self, moment):
        """``moment`` in the clinic's zone (aware); a naive moment is UTC, as stored."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.zone)

    def utc(self, wall):
        """A naive wall-clock time of the clinic (a DICOM date and time) as the naive UTC
        moment it is, as stored; in the hour a clock goes back, the first of the two."""
        return wall.replace(tzinfo=self.zone).astimezone(UTC).replace(tzinfo=None)

    def text(self, moment):
        """A stored moment as people read it: "2026-03-01 14:05 (Europe/Paris)"; "" for None."""
        if moment is None:
            return ""
        return f"{self.local(moment):%Y-%m-%d %H:%M} ({self.name})"
