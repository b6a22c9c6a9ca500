"""The vocabulary of the record: severity bands, states, dispositions and the normalised shapes that
parsers hand to the store. Nothing here touches a database or a file.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low", "info")
"""Severity bands, most severe first."""

SEVERITY_RANK = {name: rank for rank, name in enumerate(reversed(SEVERITIES))}
"""info=0 … critical=4, for comparing bands (drift up or down)."""

DISPOSITIONS = ("ticket", "sprint_backlog", "quarterly_cycle", "security_record_only")
"""Where the policy may route a validated, owned, non-excepted finding."""
BATCH_DEFAULTS: dict[str, str] = {"sprint_backlog": "sprint", "quarterly_cycle": "quarter"}
"""The dispositions whose findings may be handed over in batches, each with the batch cadence of a band
naming none: a sprint backlog per sprint, a quarterly cycle per quarter; a ``ticket`` band gets a ticket
per finding and a record-only band none at all (``payload --batch``)."""

HOLDS = ("paused_no_owner", "held_exception", "held_decommissioning", "held_decision", "held_not_validated")
"""Routing outcomes that keep a finding out of every queue, and why."""

TRIAGE = ("pending", "validated", "false_positive", "duplicate")

STATES = (
    "new",
    "validated",
    "false_positive",
    "duplicate",
    "routed",
    "paused_no_owner",
    "excepted",
    "held_back",
    "awaiting_verification",
    "verified_closed",
    "reopened",
)
"""Lifecycle states (docs/lifecycle.md). Ticket closure never moves past awaiting_verification."""

CLOSED_STATES = ("verified_closed", "false_positive", "duplicate")
"""States in which a finding no longer needs work."""

OPEN_STATES = frozenset(STATES) - set(CLOSED_STATES)

EVIDENCE_KINDS = (
    "scanner_output",
    "request_response",
    "screenshot",
    "absent_in_rescan",
    "rescan",
    "retest",
    "commit",
    "attestation",
)

VERIFICATION_KINDS = ("rescan", "retest", "commit", "attestation")

FINDING_KINDS = ("vulnerability", "misconfiguration", "secret", "code", "web", "host", "finding")
"""What a parsed record is, for ``parsed_by_kind`` (Trivy, for one, mixes three of them)."""

OUTCOMES = ("success", "denied", "failure")


def severity_band(value: str | None) -> str:
    """Return the band name for ``value`` (case-insensitive), or raise ValueError."""
    band = (value or "").strip().lower()
    aliases = {"informational": "info", "information": "info", "none": "info", "moderate": "medium"}
    band = aliases.get(band, band)
    if band not in SEVERITIES:
        raise ValueError(f"unknown severity {value!r}; expected one of {', '.join(SEVERITIES)}")
    return band


def band_for_score(score: float | None) -> str | None:
    """CVSS qualitative rating (v3.x / v4.0 share the bands): 0 → info, 0.1-3.9 low, … 9.0+ critical."""
    if score is None:
        return None
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0.0:
        return "low"
    return "info"


def fingerprint(*parts: object) -> str:
    """A stable identity from the parts that do not change between rescans (tool, rule, asset, place).

    Parts are joined with a unit separator so that ("a|b", "c") and ("a", "b|c") differ.
    """
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class NormalisedFinding:
    """One scanner result in the shape every parser produces and the store ingests."""

    fingerprint: str
    title: str
    asset_ref: str
    tool: str
    severity: str
    """Band mapped from the tool's own severity (see each parser's docstring)."""
    raw_severity: str
    kind: str = "finding"
    tool_version: str | None = None
    rule_ref: str | None = None
    location: str | None = None
    cves: tuple[str, ...] = ()
    cwes: tuple[str, ...] = ()
    cvss_vector: str | None = None
    cvss_score: float | None = None
    description: str | None = None
    references: tuple[str, ...] = ()
    suppressed: bool = False
    raw: bytes = b""
    """The scanner's own item, stored as evidence (the ticket only ever links to it)."""
    raw_media_type: str = "application/json"
    source_ref: str = ""
    """Where the item sits in its file (JSON path, XML element path or CSV line), for error messages."""
    external_id: str | None = None
    """The source system's own id for the item (a DefectDojo finding id), used to map its Jira links."""


@dataclass(slots=True)
class ParseResult:
    """What a parser read from one file."""

    format: str
    tool: str
    tool_version: str | None = None
    records: list[NormalisedFinding] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    """Reason → count of items deliberately not turned into records."""
    scope_assets: set[str] = field(default_factory=set)
    """Every asset the scan covered, including those with no result (a host with zero items)."""
    tool_scopes: dict[str, set[str]] = field(default_factory=dict)
    """For a file holding several tools' runs (SARIF): the assets each tool covered. Empty when one tool
    covered :attr:`scope_assets` (see :meth:`scopes`)."""
    warnings: list[str] = field(default_factory=list)
    scanned_at: datetime | None = None
    """When the scan ran, where the file says so (the latest such instant it holds, UTC)."""

    def scopes(self) -> dict[str, set[str]]:
        """Tool → the assets it covered in this file, its results' assets included: a rescan can only
        prove a finding absent where the finding's own tool looked. Records naming a tool the file does
        not declare (an aggregator's export) add no scope: their absence proves nothing."""
        covered = {tool: set(assets) for tool, assets in self.tool_scopes.items()} or {
            self.tool: set(self.scope_assets)
        }
        for r in self.records:
            if r.tool in covered:
                covered[r.tool].add(r.asset_ref)
        return covered

    @property
    def parsed_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(r.kind for r in self.records).items()))


@dataclass(slots=True)
class TicketSnapshot:
    """One ticket as a ticket-system export showed it at import time."""

    system: str
    key: str
    title: str
    status: str
    status_category: str
    """todo / in_progress / done, from the system's own status category where it has one."""
    priority: str | None = None
    assignee: str | None = None
    labels: tuple[str, ...] = ()
    description: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    """Custom fields by their display name (Jira ``Custom field (X)`` → ``X``), values as exported."""
    url: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    resolution: str | None = None
    source_ref: str = ""
