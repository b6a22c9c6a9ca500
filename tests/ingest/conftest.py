"""Fixtures for the parser tests: the hand-written scans under tests/data/scans and the shared
sample corpus (real public scanner outputs, never copied into the repository)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from handoffkit.ingest.detect import parse_file
from handoffkit.record.model import ParseResult

REPO = Path(__file__).resolve().parents[2]
SCANS = REPO / "tests" / "data" / "scans"
CORPUS = Path(os.environ.get("HANDOFFKIT_CORPUS", REPO.parent / "shared" / "corpus"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "corpus: reads the shared sample corpus (skipped with a reason when absent; CI fails on such skips)"
    )


@pytest.fixture
def corpus() -> Path:
    """The sample corpus directory (``HANDOFFKIT_CORPUS`` or ``<repo>/../shared/corpus``)."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus unavailable: not found at {CORPUS}; set HANDOFFKIT_CORPUS to its directory")
    return CORPUS


@pytest.fixture
def scan_bytes() -> Callable[[str], bytes]:
    """The bytes of one hand-written fixture under tests/data/scans."""
    return lambda name: (SCANS / name).read_bytes()


@pytest.fixture
def parse_scan(scan_bytes: Callable[[str], bytes]) -> Callable[[str], ParseResult]:
    """A hand-written fixture parsed with auto-detection."""
    return lambda name: parse_file(scan_bytes(name), name)
