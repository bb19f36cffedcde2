"""Fixtures: a real Orthanc with the PACS plugin, started per test session
(``pacs``) or per test (``fresh_pacs``) on free loopback ports; a migrated SQLite
database per test (``index_db``) for services tested in process."""

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from pacs_server import PacsServer  # noqa: E402

from plugin import db, migrations  # noqa: E402


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
