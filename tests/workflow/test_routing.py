"""Policy routing: bands, the KEV override, owners, holds, SLA, dry-run and idempotence, set-based at scale
(issue 4, "Routing" and "SLA")."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import event

from handoffkit.cli import cli
from handoffkit.demo import formats
from handoffkit.record import engagements
from handoffkit.workflow import exceptions, triage
from tests.builders import ACTOR, DATA, LEGACY, QUEUE, ROOT, SHOP, Record, events, finding, route, snapshot, validate

VALIDATED = date(2026, 3, 2)  # the clock fixture's day


def test_kev_finding_in_the_low_band_routes_to_a_ticket_with_14_days(store, rec):
    rec.kev(("CVE-2024-1111", "2026-06-30"))  # the catalog's due date is later than 14 days: 14 days win
    kev_low, plain_low = rec.host(
        SHOP,
        {"name": "Exploited lib", "severity": 1, "cves": ["CVE-2024-1111"]},
        {"name": "Unexploited lib", "severity": 1, "cves": ["CVE-2024-2222"]},
    )
    validate(store, [kev_low, plain_low])

    result = route(store)

    row = finding(store, kev_low)
    assert (row["severity"], row["kev"], row["state"], row["disposition"]) == ("low", True, "routed", "ticket")
    assert row["sla_due"] == date(2026, 3, 16)
    assert (finding(store, plain_low)["disposition"], finding(store, plain_low)["sla_due"]) == (
        "quarterly_cycle",
        date(2026, 8, 29),
    )
    rules = {c["finding_id"]: c["rule"] for c in result.changes}
    assert rules == {kev_low: "kev_override", plain_low: "band:low"}


def test_kev_due_date_is_the_earlier_of_14_days_and_the_catalog(store, rec):
    # catalog due date → expected SLA due: CISA's wins when earlier, else 14 days from validation (03-16)
    cases = {"2026-03-09": date(2026, 3, 9), "2026-03-16": date(2026, 3, 16), "2026-04-30": date(2026, 3, 16)}
    rec.kev(*((f"CVE-2025-000{i}", due) for i, due in enumerate(cases)))
    ids = rec.host(
        SHOP, *({"name": f"KEV medium {i}", "severity": 2, "cves": [f"CVE-2025-000{i}"]} for i in range(len(cases)))
    )
    validate(store, ids)
    route(store)
    assert [(finding(store, f)["disposition"], finding(store, f)["sla_due"]) for f in ids] == [
        ("ticket", due) for due in cases.values()
    ]


def test_kev_listing_after_routing_pulls_a_batched_finding_into_a_ticket(store, rec):
    [fid] = rec.host(SHOP, {"name": "Later exploited", "severity": 1, "cves": ["CVE-2025-7777"]})
    validate(store, [fid])
    route(store)
    assert finding(store, fid)["disposition"] == "quarterly_cycle"

    rec.kev(("CVE-2025-7777", "2026-12-31"))
    route(store)

    row = finding(store, fid)
    assert (row["disposition"], row["sla_due"]) == ("ticket", date(2026, 3, 16))
    [_, rerouted] = events(store, "finding_routed", finding_id=fid)
    assert rerouted["data"]["rule"] == "kev_override" and rerouted["data"]["from"]["disposition"] == "quarterly_cycle"


@pytest.mark.parametrize("origin", ["https://unmapped.test", QUEUE], ids=["not-in-map", "shared-queue-team"])
def test_an_owner_less_critical_pauses_and_never_lands_in_a_queue(store, rec, origin):
    [fid] = rec.host(origin, {"name": "Critical RCE", "severity": 4, "cves": ["CVE-2025-1000"]})
    validate(store, [fid])

    result = route(store)

    row = finding(store, fid)
    assert (row["severity"], row["state"], row["disposition"]) == ("critical", "paused_no_owner", "paused_no_owner")
    assert (row["owner_team"], row["owner_role"], row["owner_name"], row["sla_due"]) == (None, None, None, None)
    assert result.held_back["no_owner"] == 1 and result.by_owner_team == {}
    [ev] = events(store, "finding_routed", finding_id=fid)
    assert ev["data"]["rule"] == "no_owner" and ev["state"] == "paused_no_owner"


def test_a_paused_finding_routes_once_its_owner_is_resolved(store, rec, tmp_path):
    [fid] = rec.host("https://unmapped.test", {"name": "Critical SSRF", "severity": 4})
    validate(store, [fid])
    route(store)
    owners = tmp_path / "owners.csv"
    owners.write_text(
        (DATA / "owners.csv").read_text()
        + "https://unmapped.test,service owner,identity,Lena Fischer,internet,high,active\n"
    )
    engagements.init(store, "ACME", DATA / "policy.yaml", owners_path=owners, actor=ACTOR)

    route(store)

    row = finding(store, fid)
    assert (row["state"], row["disposition"], row["owner_team"], row["owner_name"]) == (
        "routed",
        "ticket",
        "identity",
        "Lena Fischer",
    )
    assert row["sla_due"] == date(2026, 4, 1)


def test_decommissioning_assets_are_held_back(store, rec):
    [fid] = rec.host(LEGACY, {"name": "Legacy high", "severity": 3})
    validate(store, [fid])
    result = route(store)
    row = finding(store, fid)
    assert (row["state"], row["disposition"], row["sla_due"]) == ("held_back", "held_decommissioning", None)
    assert result.held_back["decommissioning"] == 1 and "ticket" not in result.by_disposition


def test_owner_from_exact_match_or_pattern_through_the_parents(store, rec):
    owned = {  # host as the scanner names it, port → owner team and name
        ("db-1.corp.test", 0): ("infrastructure", "Amara Okafor"),  # the pattern
        ("db-2.corp.test", 5432): ("infrastructure", "Amara Okafor"),  # the pattern, through host:port
        ("https://shop.test/checkout", 0): ("payments", "Priya Raman"),  # a URL through its origin
        ("https://SHOP.test", 0): ("payments", "Priya Raman"),  # case-insensitive
    }
    ids = [
        rec.host(host, {"name": f"Owned high on {host}:{port}", "severity": 3, "port": port})[0] for host, port in owned
    ]
    validate(store, ids)
    route(store)
    got = [(finding(store, f)["state"], finding(store, f)["owner_team"], finding(store, f)["owner_name"]) for f in ids]
    assert got == [("routed", team, name) for team, name in owned.values()], [
        finding(store, f)["asset_ref"] for f in ids
    ]


def test_sla_due_dates_per_band_count_from_validation(store, rec, clock):
    bands = ["critical", "high", "medium", "low", "info"]
    ids = rec.host(SHOP, *({"name": f"Band {b}", "severity": 4 - i} for i, b in enumerate(bands)))
    validate(store, ids)
    store.clock.fixed = datetime(2026, 3, 20, 12, tzinfo=UTC)  # routed 18 days later: the clock started earlier

    route(store)

    got = {finding(store, f)["severity"]: (finding(store, f)["disposition"], finding(store, f)["sla_due"]) for f in ids}
    assert got == {
        "critical": ("ticket", date(2026, 4, 1)),
        "high": ("ticket", date(2026, 5, 1)),
        "medium": ("sprint_backlog", date(2026, 5, 31)),
        "low": ("quarterly_cycle", date(2026, 8, 29)),
        "info": ("security_record_only", None),
    }


def test_pci_critical_within_the_days_the_policy_states(store, clock, tmp_path):
    tighter = tmp_path / "policy.yaml"
    tighter.write_text(
        (DATA / "policy.yaml")
        .read_text()
        .replace("critical: {disposition: ticket, sla_days: 30}", "critical: {disposition: ticket, sla_days: 7}")
    )
    policies = {
        "TEST": (DATA / "policy.yaml", 30),
        "SHIPPED": (ROOT / "params/policy.yaml", 30),  # PCI DSS 6.3.3: critical within 30 days
        "TIGHT": (tighter, 7),
    }  # any number the policy states
    for key, (policy, days) in policies.items():
        engagements.init(store, key, policy, owners_path=DATA / "owners.csv", actor=ACTOR)
        [fid] = Record(store, key, tmp_path).host(SHOP, {"name": f"Card data RCE {key}", "severity": 4})
        validate(store, [fid])
        route(store, key)
        assert (finding(store, fid)["disposition"], (finding(store, fid)["sla_due"] - VALIDATED).days) == (
            "ticket",
            days,
        ), key


def test_a_real_run_logs_one_routing_event_per_changed_decision_with_the_policy_version(store, rec):
    ids = rec.web(SHOP, ("Routed A", 3), ("Routed B", 2), ("Routed C", 0))
    validate(store, ids)

    result = route(store)

    routed = events(store, "finding_routed")
    assert sorted(e["finding_id"] for e in routed) == sorted(ids)
    assert all(e["data"]["policy_version"] == 1 and e["actor"] == ACTOR for e in routed)
    assert [e["data"]["changed"] for e in events(store, "routing_run")] == [3]
    assert result.by_disposition == {"security_record_only": 1, "sprint_backlog": 1, "ticket": 1}
    assert result.by_owner_team == {"payments": 3}


def _mixed_record(store, rec) -> list[str]:
    ids = rec.web(SHOP, ("Mixed high", 3), ("Mixed medium", 2), ("Mixed excepted", 1))
    ids += rec.host("https://unmapped.test", {"name": "Mixed unowned", "severity": 4})
    validate(store, ids)
    route(store)
    exceptions.grant(store, ids[2], approver="Dana Whitfield", reason="legacy", expires=date(2026, 3, 10), actor=ACTOR)
    ids += rec.web(SHOP, ("Mixed new high", 3))
    validate(store, ids[-1:])
    triage.triage(store, [ids[1]], "false_positive", reason="not reachable", actor=ACTOR)
    store.clock.fixed = datetime(2026, 3, 12, 9, tzinfo=UTC)  # the exception has expired
    return ids


def test_dry_run_prints_the_plan_and_writes_nothing(store, rec):
    ids = _mixed_record(store, rec)
    before = snapshot(store)

    plan = route(store, dry_run=True)

    assert snapshot(store) == before
    assert plan.dry_run and plan.exceptions_expired == []
    assert {c["finding_id"] for c in plan.changes} == {ids[2], ids[4]}  # expired exception, newly validated
    assert plan.by_owner_team == {"payments": 3}

    real = route(store)
    assert snapshot(store) != before
    decided = ("finding_id", "to", "owner_team", "sla_due", "rule")
    assert [tuple(c[k] for k in decided) for c in plan.changes] == [tuple(c[k] for k in decided) for c in real.changes]
    assert (plan.by_disposition, plan.by_owner_team, plan.held_back) == (
        real.by_disposition,
        real.by_owner_team,
        real.held_back,
    )
    assert real.exceptions_expired == [ids[2]]


def test_dry_run_cli_writes_nothing(store, rec):
    _mixed_record(store, rec)
    before = snapshot(store)
    out = CliRunner().invoke(
        cli, ["--db", store.url, "route", "-e", "ACME", "--dry-run", "--actor", ACTOR, "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    assert snapshot(store) == before
    doc = json.loads(out.output)
    assert doc["dry_run"] is True and doc["changed"] == len(doc["changes"]) >= 1
    table = CliRunner().invoke(cli, ["--db", store.url, "route", "-e", "ACME", "--dry-run", "--actor", ACTOR])
    assert table.exit_code == 0 and "plan (dry run, nothing written)" in table.output
    assert snapshot(store) == before


def test_an_unchanged_re_run_writes_nothing(store, rec):
    ids = _mixed_record(store, rec)
    route(store)
    before = snapshot(store)

    again = route(store)

    assert snapshot(store) == before
    assert again.changes == [] and again.exceptions_expired == []
    assert finding(store, ids[0])["state"] == "routed"


@pytest.mark.slow  # 10,000 findings ingested and routed: 5-20 s
@pytest.mark.parametrize("n", [10_000])
def test_routing_is_set_based_not_a_round_trip_per_finding(store, engagement, tmp_path, n):
    sites = [
        {
            "origin": origin,
            "alerts": [
                {
                    "plugin": 50000 + i,
                    "name": f"Bulk {i}",
                    "risk": i % 4,
                    "cwe": 79,
                    "wasc": 8,
                    "desc": "d",
                    "solution": "s",
                    "instances": [{"uri": f"{origin}/p{i}", "method": "GET", "param": "q", "evidence": "e"}],
                }
                for i in range(n // 2)
            ],
        }
        for origin in (SHOP, "https://unmapped.test")
    ]
    Record(store, engagement, tmp_path).ingest("bulk.json", formats.zap(sites, "Mon, 2 Mar 2026 08:00:00"))
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    validate(store, triage.select_ids(store, engagement))  # the gate before it is set-based too
    assert len(statements) <= 100, f"triage: {len(statements)} SQL statements for {n} findings"
    statements.clear()

    result = route(store)

    assert len(result.changes) == n and result.held_back["no_owner"] == n // 2
    assert len(statements) <= 100, f"routing: {len(statements)} SQL statements for {n} findings"
    assert len(events(store, "finding_routed")) == n
