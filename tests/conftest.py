"""Shared fixtures: a store on SQLite and on PostgreSQL (each test gets its own schema), an engagement
initialised from the test policy, the builders of :mod:`tests.builders` bound to it, the shared corpus, and
the demo engagement (built once per worker, per backend).

PostgreSQL tests are skipped with a reason starting "PostgreSQL unavailable" when no server answers;
CI (``.ci/run``) fails on any such skip. ``HANDOFFKIT_TEST_PG`` overrides the server URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy

from handoffkit.record import engagements
from handoffkit.record.store import Clock, Store
from tests.builders import (
    ACTOR,
    CORPUS,
    DATA,
    SHOP,
    Exports,
    Record,
    copy_sqlite,
    corpus_path,
    route,
    small_programme,
    validate,
)

PG_BASE = os.environ.get("HANDOFFKIT_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")


def _pg_admin() -> sqlalchemy.Engine:
    engine = sqlalchemy.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any connection failure means "no server"
        pytest.skip(f"PostgreSQL unavailable at {PG_BASE}: {exc.__class__.__name__}")
    return engine


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    admin = _pg_admin()
    schema = f"hk_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def second_pg_url(pg_url: str) -> Iterator[str]:
    """Another fresh PostgreSQL schema on the same server as ``pg_url`` (dropped afterwards)."""
    base, _, _ = pg_url.partition("?")
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"hk_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        yield f"{base}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'record.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def clock() -> Clock:
    return Clock(fixed=datetime(2026, 3, 2, 9, 30, tzinfo=UTC), seed=11)


@pytest.fixture
def store(db_url: str, clock: Clock) -> Iterator[Store]:
    s = Store(db_url, clock=clock)
    yield s
    s.dispose()


@pytest.fixture
def engagement(store: Store) -> str:
    """Engagement ``ACME`` with the test policy and owners map loaded."""
    engagements.init(store, "ACME", DATA / "policy.yaml", owners_path=DATA / "owners.csv", actor=ACTOR)
    return "ACME"


@pytest.fixture
def rec(store: Store, engagement: str, tmp_path: Path) -> Record:
    """Scanner files written with handoffkit.demo.formats and ingested into ACME."""
    return Record(store, engagement, tmp_path)


@pytest.fixture
def exports(store: Store, engagement: str, tmp_path: Path) -> Exports:
    """Ticket exports written with handoffkit.demo.formats and ingested into ACME."""
    return Exports(store, engagement, tmp_path)


@pytest.fixture
def routed(store: Store, rec: Record) -> list[str]:
    """Two high findings on shop.test (owner Priya Raman) routed to a ticket."""
    ids = rec.web(SHOP, ("Routed SQLi", 3), ("Routed XSS", 3))
    validate(store, ids)
    route(store)
    return ids


@pytest.fixture
def programme(store: Store, engagement: str, tmp_path: Path) -> Store:
    """The small programme of :func:`tests.builders.small_programme` on each backend."""
    small_programme(store, engagement, tmp_path)
    return store


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real public samples (``HANDOFFKIT_CORPUS`` or ``<repo>/../shared/corpus``)."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus unavailable: not found at {CORPUS}; set HANDOFFKIT_CORPUS to its directory")
    return CORPUS


@pytest.fixture
def corpus_file() -> Callable[[str], Path]:
    """``corpus_file("cisa_kev/x.json")`` → the path in ../shared/corpus (skipped, and CI fails, if absent)."""
    return corpus_path


@pytest.fixture(scope="session")
def demo_sqlite(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """The demo engagement (small) built once on SQLite: (url, summary)."""
    from handoffkit import demo

    path = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{path / 'demo.db'}"
    return url, demo.build(url, size=300, seed=7, workdir=path / "work")


@pytest.fixture(scope="session")
def demo_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    """The same demo built once on PostgreSQL, in its own schema."""
    from handoffkit import demo

    admin = _pg_admin()
    schema = f"hk_demo_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    try:
        yield url, demo.build(url, size=300, seed=7, workdir=tmp_path_factory.mktemp("demo_pg"))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo_db(request: pytest.FixtureRequest) -> tuple[str, dict]:
    """The demo engagement on each backend: (url, summary)."""
    return request.getfixturevalue("demo_sqlite" if request.param == "sqlite" else "demo_postgres")


@pytest.fixture
def demo_store(demo_db: tuple[str, dict]) -> Iterator[Store]:
    """The shared demo on each backend — read only: a test that writes uses :func:`demo_copy`."""
    store = Store(demo_db[0], create=False)
    yield store
    store.dispose()


@pytest.fixture
def demo_copy(demo_sqlite: tuple[str, dict], tmp_path: Path) -> Iterator[Store]:
    """A private copy of the SQLite demo, for tests that append to the log."""
    store = Store(copy_sqlite(demo_sqlite[0], tmp_path / "demo-copy.db"), create=False)
    yield store
    store.dispose()
