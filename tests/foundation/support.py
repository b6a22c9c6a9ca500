"""Helpers for the foundation tests: findings built without a scanner, a short activity log, and an
attacker with write access to the database (append-only triggers dropped, rows edited in place)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from handoffkit.record import findings, ids, schema
from handoffkit.record.log import Event, append
from handoffkit.record.store import Clock, Store

ACTOR = "Ana Silva"
CHAIN_LENGTH = 30


def finding_row(engagement: str, number: int, when: datetime, **overrides: Any) -> dict[str, Any]:
    """A complete findings row as an ingest would write it (every column present)."""
    row = {c: None for c in findings.FIELDS if c != "row_version"}
    row.update(
        {
            "finding_id": ids.make(number),
            "number": number,
            "engagement": engagement,
            "fingerprint": f"fp-{number:04d}",
            "kind": "web",
            "title": f"Reflected XSS in search {number}",
            "asset_ref": "https://shop.test",
            "tool": "OWASP ZAP",
            "tool_version": "2.15.0",
            "rule_ref": "40012",
            "location": "https://shop.test/search?q=",
            "cves": "",
            "cwes": "CWE-79",
            "raw_severity": "High",
            "scanner_severity": "high",
            "cvss_vector": None,
            "cvss_score": None,
            "description": "Input is reflected unescaped.",
            "references": "https://owasp.org/xss",
            "suppressed": False,
            "external_id": None,
            "severity": "high",
            "kev": False,
            "kev_due": None,
            "triage": "validated",
            "state": "validated",
            "validated_at": when,
            "first_seen": when,
            "last_seen": when,
            "last_scan_id": None,
        }
    )
    row.update(overrides)
    return row


def add_findings(store: Store, engagement: str, count: int = 1, **overrides: Any) -> list[str]:
    """Create ``count`` validated findings (one ``finding_created`` event each); returns their ids."""
    with store.write() as conn:
        first = findings.next_number(conn)
        rows = [finding_row(engagement, n, store.now(), **overrides) for n in range(first, first + count)]
        findings.create_many(conn, store, rows, actor=ACTOR)
    return [r["finding_id"] for r in rows]


def write_log(store: Store, length: int = CHAIN_LENGTH) -> None:
    """Append ``length`` varied events in a few transactions, the clock moving between them."""
    start = store.clock.fixed or datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    done = 0
    for batch in range(3):
        store.clock.fixed = start + timedelta(hours=batch, microseconds=batch * 7)
        size = (length - done) if batch == 2 else length // 3
        with store.write() as conn:
            append(
                conn,
                store,
                [
                    Event(
                        type="note",
                        actor=("Ana Silva", "Ben Okoro", "Chen Wei")[i % 3],
                        engagement="ACME",
                        finding_id=f"HK-{i}" if i % 2 else None,
                        ticket_key=f"SEC-{i}" if i % 5 == 0 else None,
                        outcome=("success", "denied", "failure")[i % 3],
                        data={
                            "n": i,
                            "due": date(2026, 4, 1) + timedelta(days=i),
                            "score": i / 4,
                            "tags": ["b", "a"],
                            "nested": {"z": 1, "a": [None, True]},
                        },
                    )
                    for i in range(done, done + size)
                ],
            )
        done += size
    store.clock.fixed = start


# ---------------------------------------------------------------------------------------- attacker


def drop_append_only(store: Store) -> None:
    """What an attacker with write access does first: drop the triggers that refuse UPDATE/DELETE."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER events_no_update")
            conn.exec_driver_sql("DROP TRIGGER events_no_delete")
        else:
            conn.exec_driver_sql("DROP TRIGGER events_no_update_delete ON events")
            conn.exec_driver_sql("DROP TRIGGER events_no_truncate ON events")


def event_rows(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(schema.events).order_by(schema.events.c.seq))]


def chain_head(store: Store) -> tuple[int, str]:
    with store.read() as conn:
        row = conn.execute(select(schema.chain_head.c.seq, schema.chain_head.c.row_hash)).one()
    return row.seq, row.row_hash


def set_events(store: Store, rows: list[dict[str, Any]], head: tuple[int, str] | None = None) -> None:
    """Replace the whole events table (and, if given, the chain head) — the attacker's rewrite."""
    with store.engine.begin() as conn:
        conn.execute(delete(schema.events))
        if rows:
            conn.execute(insert(schema.events), rows)
        if head is not None:
            conn.execute(update(schema.chain_head).values(seq=head[0], row_hash=head[1]))


def make_store(url: str, when: datetime | None = None, seed: int = 11) -> Store:
    return Store(url, clock=Clock(fixed=when or datetime(2026, 3, 2, 9, 30, tzinfo=UTC), seed=seed))
