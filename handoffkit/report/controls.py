"""Which framework controls each activity-log event evidences: the one mapping, with the reason for each.

ISO/IEC 27001:2022 A.8.8 (technical vulnerabilities), SOC 2 CC7.1 (detection), CC7.2 (response) and
CC8.1 (change management), PCI DSS v4.0 6.3.3 (patching within the defined time) and 11.3 (vulnerability
scans), NIST SP 800-53 RA-5 (vulnerability monitoring), SI-2 (flaw remediation) and CM-3 (configuration
change control). An event evidences the controls of its type; a verified closure also those of the
evidence that closed it (its ``detail``: a commit is a change, a rescan is a scan). docs/controls.md
shows :data:`RULES` as a table; a test holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

FRAMEWORKS = ("iso27001", "soc2", "pci_dss", "nist_800_53")
"""The control-mapping columns of the activity-log CSV, in file order."""


@dataclass(frozen=True)
class Rule:
    """Events of ``types`` (with ``detail``, when set) evidence ``controls``, one tuple per framework."""

    types: tuple[str, ...]
    controls: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
    reason: str
    detail: str | None = None


_VULN = ("A.8.8",)
RULES: tuple[Rule, ...] = (
    Rule(
        ("scan_ingested", "scan_refused", "ingest_duplicate", "finding_created", "finding_seen"),
        (_VULN, ("CC7.1",), ("11.3",), ("RA-5",)),
        "a scan read (or refused) and what it found: vulnerability detection",
    ),
    Rule(
        ("absent_in_rescan",),
        (_VULN, ("CC7.1",), ("11.3",), ("RA-5", "SI-2")),
        "a rescan no longer reports the finding: detection that also evidences remediation",
    ),
    Rule(
        ("kev_loaded", "kev_flagged", "finding_triaged", "severity_calibrated"),
        (_VULN, ("CC7.1",), ("6.3.3",), ("RA-5",)),
        "assessing a finding: exploitation known, real or not, how severe in this environment",
    ),
    Rule(
        (
            "finding_routed",
            "routing_decided",
            "finding_escalated",
            "escalation_run",
            "routing_run",
            "payload_issued",
            "batch_issued",
            "finding_batched",
            "exception_granted",
            "exception_revoked",
            "exception_expired",
            "ticket_import",
            "ticket_import_refused",
            "ticket_import_duplicate",
            "ticket_sync_refused",
            "push_run",
            "push_refused",
            "ticket_seen",
            "ticket_reopened",
            "orphan_ticket_seen",
            "severity_drift_observed",
            "reconciliation_run",
        ),
        (_VULN, ("CC7.2",), ("6.3.3",), ("SI-2",)),
        "deciding and following the response: routing, accepted risk, the tickets and their reconciliation",
    ),
    Rule(
        (
            "link_added",
            "link_removed",
            "ticket_renamed",
            "ticket_split",
            "ticket_closed_observed",
            "ticket_created",
            "ticket_found",
            "ticket_updated",
            "ticket_update_issued",
            "ticket_adopted",
        ),
        (_VULN, ("CC7.2", "CC8.1"), ("6.3.3",), ("SI-2", "CM-3")),
        "the ticket is the change record: creating, linking, updating, renaming, splitting and closing it "
        "track the change",
    ),
    Rule(
        ("finding_verified_closed",),
        (_VULN, ("CC7.2",), ("6.3.3",), ("SI-2",)),
        "a finding closed on verification evidence: remediation proven (a retest or an attestation)",
    ),
    Rule(
        ("finding_verified_closed",),
        (_VULN, ("CC7.2", "CC8.1"), ("6.3.3",), ("SI-2", "CM-3")),
        "closed on a remediation commit: the fix is a controlled change",
        detail="commit",
    ),
    Rule(
        ("finding_verified_closed",),
        (_VULN, ("CC7.2",), ("6.3.3", "11.3"), ("RA-5", "SI-2")),
        "closed because a rescan no longer finds it: remediation proven by a vulnerability scan",
        detail="rescan",
    ),
    Rule(
        ("finding_reopened",),
        (_VULN, ("CC7.1", "CC7.2"), ("6.3.3", "11.3"), ("RA-5", "SI-2")),
        "a later scan finds a verified-closed finding again: detection, and a remediation that did not hold",
    ),
    Rule(
        ("policy_versioned", "owners_loaded", "people_loaded", "engagement_created", "engagement_renamed"),
        (_VULN, ("CC8.1",), ("6.3.3",), ("CM-3",)),
        "the handoff policy and ownership are configuration, changed under control and versioned",
    ),
    Rule(
        ("log_verified", "log_exported", "report_rendered", "portfolio_rendered", "digest_sent"),
        (_VULN, ("CC7.2",), (), ()),
        "oversight of the programme: the log checked and exported, leadership's report or portfolio rendered, "
        "the digest sent",
    ),
)

UNMAPPED = ("", "", "", "")


def _index() -> dict[tuple[str, str | None], tuple[str, str, str, str]]:
    found: dict[tuple[str, str | None], tuple[str, str, str, str]] = {}
    for rule in RULES:
        for type_ in rule.types:
            key = (type_, rule.detail)
            if key in found:
                raise ValueError(f"the control mapping names {key} twice")
            found[key] = tuple(" ".join(c) for c in rule.controls)  # type: ignore[assignment]
    return found


_BY_KEY = _index()
DETAILED = frozenset(t for (t, detail) in _BY_KEY if detail is not None)
"""Event types whose controls depend on their ``detail``."""
ALL = tuple(sorted({c for rule in RULES for c in rule.controls[i]}) for i in range(len(FRAMEWORKS)))
"""Every control the mapping names, per framework (the coverage table shows each, zero included)."""


def controls(type_: str, detail: str | None = None) -> tuple[str, str, str, str]:
    """The controls (space-separated, one string per framework) an event of ``type_`` evidences."""
    if type_ in DETAILED and (type_, detail) in _BY_KEY:
        return _BY_KEY[(type_, detail)]
    return _BY_KEY.get((type_, None), UNMAPPED)
