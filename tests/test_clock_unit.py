"""The clinic's time zone (plugin/clock.py, `Pacs.TimeZone` / TZ) and every place
that produces or reads a local time: orders posted with an offset, birth dates
and accession numbers (the clinic's today), the worklist's "today", the
dashboard's days, MPPS times, the report PDF and its DICOM copy. No Orthanc:
see tests/test_mwl_time_zone.py for the modality worklist of a real server."""

import datetime
import io
import json
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pypdf
import pytest
from fakes import REPORTED_STUDY_UID, FakeHost, FlakyOrthanc, principal

from plugin import app as app_module
from plugin import db, jsonout, migrations
from plugin.app import App
from plugin.clock import UTC, Clock, zone_name, zone_named
from plugin.config import Settings
from plugin.errors import Invalid
from plugin.http import Request
from plugin.mpps.service import _moment
from plugin.orders import fields as orderfields
from plugin.orders import service as orderservice
from plugin.reports import pdf
from plugin.reports.copies import DicomCopies
from plugin.reports.models import ReportDicom

PARIS, AUCKLAND = ZoneInfo("Europe/Paris"), ZoneInfo("Pacific/Auckland")
# 20:00 UTC on 23 November 2026: still the 23rd in Paris (21:00), already the 24th in Auckland (09:00).
EVENING_UTC = datetime.datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


def clock(zone, moment=EVENING_UTC):
    return Clock(zone, lambda: moment.timestamp())


# --- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "configured, environ, name",
    [
        ("Europe/Paris", {"TZ": "America/New_York"}, "Europe/Paris"),  # Pacs.TimeZone first
        ("", {"TZ": "America/New_York"}, "America/New_York"),
        ("", {"TZ": ":Europe/Berlin"}, "Europe/Berlin"),  # glibc's form
        ("", {}, ""),  # the machine's own zone
    ],
)
def test_the_zone_is_the_setting_else_tz_else_the_machines(configured, environ, name):
    assert zone_name(configured, environ) == name
    settings = Settings.from_configuration({"Pacs": {"TimeZone": configured}}, environ)
    assert settings.time_zone == name


def test_an_unknown_zone_is_a_clear_error_and_the_plugin_does_not_start():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'.*Europe/Paris"):
        zone_named("Mars/Olympus")
    with pytest.raises(SystemExit, match="PACS cannot start: unknown time zone 'CET-1CEST'"):
        app_module.create_app(FakeHost({"Pacs": {"TimeZone": "CET-1CEST"}}), {})


def test_the_machines_zone_is_read_from_etc_localtime(tmp_path):
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/Europe/Paris")
    assert zone_named("", link).key == "Europe/Paris"
    copied = tmp_path / "copied"
    copied.write_bytes(link.read_bytes())  # a copy, not a link: the zone without its name
    assert datetime.datetime(2026, 7, 1, tzinfo=zone_named("", copied)).utcoffset() == datetime.timedelta(hours=2)
    assert zone_named("", tmp_path / "missing") is UTC  # a container without tzdata or TZ


def test_now_today_and_conversions_in_the_clinics_zone():
    paris, auckland = clock(PARIS), clock(AUCKLAND)
    assert paris.now() == EVENING_UTC and paris.now().hour == 21
    assert (paris.today(), auckland.today()) == (datetime.date(2026, 11, 23), datetime.date(2026, 11, 24))
    stored = datetime.datetime(2026, 7, 1, 7, 30)  # naive UTC, as every time column holds it
    assert paris.local(stored).strftime("%H:%M %z") == "09:30 +0200"
    assert paris.text(stored) == "2026-07-01 09:30 (Europe/Paris)"
    assert Clock.named("UTC").text(stored) == "2026-07-01 07:30 (UTC)"
    assert paris.text(None) == ""


# --- orders and the modality worklist's dates and times --------------------------------------


