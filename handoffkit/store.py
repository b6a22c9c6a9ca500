"""Opening the record: one SQLAlchemy engine, read and write transactions, the clock.

SQLite (the embedded default) runs in WAL mode with a busy timeout and foreign keys on, and every
write transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy
timeout instead of failing half-way with ``database is locked``. PostgreSQL runs the same queries;
its writers serialise on a row lock on the one-row ``chain_head`` table, taken first thing in every
write transaction, which is also what keeps the activity log's hash chain a single line.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from handoffkit import schema
from handoffkit.errors import ConcurrentEditError, ConfigError, HandoffkitError

DEFAULT_URL = "sqlite:///handoffkit.db"
BUSY_TIMEOUT_MS = 30_000


@dataclass
class Clock:
    """Where "now" and new event ids come from. The demo uses a simulated, seeded clock."""

    fixed: datetime | None = None
    seed: int | None = None
    _rng: random.Random | None = field(default=None, repr=False)

    def now(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(UTC)

    def new_id(self) -> str:
        if self.seed is None:
            return str(uuid.uuid4())
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def resolve_url(url: str | None) -> str:
    """``--db`` wins, then ``HANDOFFKIT_DB``, then the embedded SQLite default."""
    return url or os.environ.get("HANDOFFKIT_DB") or DEFAULT_URL


class Store:
    """The record: an engine plus the rules for transactions on it."""

    def __init__(self, url: str | None = None, *, clock: Clock | None = None, create: bool = True) -> None:
        self.url = resolve_url(url)
        self.clock = clock or Clock()
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise ConfigError(f"database URL {self.url!r} is not valid: {exc}") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"database URL {self.url!r}: expected sqlite:///FILE or postgresql+psycopg://…")
        self.engine = _make_engine(self.url, self.dialect)
        if create:
            self.create_schema()
        else:
            self.check_schema()

    # -- schema -----------------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the tables on an empty database (idempotent) and check the schema version."""
        try:
            with self.engine.begin() as conn:
                schema.metadata.create_all(conn)
                if conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
                                ).scalar() is None:
                    conn.execute(insert(schema.meta), [{"key": "schema_version",
                                                        "value": str(schema.SCHEMA_VERSION)}])
                    conn.execute(insert(schema.chain_head), [{"id": 1, "seq": 0,
                                                              "row_hash": schema.GENESIS_HASH}])
        except OperationalError as exc:
            raise ConfigError(f"cannot open the database {self.safe_url}: {exc.orig}") from exc
        self.check_schema()

    def check_schema(self) -> None:
        with self.engine.connect() as conn:
            found = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
                                 ).scalar()
        if found != str(schema.SCHEMA_VERSION):
            raise ConfigError(f"database {self.safe_url} has schema version {found}, this handoffkit "
                              f"expects {schema.SCHEMA_VERSION}")

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    # -- transactions -------------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on both backends)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, serialised against every other writer (see the module docstring)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(handoffkit_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(select(schema.chain_head.c.seq).where(schema.chain_head.c.id == 1)
                                 .with_for_update())
                yield conn

    def now(self) -> datetime:
        return self.clock.now()

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, dialect: str) -> Engine:
    if dialect == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transaction control away from the sqlite3 module so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if make_url(url).database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        write = conn.get_execution_options().get("handoffkit_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def open_store(url: str | None = None, *, clock: Clock | None = None) -> Store:
    """Open (creating if needed) the record at ``url`` (see :func:`resolve_url`)."""
    return Store(url, clock=clock)


# -- set-based helpers used by the domain modules --------------------------------------------------


def update_rows(conn: Connection, table: Table, key: str, rows: list[dict[str, Any]],
                *, version: str | None = None) -> None:
    """Update many rows by primary key in one set-based statement (staging table + UPDATE … FROM).

    Every row dict carries the key, the new values and — when ``version`` names the table's row-version
    column — ``expected_version``: the row is only updated if it still has that version, and the row
    version is incremented. Fewer rows updated than asked means someone else changed them first.
    """
    if not rows:
        return
    value_cols = [c for c in rows[0] if c not in (key, "expected_version")]
    stage = _staging_table(conn, table, [key, *value_cols], with_version=version is not None)
    try:
        conn.execute(insert(stage), rows)
        values: dict[str, Any] = {c: stage.c[c] for c in value_cols}
        stmt = update(table).where(table.c[key] == stage.c[key])
        if version:
            values[version] = table.c[version] + 1
            stmt = stmt.where(table.c[version] == stage.c.expected_version)
        changed = conn.execute(stmt.values(values)).rowcount
    finally:
        stage.drop(conn)
    if changed != len(rows):
        raise ConcurrentEditError(
            f"{len(rows) - changed} of {len(rows)} {table.name} rows were changed by someone else "
            "since they were read; nothing was written — reload and retry")


def _staging_table(conn: Connection, table: Table, columns: list[str], *, with_version: bool) -> Table:
    from sqlalchemy import Column, Integer, MetaData

    md = MetaData()
    cols = [Column(c, table.c[c].type) for c in columns]
    if with_version:
        cols.append(Column("expected_version", Integer))
    stage = Table(f"hk_stage_{table.name}", md, *cols, prefixes=["TEMPORARY"])
    stage.create(conn)
    return stage


def require(condition: bool, message: str, exc: type[HandoffkitError] = HandoffkitError) -> None:
    """Raise ``exc(message)`` unless ``condition`` holds."""
    if not condition:
        raise exc(message)
