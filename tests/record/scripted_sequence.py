"""One scripted sequence of mutations on a fixed clock, dumped as every event's stored bytes and every
finding's stored row. Run in subprocesses under different ``TZ`` settings and against both backends;
the dumps must be identical byte for byte.

    python scripted_sequence.py DATABASE_URL [CLOCK_ZONE]   → JSON on stdout

``CLOCK_ZONE`` is the zone the fixed clock's instants are *expressed* in (the instants are the same).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from handoffkit.errors import RefusedError
from handoffkit.record import engagements, findings, ids, log, schema
from handoffkit.record.store import Clock, Store
from handoffkit.workflow import calibration, exceptions, routing, triage, verification

DATA = Path(__file__).resolve().parents[1] / "data"
DECOMPOSED = "Cafe\u0301"  # "Café" with a combining accent: the log must store it composed (NFC)
# 20:30 UTC: already the next calendar day in Asia/Kolkata (+05:30)
START = datetime(2026, 3, 1, 20, 30, 0, 123456, tzinfo=UTC)


def _row(number: int, asset: str, severity: str, when: datetime) -> dict[str, Any]:
    return {c: None for c in findings.FIELDS if c != "row_version"} | {
        "finding_id": ids.make(number),
        "number": number,
        "engagement": "ACME",
        "fingerprint": f"fp-{number}",
        "kind": "web",
        "title": f"{DECOMPOSED} search reflects input {number}",
        "asset_ref": asset,
        "tool": "OWASP ZAP",
        "tool_version": "2.15.0",
        "rule_ref": "40012",
        "location": f"{asset}/search?q=",
        "cves": "CVE-2024-3094" if number == 2 else "",
        "cwes": "CWE-79",
        "raw_severity": severity.title(),
        "scanner_severity": severity,
        "cvss_vector": None,
        "cvss_score": 6.1,
        "description": "Input is reflected\tunescaped.",
        "references": "",
        "suppressed": False,
        "severity": severity,
        "kev": number == 2,
        "kev_due": date(2026, 3, 20) if number == 2 else None,
        "triage": "pending",
        "state": "new",
        "first_seen": when,
        "last_seen": when,
    }


def run(url: str, clock_zone: str = "UTC") -> dict[str, Any]:
    zone = ZoneInfo(clock_zone)
    store = Store(url, clock=Clock(fixed=START.astimezone(zone), seed=5))

    def at(minutes: int) -> None:
        store.clock.fixed = (START + timedelta(minutes=minutes)).astimezone(zone)

    engagements.init(
        store,
        "ACME",
        DATA / "policy.yaml",
        owners_path=DATA / "owners.csv",
        actor="Ana Silva",
        name=f"{DECOMPOSED} programme",
    )
    at(5)
    assets = [
        "https://shop.test",
        "https://shop.test/cart",
        "https://queue.test",
        "https://legacy.test",
        "db-01.corp.test",
    ]
    with store.write() as conn:
        findings.create_many(
            conn,
            store,
            [
                _row(n, a, s, store.now())
                for n, (a, s) in enumerate(
                    zip(assets, ["high", "medium", "low", "critical", "info"], strict=True), start=1
                )
            ],
            actor="scanner operator Eve Marsh",
            data=[{"n": n} for n in range(5)],
        )
    at(65)
    triage.triage(
        store, ["HK-1", "HK-2", "HK-3", "HK-4", "HK-5"], "validated", reason="confirmed by hand", actor="Ben  Okoro"
    )
    at(70)
    calibration.calibrate(
        store,
        "HK-1",
        cvss="CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
        env_from_asset=True,
        reason="internet-facing checkout",
        actor="Chen Wei",
    )
    at(75)
    exceptions.grant(
        store,
        "HK-5",
        approver="Dana Whitfield",
        reason="compensating WAF rule",
        expires=date(2026, 6, 30),
        actor="Ana Silva",
    )
    # expires "tomorrow" in UTC, but it is already that day in Kolkata: the decision must not depend on
    # the zone the clock's instant happens to be expressed in
    exceptions.grant(
        store,
        "HK-3",
        approver="Dana Whitfield",
        reason="fix ships tomorrow",
        expires=date(2026, 3, 2),
        actor="Ana Silva",
    )
    try:
        exceptions.grant(
            store, "HK-1", approver="  ana SILVA ", reason="self-approved", expires=date(2026, 6, 30), actor="Ana Silva"
        )
    except RefusedError:
        pass
    else:
        raise AssertionError("a self-approved exception was granted")
    at(24 * 60)
    routing.route(store, "ACME", actor="Ana Silva")
    at(24 * 60 + 30)
    verification.verify(store, "HK-2", kind="commit", evidence="example/shop@0123abcd", actor="Chen Wei")
    log.log_event(
        store,
        log.Event(
            type="note",
            actor="Ana Silva",
            engagement="ACME",
            data={
                "decomposed": DECOMPOSED,
                f"key {DECOMPOSED}": [0.1, 1e-07, 2.5e20, -0.0, 7],
                "instant": datetime(2026, 3, 1, 23, 59, 59, 5, tzinfo=ZoneInfo("America/New_York")),
                "day": date(2026, 2, 28),
                "flags": {"z": True, "a": None},
                "tags": {"b", "a"},
            },
        ),
    )
    log.verify_logged(store, "Ana Silva")

    with store.read() as conn:
        logged = [
            {k: r._mapping[k] for k in ("seq", "occurred_at", "payload", "prev_hash", "row_hash")}
            for r in conn.execute(select(schema.events).order_by(schema.events.c.seq))
        ]
        stored = [
            findings.canonical_row(r._mapping)
            for r in conn.execute(select(schema.findings).order_by(schema.findings.c.number))
        ]
        head = list(log.head(conn))
    store.dispose()
    return {
        "events": logged,
        "findings": stored,
        "head": head,
        "local_offset": time.strftime("%z", time.localtime(START.timestamp())),
    }


if __name__ == "__main__":
    json.dump(run(sys.argv[1], *sys.argv[2:]), sys.stdout, ensure_ascii=True, sort_keys=True)
