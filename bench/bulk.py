"""A large record for the benchmarks, built set-based from the demo: the demo programme replicated K times.

The demo generator drives the real pipeline and is the right tool up to a few thousand findings; at a
million it would take hours (it plays twelve months of scans and ticket exports in Python). This
builder takes a demo store of N findings (built by ``handoffkit.demo.build``) and writes a new SQLite
store holding K copies of the engagement's programme, interleaved in time:

- the same tables: findings, finding_cves, evidence, tickets (snapshots), ticket_findings, links and
  exceptions are copied K times with finding ids ``HK-<n + k·N>``, ticket keys renumbered
  (``SEC-<n + k·10000>``, ``INC<n + k·10000>``, ``…#<n + k·10000>``), fingerprints suffixed ``:k``,
  evidence and exception ids offset; engagements, policies, assets, KEV, scans, ticket imports and
  validations are copied once (scans and imports are shared: one file covered every copy). Evidence
  content is kept for the first copy only (the SHA-256 and location stay on every row);
- the activity log: every event that names a finding or a ticket is emitted once per copy, right
  after the original, with the same ids renumbered inside its canonical payload (text substitution
  that keeps the payload canonical), a new event id, the next ``seq``, and ``prev_hash`` / ``row_hash``
  recomputed — a valid hash chain (``handoffkit log verify`` passes); engagement-level events are
  emitted once, and each ``reconciliation_run`` carries its counts and totals multiplied by K.

    .venv/bin/python bench/bulk.py --findings 1000000 --out /tmp/hk-bench/record.db
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handoffkit import demo
from handoffkit.record import schema
from handoffkit.record.canonical import canonical_json, chain_hash
from handoffkit.record.schema import GENESIS_HASH
from handoffkit.record.store import Store

TICKET_STRIDE = 10_000
BATCH = 50_000
_IDS = re.compile(r"(?<![\w-])HK-(\d+)\b|(?<![\w-])SEC-(\d+)\b|\bINC(\d{7})\b|(example/service-\d+)#(\d+)\b")
_NUMBERS = re.compile(r'"(evidence_id|absent_evidence_id|exception_id|number)":(\d+)')
_FINGERPRINT = re.compile(r'"fingerprint":"([0-9a-f]+)"')
_EVENT_INDEXES = ("ix_events_engagement_type", "ix_events_finding", "ix_events_occurred")


class Copy:
    """How copy ``k`` renumbers ids (copy 0 keeps the demo's own ids, except unknown finding ids)."""

    def __init__(self, k: int, findings: int, evidence: int, exceptions: int) -> None:
        self.k, self.n, self.evidence, self.exceptions = k, findings, evidence, exceptions

    def finding(self, number: int) -> int:
        # an id the demo never issued (an orphan ticket's) stays unknown in every copy
        return number + self.k * self.n if number <= self.n else number * 1000 + self.k

    def _id(self, m: re.Match[str]) -> str:
        if m[1]:
            return f"HK-{self.finding(int(m[1]))}"
        if m[2]:
            return f"SEC-{int(m[2]) + self.k * TICKET_STRIDE}"
        if m[3]:
            return f"INC{int(m[3]) + self.k * TICKET_STRIDE:07d}"
        return f"{m[4]}#{int(m[5]) + self.k * TICKET_STRIDE}"

    def _number(self, m: re.Match[str]) -> str:
        value = int(m[2])
        offset = {
            "evidence_id": self.evidence,
            "absent_evidence_id": self.evidence,
            "exception_id": self.exceptions,
            "number": self.n,
        }[m[1]]
        return f'"{m[1]}":{value + self.k * offset}'

    def text(self, value: str | None) -> str | None:
        """Finding ids and ticket keys inside any text (titles, id lists, payloads)."""
        return None if value is None else _IDS.sub(self._id, value)

    def payload(self, payload: str) -> str:
        if self.k == 0:
            return self.text(payload)
        out = _NUMBERS.sub(self._number, _IDS.sub(self._id, payload))
        return _FINGERPRINT.sub(lambda m: f'"fingerprint":"{m[1]}:{self.k}"', out)


# Tickets for every band but info (the make-demo policy tickets critical and high only), so that
# the replicated record carries about 0.6 tickets per finding, as the reconciliation benchmark asks.
TICKET_BANDS = ("critical", "high", "medium", "low")


def build_source(size: int, cache: Path) -> Path:
    """The demo at ``size`` findings, built once into ``cache``."""
    path = cache / f"demo-{size}.db"
    if not path.exists():
        print(f"building the demo source ({size:,} findings) into {path} …", flush=True)
        partial = path.with_suffix(".partial.db")
        for leftover in cache.glob(partial.name + "*"):
            leftover.unlink()
        demo.build(
            f"sqlite:///{partial}",
            size=size,
            seed=7,
            workdir=cache / f"demo-{size}-inputs",
            ticket_bands=TICKET_BANDS,
            keep_inputs=False,
        )
        conn = sqlite3.connect(partial)  # the last connection to close removes the -wal and -shm files
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        partial.rename(path)
    return path


def replicate(source: Path, target: Path, copies: int, progress: Callable[[str], None] = print) -> dict[str, int]:
    """Write ``copies`` interleaved copies of the demo in ``source`` into a new store at ``target``."""
    target.unlink(missing_ok=True)
    Store(f"sqlite:///{target}").dispose()  # the real schema, triggers and chain head
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target, isolation_level=None)
    dst.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000; BEGIN;")
    for index in _EVENT_INDEXES:
        dst.execute(f"DROP INDEX {index}")
    n = src.execute("SELECT max(number) FROM findings").fetchone()[0]
    evidence = src.execute("SELECT coalesce(max(evidence_id), 0) FROM evidence").fetchone()[0]
    exceptions = src.execute("SELECT coalesce(max(exception_id), 0) FROM exceptions").fetchone()[0]
    snapshots = src.execute("SELECT coalesce(max(snapshot_id), 0) FROM tickets").fetchone()[0]
    plan = [Copy(k, n, evidence, exceptions) for k in range(copies)]
    for table in ("engagements", "policies", "assets", "kev", "scans", "ticket_imports", "validations"):
        _copy(src, dst, table, [lambda row, _cols: row])
    _copy(src, dst, "findings", [_finding_row(c) for c in plan])
    _copy(src, dst, "finding_cves", [lambda row, cols, c=c: _set(row, cols, finding_id=c.text(row[0])) for c in plan])
    _copy(src, dst, "evidence", [_evidence_row(c) for c in plan])
    _copy(src, dst, "tickets", [_ticket_row(c, snapshots) for c in plan])
    _copy(
        src, dst, "ticket_findings", [lambda row, cols, c=c: (row[0] + c.k * snapshots, c.text(row[1])) for c in plan]
    )
    _copy(
        src,
        dst,
        "links",
        [lambda row, cols, c=c: _set(row, cols, finding_id=c.text(row[0]), ticket_key=c.text(row[2])) for c in plan],
    )
    _copy(
        src,
        dst,
        "exceptions",
        [
            lambda row, cols, c=c: _set(row, cols, exception_id=row[0] + c.k * exceptions, finding_id=c.text(row[1]))
            for c in plan
        ],
    )
    progress(f"copied the record tables ({copies} copies of {n:,} findings); writing the activity log …")
    seq, head = _events(src, dst, plan, progress)
    dst.execute("UPDATE chain_head SET seq = ?, row_hash = ? WHERE id = 1", (seq, head))
    dst.execute("COMMIT")
    progress("indexing the activity log …")
    for statement in src.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name IN (?, ?, ?)", _EVENT_INDEXES
    ).fetchall():
        dst.execute(statement[0])
    dst.execute("ANALYZE")
    counts = {"findings": dst.execute("SELECT count(*) FROM findings").fetchone()[0], "events": seq}
    src.close()
    dst.close()
    return counts


