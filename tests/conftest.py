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
