"""Fixtures for the ticket-export parser tests: the hand-written exports and the shared sample corpus."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TICKET_DATA = REPO / "tests" / "data" / "tickets"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "corpus: reads the shared sample corpus (skipped when it is absent)")


@pytest.fixture
def ticket_file() -> Callable[[str], tuple[bytes, str]]:
    """``ticket_file("jira_export.csv")`` → (bytes, source name) of a hand-written export."""

    def read(name: str) -> tuple[bytes, str]:
        path = TICKET_DATA / name
        return path.read_bytes(), str(path)

    return read


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real public samples (``HANDOFFKIT_CORPUS`` or ``<repo>/../shared/corpus``)."""
    path = Path(os.environ.get("HANDOFFKIT_CORPUS", REPO.parent / "shared" / "corpus"))
    if not path.is_dir():
        pytest.skip(f"corpus unavailable: not found at {path}; set HANDOFFKIT_CORPUS to its directory")
    return path
