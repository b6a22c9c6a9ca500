"""A hostile engagement: every text field the record holds carries :data:`CANARY`.

Built through the real pipeline — a SARIF scan whose titles, messages, rule ids, file paths and
repository (the asset) are the canary, an owners map whose role, team and owner are the canary, a Jira
export whose titles, labels, assignee and description are the canary, decisions whose reasons and actors
are the canary — so every string a report page shows came from the record the way a scanner's would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from handoffkit import reconcile
from handoffkit.demo import formats
from handoffkit.ingest import pipeline
from handoffkit.record import engagements
from handoffkit.record.store import Clock, Store
from handoffkit.tickets import snapshots
from handoffkit.workflow import calibration, routing, triage
from tests.builders import DATA

CANARY = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
ENGAGEMENT = "HOSTILE"
REPO = "https://git.test/" + CANARY
POLICY = DATA / "policy.yaml"


def _at(store: Store, day: int) -> None:
    store.clock.fixed = datetime(2026, 7, day, 9, tzinfo=UTC)


def build(url: str, workdir: Path) -> str:
    """Build the hostile engagement into ``url``; returns the engagement key."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = Store(url, clock=Clock(fixed=datetime(2026, 7, 1, 9, tzinfo=UTC), seed=5))
    owners = workdir / "owners.csv"
    owners.write_text(
        "asset_ref,owner_role,owner_team,owner_name,exposure,data_sensitivity,lifecycle\n"
        f'https://git.test/*,"{CANARY}","{CANARY}","{CANARY}",internet,high,active\n',
        encoding="utf-8",
    )
    engagements.init(store, ENGAGEMENT, POLICY, owners_path=owners, actor=CANARY, name=CANARY)
    results = [
        {
            "rule": f"hk.{CANARY}.{n}",
            "title": f"{CANARY} {n}",
            "level": level,
            "score": score,
            "cwe": "CWE-79",
            "message": CANARY,
            "uri": f"src/{CANARY}/{n}.py",
            "line": n,
            "fingerprint": f"c{n}",
        }
        for n, (level, score) in enumerate(
            [("error", 9.8), ("error", 8.1), ("warning", 5.4), ("note", 2.2), ("none", 0.0)], start=1
        )
    ]
    scan = workdir / "scan.sarif"
    scan.write_bytes(
        formats.sarif(
            [
                {
                    "tool": "semgrep",
                    "version": "1.93.0",
                    "repo": REPO,
                    "results": results,
                    "started": "2026-07-01T09:00:00Z",
                }
            ]
        )
    )
    pipeline.ingest_scan(store, ENGAGEMENT, [scan], actor=CANARY)
    ids = [f"HK-{n}" for n in range(1, 6)]
    _at(store, 2)
    triage.triage(store, ids, "validated", reason=CANARY, actor=CANARY)
    _at(store, 3)
    calibration.calibrate(store, "HK-2", reason=CANARY, actor=CANARY, severity="low")
    _at(store, 4)
    routing.route(store, ENGAGEMENT, actor=CANARY)
    _at(store, 10)
    export = workdir / "jira.csv"
    export.write_bytes(
        formats.jira_csv(
            [
                {
                    "key": f"SEC-{n}",
                    "id": str(n),
                    "title": f"[{fid}] {CANARY}",
                    "status": status,
                    "category": category,
                    "priority": "Lowest",
                    "resolution": "Done" if category == "done" else None,
                    "assignee": CANARY,
                    "created": "2026-07-10T09:00:00.000+0000",
                    "updated": "2026-07-10T09:00:00.000+0000",
                    "labels": [fid, CANARY],
                    "description": CANARY,
                    "finding_field": fid,
                }
                for n, (fid, status, category) in enumerate(
                    [("HK-1", "Done", "done"), ("HK-999", "To Do", "todo")], start=1
                )
            ]
        )
    )
    snapshots.ingest_tickets(store, ENGAGEMENT, [export], system="jira", actor=CANARY)
    _at(store, 15)
    reconcile.reconcile(store, ENGAGEMENT, record=True, actor=CANARY)
    store.dispose()
    return ENGAGEMENT
