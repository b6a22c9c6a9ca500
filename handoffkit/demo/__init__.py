"""The demo engagement: a seeded, deterministic vulnerability-management programme over four quarters.

It drives the real pipeline — it writes real scanner files (SARIF, Nessus, ZAP, Trivy), a KEV catalog
and real ticket exports (Jira CSV, GitHub REST, ServiceNow Table API), and feeds them through the same
library functions the CLI calls, on a simulated clock — so every event in its activity log is one the
product itself wrote. The programme exhibits the six drift patterns the product exists to catch:

1. severity renegotiated inside the ticket (priority lowered in Jira) — ``severity_drift``; and a finding
   re-scored after its ticket exists: the same month the analyst hands the update over
   (``payload --updates``) and engineering applies it, but the last month's are still owed at the end,
   so they show as drift too;
2. evidence copied into the ticket instead of linked — ``evidence_copied``;
3. closure in the ticket never reconciled (ticket Done, finding never verified) — ``closure_misses``;
4. indiscriminate routing (tickets raised for informational findings) — ``tickets_outside_policy``;
5. shared-queue ownership (tickets parked on the ``security`` queue; assets with no owner) —
   ``shared_queue_tickets`` and ``paused_no_owner``;
6. tickets and findings that do not reference each other — ``tickets_without_id``,
   ``findings_not_referenced``, ``orphan_tickets`` and ``routing_misses``.

After the last month the operator's routine runs as well: a routing decision names the owner of one
paused finding and holds another (``handoffkit decide``), and findings past their SLA due date are
escalated to the owners the policy names for the critical and high bands (``handoffkit escalate``);
the retest queue (``handoffkit queue``) then lists what awaits verification.

``build(size=…)`` scales the programme (the benchmarks scale it up). Which findings
carry which planted pattern is returned in the summary (``planted``), so tests can check that
reconciliation finds exactly them.
"""

from __future__ import annotations

import contextlib
import html
import random
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from handoffkit import reconcile
from handoffkit.demo import formats
from handoffkit.errors import RefusedError
from handoffkit.ingest import kev, pipeline
from handoffkit.record import engagements, findings, ids, policy, schema
from handoffkit.record.store import Clock, Store
from handoffkit.tickets import batches, links, payload, snapshots, updates
from handoffkit.workflow import calibration, decisions, escalation, exceptions, routing, triage, verification

START = date(2025, 10, 1)
MONTHS = 12
PERMALINK = "https://handoffkit.example.invalid/{engagement}/findings/{finding_id}"
ANALYSTS = ["Ana Silva", "Ben Okoro", "Chen Wei"]
APPROVER = "Dana Whitfield"
SEVERITY_MIX = [("critical", 0.05), ("high", 0.2), ("medium", 0.35), ("low", 0.25), ("info", 0.15)]
TEAMS = [
    ("payments", "Priya Raman"),
    ("platform", "Tomás Ortega"),
    ("identity", "Lena Fischer"),
    ("data", "Kwame Mensah"),
    ("mobile", "Sofia Rossi"),
    ("infrastructure", "Amara Okafor"),
]
#: Who the policy escalates a finding past its due date to, per band (the other bands name nobody).
ESCALATION = {
    "critical": ", escalation: engineering/vp engineering/Noor Haddad",
    "high": ", escalation: engineering/head of remediation/Ibrahim Diallo",
}
BATCH_MONTHS = range(MONTHS - 3, MONTHS)
"""The last quarter (the pack's period): the backlog bands are handed over in batches (``payload --batch``)."""
UNRAISED_BATCH_TEAM = "mobile"
"""In the last month this team never raises its new sprint batch's ticket: its members are batch misses."""
KIND_TOOL = {"web": "zap", "host": "nessus", "repo": "semgrep", "image": "trivy"}
KIND_SYSTEM = {"web": "jira", "image": "jira", "repo": "github", "host": "servicenow"}
CWE_BY_KIND = {
    "web": ["CWE-79", "CWE-89", "CWE-352", "CWE-693", "CWE-200", "CWE-614"],
    "repo": ["CWE-78", "CWE-89", "CWE-79", "CWE-327", "CWE-798", "CWE-22", "CWE-502"],
    "host": ["CWE-295", "CWE-326", "CWE-20", "CWE-119"],
    "image": ["CWE-787", "CWE-416", "CWE-400"],
}
WORDS = [
    "Cross-site scripting",
    "SQL injection",
    "Outdated TLS",
    "Hard-coded secret",
    "Path traversal",
    "Insecure deserialisation",
    "Missing security header",
    "Weak cipher suite",
    "Open redirect",
    "Heap overflow",
    "Use after free",
    "Server-side request forgery",
    "Command injection",
    "Session fixation",
    "Cookie without Secure flag",
    "Information disclosure",
    "Denial of service",
]
VECTORS = {
    "critical": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "high": "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N",
    "medium": "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:U/C:L/I:L/A:N",
    "low": "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
    "info": "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N",
}
SCORES = {"critical": 9.8, "high": 8.1, "medium": 5.4, "low": 2.2, "info": 0.0}
# the ticket systems show the demo policy's priorities, which are the defaults
PRIORITY = policy.DEFAULT_PRIORITIES
PRIORITY_BAND = {system: {shown: band for band, shown in table.items()} for system, table in PRIORITY.items()}
RECALIBRATION_MONTHS = (3, 9, 11)
"""Months in which ticketed findings are re-scored (the last one's updates are left owed)."""
LOWER = {"critical": "medium", "high": "low", "medium": "low", "low": "info", "info": "info"}


@dataclass
class Asset:
    ref: str
    kind: str
    team: str | None
    owner: str | None
    role: str
    exposure: str
    sensitivity: str
    lifecycle: str = "active"
    mapped: bool = True


@dataclass
class Spec:
    """One planted finding: where it lives, when it appears, whether and when it is fixed."""

    n: int
    asset: Asset
    severity: str
    title: str
    rule: str
    cwe: str
    cves: list[str]
    appear: int
    fixed: int | None
    reappear: int | None = None
    fate: set[str] = field(default_factory=set)
    finding_id: str | None = None

    def present(self, month: int) -> bool:
        if month < self.appear:
            return False
        fixed = self.fixed is not None and self.fixed <= month
        regressed = self.reappear is not None and month >= self.reappear
        return not fixed or regressed