def _set(row: tuple, cols: list[str], **values: object) -> tuple:
    out = list(row)
    for name, value in values.items():
        out[cols.index(name)] = value
    return tuple(out)


def _finding_row(c: Copy) -> Callable[[tuple, list[str]], tuple]:
    def row_of(row: tuple, cols: list[str]) -> tuple:
        number = row[cols.index("number")]
        fingerprint = row[cols.index("fingerprint")]
        return _set(
            row,
            cols,
            finding_id=f"HK-{c.finding(number)}",
            number=c.finding(number),
            fingerprint=fingerprint if c.k == 0 else f"{fingerprint}:{c.k}",
        )

    return row_of


def _evidence_row(c: Copy) -> Callable[[tuple, list[str]], tuple]:
    def row_of(row: tuple, cols: list[str]) -> tuple:
        return _set(
            row,
            cols,
            evidence_id=row[0] + c.k * c.evidence,
            finding_id=c.text(row[1]),
            content=row[cols.index("content")] if c.k == 0 else None,
        )

    return row_of


def _ticket_row(c: Copy, snapshots: int) -> Callable[[tuple, list[str]], tuple]:
    def row_of(row: tuple, cols: list[str]) -> tuple:
        mapped = {name: c.text(row[cols.index(name)]) for name in ("key", "title", "labels", "finding_ids", "url")}
        return _set(row, cols, snapshot_id=row[0] + c.k * snapshots, **mapped)

    return row_of


