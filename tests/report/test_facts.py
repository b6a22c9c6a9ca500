"""Numbers reconcile: every figure of the leadership facts, recomputed from the exported activity CSV and
from the record (the log replayed in Python, not the SQL the views use), is the same; and every number
the narrative and the headline tiles print is one of those facts."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import date
from pathlib import Path
from statistics import mean

import pytest

from handoffkit import reconcile
from handoffkit.errors import ConfigError
from handoffkit.record import findings, schema
from handoffkit.record.csvsafe import unsafe_cell
from handoffkit.record.model import HOLDS, SEVERITIES
from handoffkit.record.store import Store
from handoffkit.report import checklist, facts, log_export, views
from tests.builders import ACTOR, AS_OF, END, START

INSTANT = "2026-09-30T23:59:59.999999Z"


@pytest.fixture
def pack(demo_copy: Store, tmp_path: Path):
    """(facts, the period's CSV rows, the full log's CSV rows, the record replayed as of the instant)."""
    f = facts.compute(demo_copy, "DEMO", START, END, AS_OF)
    log_export.export_log(demo_copy, "DEMO", tmp_path / "period.csv", start=START, end=END, as_of=AS_OF, actor=ACTOR)
    log_export.export_log(demo_copy, "DEMO", tmp_path / "full.csv", as_of=AS_OF, actor=ACTOR)
    record = findings.rebuild(demo_copy, "DEMO", schema.parse_ts(INSTANT))
    return f, rows(tmp_path / "period.csv"), rows(tmp_path / "full.csv"), record, demo_copy


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [{k: unsafe_cell(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def ok(r: dict[str, str], type_: str) -> bool:
    return r["type"] == type_ and r["outcome"] == "success" and r["engagement"] == "DEMO"


def test_period_counts_match_the_exported_csv(pack) -> None:
    f, period, _, _, _ = pack
    assert f.events == len(period)
    assert f.created == sum(ok(r, "finding_created") for r in period)
    routed = Counter(
        "held_back" if r["disposition"] in HOLDS else r["disposition"] for r in period if ok(r, "finding_routed")
    )
    assert f.routed == {k: routed.get(k, 0) for k in f.routed} and f.routing_decisions == sum(routed.values())
    assert f.held_back == routed["held_back"]
    kinds = Counter(r["detail"] for r in period if ok(r, "finding_verified_closed"))
    assert f.verified == {k: kinds.get(k, 0) for k in ("rescan", "retest", "commit", "attestation")}
    assert f.verified_total == sum(kinds.values()) > 0
    assert f.ticket_closures == sum(ok(r, "ticket_closed_observed") for r in period)
    assert f.reopened == sum(ok(r, "finding_reopened") for r in period)
    assert f.calibrations == sum(ok(r, "severity_calibrated") for r in period)
    assert f.calibrations_down == sum(ok(r, "severity_calibrated") and r["detail"] == "down" for r in period)


def test_all_time_figures_match_the_full_csv(pack) -> None:
    f, _, full, _, _ = pack
    reopened = {r["finding_id"] for r in full if ok(r, "finding_reopened")}
    verified = {r["finding_id"] for r in full if ok(r, "finding_verified_closed")}
    assert f.reopen_rate_pct == round(100 * len(reopened) / len(verified), 1)
    assert (f.chain_head_seq, f.chain_head_hash) == (int(full[-1]["seq"]), full[-1]["row_hash"])


def test_mttr_matches_the_full_csv(pack) -> None:
    f, _, full, _, _ = pack
    validated: dict[str, str] = {}
    closed: dict[str, dict[str, str]] = {}
    for r in full:
        if ok(r, "finding_triaged") and r["state"] == "validated":
            validated.setdefault(r["finding_id"], r["occurred_at"])
        if ok(r, "finding_verified_closed"):
            closed[r["finding_id"]] = r
    days: dict[str, list[float]] = {}
    for fid, r in closed.items():
        if START <= r["occurred_at"][:10] <= END and fid in validated:
            span = schema.parse_ts(r["occurred_at"]) - schema.parse_ts(validated[fid])
            days.setdefault(r["severity"], []).append(span.total_seconds() / 86_400)
    for band in SEVERITIES:
        expected = round(mean(days[band]), 1) if band in days else None
        assert f.mttr_days[band] == pytest.approx(expected), band
    assert f.mttr_days["all"] == pytest.approx(round(mean(d for ds in days.values() for d in ds), 1))


def sla_status(row: dict, day: date) -> str:
    if row.get("sla_due") is None or row["state"] in ("false_positive", "duplicate"):
        return "no_sla"
    due = date.fromisoformat(row["sla_due"])
    if row["state"] == "verified_closed":
        return "met" if date.fromisoformat(row["closed_at"][:10]) <= due else "breached"
    return "breached" if day > due else "open"


def test_record_figures_match_the_replayed_log(pack) -> None:
    f, _, _, record, _ = pack
    closed = ("verified_closed", "false_positive", "duplicate")
    open_rows = [r for r in record.values() if r["state"] not in closed]
    assert f.findings_total == len(record) and f.open_findings == len(open_rows)
    assert f.open_by_severity == {b: sum(r["severity"] == b for r in open_rows) for b in SEVERITIES}
    status = {fid: sla_status(r, date(2026, 9, 30)) for fid, r in record.items()}
    with_sla = [s for s in status.values() if s != "no_sla"]
    assert f.sla_breached == with_sla.count("breached")
    assert f.sla_compliance_pct == round(100 * (len(with_sla) - with_sla.count("breached")) / len(with_sla), 1)
    assert f.sla_overdue_open == sum(status[r["finding_id"]] == "breached" for r in open_rows)
    kev_open = [r for r in open_rows if r["kev"]]
    assert f.kev_open == len(kev_open) > 0
    assert f.kev_breached == sum(status[r["finding_id"]] == "breached" for r in kev_open)
    kev = [status[fid] for fid, r in record.items() if r["kev"] and status[fid] != "no_sla"]
    assert f.kev_compliance_pct == round(100 * (len(kev) - kev.count("breached")) / len(kev), 1)


def test_reconciliation_figures_match_the_record(pack) -> None:
    f, _, _, record, store = pack
    then = findings.as_of(store, "DEMO", schema.parse_ts(INSTANT))
    links = {fid for fid, keys in zip(then["finding_id"], then["ticket_keys"], strict=True) if keys}
    routed_to_ticket = [fid for fid, r in record.items() if r["disposition"] == "ticket" and r["state"] == "routed"]
    assert f.routing_misses == sum(fid not in links for fid in routed_to_ticket)
    closed = ("verified_closed", "false_positive", "duplicate")
    assert f.linked_open == sum(fid in links for fid, r in record.items() if r["state"] not in closed)
    run = reconcile.reconcile(store, "DEMO", record=True, actor=ACTOR, as_of=schema.parse_ts(INSTANT))
    assert (f.closure_misses, f.severity_drift, f.orphan_tickets) == (
        run.counts["closure_misses"],
        run.counts["severity_drift"],
        run.counts["orphan_tickets"],
    )


def test_the_checklist_figures_are_the_checklist(demo_copy: Store) -> None:
    f = facts.compute(demo_copy, "DEMO", START, END, AS_OF)
    items = checklist.evaluate(demo_copy, "DEMO", schema.parse_ts(INSTANT))
    assert [(i["number"], i["status"]) for i in f.checklist] == [(i.number, i.status) for i in items]
    assert sum(f.checklist_counts.values()) == 14 and f.checklist_counts["fail"] > 0  # the demo plants failures


def printed_numbers(text: str) -> list[str]:
    """The numbers a reader sees, without dates, instants, hashes and checklist item numbers."""
    text = re.sub(r"\d{4}-\d{2}-\d{2}(T[\d:.]+Z)?", " ", text)
    text = re.sub(r"\b[0-9a-f]{64}\b", " ", text)
    text = re.sub(r"\b\d+\. ", " ", text)  # "4. evidence linked…": an item number
    return re.findall(r"\d[\d,]*(?:\.\d+)?", text)


def fact_strings(f: facts.Facts) -> set[str]:
    values: list = []
    for value in (*f.as_dict().values(), *f.checklist_counts.values(), len(f.checklist)):
        values += list(value.values()) if isinstance(value, dict) else [value]
    out = set()
    for v in values:
        if isinstance(v, bool) or v is None or isinstance(v, (str, list)):
            continue
        out |= {f"{v:,}", str(v)} if isinstance(v, int) else {f"{v:.1f}", f"{v:,.1f}"}
    return out


def test_every_printed_number_is_a_fact(pack) -> None:
    f, *_ = pack
    allowed = fact_strings(f)
    shown = [getattr(tile, "value", tile) for tile in facts.headline(f).values()]  # targets are thresholds
    text = " ".join(facts.narrative(f)) + " " + " ".join(map(str, shown))
    numbers = printed_numbers(text)
    assert len(numbers) > 30
    assert [n for n in numbers if n not in allowed] == []


def test_an_engagement_with_no_findings_yet_reads_as_zeros_and_not_measurable(store: Store, engagement: str) -> None:
    f = facts.compute(store, engagement, START, END, AS_OF)
    assert (f.findings_total, f.created, f.verified_total, f.routing_misses) == (0, 0, 0, 0)
    assert f.sla_compliance_pct is None and f.reopen_rate_pct is None and f.mttr_days["all"] is None
    text = " ".join(facts.narrative(f))
    assert "SLA compliance is not measurable" in text and "all bands no closures" in text
    sla_tile = facts.headline(f)["SLA compliance"]
    assert (sla_tile.value, sla_tile.status) == ("not measurable", None)  # no status rather than a wrong one
    assert views.routing_decisions(store, engagement, as_of=AS_OF).empty


@pytest.mark.parametrize(
    ("figure", "value", "status"),
    [
        ("sla_compliance_pct", 90.0, "on target"),
        ("sla_compliance_pct", 89.9, "at risk"),
        ("sla_compliance_pct", 80.0, "at risk"),
        ("sla_compliance_pct", 79.9, "off target"),
        ("sla_compliance_pct", None, None),  # not measurable: no status rather than a wrong one
        ("open_critical", 0, "on target"),
        ("open_critical", 5, "at risk"),
        ("open_critical", 6, "off target"),
        ("kev_overdue", 1, "off target"),  # any KEV finding past due is off target
    ],
)
def test_threshold_status(figure: str, value, status) -> None:
    assert facts.THRESHOLDS[figure].status(value) == status


def test_thresholds_take_overrides_and_refuse_nonsense() -> None:
    assert facts.thresholds({"sla_compliance_pct": {"target": 95}})["sla_compliance_pct"].status(92) == "at risk"
    with pytest.raises(ConfigError, match="unknown figure 'sla_compliance' \\(did you mean 'sla_compliance_pct'"):
        facts.thresholds({"sla_compliance": {"target": 95}})
    with pytest.raises(ConfigError, match=r"thresholds\.open_critical\.at_risk: expected a number, got 'five'"):
        facts.thresholds({"open_critical": {"at_risk": "five"}})
    with pytest.raises(ConfigError, match=r"thresholds\.open_critical: expected a mapping of target and at_risk"):
        facts.thresholds({"open_critical": {"limit": 3}})


@pytest.mark.parametrize(
    ("start", "end", "before"),
    [
        ("2026-07-01", "2026-09-30", ("2026-04-01", "2026-06-30")),
        ("2026-01-01", "2026-03-31", ("2025-10-01", "2025-12-31")),
        ("2026-07-10", "2026-07-19", ("2026-06-30", "2026-07-09")),  # not a quarter: as many days before
    ],
)
def test_previous_period(start: str, end: str, before: tuple[str, str]) -> None:
    assert facts.previous_period(start, end) == before


def test_the_headline_judges_and_compares_with_the_previous_quarter_as_of_its_end(demo_store: Store) -> None:
    now = facts.compute(demo_store, "DEMO", START, END, AS_OF)
    prior = facts.previous_period(START, END)
    before = facts.compute(demo_store, "DEMO", *prior, prior[1])
    assert before.as_of.startswith("2026-06-30T23:59:59")
    tiles = facts.headline(now, before)
    critical = tiles["open critical findings"]
    delta = now.open_by_severity["critical"] - before.open_by_severity["critical"]
    assert critical.value == now.open_by_severity["critical"]
    assert critical.change == (f"{delta:+,} since Q2 2026" if delta else "unchanged since Q2 2026")
    assert critical.status == facts.THRESHOLDS["open_critical"].status(now.open_by_severity["critical"])
    assert tiles["KEV findings past due"].value == now.kev_breached
    assert facts.headline(now)["SLA compliance"].change is None  # no previous facts, no change claimed


def test_decisions_name_the_ids_behind_each_item(demo_store: Store) -> None:
    f = facts.compute(demo_store, "DEMO", START, END, AS_OF)
    items = {item["what"].split(":")[0]: item["ids"] for item in facts.decisions(demo_store, f)}
    kev = facts.behind(demo_store, "DEMO", "kev_open", as_of=AS_OF)
    assert set(items["KEV findings past their due date"]) == set(kev.loc[kev["sla_status"] == "breached", "finding_id"])
    assert len(items["KEV findings past their due date"]) == f.kev_breached
    listed = facts.behind(demo_store, "DEMO", "open_findings", as_of=AS_OF).set_index("finding_id")
    for finding in items["Open critical findings with no resolved owner"]:
        assert listed.loc[finding, "severity"] == "critical"
    failing = [i for i in f.checklist if i["status"] == "fail"]
    assert [k for k in items if k.startswith("Checklist item")] == [
        f"Checklist item {i['number']} fails" for i in failing
    ]
