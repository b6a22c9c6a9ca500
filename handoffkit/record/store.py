"""Opening the record: one SQLAlchemy engine, read and write transactions, the clock.

SQLite (the embedded default) runs in WAL mode with a busy timeout and foreign keys on, and every
write transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy
timeout instead of failing half-way with ``database is locked``. PostgreSQL runs the same queries;
its writers serialise on a row lock on the one-row ``chain_head`` table, taken first thing in every
write transaction, which is also what keeps the activity log's hash chain a single line.
"""

from __future__ import annotations

import getpass
import operator
import os
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Integer, Table, Text, create_engine, event, insert, inspect, select, update
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from handoffkit.errors import ConcurrentEditError, ConfigError, NoRecordError
from handoffkit.record import schema

DEFAULT_URL = "sqlite:///handoffkit.db"
BUSY_TIMEOUT_MS = 30_000
PAGE_SIZE = 16_384
"""The page size of a new SQLite store."""
CACHE_KIB = 262_144
"""An SQLite connection's page cache: bulk index maintenance stays in memory."""
BULK_CACHE_KIB = 1_048_576
"""The page cache of a :meth:`Store.write` with ``bulk``: a large scan's new rows and their index pages."""


@dataclass
class Clock:
    """Where "now" and new event ids come from. The demo uses a simulated, seeded clock."""

    fixed: datetime | None = None
    seed: int | None = None
    _rng: random.Random | None = field(default=None, repr=False)

    def now(self) -> datetime:
        # Always UTC, so "today" (exception expiry, routing) is the UTC date whatever zone a fixed
        # instant was written in; a naive fixed value stays naive and is refused where it is stored.
        if self.fixed is None:
            return datetime.now(UTC)
        return self.fixed.astimezone(UTC) if self.fixed.tzinfo is not None else self.fixed

    def new_id(self, at: datetime | None = None) -> str:
        """A UUIDv7-layout id: 48 bits of Unix milliseconds (of ``at``) then random bits. Time-ordered
        ids keep the unique index append-only; seeded clocks give reproducible ids."""
        return self.new_ids(1, at)[0]

    def new_ids(self, count: int, at: datetime | None = None) -> list[str]:
        """``count`` ids of :meth:`new_id` at one instant, drawn in turn (the same ids as that many calls)."""
        if self._rng is None:
            self._rng = random.Random(self.seed if self.seed is not None else os.urandom(16))
        millis = int((at or self.now()).timestamp() * 1000) & ((1 << 48) - 1)
        # The instant, the version and the variant are the same in every id: only the 74 random bits vary.
        fixed = (millis << 80) | (0x7 << 76) | (0b10 << 62)
        draw, low = self._rng.getrandbits, (1 << 62) - 1
        out = []
        for _ in range(count):
            rand = draw(74)
            h = f"{fixed | ((rand >> 62) << 64) | (rand & low):032x}"
            out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
        return out


