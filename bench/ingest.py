"""Benchmark: ingesting a 200,000-result SARIF file into a fresh SQLite store.

Prints findings/s for ``pipeline.ingest_scan`` (strict JSON, parsing, dedup, the Great Expectations gate,
findings + raw-item evidence + one hash-chained event per finding, all in one transaction) and, in the
same run, the floor: plain ``json.load`` + the same field extraction (the SARIF parser) + one bulk insert
of the finding rows with no events, no evidence and no checks. Goal: >= 20,000 findings/s and <= 2.5x the
floor.

    .venv/bin/python bench/ingest.py [--results 200000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, insert

from handoffkit.demo import formats
from handoffkit.ingest import pipeline, quality, sarif
from handoffkit.record import engagements, schema
from handoffkit.record.store import Store, bulk_insert

POLICY = Path(__file__).resolve().parents[1] / "params" / "policy.yaml"


def write_sarif(path: Path, n: int) -> None:
    """n results over 20 repositories, 500 rules, realistic field sizes."""
    runs = []
    per_run = n // 20
    for r in range(20):
        results = [
            {
                "rule": f"bench.rule{i % 500}",
                "title": f"Rule {i % 500} finding",
                "level": "warning",
                "score": (i % 100) / 10,
                "cwe": f"CWE-{79 + i % 50}",
                "message": f"Tainted data reaches sink in function f{i} via parameter p{i % 7}",
                "uri": f"src/pkg{i % 97}/module{i}.py",
                "line": 1 + i % 900,
                "fingerprint": f"{r:04x}{i:012x}",
            }
            for i in range(r * per_run, (r + 1) * per_run)
        ]
        runs.append(
            {"tool": "semgrep", "version": "1.93.0", "repo": f"https://github.com/bench/repo-{r}", "results": results}
        )
    path.write_bytes(formats.sarif(runs))


def floor(path: Path, db: Path) -> float:
    """json.load + the same extraction + one bulk insert of finding rows (no events, evidence, checks)."""
    engine = create_engine(f"sqlite:///{db}")
    schema.metadata.create_all(engine, tables=[schema.engagements, schema.findings])
    start = time.perf_counter()
    with open(path, "rb") as fh:
        doc = json.load(fh)
    records = sarif.parse(doc, str(path)).records
    now = "2026-01-01T00:00:00.000000Z"
    rows = [
        {**pipeline.finding_row(r, f"HK-{i}", i, "BENCH", now, None, []), "row_version": 1}
        for i, r in enumerate(records, 1)
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(schema.engagements).values(
                key="BENCH", name="BENCH", policy_version=1, created_at="2026-01-01T00:00:00.000000Z"
            )
        )
        bulk_insert(conn, schema.findings, rows)  # the same fast path the store uses
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument("--keep", help="keep the work directory here")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hk-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "bench.sarif"
    write_sarif(path, args.results)
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB, {args.results:,} results)")
    quality.check_findings  # noqa: B018 - import cost of Great Expectations is paid before timing
    quality._validation()

    floor_s = floor(path, work / "floor.db")
    store = Store(f"sqlite:///{work / 'bench.db'}")
    engagements.init(store, "BENCH", POLICY, actor="Bench Runner")
    start = time.perf_counter()
    result = pipeline.ingest_scan(store, "BENCH", [path], actor="Bench Runner")[0]
    ingest_s = time.perf_counter() - start
    assert result.status == "ok", result.error
    rate = result.new / ingest_s
    print(
        f"handoffkit ingest : {ingest_s:6.2f} s  {rate:9,.0f} findings/s  ({result.new:,} new findings, "
        f"{result.new:,} events + evidence)"
    )
    print(f"floor (no events) : {floor_s:6.2f} s  {result.parsed / floor_s:9,.0f} findings/s")
    print(f"ratio             : {ingest_s / floor_s:6.2f}x the floor   (goal <= 2.5x, >= 20,000 findings/s)")
    store.dispose()
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