@pytest.mark.parametrize(
    "posted, zone, answered",
    [
        ("2026-11-23T09:00+01:00", "Europe/Paris", ("20261123", "090000")),
        ("2026-11-23T09:00+01:00", "Europe/London", ("20261123", "080000")),
        ("2026-11-23T09:00+01:00", "America/New_York", ("20261123", "030000")),
        ("2026-11-23T08:00:00Z", "Europe/Paris", ("20261123", "090000")),
        ("2026-07-01T09:00+02:00", "Europe/Paris", ("20260701", "090000")),  # summer time
        ("2026-11-23T23:30-05:00", "Europe/Paris", ("20261124", "053000")),  # the date moves too
        ("2026-11-23T09:00", "America/New_York", ("20261123", "090000")),  # no offset: the clinic's own time
    ],
)
def test_a_scheduled_time_with_an_offset_is_kept_in_the_clinics_zone(posted, zone, answered):
    values = orderfields.parse({"scheduled_at": posted}, False, Clock.named(zone))
    assert (values["scheduled_date"], values["scheduled_time"]) == answered


def test_a_birth_date_may_be_the_clinics_today_not_its_tomorrow():
    """At 20:00 UTC it is already the 24th in Auckland: a baby born there that day exists."""
    parse = orderfields.parse
    assert parse({"patient_birth_date": "2026-11-24"}, False, clock(AUCKLAND))["patient_birth_date"] == datetime.date(
        2026, 11, 24
    )
    with pytest.raises(Invalid, match="in the future"):
        parse({"patient_birth_date": "2026-11-24"}, False, clock(PARIS))


def admin():
    return principal("admin")


def test_the_app_gives_its_clock_to_orders_worklist_dashboard_reports_and_mpps(tmp_path):
    """One App on the clinic's clock (Auckland, where it is already the 24th): the accession
    number's date, an order posted with an offset, the worklist's "today" and the dashboard's last day."""
    host = FakeHost({"Pacs": {"DataDir": str(tmp_path), "BcryptCost": 4, "MppsPort": 0}})
    handle = db.open_database(f"sqlite:///{tmp_path / 'pacs.sqlite'}")
    migrations.migrate(handle)
    application = App(host, Settings.from_configuration(host.configuration(), {}), clock(AUCKLAND))
    try:
        order = application.orders.create(
            {
                "patient_id": "TZ1",
                "patient_name": "Kiwi^Kim",
                "modality": "CT",
                "scheduled_at": "2026-11-24T09:00+13:00",
                "procedure": "CT HEAD",
            },
            admin(),
        )
        assert order.accession_number.startswith("A261124")
        assert (order.scheduled_date, order.scheduled_time) == ("20261124", "090000")
        listed = application.router.dispatch(Request("GET", "/pacs/api/studies", {"date": "today"}, principal=admin()))
        assert [item["accession_number"] for item in json.loads(listed.body)["items"]] == [order.accession_number]
        figures = application.router.dispatch(Request("GET", "/pacs/api/dashboard", principal=admin()))
        assert json.loads(figures.body)["per_day"]["days"][-1] == "2026-11-24"
        assert application.mpps._steps._clock is application.clock is application.reports._clock
    finally:
        application.stop()
        handle.close()


# --- MPPS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes, kept",
    [
        (
            {"PerformedProcedureStepStartDate": "20261123", "PerformedProcedureStepStartTime": "083000"},
            "20261123083000",
        ),  # no offset: the modality's clock is the clinic's
        (
            {
                "PerformedProcedureStepStartDate": "20261123",
                "PerformedProcedureStepStartTime": "073000",
                "TimezoneOffsetFromUTC": "+0000",
            },
            "20261123083000",
        ),
        (
            {
                "PerformedProcedureStepStartDate": "20261123",
                "PerformedProcedureStepStartTime": "2330",
                "TimezoneOffsetFromUTC": "-0500",
            },
            "20261124053000",
        ),
        (
            {
                "PerformedProcedureStepStartDate": "20261123",
                "PerformedProcedureStepStartTime": "0730",
                "TimezoneOffsetFromUTC": "+2500",
            },
            "202611230730",
        ),  # an impossible offset: kept as sent
        ({"PerformedProcedureStepStartDate": "", "PerformedProcedureStepStartTime": "0730"}, ""),
    ],
)
def test_mpps_times_are_kept_in_the_clinics_zone(attributes, kept):
    assert _moment(attributes, "PerformedProcedureStepStart", Clock.named("Europe/Paris")) == kept


