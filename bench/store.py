"""Benchmark stores: the demo generator at scale, built once and cached, and copied to PostgreSQL.

    .venv/bin/python bench/store.py --findings 1000000            # builds outputs/bench/demo-1000000.db
    .venv/bin/python bench/store.py --findings 1000000 --postgres postgresql+psycopg://root@127.0.0.1/test

The SQLite file is built by ``handoffkit.demo.build`` (the real pipeline, on a simulated clock) with
ticket routing widened to every band but info, so that about 0.6 tickets per finding exist. The
PostgreSQL copy holds the same rows (table by table, COPY), in its own schema ``hk_bench_<n>``.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from handoffkit import demo, schema
from handoffkit.store import Store

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "outputs" / "bench"
TICKET_BANDS = ("critical", "high", "medium", "low")


def sqlite_store(findings: int, progress=print) -> Path:
    """The cached demo store with ``findings`` findings (built on first use)."""
    path = CACHE / f"demo-{findings}.db"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.db")
    for leftover in CACHE.glob(partial.name + "*"):
        leftover.unlink()
    start = time.perf_counter()
    summary = demo.build(
        f"sqlite:///{partial}",
        size=findings,
        workdir=CACHE / f"work-{findings}",
        ticket_bands=TICKET_BANDS,
        keep_inputs=False,
        progress=lambda m: progress(f"{time.perf_counter() - start:8.1f}s {m}"),
    )
    with sqlite3.connect(partial) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    partial.rename(path)
    progress(
        f"built {path}: {summary['findings']:,} findings, {summary['tickets']:,} tickets, "
        f"{summary['events']:,} events in {time.perf_counter() - start:.0f} s"
    )
    return path


def postgres_copy(sqlite_path: Path, base_url: str, progress=print) -> str:
    """Copy every table into schema hk_bench_<stem> on PostgreSQL (replacing it); returns its URL."""
    name = "hk_bench_" + sqlite_path.stem.replace("-", "_")
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {name}"))
    url = f"{base_url}?options=-csearch_path%3D{name}"
    Store(url).dispose()  # creates the tables, triggers and the chain head
    engine = create_engine(url)
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
            cur.execute("ANALYZE")
    src.close()
    engine.dispose()
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
