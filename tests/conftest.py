"""Fixtures: a real Orthanc with the PACS plugin, started per test session
(``pacs``) or per test (``fresh_pacs``) on free loopback ports."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from pacs_server import PacsServer  # noqa: E402


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
