"""Benchmark: ingesting a 200,000-result SARIF file into a fresh SQLite store.

Prints findings/s for ``pipeline.ingest_scan`` (strict JSON, parsing, dedup, the Great Expectations gate,
findings + raw-item evidence + one hash-chained event per finding, all in one transaction) against two
floors, alternating in each round (the import of Great Expectations is paid before any timing, so the
figures are marginal throughput; each timing starts after ``os.sync``, so none pays for the previous
one's writes):

- the minimal floor: plain ``json.load``, a hand-written extraction of rule, location, level, message
  and fingerprint, and one bulk insert of those finding rows — no events, no evidence, no checks and
  not handoffkit's own parser. Goal: ingest <= 3x this floor.
- the parser floor: ``json.load`` + handoffkit's SARIF parser + one bulk insert of the full finding rows
  (no events, evidence or checks). Goal: <= 2.5x.
- the record floor: the rows the round's ingest wrote (its findings, evidence and events, read back
  beforehand as the driver's tuples) inserted into a fresh store through the store's own write path
  (same schema, indexes, pragmas and bulk transaction), and committed. No parsing, no checks, no payload
  or hash to compute: what writing the record's bytes costs by itself, which the ingest cannot go below.
  With the parse alone (``json.load`` + handoffkit's SARIF parser, timed too) it is a lower bound of
  the ingest: every other step (the gate, the payloads, the hashes) taken as free.

    .venv/bin/python bench/ingest.py [--results 200000] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, insert, select

from handoffkit.demo import formats
from handoffkit.ingest import pipeline, quality, sarif
from handoffkit.record import engagements, log, schema
from handoffkit.record.store import Store, bulk_insert, driver_rows, insert_tuples

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


def minimal_floor(path: Path, db: Path) -> float:
    """json.load + rule, location, level, message and fingerprint by hand + one bulk insert of those rows."""
    engine = create_engine(f"sqlite:///{db}")
    schema.metadata.create_all(engine, tables=[schema.engagements, schema.findings])
    start = time.perf_counter()
    with open(path, "rb") as fh:
        doc = json.load(fh)
    rows, number = [], 0
    for run in doc["runs"]:
        repo = run["versionControlProvenance"][0]["repositoryUri"]
        for result in run["results"]:
            number += 1
            where = result["locations"][0]["physicalLocation"]
            rows.append(
                {
                    "finding_id": f"HK-{number}", "number": number, "engagement": "BENCH", "kind": "code",
                    "fingerprint": next(iter(result["partialFingerprints"].values())), "rule_ref": result["ruleId"],
                    "title": result["message"]["text"], "asset_ref": repo,
                    "location": f"{where['artifactLocation']['uri']}:{where['region']['startLine']}",
                    "tool": run["tool"]["driver"]["name"], "raw_severity": result.get("level", "warning"),
                    "scanner_severity": "medium", "severity": "medium", "cves": "", "cwes": "", "references": "",
                    "suppressed": False, "kev": False, "triage": "pending", "state": "new",
                    "first_seen": "2026-01-01T00:00:00.000000Z", "last_seen": "2026-01-01T00:00:00.000000Z",
                    "row_version": 1,
                }
            )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            insert(schema.engagements).values(
                key="BENCH", name="BENCH", policy_version=1, created_at="2026-01-01T00:00:00.000000Z"
            )
        )
        bulk_insert(conn, schema.findings, rows)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def parsed(path: Path) -> list:
    """The file's records: json.load + handoffkit's SARIF parser (the parser floor's and the parse's part)."""
    with open(path, "rb") as fh:
        doc = json.load(fh)
    return sarif.parse(doc, str(path)).records


def floor(path: Path, db: Path) -> float:
    """json.load + the same extraction + one bulk insert of finding rows (no events, evidence, checks)."""
    engine = create_engine(f"sqlite:///{db}")
    schema.metadata.create_all(engine, tables=[schema.engagements, schema.findings])
    start = time.perf_counter()
    records = parsed(path)
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


def parse_only(path: Path) -> float:
    """json.load + handoffkit's SARIF parser, nothing written."""
    start = time.perf_counter()
    parsed(path)
    return time.perf_counter() - start


