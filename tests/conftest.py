"""Fixtures: a real Orthanc with the PACS plugin, started per test session
(``pacs``) or per test (``fresh_pacs``) on free loopback ports; a migrated SQLite
database per test (``index_db``) for services tested in process; an empty
PostgreSQL database of its own (``pg_database``) where the machine has one.
Fakes to run services with: tests/fakes.py."""

import datetime
import shutil
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fakes import REPORTED_STUDY_UID  # noqa: E402
from pacs_server import PacsServer  # noqa: E402

from plugin import db, migrations  # noqa: E402
from plugin.models import Study  # noqa: E402
from plugin.reports.models import Report  # noqa: E402


@pytest.fixture(scope="session")
def pacs(tmp_path_factory):
    server = PacsServer(tmp_path_factory.mktemp("pacs")).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_pacs(tmp_path):
    server = PacsServer(tmp_path / "pacs").start()
    yield server
    server.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def migrated_file(tmp_path_factory):
    """Every migration takes a few hundred ms: run them once, copy the file per test."""
    path = tmp_path_factory.mktemp("index") / "migrated.sqlite"
    database = db.open_database(f"sqlite:///{path}")
    migrations.migrate(database)
    database.close()
    return path


@pytest.fixture
def index_db(tmp_path, migrated_file):
    """A fresh, migrated index; `plugin.db.database` is a global proxy bound to it."""
    path = tmp_path / "index.sqlite"
    shutil.copyfile(migrated_file, path)
    database = db.open_database(f"sqlite:///{path}")
    assert migrations.migrate(database) == []
    yield database
    database.close()


@pytest.fixture
def pg_database():
    """The URL of a new, empty database on the machine's PostgreSQL (127.0.0.1:5432,
    user postgres), dropped afterwards; the test is skipped, saying why, where there is none."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3")
    except psycopg2.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {error}")
    admin.autocommit = True
    name = f"pacs_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture
def signed_report(index_db):
    """A signed (final) report of an indexed study, fakes.REPORTED_STUDY_UID, at 2026-11-23 10:00 UTC."""
    now = datetime.datetime(2026, 11, 23, 10, 0)
    Study.create(
        orthanc_id="abc",
        study_instance_uid=REPORTED_STUDY_UID,
        accession_number="A1",
        study_time="",
        description="",
        referring_physician="",
        institution_name="",
        modalities="CT",
        body_parts="",
        orthanc_last_update="",
        indexed_at=now,
    )
    return Report.create(study_instance_uid=REPORTED_STUDY_UID, status="final", created_at=now, updated_at=now)


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make test installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def log_in(page, server, username, password, next_path="/pacs/"):
    """Sign in through the login form, as a person would."""
    page.goto(server.url(f"/pacs/login?next={next_path}"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
