"""Fixtures for the governance tests (builders live in :mod:`governance.builders`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.builders import Record
from handoffkit.record.store import Store


@pytest.fixture
def rec(store: Store, engagement: str, tmp_path: Path) -> Record:
    """Scanner files written with handoffkit.demo.formats and ingested into ACME."""
    return Record(store, engagement, tmp_path)
