"""Benchmark: ``log verify`` against a read-and-hash floor on the same rows, and what each check costs.

    .venv/bin/python bench/verify.py [--findings 100000] [--rounds 3] [--postgres URL]

The store is ``bench/store.py``'s (about 11 events per finding). In one process, alternating, each round
times:

- the floor: the events rows read in ``seq`` order through the database driver's cursor (the columns
  verify reads), and ``sha256(prev_hash || payload)`` of each with hashlib — nothing else;
- the stages of the walk, each adding one check to the one before, with the primitives
  :func:`handoffkit.record.log.verify` uses: the seq and prev_hash links, the payload parsed, the
  mirrored columns compared, the origin column compared;
- :func:`handoffkit.record.log.verify` itself (the chain head and anchor checks included).

It prints wall and CPU time (this process's, which other work on a shared machine disturbs less) for
each, the best of the rounds, and verify's ratio to the floor. Goal: verify <= 3x the floor.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import postgres_copy, sqlite_store

from handoffkit.record import log, schema
from handoffkit.record._fastjson import compact_json
from handoffkit.record.store import Store

BATCH = 20_000


def _rows(store: Store):
    """The events rows, in ``seq`` order, in the columns verify reads, through the driver's own cursor."""
    columns = ", ".join(log._WALK)
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor(name="hk_bench") if store.engine.dialect.name == "postgresql" else raw.cursor()
        cursor.execute(f"SELECT {columns} FROM events ORDER BY seq")
        while batch := cursor.fetchmany(BATCH):
            yield from batch
        cursor.close()


def floor(store: Store) -> int:
    sha, p_prev, p_payload = hashlib.sha256, log._PREV, log._PAYLOAD
    n = 0
    for row in _rows(store):
        sha((row[p_prev] + row[p_payload]).encode()).hexdigest()
        n += 1
    return n


def stage(store: Store, upto: int) -> int:
    """The walk with its first ``upto`` checks: 1 links and hash, 2 + payload parsed, 3 + mirrored
    columns, 4 + origin. Counts the rows that passed (all of them, on a sound log)."""
    sha, mirrored, n_mirrored = hashlib.sha256, log._MIRRORED, len(log._MIRRORED)
    i_origin, i_payload, i_prev, i_hash = log._ORIGIN, log._PAYLOAD, log._PREV, log._HASH
    expected, prev, ok = 1, schema.GENESIS_HASH, 0
    for row in _rows(store):
        good = (
            row[0] == expected
            and row[i_prev] == prev
            and sha((prev + row[i_payload]).encode()).hexdigest() == row[i_hash]
        )
        if upto >= 2:
            doc = orjson.loads(row[i_payload])
            if upto >= 3:
                good = good and tuple(map(doc.get, mirrored)) == tuple(row[:n_mirrored])
            if upto >= 4:
                good = good and compact_json(doc.get("origin")) == row[i_origin]
        ok += good
        expected, prev = expected + 1, row[i_hash]
    return ok


STAGES = {
    "links + hash": lambda s: stage(s, 1),
    "+ payload parsed": lambda s: stage(s, 2),
    "+ mirrored columns": lambda s: stage(s, 3),
    "+ origin column": lambda s: stage(s, 4),
}


def timed(fn, store: Store) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(store)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def measure(name: str, url: str, rounds: int) -> None:
    store = Store(url)
    runs: dict[str, list[tuple[float, float]]] = {}
    jobs = {"floor (read + hash)": floor, **STAGES, "log.verify": lambda s: log.verify(s).checked}
    for r in range(rounds + 1):  # round 0 warms the page cache and is not counted
        for label, fn in jobs.items():
            wall, cpu, out = timed(fn, store)
            if r:
                runs.setdefault(label, []).append((wall, cpu))
            print(f"{name}: round {r}: {label:<20} {wall:7.2f} s wall {cpu:7.2f} s CPU ({out:,} rows)", flush=True)
    best = {label: (min(w for w, _ in v), min(c for _, c in v)) for label, v in runs.items()}
    base = best["floor (read + hash)"]
    print(f"{name}: best of {rounds}:")
    for label, (wall, cpu) in best.items():
        print(
            f"{name}:   {label:<20} {wall:7.2f} s wall ({wall / base[0]:.2f}x)  {cpu:7.2f} s CPU ({cpu / base[1]:.2f}x)"
        )
    ratio_wall = best["log.verify"][0] / base[0]
    ratio_cpu = best["log.verify"][1] / base[1]
    print(f"{name}: log verify / floor: {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU (goal <= 3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="also run against a PostgreSQL copy on this server")
    args = parser.parse_args()
    path = sqlite_store(args.findings)
    measure("sqlite", f"sqlite:///{path}", args.rounds)
    if args.postgres:
        measure("postgres", postgres_copy(path, args.postgres), args.rounds)


if __name__ == "__main__":
    main()
