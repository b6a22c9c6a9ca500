"""Fixtures for the parser tests: the hand-written scans under tests/data/scans (the shared sample
corpus is the ``corpus`` fixture of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from handoffkit.ingest.detect import parse_file
from handoffkit.record.model import ParseResult
from tests.builders import DATA

SCANS = DATA / "scans"


@pytest.fixture
def scan_bytes() -> Callable[[str], bytes]:
    """The bytes of one hand-written fixture under tests/data/scans."""
    return lambda name: (SCANS / name).read_bytes()


@pytest.fixture
def parse_scan(scan_bytes: Callable[[str], bytes]) -> Callable[[str], ParseResult]:
    """A hand-written fixture parsed with auto-detection."""
    return lambda name: parse_file(scan_bytes(name), name)
