"""Shared fixtures: a store on SQLite and on PostgreSQL (each test gets its own schema), an engagement
initialised from the test policy, the builders of :mod:`tests.builders` bound to it, the shared corpus, and
the demo engagement (built once per test run and backend, shared by the xdist workers).

PostgreSQL tests are skipped with a reason starting "PostgreSQL unavailable" when no server answers;
CI (``.ci/run``) fails on any such skip. ``HANDOFFKIT_TEST_PG`` overrides the server URL.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy
from filelock import FileLock

from handoffkit.record import engagements
from handoffkit.record.store import Clock, Store
from tests.builders import (
    ACTOR,
    CORPUS,
    DATA,
    SHOP,
    Exports,
    Record,
    chain_head,
    copy_sqlite,
    corpus_path,
    route,
    small_programme,
    validate,
)

T = TypeVar("T")
# Every test's ingests check in their own process (and the CLI processes tests start inherit this): no test
# leaves a long-lived gate process behind. tests/ingest/test_gate_server.py starts and stops its own.
os.environ["HANDOFFKIT_GATE"] = "inprocess"
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
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver's local ticket systems and webhooks listen on the loopback address only."""
    return ("127.0.0.1", 0)


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


# ------------------------------------------------------------------------------- the shared demo
#
# The demo (size 300, seed 7) takes 10-25 s to build per backend, so it is built once per test run and
# shared by the xdist workers: the controller (or the single process of a run without xdist) makes a run
# folder and hands it to the workers; the first worker to need a backend's demo builds it there under a
# file lock while the others wait, then every worker reads the same (url, summary). The controller drops
# the PostgreSQL schema and the folder when the run ends, and fails the run if a test wrote to the
# shared demo (a test that writes uses ``demo_copy``).

_RUN = pytest.StashKey[Path]()
_RUN_OPTION = "handoffkit_run_dir"


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[_RUN] = Path(workerinput[_RUN_OPTION])
    else:  # made by the first process that needs it, so a run that builds nothing leaves nothing
        config.stash[_RUN] = Path(tempfile.gettempdir()) / f"handoffkit-tests-{uuid.uuid4().hex[:12]}"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist: the controller hands each worker the run folder
    node.workerinput[_RUN_OPTION] = str(node.config.stash[_RUN])


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # a worker: the controller cleans up once every worker is done
    run = session.config.stash.get(_RUN, None)
    if run is None:
        return
    try:
        changed = [backend for backend in ("sqlite", "postgres") if _shared_demo_was_written(run, backend)]
        if changed:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            reporter.write_line(
                f"\nFAILED: a test wrote to the shared demo on {' and '.join(changed)}; "
                "a test that writes to the demo must use a copy (demo_copy)",
                red=True,
                bold=True,
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        schema_file = run / "demo-postgres.schema"
        if schema_file.exists():
            admin = sqlalchemy.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema_file.read_text()} CASCADE")
            finally:
                admin.dispose()
        shutil.rmtree(run, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One test per demo backend first, every other test that needs the demo last: the first worker to
    start builds the demo while the other runs tests that do not need it, instead of waiting on the lock."""
    first: dict[str, pytest.Item] = {}
    later: list[pytest.Item] = []
    rest: list[pytest.Item] = []
    for item in items:
        backend = _demo_backend(item)
        if backend is None:
            rest.append(item)
        elif backend not in first:
            first[backend] = item
        else:
            later.append(item)
    items[:] = [*first.values(), *rest, *later]


def _demo_backend(item: pytest.Item) -> str | None:
    names = getattr(item, "fixturenames", ())
    if "demo_sqlite" in names:
        return "sqlite"
    if "demo_postgres" in names:
        return "postgres"
    if "demo_db" in names:
        return item.callspec.params["demo_db"]
    return None


def _once(config: pytest.Config, name: str, build: Callable[[Path], T]) -> T:
    """``build(folder)`` run once per test run, by whichever process asks first (under a file lock, the
    others wait); every process gets the same pickled value."""
    run = config.stash[_RUN]
    run.mkdir(exist_ok=True)
    built = run / f"{name}.pickle"
    with FileLock(run / f"{name}.lock"):
        if not built.exists():
            folder = run / name
            folder.mkdir(exist_ok=True)
            partial = built.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(build(folder)))
            partial.replace(built)
    return pickle.loads(built.read_bytes())


def _shared_demo(config: pytest.Config, backend: str, connect: Callable[[Path], str]) -> tuple[str, dict]:
    """The demo built once per run into the database ``connect(folder)`` names: (url, summary)."""

    def build(folder: Path) -> tuple[str, dict, tuple[int, str]]:
        from handoffkit import demo

        url = connect(folder)
        summary = demo.build(url, size=300, seed=7, workdir=folder / "work")
        with _open(url) as store:
            return url, summary, chain_head(store)

    url, summary, _ = _once(config, f"demo-{backend}", build)
    return url, summary


@pytest.fixture(scope="session")
def once_per_run(pytestconfig: pytest.Config) -> Callable[[str, Callable[[Path], T]], T]:
    """``once_per_run(name, build)``: ``build(folder)``'s value, built by one process of the run and shared
    by every xdist worker (for expensive session data such as the rendered report packs)."""
    return lambda name, build: _once(pytestconfig, name, build)


def _shared_demo_was_written(run: Path, backend: str) -> bool:
    built = run / f"demo-{backend}.pickle"
    if not built.exists():
        return False
    url, _, head = pickle.loads(built.read_bytes())
    with _open(url) as store:
        return chain_head(store) != head


@contextmanager
def _open(url: str) -> Iterator[Store]:
    store = Store(url, create=False)
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture(scope="session")
def demo_sqlite(pytestconfig: pytest.Config) -> tuple[str, dict]:
    """The demo engagement (small) built once per run on SQLite: (url, summary) — read only."""
    return _shared_demo(pytestconfig, "sqlite", lambda folder: f"sqlite:///{folder / 'demo.db'}")


@pytest.fixture(scope="session")
def demo_postgres(pytestconfig: pytest.Config) -> tuple[str, dict]:
    """The same demo built once per run on PostgreSQL, in a schema of its own — read only."""
    admin = _pg_admin()  # skips with "PostgreSQL unavailable" when no server answers

    def build(folder: Path) -> str:
        schema_file = pytestconfig.stash[_RUN] / "demo-postgres.schema"
        if not schema_file.exists():  # written first, so the schema is dropped even if the build fails
            schema_file.write_text(f"hk_demo_{uuid.uuid4().hex[:12]}")
        schema = schema_file.read_text()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # what a failed build left
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        return f"{PG_BASE}?options=-csearch_path%3D{schema}"

    try:
        return _shared_demo(pytestconfig, "postgres", build)
    finally:
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