def _os_user() -> str:
    """The login name of the process's user; its numeric id where the system has no name for it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def sqlite_file(url: str | URL) -> str | None:
    """The database file an SQLite URL names, or None: another backend, or a database in memory (which
    no other connection or process can open)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def in_memory(url: str | URL) -> bool:
    """An SQLite database in memory: no other connection or process can open it."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and sqlite_file(parsed) is None


START_HINT = "start one with `handoffkit init -e ENGAGEMENT --policy POLICY.yaml --owners OWNERS.csv`"


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
        if not create and self.dialect == "sqlite" and parsed.database and not Path(parsed.database).exists():
            raise NoRecordError(f"no handoffkit record at {parsed.database}; {START_HINT}")
        self.engine = _make_engine(self.url, self.dialect)
        self._principal: dict[str, str] | None = None
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
                if (
                    conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
                    is None
                ):
                    conn.execute(insert(schema.meta), [{"key": "schema_version", "value": str(schema.SCHEMA_VERSION)}])
                    conn.execute(insert(schema.chain_head), [{"id": 1, "seq": 0, "row_hash": schema.GENESIS_HASH}])
        except OperationalError as exc:
            raise ConfigError(f"cannot open the database {self.safe_url}: {exc.orig}") from exc
        self.check_schema()

    def check_schema(self) -> None:
        """Refuse a store of an unknown schema version; upgrade one of a known older version."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(schema.meta.name):
                raise NoRecordError(f"no handoffkit record in the database {self.safe_url}; {START_HINT}")
            found = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
        if found is not None and found.isdigit() and int(found) in schema.MIGRATIONS:
            self._migrate(int(found))
            return
        if found != str(schema.SCHEMA_VERSION):
            raise ConfigError(
                f"database {self.safe_url} has schema version {found}, this handoffkit expects {schema.SCHEMA_VERSION}"
            )

    def _migrate(self, version: int) -> None:
        """Run the upgrade steps from ``version`` in one write transaction. On SQLite, foreign keys are off
        while it runs (a table rebuild needs that, and it can only be switched outside a transaction) and
        checked before it commits."""
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection if self.dialect == "sqlite" else None
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                conn = conn.execution_options(handoffkit_write=True)
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(select(schema.chain_head.c.seq).with_for_update())
                    while version in schema.MIGRATIONS:
                        schema.MIGRATIONS[version](conn)
                        version += 1
                    if raw is not None and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise ConfigError(f"database {self.safe_url}: the upgrade would break a foreign key")
                    conn.execute(
                        update(schema.meta).where(schema.meta.c.key == "schema_version").values(value=str(version))
                    )
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")
        self.check_schema()

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    # -- transactions -------------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on both backends, see :func:`snapshot`)."""
        with snapshot(self.engine) as conn:
            yield conn

    @contextmanager
    def write(self, *, bulk: bool = False) -> Iterator[Connection]:
        """A write transaction, serialised against every other writer (see the module docstring).

        ``bulk``: one that writes a large scan. On SQLite its connection's page cache may then grow to
        :data:`BULK_CACHE_KIB` for that transaction, so the pages it changes stay in memory until the
        commit writes them, instead of being written out and read back while it runs; the cache
        goes back to its usual size afterwards.
        """
        with self.engine.connect() as conn:
            conn = conn.execution_options(handoffkit_write=True)
            raw = conn.connection.dbapi_connection if bulk and self.dialect == "sqlite" else None
            if raw is not None:
                raw.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(
                            select(schema.chain_head.c.seq).where(schema.chain_head.c.id == 1).with_for_update()
                        )
                    yield conn
            finally:
                if raw is not None:
                    with suppress(sqlite3.Error):  # a connection the failure closed has no cache to shrink
                        raw.execute(f"PRAGMA cache_size=-{CACHE_KIB}")

    def now(self) -> datetime:
        return self.clock.now()

    def principal(self, conn: Connection) -> dict[str, str]:
        """Who the system itself knows is writing — PostgreSQL's ``session_user`` (the role that logged
        in, which ``SET ROLE`` does not change), or on SQLite the operating-system user running handoffkit.
        ``--actor`` is what a person typed; this is what they could not choose. Asked once per store."""
        if self._principal is None:
            if self.dialect == "postgresql":
                found = {
                    "source": "postgresql session_user",
                    "name": conn.exec_driver_sql("SELECT session_user").scalar(),
                }
            else:
                found = {"source": "os user", "name": _os_user()}
            self._principal = found
        return self._principal

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction on a new connection that sees one state of the record throughout:
    ``REPEATABLE READ`` on PostgreSQL, whose default (``READ COMMITTED``) would let each statement see
    the writes committed before it; an SQLite transaction reads one snapshot already. A reader never
    fails on a conflict at this level: only writers can."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def twin(engine: Engine) -> Engine:
    """A new engine on the same database, set up as this one: for a forked child process, which must
    open connections of its own (SQLite and libpq connections do not survive a fork)."""
    return _make_engine(engine.url.render_as_string(hide_password=False), engine.dialect.name)