# --- the report: PDF and DICOM copy ----------------------------------------------------------


def view(signed_at=datetime.datetime(2026, 12, 4, 16, 26, 11), addendum_at=datetime.datetime(2026, 12, 4, 23, 30)):
    study = {
        "patient_name": "Doe^Jane",
        "patient_id": "P1",
        "patient_birth_date": "1970-01-01",
        "patient_sex": "F",
        "accession_number": "A1",
        "study_date": None,
        "description": "CT HEAD",
        "modalities": ["CT"],
        "referring_physician": "",
    }
    return {
        "status": "amended",
        "study": study,
        "sections": {"findings": "Normal."},
        "signer_name": "Dr Rad",
        "signed_at": signed_at,
        "addenda": [{"id": 1, "text": "Also normal.", "author_name": "Dr Rad", "signed_at": addendum_at}],
    }


def test_the_pdf_shows_local_times_naming_the_zone():
    document = pdf.render(view(), "Clinic", None, Clock.named("Europe/Paris"))
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(document)).pages)
    assert "signed by Dr Rad on 2026-12-04 17:26 (Europe/Paris)" in text
    assert "Dr Rad, 2026-12-05 00:30 (Europe/Paris)" in text  # the addendum: after midnight in Paris
    assert "16:26" not in text and "T16" not in text


def test_the_pdf_file_name_takes_the_clinics_date():
    """Signed 23:30 UTC on the 4th: the 5th in Paris; no study date, so the signature's."""
    late = view(signed_at=datetime.datetime(2026, 12, 4, 23, 30))
    assert pdf.file_name(late, Clock.named("Europe/Paris")) == "DOE_Jane_2026-12-05_A1_report.pdf"
    assert pdf.file_name(late, Clock.named("UTC")) == "DOE_Jane_2026-12-04_A1_report.pdf"


def test_the_dicom_copy_carries_local_date_time_and_offset(signed_report):
    host = FlakyOrthanc(failures=0)
    paris = Clock.named("Europe/Paris")
    DicomCopies(
        host, lambda report_id, addendum_id: (b"%PDF-1.4 test", REPORTED_STUDY_UID, "Radiology report"), paris
    ).add(signed_report.id)
    [instance] = host.stored
    signed = paris.local(ReportDicom.get().created_at)  # stored in UTC
    assert (instance.ContentDate, instance.ContentTime, instance.TimezoneOffsetFromUTC) == (
        f"{signed:%Y%m%d}",
        f"{signed:%H%M%S}",
        f"{signed:%z}",
    )
    assert instance.TimezoneOffsetFromUTC in ("+0100", "+0200")


def test_a_wall_clock_time_of_the_clinic_is_the_utc_moment_it_is():
    paris = Clock.named("Europe/Paris")
    assert paris.utc(datetime.datetime(2026, 11, 23, 9, 30)) == datetime.datetime(2026, 11, 23, 8, 30)
    assert paris.utc(datetime.datetime(2026, 7, 1, 9, 30)) == datetime.datetime(2026, 7, 1, 7, 30)  # summer time
    assert paris.utc(datetime.datetime(2026, 10, 25, 2, 30)) == datetime.datetime(2026, 10, 25, 0, 30)  # first 2:30


def test_a_performed_step_gives_its_times_as_utc_moments_or_none():
    step = SimpleNamespace(
        sop_instance_uid="1.2",
        status="COMPLETED",
        calling_aet="CT1",
        performed_series="[]",
        started_at="20261123093000.123",
        ended_at="2026-11-23",  # as a modality sent them
    )
    described = orderservice.describe_step(step, Clock.named("Europe/Paris"))
    assert (described["started_at"], described["ended_at"]) == (datetime.datetime(2026, 11, 23, 8, 30), None)
    assert json.loads(jsonout.dumps(described))["started_at"] == "2026-11-23T08:30:00Z"
