"""Fixtures for the ticket-export parser tests: the hand-written exports under tests/data/tickets (the
shared sample corpus is the ``corpus`` fixture of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.builders import DATA

TICKET_DATA = DATA / "tickets"


@pytest.fixture
def ticket_file() -> Callable[[str], tuple[bytes, str]]:
    """``ticket_file("jira_export.csv")`` → (bytes, source name) of a hand-written export."""

    def read(name: str) -> tuple[bytes, str]:
        path = TICKET_DATA / name
        return path.read_bytes(), str(path)

    return read