def _copy(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str, transforms: list[Callable[[tuple, list[str]], tuple]]
) -> None:
    cursor = src.execute(f"SELECT * FROM {table}")
    cols = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    names = ", ".join(f'"{c}"' for c in cols)  # "references" is a column name and a keyword
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(cols))})"
    for transform in transforms:
        for start in range(0, len(rows), BATCH):
            dst.executemany(insert, [transform(r, cols) for r in rows[start : start + BATCH]])


_EVENT_COLS = tuple(c.name for c in schema.events.columns)


def _events(
    src: sqlite3.Connection, dst: sqlite3.Connection, plan: list[Copy], progress: Callable[[str], None]
) -> tuple[int, str]:
    insert = f"INSERT INTO events ({', '.join(_EVENT_COLS)}) VALUES ({', '.join('?' * len(_EVENT_COLS))})"
    seq, prev, batch, started = 0, GENESIS_HASH, [], time.perf_counter()
    for row in _source_events(src):
        copies = plan if (row["finding_id"] or row["ticket_key"]) else plan[:1]
        for c in copies:
            seq += 1
            event_id = (
                row["event_id"]
                if c.k == 0
                else str(uuid.UUID(bytes=hashlib.md5(f"{row['event_id']}:{c.k}".encode()).digest(), version=4))
            )
            payload = _payload(row, c, seq, event_id, len(plan))
            row_hash = chain_hash(prev, payload)
            batch.append(
                (
                    seq,
                    event_id,
                    row["occurred_at"],
                    row["actor"],
                    row["outcome"],
                    row["type"],
                    row["engagement"],
                    c.text(row["finding_id"]),
                    c.text(row["ticket_key"]),
                    row["state"],
                    row["disposition"],
                    row["severity"],
                    row["origin"],
                    payload,
                    prev,
                    row_hash,
                )
            )
            prev = row_hash
        if len(batch) >= BATCH:
            dst.executemany(insert, batch)
            batch.clear()
            if seq % (BATCH * 20) < len(plan):
                progress(f"  {seq:,} events ({time.perf_counter() - started:.0f} s)")
    dst.executemany(insert, batch)
    return seq, prev


def _source_events(src: sqlite3.Connection) -> Iterator[dict]:
    cursor = src.execute(f"SELECT {', '.join(_EVENT_COLS[:-2])} FROM events ORDER BY seq")
    names = [d[0] for d in cursor.description]
    for values in cursor:
        yield dict(zip(names, values, strict=True))


def _payload(row: dict, c: Copy, seq: int, event_id: str, copies: int) -> str:
    payload = row["payload"].replace(f',"seq":{row["seq"]},"severity":', f',"seq":{seq},"severity":', 1)
    payload = payload.replace(f'"event_id":"{row["event_id"]}"', f'"event_id":"{event_id}"', 1)
    if row["type"] == "reconciliation_run":
        doc = json.loads(payload)
        for part in ("counts", "totals"):
            doc["data"][part] = {k: v * copies for k, v in doc["data"].get(part, {}).items()}
        return canonical_json(doc)
    return c.payload(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--source-size", type=int, default=2000, help="findings in the demo that is replicated")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hk-bench"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    source = build_source(args.source_size, args.cache)
    copies = math.ceil(args.findings / args.source_size)
    out = args.out or args.cache / f"record-{args.findings}.db"
    started = time.perf_counter()
    counts = replicate(source, out, copies)
    print(
        f"{out}: {counts['findings']:,} findings, {counts['events']:,} events ({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
