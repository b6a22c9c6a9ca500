"""Benchmark stores: the demo programme replicated set-based to N findings, cached, and copied to PostgreSQL.

    .venv/bin/python bench/store.py --findings 1000000            # builds outputs/bench/record-1000000.db
    .venv/bin/python bench/store.py --findings 1000000 --postgres postgresql+psycopg://root@127.0.0.1/test

The SQLite file is ``bench/bulk.py``'s record: a 2,000-finding demo built by ``handoffkit.demo.build``
(the real pipeline, tickets for every band but info) replicated K times with renumbered ids and a
valid hash chain — about 0.6 tickets and 10 events per finding. Playing the demo generator itself to a
million findings would take hours on this machine. The PostgreSQL copy holds the same rows (table by
table, COPY), in its own schema ``hk_bench_<name>``.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import time
from pathlib import Path

from bulk import build_source, replicate
from sqlalchemy import create_engine, text

from handoffkit.record import schema
from handoffkit.record.store import Store

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "outputs" / "bench"
SOURCE_SIZE = 2000


def sqlite_store(findings: int, progress=print) -> Path:
    """The cached record with ``findings`` findings (built on first use)."""
    path = CACHE / f"record-{findings}.db"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    source = build_source(SOURCE_SIZE, CACHE)
    partial = path.with_suffix(".partial.db")
    start = time.perf_counter()
    counts = replicate(source, partial, math.ceil(findings / SOURCE_SIZE), progress=progress)
    partial.rename(path)
    progress(
        f"built {path}: {counts['findings']:,} findings, {counts['events']:,} events "
        f"in {time.perf_counter() - start:.0f} s"
    )
    return path


#: The ``meta`` row a finished copy carries: a copy interrupted half-way is made again, a finished one reused.
COPIED = "bench_copied_from"


def postgres_copy(sqlite_path: Path, base_url: str, progress=print, *, reuse: bool = True) -> str:
    """Copy every table into schema hk_bench_<stem> on PostgreSQL; returns its URL. A finished copy of the
    same file is reused (``reuse``): it holds the same record, plus the events the benchmarks appended."""
    name = "hk_bench_" + sqlite_path.stem.replace("-", "_")
    url = f"{base_url}?options=-csearch_path%3D{name}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        done = (
            conn.execute(
                text("SELECT 1 FROM information_schema.tables WHERE table_schema = :s AND table_name = 'meta'"),
                {"s": name},
            ).first()
            and conn.execute(text(f"SELECT value FROM {name}.meta WHERE key = '{COPIED}'")).scalar()
        )
        if reuse and done == str(sqlite_path):
            progress(f"reusing the copy in {name}")
            return url
        conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {name}"))
    Store(url).dispose()  # creates the tables, triggers and the chain head
    engine = create_engine(url)
    # COPY into bare tables, then build each index once: maintaining them row by row costs several times more.
    indexes = [index for table in schema.metadata.sorted_tables for index in table.indexes]
    with engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
    src = sqlite3.connect(sqlite_path)
    start = time.perf_counter()
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("DELETE FROM chain_head")
            cur.execute("DELETE FROM meta")
            for table in schema.metadata.sorted_tables:
                columns = [c.name for c in table.columns]
                quoted = ", ".join(f'"{c}"' for c in columns)
                rows = src.execute(f'SELECT {quoted} FROM "{table.name}"')
                bools = [i for i, c in enumerate(table.columns) if c.type.python_type is bool]
                with cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
                    for row in rows:
                        if bools:
                            row = list(row)
                            for i in bools:
                                row[i] = None if row[i] is None else bool(row[i])
                        copy.write_row(row)
                progress(f"  copied {table.name}")
            for index in indexes:
                index.create(conn)
            progress("  indexed")
            for table in schema.metadata.sorted_tables:
                for col in table.columns:
                    if col.autoincrement is True or (
                        col.primary_key
                        and col.type.python_type is int
                        and col.autoincrement == "auto"
                        and len(table.primary_key) == 1
                        and table.name not in ("events", "chain_head")
                    ):
                        cur.execute(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{col.name}'), "
                            f"coalesce(max({col.name}), 1)) FROM {table.name}"
                        )
            cur.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", (COPIED, str(sqlite_path)))
    src.close()
    engine.dispose()
    # What autovacuum would do soon after on a live server, done now so the figures do not depend on
    # its timing: the planner statistics, and the visibility map that lets an index-only scan skip the table.
    with admin.connect() as conn:
        for table in schema.metadata.sorted_tables:
            conn.execute(text(f'VACUUM (ANALYZE) {name}."{table.name}"'))
    admin.dispose()
    progress(f"copied to {name} in {time.perf_counter() - start:.0f} s")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="also copy it to this PostgreSQL server")
    args = parser.parse_args()
    path = sqlite_store(args.findings)
    if args.postgres:
        postgres_copy(path, args.postgres)


if __name__ == "__main__":
    main()