def driver_rows(conn: Connection, stmt: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The column names and the database driver's own row tuples for ``stmt``: no ``Row`` per record and
    no SQLAlchemy type processing, so only for columns read as text or numbers (a boolean is 0/1 on
    SQLite). For the large reads of the views and the reconciliation, where the ``Row`` objects cost
    as much as the query."""
    # Unbuffered even when the connection streamed before (execution options stick to a connection, and
    # with yield_per SQLAlchemy reads a first row ahead, which the driver's fetchall would then miss).
    result = conn.execute(stmt, execution_options={"yield_per": None, "stream_results": False})
    try:
        return list(result.keys()), result.cursor.fetchall()
    finally:
        result.close()


class _SQLiteCompiler(SQLiteCompiler):
    """SQLAlchemy's SQLite compiler, also rendering table hints (``INDEXED BY``), which it leaves out:
    SQLite's planner takes a unique index over a covering one for an equality lookup, and a query that
    reads a few columns of a wide row says which index to use with ``select().with_hint(table,
    "INDEXED BY ix", "sqlite")``. PostgreSQL ignores the hint."""

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        return text


def _make_engine(url: str, dialect: str) -> Engine:
    if dialect == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    engine.dialect.statement_compiler = _SQLiteCompiler

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transaction control away from the sqlite3 module so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # A new database file takes this page size (it must be set before WAL mode and the first table;
        # an existing store keeps the one it was made with): a large scan's rows, events and evidence fill
        # fewer pages, so its commit writes fewer, and a view's scans read fewer.
        cur.execute(f"PRAGMA page_size={PAGE_SIZE}")
        if sqlite_file(url) is not None:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
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


def update_rows(
    conn: Connection, table: Table, key: str, rows: list[dict[str, Any]], *, version: str | None = None
) -> None:
    """Update many rows by primary key in one set-based statement (staging table + UPDATE … FROM).

    Every row dict carries the key, the new values and — when ``version`` names the table's row-version
    column — ``expected_version`` (and optionally ``version_step``, default 1, when one update stands
    for several logged changes): the row is only updated if it still has that version, and the row
    version moves on by the step. Fewer rows updated than asked means someone else changed them first.
    """
    if not rows:
        return
    control = ("expected_version", "version_step")
    value_cols = [c for c in rows[0] if c not in (key, *control)]
    if version:
        rows = [{**r, "version_step": r.get("version_step", 1)} for r in rows]
    stage = _staging_table(conn, table, [key, *value_cols], with_version=version is not None)
    try:
        bulk_insert(conn, stage, rows)
        values: dict[str, Any] = {c: stage.c[c] for c in value_cols}
        stmt = update(table).where(table.c[key] == stage.c[key])
        if version:
            values[version] = table.c[version] + stage.c.version_step
            stmt = stmt.where(table.c[version] == stage.c.expected_version)
        changed = conn.execute(stmt.values(values)).rowcount
    finally:
        stage.drop(conn)
    if changed != len(rows):
        raise ConcurrentEditError(
            f"{len(rows) - changed} of {len(rows)} {table.name} rows were changed by someone else "
            "since they were read; nothing was written — reload and retry"
        )


def _staging_table(conn: Connection, table: Table, columns: list[str], *, with_version: bool) -> Table:
    from sqlalchemy import Column, Integer, MetaData

    md = MetaData()
    cols = [Column(c, table.c[c].type) for c in columns]
    if with_version:
        cols += [Column("expected_version", Integer), Column("version_step", Integer)]
    stage = Table(f"hk_stage_{table.name}", md, *cols, prefixes=["TEMPORARY"])
    stage.create(conn)
    return stage


class strpos(GenericFunction):
    """``strpos(text, part)``: the 1-based place of ``part`` in ``text``, 0 when it is not there, compared
    exactly (case-sensitive, no wildcards). PostgreSQL calls it ``strpos``, SQLite ``instr``."""

    type = Integer()
    inherit_cache = True


@compiles(strpos, "sqlite")
def _instr(element: strpos, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


class id_list(GenericFunction):
    """``id_list(value)``: an aggregate, the JSON array of the group's values (``[]`` on SQLite and NULL
    on PostgreSQL for none). A large list comes back as one text value: fetching a row per id costs a
    lock of the interpreter per row, which a query running beside another in a thread waits for.
    PostgreSQL calls it ``json_agg``, SQLite ``json_group_array``."""

    type = Text()
    inherit_cache = True


@compiles(id_list, "sqlite")
def _json_group_array(element: id_list, compiler: Any, **kw: Any) -> str:
    return f"json_group_array({compiler.process(element.clauses, **kw)})"


@compiles(id_list, "postgresql")
def _json_agg(element: id_list, compiler: Any, **kw: Any) -> str:
    return f"json_agg({compiler.process(element.clauses, **kw)})"


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in one statement.

    On SQLite the rows go straight to the driver's ``executemany`` (SQLAlchemy's per-row parameter
    processing costs more than the insert itself on large batches); values are bound through each column's
    type first, so the stored bytes are what ``insert(table)`` would store, and columns that are None
    in every row are left out (they store NULL either way). PostgreSQL uses SQLAlchemy's batched
    multi-row VALUES (``insertmanyvalues``), which is already one round trip per batch.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)
        return
    # A column that is None in every row is left out: the driver binds a NULL as slowly as a value
    # (16 all-NULL columns of 41 were 40% of a 200k-row findings insert), and no column has a
    # default (tests/foundation checks), so an omitted column stores the same NULL.
    first = rows[0]
    names = [n for n in first if first[n] is not None or set(map(operator.itemgetter(n), rows)) != {None}]
    names = names or list(first)
    params = list(map(operator.itemgetter(*names), rows)) if len(names) > 1 else [(r[names[0]],) for r in rows]
    insert_tuples(conn, table, names, params)


def insert_tuples(conn: Connection, table: Table, names: list[str], params: list[tuple[Any, ...]]) -> None:
    """Insert many rows given as tuples of the ``names`` columns, as :func:`bulk_insert` does (for a caller
    that builds its rows as tuples: a dict per row costs more to build than the insert of its values)."""
    if not params:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), [dict(zip(names, p, strict=True)) for p in params])
        return
    quoted = ", ".join(f'"{n}"' for n in names)
    sql = f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join('?' * len(names))})"
    for i, n in enumerate(names):
        # Dates and instants become canonical text, as their column type would bind them; other values
        # (str, int, float, bool, bytes, None) are what sqlite3 stores for those types anyway.
        if isinstance(table.c[n].type, (schema.Timestamp, schema.Day)) and any(
            not isinstance(p[i], str | None) for p in params
        ):
            bind = table.c[n].type.process_bind_param
            params = [(*p[:i], bind(p[i], conn.dialect), *p[i + 1 :]) for p in params]
    conn.exec_driver_sql(sql, params)
