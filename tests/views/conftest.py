"""Fixtures for the views, metrics, SLA and export tests.

The session's demo engagement (``demo_db``, on SQLite and PostgreSQL) is shared by the whole suite, so
tests here only read it; a test that appends events (an export logs ``log_exported``) works on a
private copy of the SQLite demo (:func:`demo_copy`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handoffkit.record.store import Store

from .builders import copy_sqlite, small_programme


@pytest.fixture
def demo_store(demo_db: tuple[str, dict]) -> Iterator[Store]:
    """The shared demo on each backend — read only."""
    store = Store(demo_db[0], create=False)
    yield store
    store.dispose()


@pytest.fixture
def demo_copy(demo_sqlite: tuple[str, dict], tmp_path: Path) -> Iterator[Store]:
    """A private copy of the SQLite demo, for tests that append to the log."""
    store = Store(copy_sqlite(demo_sqlite[0], tmp_path / "demo-copy.db"), create=False)
    yield store
    store.dispose()


@pytest.fixture
def programme(store: Store, engagement: str, tmp_path: Path) -> Store:
    """The small programme of :mod:`.builders` on each backend."""
    small_programme(store, engagement, tmp_path)
    return store