RECORD_TABLES = (schema.scans, schema.findings, schema.evidence, schema.events)
"""The tables an ingest writes rows to, in an order their foreign keys accept."""


def record_floor(source: Path, db: Path) -> float:
    """The rows the ingest wrote to ``source``, inserted into a fresh store at ``db`` in one bulk write."""
    store = Store(f"sqlite:///{db}")
    engagements.init(store, "BENCH", POLICY, actor="Bench Runner")  # the same start as the ingest's store
    with store.read() as conn:
        head, _ = log.head(conn)
    written = Store(f"sqlite:///{source}")
    with written.read() as conn:
        # The init's own events are in the new store already.
        rows = {
            t: driver_rows(conn, select(t).where(t.c.seq > head) if t is schema.events else select(t))
            for t in RECORD_TABLES
        }
    written.dispose()
    os.sync()
    start = time.perf_counter()
    with store.write(bulk=True) as conn:
        for table, (names, params) in rows.items():
            insert_tuples(conn, table, names, params)
    elapsed = time.perf_counter() - start
    store.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", help="keep the work directory here")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hk-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "bench.sarif"
    write_sarif(path, args.results)
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB, {args.results:,} results)")
    quality.check_findings  # noqa: B018 - import cost of Great Expectations is paid before timing
    quality._validation()

    ingest, floors, minimal, record, parse = [], [], [], [], []
    for r in range(args.rounds):
        # Each timing starts with the previous one's hundreds of megabytes on disk, not still being
        # written back by the kernel while it runs (os.sync), so no run pays for the one before it.
        os.sync()
        minimal.append(minimal_floor(path, work / f"minimal-{r}.db"))
        os.sync()
        floors.append(floor(path, work / f"floor-{r}.db"))
        store = Store(f"sqlite:///{work / f'bench-{r}.db'}")
        engagements.init(store, "BENCH", POLICY, actor="Bench Runner")
        os.sync()
        start = time.perf_counter()
        result = pipeline.ingest_scan(store, "BENCH", [path], actor="Bench Runner")[0]
        ingest.append(time.perf_counter() - start)
        store.dispose()
        assert result.status == "ok", result.error
        record.append(record_floor(work / f"bench-{r}.db", work / f"record-{r}.db"))
        parse.append(parse_only(path))
        print(
            f"round {r + 1}: ingest {ingest[-1]:6.2f} s, parser floor {floors[-1]:6.2f} s, "
            f"minimal floor {minimal[-1]:6.2f} s, record floor {record[-1]:6.2f} s, parse {parse[-1]:6.2f} s",
            flush=True,
        )
        for name in ("minimal", "floor", "bench", "record") if not args.keep else ():
            for made in work.glob(f"{name}-{r}.db*"):  # hundreds of MB each: one round's at a time on disk
                made.unlink()
    best, best_floor, best_minimal, best_record = min(ingest), min(floors), min(minimal), min(record)
    bound = best_record + min(parse)
    print(
        f"handoffkit ingest : {best:6.2f} s  {result.new / best:9,.0f} findings/s  ({result.new:,} new findings, "
        f"{result.new:,} events + evidence; best of {args.rounds})"
    )
    print(f"parser floor      : {best_floor:6.2f} s  {result.parsed / best_floor:9,.0f} findings/s")
    print(f"minimal floor     : {best_minimal:6.2f} s  {result.parsed / best_minimal:9,.0f} findings/s")
    print(f"record floor      : {best_record:6.2f} s  (the ingest's own rows, inserted and committed, nothing else)")
    print(f"ratio             : {best / best_minimal:6.2f}x the minimal floor (goal <= 3x)")
    print(f"                    {best / best_floor:6.2f}x the parser floor (goal <= 2.5x)")
    print(f"                    {best / best_record:6.2f}x the record floor")
    print(f"lower bound       : {bound:6.2f} s  (record floor + parse: the ingest with every other step free)")
    print(f"                    the record floor alone is {best_record / best_minimal:4.2f}x the minimal floor,")
    print(f"                    the lower bound {bound / best_minimal:4.2f}x")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
