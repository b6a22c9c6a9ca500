"""Fixtures for the ticket, closure and reconciliation tests: the scanner builder of the governance tests
plus ticket exports written with ``handoffkit.demo.formats`` (Jira CSV, GitHub REST, ServiceNow Table API)
and ingested through ``snapshots.ingest_tickets``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from governance.builders import ACTOR, SHOP, Record, route, validate

from handoffkit.demo import formats
from handoffkit.record.store import Store
from handoffkit.tickets import snapshots

STAMP = "2026-03-02T10:00:00.000+0000"
WRITERS = {"jira": formats.jira_csv, "github": formats.github_issues, "servicenow": formats.servicenow}
PRIORITY = {
    "jira": {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low", "info": "Lowest"},
    "github": {b: f"severity:{b}" for b in ("critical", "high", "medium", "low", "info")},
    "servicenow": {
        "critical": "1 - Critical",
        "high": "2 - High",
        "medium": "3 - Moderate",
        "low": "4 - Low",
        "info": "5 - Planning",
    },
}
DONE = {"category": "done", "status": "Done", "resolution": "Done"}
IN_PROGRESS = {"category": "in_progress", "status": "In Progress", "resolution": None}


def ticket(
    system: str,
    number: int,
    finding_ids: list[str],
    *,
    band: str = "high",
    title: str | None = None,
    assignee: str | None = "Priya Raman",
    labels: list[str] | None = None,
    with_token: bool = True,
    finding_field: bool = True,
    **state: Any,
) -> dict[str, Any]:
    """One ticket row for :data:`WRITERS` (keys per system: SEC-n, example/shop#n, INC000000n)."""
    key = {"jira": f"SEC-{number}", "github": f"example/shop#{number}", "servicenow": f"INC{number:07d}"}[system]
    tokens = " ".join(f"[{f}]" for f in finding_ids) if with_token else ""
    row = {
        "key": key,
        "id": str(number),
        "title": title or f"{tokens} Fix it".strip(),
        "status": "To Do",
        "category": "todo",
        "priority": PRIORITY[system][band],
        "resolution": None,
        "assignee": assignee,
        "created": STAMP,
        "updated": STAMP,
        "description": "See the record.\n" + tokens,
        "labels": labels if labels is not None else [*finding_ids, "security"],
        "finding_field": " ".join(finding_ids) if finding_field else "",
    }
    if system == "github":
        row["labels"] = [*row["labels"], row["priority"]]
    row.update(state)
    return row


@dataclass
class Exports:
    """Writes one export file per call and ingests it; returns the file's result."""

    store: Store
    engagement: str
    workdir: Path
    _n: itertools.count = field(default_factory=lambda: itertools.count(1))

    def write(self, system: str, rows: list[dict[str, Any]]) -> Path:
        suffix = ".csv" if system == "jira" else ".json"
        path = self.workdir / f"{system}-export-{next(self._n)}{suffix}"
        path.write_bytes(WRITERS[system](rows))
        return path

    def ingest(self, system: str, *rows: dict[str, Any]) -> snapshots.TicketFileResult:
        [result] = snapshots.ingest_tickets(
            self.store, self.engagement, [self.write(system, list(rows))], system=system, actor=ACTOR
        )
        assert result.status == "ok", result.error
        return result


@pytest.fixture
def rec(store: Store, engagement: str, tmp_path: Path) -> Record:
    return Record(store, engagement, tmp_path)


@pytest.fixture
def exports(store: Store, engagement: str, tmp_path: Path) -> Exports:
    return Exports(store, engagement, tmp_path)


@pytest.fixture
def routed(store: Store, rec: Record) -> list[str]:
    """Two high findings on shop.test (owner Priya Raman) routed to a ticket."""
    ids = rec.web(SHOP, ("Routed SQLi", 3), ("Routed XSS", 3))
    validate(store, ids)
    route(store)
    return ids