@dataclass
class Ticket:
    system: str
    key: str
    title: str
    finding_ids: list[str]
    priority: str
    assignee: str | None
    created: str
    description: str
    category: str = "todo"
    status: str = "To Do"
    resolution: str | None = None
    with_ids: bool = True
    updated: str = ""
    batch: str | None = None
    """The batch id a batch ticket names (a label and a ``[batch-…]`` token in its title)."""


class Programme:
    """The whole scenario; ``run()`` plays it month by month against a store."""

    def __init__(
        self,
        store: Store,
        engagement: str,
        size: int,
        seed: int,
        workdir: Path,
        progress: Callable[[str], None],
        ticket_bands: tuple[str, ...] = ("critical", "high"),
        keep_inputs: bool = True,
    ) -> None:
        self.store, self.engagement, self.size, self.workdir = store, engagement, size, workdir
        self.ticket_bands, self.keep_inputs = ticket_bands, keep_inputs
        self.rng = random.Random(seed)
        self.progress = progress
        self.assets = self._assets()
        self.kev_cves = [f"CVE-2024-{40000 + i}" for i in range(max(6, size // 150))]
        self.kev_set = set(self.kev_cves)
        self.specs = self._specs()
        self.tickets: dict[str, Ticket] = {}
        self.by_finding: dict[str, list[str]] = {}
        self.of_ticket: dict[str, list[str]] = {}
        self.manual_links: list[tuple[str, Ticket]] = []
        self.issued: set[str] = set()
        self.batch_keys: dict[str, str] = {}
        self.pending_batches: list[dict[str, Any]] = []
        self.unraised: set[str] = set()
        self.recalibrated: set[str] = set()
        self.verified: set[str] = set()
        self.never_verified: set[str] = set()
        self.counters = {"jira": 100, "github": 0, "servicenow": 10_000}
        self.planted: dict[str, set[str]] = {
            k: set()
            for k in (
                "severity_drift",
                "evidence_copied",
                "closure_misses",
                "tickets_outside_policy",
                "shared_queue_tickets",
                "tickets_without_id",
                "findings_not_referenced",
                "orphan_tickets",
                "routing_misses",
                "renamed",
                "split",
                "ticket_reopened",
                "batch_misses",
            )
        }

    # ------------------------------------------------------------------------------------ the world

    def _assets(self) -> list[Asset]:
        n = min(60, max(12, self.size // 60))  # one Trivy file per image and month: keep files few
        out = []
        for i in range(n):
            kind = ("web", "host", "repo", "image")[i % 4]
            team, owner = TEAMS[i % len(TEAMS)]
            ref = {
                "web": f"https://app{i}.example.com",
                "host": f"srv{i}.corp.example.com:443",
                "repo": f"https://github.com/example/service-{i}",
                "image": f"registry.example.com/shop/svc-{i}:1.{i % 7}",
            }[kind]
            asset = Asset(
                ref,
                kind,
                team,
                owner,
                {
                    "web": "service owner",
                    "host": "system administrator",
                    "repo": "tech lead",
                    "image": "image maintainer",
                }[kind],
                "internet" if kind == "web" or i % 5 == 0 else "internal",
                ("high", "medium", "low")[i % 3],
            )
            if i % 11 == 7:
                asset.mapped = False  # not in the owners map: findings pause
            elif i % 13 == 5:
                asset.team, asset.owner = "security", None  # a shared queue, not an owner: pause
            elif i % 17 == 3:
                asset.lifecycle = "decommissioning"
            out.append(asset)
        return out

    def _specs(self) -> list[Spec]:
        specs = []
        bands, weights = zip(*SEVERITY_MIX, strict=True)
        for n in range(self.size):
            asset = self.assets[n % len(self.assets)]
            severity = self.rng.choices(bands, weights)[0]
            if asset.kind == "web" and severity == "critical":
                severity = "high"  # ZAP has no critical risk
            cves = []
            if asset.kind in ("host", "image"):
                cves = [f"CVE-{2019 + n % 6}-{10000 + n}"]
                if self.rng.random() < 0.04:
                    cves = [self.rng.choice(self.kev_cves)]
            appear = 0 if self.rng.random() < 0.35 else self.rng.randrange(0, MONTHS)
            fixed = None
            if self.rng.random() < 0.55:
                fixed = appear + 1 + self.rng.randrange(0, 4)
                fixed = fixed if fixed < MONTHS else None
            spec = Spec(
                n,
                asset,
                severity,
                f"{self.rng.choice(WORDS)} in {asset.kind} component {n}",
                f"hk.demo.{asset.kind}.rule{n}",
                self.rng.choice(CWE_BY_KIND[asset.kind]),
                cves,
                appear,
                fixed,
            )
            if fixed is not None and fixed + 2 < MONTHS and self.rng.random() < 0.04:
                spec.reappear = fixed + 2
            specs.append(spec)
        for spec in [s for s in specs if s.fixed is not None and s.fixed <= 8][:2]:
            spec.reappear = MONTHS - 1  # regressions found by the last scan, not yet re-triaged
        return specs

    # ----------------------------------------------------------------------------------- the clock

    def at(self, month: int, day: int, hour: int = 10) -> datetime:
        first = date(START.year + (START.month - 1 + month) // 12, (START.month - 1 + month) % 12 + 1, 1)
        when = datetime.combine(first + timedelta(days=day - 1), time(hour), tzinfo=UTC)
        self.store.clock.fixed = when
        return when

    def analyst(self) -> str:
        return self.rng.choice(ANALYSTS)

    # ------------------------------------------------------------------------------------------ run

    def run(self) -> dict[str, Any]:
        self.at(0, 1, 8)
        self._setup()
        for month in range(MONTHS):
            self.progress(f"demo: month {month + 1}/{MONTHS}")
            if month == MONTHS - 1:
                self._regressions(month)
            self.at(month, 1)
            self._scan(month)
            if month in (0, 6):
                self.at(month, 2)
                self._kev(month)
            self.at(month, 3)
            self._triage(month)
            self.at(month, 4)
            self._calibrate(month)
            self._recalibrate(month)
            self.at(month, 5)
            self._exceptions(month)
            self.at(month, 6)
            routing.route(self.store, self.engagement, actor=self.analyst())
            self.at(month, 7)
            self._payloads()
            self._batches(month)
            self._hand_over_updates(month)
            self.at(month, 10)
            self._tickets(month)
            self.at(month, 12)
            self._verify(month)
            if month not in (4, 9, MONTHS - 1):
                self.at(month, 15)
                reconcile.reconcile(self.store, self.engagement, record=True, actor=self.analyst())
        self.at(MONTHS - 1, 25)
        self._late_triage()
        self.at(MONTHS - 1, 26)
        self._operator_day()
        return self._summary()

    def _setup(self) -> None:
        policy_file = self.workdir / "policy.yaml"
        policy_file.write_text(_policy(self.ticket_bands), encoding="utf-8")
        rows = ["asset_ref,owner_role,owner_team,owner_name,exposure,data_sensitivity,lifecycle"]
        rows += [
            f"{a.ref},{a.role},{a.team},{a.owner or ''},{a.exposure},{a.sensitivity},{a.lifecycle}"
            for a in self.assets
            if a.mapped
        ]
        owners = self.workdir / "owners.csv"
        owners.write_text("\n".join(rows) + "\n", encoding="utf-8")
        engagements.init(
            self.store, self.engagement, policy_file, owners_path=owners, actor=APPROVER, name="Demo programme (FY2026)"
        )

    # -------------------------------------------------------------------------------------- scanning

    def _scan(self, month: int) -> None:
        present = [s for s in self.specs if s.present(month)]
        stamp = self.store.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        files = []
        by_kind: dict[str, list[Spec]] = {}
        for s in present:
            by_kind.setdefault(s.asset.kind, []).append(s)
        scanned = {k: [a for a in self.assets if a.kind == k] for k in KIND_TOOL}
        if scanned["repo"]:
            runs = [
                {
                    "tool": "semgrep",
                    "version": "1.93.0",
                    "repo": a.ref,
                    "started": stamp,
                    "results": [self._sarif_result(s) for s in by_kind.get("repo", []) if s.asset is a],
                }
                for a in scanned["repo"]
            ]
            files.append(self._write(f"{month:02d}-semgrep.sarif", formats.sarif(runs)))
        if scanned["host"]:
            hosts = [
                {
                    "name": a.ref.split(":")[0],
                    "ip": f"10.20.{i // 250}.{i % 250 + 1}",
                    "items": [self._nessus_item(s, month) for s in by_kind.get("host", []) if s.asset is a],
                }
                for i, a in enumerate(scanned["host"])
            ]
            files.append(self._write(f"{month:02d}-nessus.nessus", formats.nessus(hosts, f"monthly {stamp}")))
        if scanned["web"]:
            sites = [
                {"origin": a.ref, "alerts": [self._zap_alert(s) for s in by_kind.get("web", []) if s.asset is a]}
                for a in scanned["web"]
            ]
            files.append(self._write(f"{month:02d}-zap.json", formats.zap(sites, stamp)))
        for a in scanned["image"]:
            vulns = [self._trivy_vuln(s) for s in by_kind.get("image", []) if s.asset is a]
            name = a.ref.rsplit("/", 1)[1].replace(":", "_")
            files.append(self._write(f"{month:02d}-trivy-{name}.json", formats.trivy(a.ref, vulns, stamp)))
        results = pipeline.ingest_scan(self.store, self.engagement, files, actor="scanner-bot operator Eve Marsh")
        self._discard(files)
        failed = [r for r in results if r.status == "failed"]
        if failed:
            raise RuntimeError(f"demo scan failed to ingest: {failed[0].error}")
        self._learn_ids(present)

    def _discard(self, paths: list[Path]) -> None:
        """At benchmark scale the generated inputs run to gigabytes; they are not kept."""
        if not self.keep_inputs:
            for path in paths:
                path.unlink()

    def _regressions(self, month: int) -> None:
        """Two verified fixes regress: the last scan finds them again (they reopen, awaiting re-triage)."""
        verified = [s for s in self.specs if s.finding_id in self.verified]
        with_ticket = [s for s in verified if s.finding_id in self.by_finding]
        for spec in (with_ticket + verified)[:2]:
            spec.reappear = month
            self.verified.discard(spec.finding_id)

    def _write(self, name: str, data: bytes) -> Path:
        path = self.workdir / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def _sarif_result(self, s: Spec) -> dict[str, Any]:
        level = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "none"}[s.severity]
        return {
            "rule": s.rule,
            "title": s.title,
            "level": level,
            "score": SCORES[s.severity],
            "cwe": s.cwe,
            "message": f"{s.title} (reported {self.store.now():%Y-%m-%d})",
            "uri": f"src/module{s.n % 23}/file{s.n}.py",
            "line": 10 + s.n % 300,
            "fingerprint": f"{s.n:016x}:1",
        }

    def _nessus_item(self, s: Spec, month: int) -> dict[str, Any]:
        sev = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}[s.severity]
        return {
            "port": 443,
            "protocol": "tcp",
            "svc": "www",
            "severity": sev,
            "plugin": 100000 + s.n,
            "name": s.title,
            "family": "General",
            "cves": s.cves,
            "vector": VECTORS[s.severity] if sev else None,
            "score": SCORES[s.severity],
            "output": (
                f"Observed during scan {month}: the service on port 443 answered with a banner naming build "
                f"{self.rng.randrange(9999)} of the affected component, reachable without authentication."
            ),
            "description": f"{s.title}.",
            "solution": "Apply the vendor patch.",
            "risk": ["None", "Low", "Medium", "High", "Critical"][sev],
        }

    def _zap_alert(self, s: Spec) -> dict[str, Any]:
        risk = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 3}[s.severity]
        return {
            "plugin": 10000 + s.n,
            "name": s.title,
            "risk": risk,
            "cwe": s.cwe.split("-")[1],
            "wasc": 8,
            "desc": s.title,
            "solution": "Encode output and validate input.",
            "instances": [
                {
                    "uri": f"{s.asset.ref}/page{s.n}",
                    "method": "GET",
                    "param": f"q{s.n % 5}",
                    "attack": "",
                    "evidence": "<script>",
                }
            ],
        }

    def _trivy_vuln(self, s: Spec) -> dict[str, Any]:
        severity = "unknown" if s.severity == "info" else s.severity
        return {
            "cve": s.cves[0],
            "pkg": f"lib{s.n % 50}",
            "installed": "1.0.0",
            "fixed": "1.0.1",
            "severity": severity,
            "title": s.title,
            "cwe": s.cwe,
            "vector": VECTORS[s.severity],
            "score": SCORES[s.severity],
        }

    def _learn_ids(self, present: list[Spec]) -> None:
        """Map planted specs to the finding ids ingestion gave them (every spec has a unique title)."""
        missing = [s for s in present if s.finding_id is None]
        if not missing:
            return
        with self.store.read() as conn:
            df = findings.frame(conn, self.engagement, ["finding_id", "title"])
        # Trivy titles read "CVE-… in pkg: <title>"; the planted title is the part after the last ": ".
        index = dict(zip(df["title"].str.rsplit(": ", n=1).str[-1], df["finding_id"], strict=True))
        for s in missing:
            s.finding_id = index.get(s.title)

    def _kev(self, month: int) -> None:
        """A KEV catalog in CISA's layout; the later one adds CVEs, which flags findings already open."""
        listed = self.kev_cves[: len(self.kev_cves) // 2] if month == 0 else self.kev_cves
        today = self.store.now().date()
        entries = [
            {
                "cve": cve,
                "vendor": "Example",
                "product": f"lib{i}",
                "name": f"Example lib{i} flaw",
                "added": (today - timedelta(days=20)).isoformat(),
                "due": (today + timedelta(days=7 if i % 3 == 0 else 21)).isoformat(),
            }
            for i, cve in enumerate(listed)
        ]
        path = self._write(
            f"{month:02d}-kev.json",
            formats.kev_catalog(entries, f"{today:%Y.%m.%d}", f"{today:%Y-%m-%d}T12:00:00.000Z"),
        )
        kev.load(self.store, path, actor=APPROVER)

    # ---------------------------------------------------------------------------------------- triage

    def _new_ids(self, state: str) -> list[str]:
        return triage.select_ids(self.store, self.engagement, state=state)

    def _triage(self, month: int) -> None:
        spec_of = {s.finding_id: s for s in self.specs if s.finding_id}
        pending = self._new_ids("new")
        if month == MONTHS - 1:
            pending = pending[: len(pending) // 2]  # the newest half is left untriaged
        validated, false_positive, duplicates = [], [], []
        for fid in pending:
            roll = self.rng.random()
            if roll < 0.06:
                false_positive.append(fid)
            elif roll < 0.08 and fid in spec_of:
                duplicates.append(fid)
            else:
                validated.append(fid)
        if validated:
            triage.triage(self.store, validated, "validated", reason="confirmed exploitable path", actor=self.analyst())
        if false_positive:
            triage.triage(
                self.store,
                false_positive,
                "false_positive",
                reason="scanner pattern matched test fixture",
                actor=self.analyst(),
            )
        for fid in duplicates:
            original = next(
                (
                    s.finding_id
                    for s in self.specs
                    if s.finding_id and s.finding_id != fid and s.asset is spec_of[fid].asset
                ),
                None,
            )
            if original:
                triage.triage(
                    self.store,
                    [fid],
                    "duplicate",
                    duplicate_of=original,
                    reason="same root cause",
                    actor=self.analyst(),
                )
        reopened = self._new_ids("reopened")
        if reopened and month < MONTHS - 1:  # the last month's regressions still await triage
            triage.triage(self.store, reopened, "validated", reason="regression confirmed", actor=self.analyst())

    def _calibrate(self, month: int) -> None:
        with self.store.read() as conn:
            df = findings.frame(
                conn,
                self.engagement,
                ["finding_id", "severity", "triage", "calibrated_vector", "state", "validated_at"],
            )
        todo = df[(df["triage"] == "validated") & df["calibrated_vector"].isna() & (df["state"] == "validated")]
        for done, row in enumerate(todo.itertuples()):
            if done >= 300:
                break  # analysts calibrate one finding at a time; at scale only the first few hundred
            if row.severity in ("critical", "high") and self.rng.random() < 0.8:
                calibration.calibrate(
                    self.store,
                    row.finding_id,
                    cvss=VECTORS[row.severity],
                    env_from_asset=True,
                    reason="environmental score from asset context",
                    actor=self.analyst(),
                )
            elif row.severity == "medium" and self.rng.random() < 0.05:
                calibration.calibrate(
                    self.store,
                    row.finding_id,
                    severity="low",
                    reason="compensating WAF rule in front of the service",
                    actor=self.analyst(),
                )

    def _recalibrate(self, month: int) -> None:
        """Findings re-scored after their ticket exists (an exploit published, a compensating control): the
        ticket is owed the new severity and due date — handed over the same month, except in the last
        month, where they are still owed at the end (and show as severity drift until handed over)."""
        if month not in RECALIBRATION_MONTHS:
            return
        spec_of = {s.finding_id: s for s in self.specs if s.finding_id}
        with self.store.read() as conn:
            df = findings.frame(conn, self.engagement, ["finding_id", "state", "disposition", "severity"])
        candidates = [
            r
            for r in df[(df["state"] == "routed") & (df["disposition"] == "ticket")].itertuples()
            if r.severity in ("critical", "high")
            and r.finding_id in spec_of
            and self._stable(spec_of[r.finding_id])
            and r.finding_id not in self.planted["severity_drift"]
            and r.finding_id not in self.recalibrated
            and self.by_finding.get(r.finding_id)
            and all(
                self.tickets[k].with_ids and self.tickets[k].category != "done" for k in self.by_finding[r.finding_id]
            )
        ]
        # chosen by number, not by the seeded generator (the rest of the programme plays as before): as
        # many re-scored up (high → critical) as down (critical → high)
        ordered = sorted(candidates, key=lambda r: ids.number(r.finding_id))
        half = max(1, self.size // 1000)
        chosen = [r for r in ordered if r.severity == "high"][:half] + [r for r in ordered if r.severity == "critical"][
            :half
        ]
        for i, r in enumerate(sorted(chosen, key=lambda r: ids.number(r.finding_id))):
            up = r.severity == "high"
            calibration.calibrate(
                self.store,
                r.finding_id,
                severity="critical" if up else "high",
                reason="exploit published for the exposed service" if up else "compensating WAF rule deployed",
                actor=ANALYSTS[(month + i) % len(ANALYSTS)],
            )
            self.recalibrated.add(r.finding_id)
            if month == MONTHS - 1:
                self.planted["severity_drift"].add(r.finding_id)

    def _hand_over_updates(self, month: int) -> None:
        """The analyst hands the owed ticket updates over (``payload --updates``) and engineering applies
        them before the next export; the last month's are left owed."""
        if month == MONTHS - 1:
            return
        stamp = self.store.now().strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        for target in ("jira", "github", "servicenow"):
            result = updates.issue(self.store, self.engagement, target=target, actor=ANALYSTS[month % len(ANALYSTS)])
            for line in result["lines"]:
                t = self.tickets.get(line["ticket_key"])
                if t is not None and line["field"] == "severity":
                    t.priority, t.updated = PRIORITY[target][line["record"]], stamp

    def _exceptions(self, month: int) -> None:
        if month not in (2, 5, 8):
            return
        candidates = [
            s
            for s in self.specs
            if s.finding_id
            and s.present(month)
            and s.asset.mapped
            and s.asset.team != "security"
            and s.asset.lifecycle == "active"
            and s.fixed is None
            and s.severity in ("medium", "low")
        ]
        for s in candidates[: min(50, max(2, self.size // 400))]:
            expires = self.store.now().date() + timedelta(days=75 if month == 2 else 200)
            try:
                exceptions.grant(
                    self.store,
                    s.finding_id,
                    approver=APPROVER,
                    actor=s.asset.owner or "Ana Silva",
                    expires=expires,
                    reason="legacy integration, replacement scheduled",
                )
                s.fate.add("excepted")
            except RefusedError:
                continue
        if month == 2 and candidates:
            with contextlib.suppress(RefusedError):  # a self-approved exception is refused (and logged)
                exceptions.grant(
                    self.store,
                    candidates[-1].finding_id,
                    approver=APPROVER,
                    actor=APPROVER,
                    reason="accept risk",
                    expires=self.store.now().date() + timedelta(days=30),
                )

    def _payloads(self) -> None:
        """Payloads for findings newly routed to a ticket (what a person pastes into the ticket system)."""
        routed = self._ticket_routed()
        for target in ("jira", "github", "servicenow"):
            ids = [fid for fid, (system, _) in routed.items() if system == target and fid not in self.issued]
            if ids:
                payload.issue(self.store, self.engagement, target=target, actor=self.analyst(), finding_ids=ids)
                self.issued.update(ids)

    def _batches(self, month: int) -> None:
        """In the last quarter the sprint-backlog and quarterly-cycle findings go over in batches, one Jira
        ticket per owner team per sprint or quarter (the actor is not drawn: the seeded stream stays as it was)."""
        if month in BATCH_MONTHS:
            actor = ANALYSTS[month % len(ANALYSTS)]
            issued = batches.issue(self.store, self.engagement, target="jira", actor=actor)
            self.pending_batches = issued["batches"]

    def _batch_tickets(self, month: int, stamp: str) -> None:
        """Each team raises (or, for an amended batch, extends) its batch ticket from the batch payload —
        but the members that already have a ticket of their own, and one team's last new sprint batch."""
        owner_of = {s.finding_id: s.asset.owner for s in self.specs if s.finding_id}
        for b in self.pending_batches:
            bid = b["batch_id"]
            band, _, team = batches.parts(bid)  # type: ignore[misc]
            added = [f for f in b["added"] if f not in self.by_finding]
            if not added:
                continue
            if month == MONTHS - 1 and team == UNRAISED_BATCH_TEAM and bid not in self.batch_keys:
                self.unraised.update(added)
                continue
            if bid in self.batch_keys:
                t = self.tickets[self.batch_keys[bid]]
                t.finding_ids = sorted({*t.finding_ids, *added}, key=ids.number)
                t.updated = stamp
            else:
                self.counters.setdefault("batch", 900_000)
                self.counters["batch"] += 1
                t = Ticket("jira", f"SPR-{self.counters['batch']}", "", added, PRIORITY["jira"][band], None, stamp, "")
                t.assignee, t.batch, t.updated = owner_of.get(added[0]), bid, stamp
                self.tickets[t.key] = t
                self.batch_keys[bid] = t.key
            t.title = f"[{bid}] {band} findings for {team}"  # kept as the batch grows: no rename
            t.description = "\n".join(
                f"[{f}] {PERMALINK.format(engagement=self.engagement, finding_id=f)}" for f in t.finding_ids
            )
        self.pending_batches = []

    def _ticket_routed(self) -> dict[str, tuple[str, str]]:
        """Findings routed to a ticket with an owner → (ticket system, record severity)."""
        with self.store.read() as conn:
            df = findings.frame(conn, self.engagement, ["finding_id", "state", "disposition", "owner_team", "severity"])
        kind_of = {s.finding_id: s.asset.kind for s in self.specs if s.finding_id}
        sel = df[(df["state"] == "routed") & (df["disposition"] == "ticket") & df["owner_team"].notna()]
        return {
            r.finding_id: (KIND_SYSTEM[kind_of[r.finding_id]], r.severity)
            for r in sel.itertuples()
            if r.finding_id in kind_of
        }

    def _stable(self, s: Spec) -> bool:
        """A finding that stays open to the end: the only kind a lasting drift is planted on."""
        return (
            s.fixed is None
            and s.reappear is None
            and not self.kev_set.intersection(s.cves)
            and "excepted" not in s.fate
        )

    # --------------------------------------------------------------------------------------- tickets

    def _tickets(self, month: int) -> None:
        spec_of = {s.finding_id: s for s in self.specs if s.finding_id}
        stamp = self.store.now().strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        for fid, (system, severity) in sorted(self._ticket_routed().items(), key=lambda kv: ids.number(kv[0])):
            if fid in self.by_finding or fid in self.planted["routing_misses"]:
                continue
            if self._stable(spec_of[fid]) and self.rng.random() < 0.08:
                self.planted["routing_misses"].add(fid)  # nobody ever raises the ticket
                continue
            self._open_ticket(spec_of[fid], system, severity, stamp)
        self._batch_tickets(month, stamp)
        if month in (1, 4, 7):
            self._indiscriminate(spec_of, stamp)
        if month in (2, 6):
            self._stray_tickets(stamp)
        self._progress_tickets(month, spec_of, stamp)
        for system in ("jira", "github", "servicenow"):
            self._export(system, month)

    def _new_key(self, system: str, spec: Spec | None) -> str:
        self.counters[system] += 1
        n = self.counters[system]
        if system == "jira":
            return f"SEC-{n}"
        if system == "servicenow":
            return f"INC{n:07d}"
        repo = spec.asset.ref.removeprefix("https://github.com/") if spec else "example/service-2"
        return f"{repo}#{n}"

    def _open_ticket(self, s: Spec, system: str, severity: str, stamp: str, *, plant: bool = True) -> Ticket:
        """Engineering raises a ticket from the payload — sometimes badly (the planted drift patterns)."""
        fid = s.finding_id
        roll = self.rng.random() if plant else 1.0
        with_ids = not 0.16 <= roll < 0.19 or len(self.manual_links) >= 100  # linking by hand is per finding
        description = (
            f"Finding {fid}: {s.title}.\nAsset: {s.asset.ref}\n"
            f"Record: {PERMALINK.format(engagement=self.engagement, finding_id=fid)}\n[{fid}]"
            if with_ids
            else f"{s.title} on {s.asset.ref}."
        )
        if roll < 0.05:
            description += self._pasted(s, system)
        priority = PRIORITY[system][severity]
        drift = 0.10 <= roll < 0.16 and LOWER[severity] != severity and self._stable(s)
        if drift:
            priority = PRIORITY[system][LOWER[severity]]  # renegotiated down inside the ticket
        t = Ticket(
            system,
            self._new_key(system, s),
            f"[{fid}] {s.title}" if with_ids else s.title,
            [fid] if with_ids else [],
            priority,
            "security" if 0.05 <= roll < 0.10 else s.asset.owner,
            stamp,
            description,
            with_ids=with_ids,
            updated=stamp,
        )
        self.tickets[t.key] = t
        self.by_finding.setdefault(fid, []).append(t.key)
        self.of_ticket.setdefault(t.key, []).append(fid)
        self.planted["evidence_copied"].update([t.key] if roll < 0.05 else [])
        self.planted["shared_queue_tickets"].update([t.key] if 0.05 <= roll < 0.10 else [])
        self.planted["severity_drift"].update([fid] if drift else [])
        if not with_ids:
            self.manual_links.append((fid, t))
            self.planted["tickets_without_id"].add(t.key)
        return t

    def _pasted(self, s: Spec, system: str) -> str:
        """Evidence pasted into a ticket instead of the permalink: an HTTP exchange, an embedded screenshot,
        or the scanner output copied from the record (which of the three follows from the finding's number)."""
        variant = ids.number(s.finding_id) % 3
        output = self._stored_output(s.finding_id) if variant == 2 else None
        if output:
            return f"\n\nScanner said:\n{output}"
        if variant == 1:
            shot = f"screenshot-{s.finding_id}.png"
            return f"\n\n!{shot}|thumbnail!" if system == "jira" else f"\n\n[^{shot}]"
        return (
            "\n\nSteps (pasted from the scanner):\nGET /page?q=%3Cscript%3E HTTP/1.1\nHost: "
            f"{s.asset.ref}\n\nHTTP/1.1 200 OK\nContent-Type: text/html"
        )

    def _stored_output(self, finding_id: str) -> str | None:
        """The plugin output of the finding's stored scanner evidence (a Nessus item), if it has one."""
        e = schema.evidence.c
        with self.store.read() as conn:
            content = conn.execute(
                select(e.content).where(e.finding_id == finding_id, e.kind == "scanner_output").limit(1)
            ).scalar()
        found = re.search(rb"<plugin_output>(.*?)</plugin_output>", content or b"", re.S)
        return html.unescape(found.group(1).decode()) if found else None

    def _indiscriminate(self, spec_of: dict[str, Spec], stamp: str) -> None:
        """Tickets raised for informational findings the policy keeps on the record only."""
        with self.store.read() as conn:
            df = findings.frame(conn, self.engagement, ["finding_id", "state", "disposition", "severity"])
        info = df[(df["disposition"] == "security_record_only") & (df["state"] == "routed")]
        fresh = [
            r
            for r in info.itertuples()
            if r.finding_id in spec_of and r.finding_id not in self.by_finding and self._stable(spec_of[r.finding_id])
        ]
        for r in fresh[: min(200, max(3, self.size // 300))]:
            s = spec_of[r.finding_id]
            self._open_ticket(s, KIND_SYSTEM[s.asset.kind], r.severity, stamp, plant=False)
            self.planted["tickets_outside_policy"].add(r.finding_id)

    def _stray_tickets(self, stamp: str) -> None:
        """A ticket carrying an id the record does not know, and one carrying none at all."""
        key = self._new_key("jira", None)
        self.tickets[key] = Ticket(
            "jira",
            key,
            "[HK-999999] Rotate API keys",
            ["HK-999999"],
            "High",
            "Priya Raman",
            stamp,
            "Carried over from the old tracker.",
            updated=stamp,
        )
        self.planted["orphan_tickets"].add(key)
        key = self._new_key("jira", None)
        self.tickets[key] = Ticket(
            "jira",
            key,
            "Harden nginx config",
            [],
            "Medium",
            "Tomás Ortega",
            stamp,
            "Found in a pentest readout.",
            with_ids=False,
            updated=stamp,
        )
        self.planted["tickets_without_id"].add(key)

    def _findings_of(self, t: Ticket) -> list[str]:
        return self.of_ticket.get(t.key, [])

    def _progress_tickets(self, month: int, spec_of: dict[str, Spec], stamp: str) -> None:
        for t in self.tickets.values():
            specs = [spec_of[f] for f in self._findings_of(t) if f in spec_of]
            if not specs:
                continue
            regressed = any(s.reappear == month for s in specs)
            # the fix ships this month and the ticket is closed; next month's scan confirms it
            fixed_now = all(s.fixed is not None and s.fixed <= month + 1 and not s.reappear for s in specs)
            if t.category == "done":
                if regressed:
                    t.category, t.status, t.resolution, t.updated = "in_progress", "Reopened", None, stamp
                    self.planted["ticket_reopened"].add(t.key)
                continue
            if fixed_now:
                t.category, t.status, t.resolution, t.updated = "done", "Done", "Done", stamp
            elif all(self._stable(s) for s in specs) and self.rng.random() < 0.03:
                t.category, t.status, t.resolution, t.updated = "done", "Done", "Won't Fix", stamp
            elif t.category == "todo":
                t.category, t.status, t.updated = "in_progress", "In Progress", stamp
            if t.with_ids and t.category != "done" and self.rng.random() < 0.01:
                t.title, t.updated = t.title + " (prod)", stamp
                self.planted["renamed"].add(t.key)
        self._split(spec_of, stamp, month)

    def _split(self, spec_of: dict[str, Spec], stamp: str, month: int) -> None:
        if month not in (3, 8):
            return
        for fid, keys in list(self.by_finding.items())[: min(100, max(2, self.size // 500))]:
            first = self.tickets[keys[0]]
            if len(keys) == 1 and first.category != "done" and first.with_ids and fid in spec_of:
                t = self._open_ticket(
                    spec_of[fid], first.system, PRIORITY_BAND[first.system][first.priority], stamp, plant=False
                )
                t.title = f"[{fid}] {spec_of[fid].title} (backend part)"
                self.planted["split"].add(fid)

    def _export(self, system: str, month: int) -> None:
        rows = [self._ticket_row(t) for t in self.tickets.values() if t.system == system]
        if not rows:
            return
        if system == "jira":
            path = self._write(f"{month:02d}-jira-export.csv", formats.jira_csv(rows))
        elif system == "github":
            path = self._write(f"{month:02d}-github-issues.json", formats.github_issues(rows))
        else:
            path = self._write(f"{month:02d}-servicenow-incidents.json", formats.servicenow(rows))
        results = snapshots.ingest_tickets(self.store, self.engagement, [path], system=system, actor=self.analyst())
        self._discard([path])
        if results[0].status == "failed":
            raise RuntimeError(f"demo ticket export failed to ingest: {results[0].error}")
        for fid, t in [(f, t) for f, t in self.manual_links if t.system == system]:
            links.link(
                self.store,
                fid,
                t.key,
                system=system,
                actor=self.analyst(),
                note="raised without the finding id; linked by hand",
            )
            self.planted["findings_not_referenced"].add(fid)
        self.manual_links = [(f, t) for f, t in self.manual_links if t.system != system]

    def _ticket_row(self, t: Ticket) -> dict[str, Any]:
        labels = [*([t.batch] if t.batch else []), *t.finding_ids, "security"]
        if t.system == "github":
            labels.append(t.priority)
        return {
            "key": t.key,
            "id": str(_num(t.key)),
            "title": t.title,
            "status": t.status,
            "category": t.category,
            "priority": t.priority,
            "resolution": t.resolution,
            "assignee": t.assignee,
            "created": t.created,
            "updated": t.updated or t.created,
            "labels": labels,
            "description": t.description,
            "finding_field": " ".join(t.finding_ids),
        }

    # ---------------------------------------------------------------------------------- verification

    def _verify(self, month: int) -> None:
        """Verification evidence for what was fixed — except the closures nobody ever reconciles.
        Rescans close in one set-based pass; retests, commits and attestations one by one."""
        with self.store.read() as conn:
            df = findings.frame(conn, self.engagement, ["finding_id", "state", "owner_name"])
        spec_of = {s.finding_id: s for s in self.specs if s.finding_id}
        waiting = df[df["state"].isin(["awaiting_verification", "routed"])]
        rescanned, by_hand = [], 0
        for row in waiting.itertuples():
            s = spec_of.get(row.finding_id)
            if (
                s is None
                or s.fixed is None
                or s.fixed > month
                or s.reappear is not None
                or row.finding_id in self.never_verified
            ):
                continue
            if row.state == "awaiting_verification" and self.rng.random() < 0.12:
                self.never_verified.add(row.finding_id)  # closed in the ticket, never reconciled
                continue
            kind = self.rng.choices(["rescan", "commit", "retest", "attestation"], [0.7, 0.1, 0.1, 0.1])[0]
            if (
                (kind == "commit" and s.asset.kind != "repo")
                or (kind == "attestation" and not row.owner_name)
                or by_hand >= 300
            ):
                kind = "rescan"
            if kind == "rescan":
                rescanned.append(row.finding_id)
                continue
            by_hand += 1
            evidence = {
                "commit": f"example/service-{s.n % 9}@{(s.n * 2654435761) % 16**12:012x}",
                "retest": f"run:retest-{s.n} {row.finding_id} retested {self.store.now():%Y-%m-%d}: not reproducible.",
                "attestation": f"Patched and redeployed; change CHG-{4000 + s.n}",
            }[kind]
            actor = row.owner_name if kind == "attestation" else self.analyst()
            try:
                verification.verify(
                    self.store,
                    row.finding_id,
                    kind=kind,
                    evidence=evidence,
                    actor=actor,
                    approver=APPROVER if kind == "attestation" else None,
                )
                self.verified.add(row.finding_id)
            except RefusedError:
                continue
        if rescanned:
            done = verification.verify_rescans(
                self.store, self.engagement, actor=self.analyst(), evidence="monthly rescan", finding_ids=rescanned
            )
            self.verified.update(done["finding_ids"])
        if month == 3:
            self._refused_attestation(df)

    def _refused_attestation(self, df) -> None:
        """An owner approving their own attestation is refused (and the refusal logged)."""
        owned = df[df["owner_name"].notna() & (df["state"] == "awaiting_verification")]
        if len(owned):
            fid, owner = owned.iloc[0]["finding_id"], owned.iloc[0]["owner_name"]
            with contextlib.suppress(RefusedError):
                verification.verify(
                    self.store, fid, kind="attestation", evidence="fixed", actor=owner, approver=f"  {owner.upper()} "
                )

    def _late_triage(self) -> None:
        """After the last routing run: a few validated findings not yet routed."""
        pending = self._new_ids("new")[:3]
        if pending:
            triage.triage(self.store, pending, "validated", reason="confirmed", actor=self.analyst())

    def _operator_day(self) -> None:
        """The operator's routine after the last routing run: a routing decision names the owner of one
        paused finding (released, without editing the owners map) and holds another until after the
        period; then the daily escalation of every finding past its SLA due date."""
        f, lk = schema.findings.c, schema.links.c
        with self.store.read() as conn:
            linked = select(lk.finding_id).where(lk.engagement == self.engagement)
            paused = list(
                conn.execute(
                    select(f.finding_id)
                    .where(f.engagement == self.engagement, f.state == "paused_no_owner", f.finding_id.not_in(linked))
                    .order_by(f.number)
                ).scalars()
            )
        owner = next(a for a in self.assets if a.mapped and a.team != "security" and a.lifecycle == "active")
        if len(paused) >= 3:  # at least one stays paused: the record shows every state
            decisions.decide(
                self.store,
                paused[0],
                owner=f"{owner.team}/{owner.role}/{owner.owner}",
                reason="the asset moved to this team; owners map update pending",
                actor=APPROVER,
            )
            decisions.decide(
                self.store,
                paused[1],
                hold_until=self.at(MONTHS - 1, 28).date() + timedelta(days=30),
                reason="asset inventory under review",
                actor=APPROVER,
            )
        escalation.escalate(self.store, self.engagement, actor=APPROVER)

    # ---------------------------------------------------------------------------------------- summary

    def _summary(self) -> dict[str, Any]:
        with self.store.read() as conn:
            df = findings.frame(conn, self.engagement, ["finding_id", "state", "severity", "tool", "disposition"])
            n_events = conn.execute(
                schema.events.select()
                .with_only_columns(schema.events.c.seq)
                .order_by(schema.events.c.seq.desc())
                .limit(1)
            ).scalar()
            n_tickets = conn.execute(
                schema.tickets.select()
                .with_only_columns(schema.tickets.c.key)
                .where(schema.tickets.c.current)
                .distinct()
            ).all()
        real = {s.finding_id for s in self.specs if s.finding_id}
        self.planted["batch_misses"] = self.unraised - self.verified
        self.planted["closure_misses"] = {
            f
            for t in self.tickets.values()
            if t.category == "done"
            for f in self._findings_of(t)
            if f in real and f not in self.verified
        }
        return {
            "engagement": self.engagement,
            "findings": len(df),
            "events": n_events,
            "tickets": len(n_tickets),
            "by_state": df["state"].value_counts().sort_index().to_dict(),
            "by_severity": df["severity"].value_counts().sort_index().to_dict(),
            "by_tool": df["tool"].value_counts().sort_index().to_dict(),
            "period": [START.isoformat(), self.at(MONTHS - 1, 28).date().isoformat()],
            "planted": {k: sorted(v, key=_num) for k, v in self.planted.items()},
            "inputs": str(self.workdir / "inputs"),
        }


def _num(key: str) -> int:
    digits = "".join(ch for ch in key.rsplit("-", 1)[-1].rsplit("#", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 0


def _policy(ticket_bands: tuple[str, ...]) -> str:
    """The demo's policy; ``ticket_bands`` widens ticket routing (the scale benchmarks route more)."""
    rules = {
        "critical": "ticket, sla_days: 30",
        "high": "ticket, sla_days: 60",
        "medium": "sprint_backlog, sla_days: 90",
        "low": "quarterly_cycle, sla_days: 180",
        "info": "security_record_only, sla_days: null",
    }
    for band in ticket_bands:
        if band != "info":
            rules[band] = "ticket, sla_days: " + rules[band].split("sla_days: ")[1]
    bands = "\n".join(f"    {band}: {{disposition: {rule}{ESCALATION.get(band, '')}}}" for band, rule in rules.items())
    return f"""\
canonical_record: {{system: handoffkit, downstream: [jira, servicenow, github]}}
routing:
  bands:
{bands}
  kev_override: {{disposition: ticket, sla_days: 14, use_catalog_due_date: true}}
ticket_payload:
  permalink_template: "{PERMALINK}"
  finding_id_from: [label, custom_field, token]
  custom_field: "Finding ID"
ownership: {{owners_file: null, unowned: pause, shared_queues: [security, secops, unassigned, triage]}}
reconciliation: {{cadence: monthly}}
closure_verification: {{accepted: [rescan, retest, commit, attestation]}}
"""


def build(
    db: str | None = None,
    *,
    engagement: str = "DEMO",
    size: int = 2000,
    seed: int = 7,
    workdir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    ticket_bands: tuple[str, ...] = ("critical", "high"),
    keep_inputs: bool = True,
) -> dict[str, Any]:
    """Build the demo engagement into the database at ``db`` (see the module docstring)."""
    store = Store(db, clock=Clock(fixed=datetime.combine(START, time(8), tzinfo=UTC), seed=seed))
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="handoffkit-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    programme = Programme(store, engagement, size, seed, work, progress or (lambda _m: None), ticket_bands, keep_inputs)
    summary = programme.run()
    summary["database"] = store.safe_url
    store.dispose()
    return summary
