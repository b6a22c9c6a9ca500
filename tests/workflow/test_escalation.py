"""Escalation (issue 25, item 5): a finding past its SLA goes to its band's escalation owner, once per breach."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from handoffkit.record import engagements, findings, replay
from handoffkit.workflow import calibration, escalation, exceptions, verification
from tests.builders import ACTOR, DATA, SHOP, events, finding, route, snapshot, validate

CRITICAL_TO = "payments/head of engineering/Ines Duarte"


@pytest.fixture
def escalating(store, engagement, tmp_path) -> str:
    """ACME's policy with an escalation owner for the critical and high bands (medium names none)."""
    text = (DATA / "policy.yaml").read_text()
    text = text.replace("sla_days: 30}", f"sla_days: 30, escalation: '{CRITICAL_TO}'}}")
    text = text.replace("sla_days: 60}", "sla_days: 60, escalation: payments/service owner}")
    path = tmp_path / "escalating.yaml"
    path.write_text(text)
    engagements.init(store, engagement, path, owners_path=DATA / "owners.csv", actor=ACTOR)
    return engagement


def day(store, month: int, dd: int) -> None:
    store.clock.fixed = datetime(2026, month, dd, 9, tzinfo=UTC)


def escalate(store, engagement="ACME", **kw):
    return escalation.escalate(store, engagement, actor=ACTOR, **kw)


def test_a_finding_past_its_due_date_is_escalated_once_per_breach(store, escalating, rec):
    crit, high = rec.host(SHOP, {"name": "Overdue RCE", "severity": 4}, {"name": "High XSS", "severity": 3})
    validate(store, [crit, high])
    route(store)  # due 2026-04-01 and 2026-05-01
    day(store, 4, 1)
    assert escalate(store).escalated == []  # due today: not yet breached
    assert events(store, "finding_escalated") == []

    day(store, 4, 2)
    result = escalate(store)
    assert [(e["finding_id"], e["sla_due"], e["days_overdue"], e["escalated_to"]) for e in result.escalated] == [
        (crit, date(2026, 4, 1), 1, CRITICAL_TO)
    ]
    [ev] = events(store, "finding_escalated")
    assert (ev["finding_id"], ev["actor"], ev["data"]["escalated_to"], ev["data"]["owner"]) == (
        crit,
        ACTOR,
        CRITICAL_TO,
        "payments/service owner/Priya Raman",
    )
    assert ev["data"]["sla_due"] == "2026-04-01" and ev["data"]["policy_version"] == 2

    before = snapshot(store)
    again = escalate(store)  # asked twice: nothing new, not even a run event
    assert (again.escalated, again.already_escalated) == ([], 1) and snapshot(store) == before
    day(store, 4, 20)
    assert escalate(store).escalated == []
    assert len(events(store, "finding_escalated")) == 1
    assert snapshot(store)["findings_versions"] == before["findings_versions"]  # no finding row changed


def test_a_new_due_date_that_passes_is_a_new_breach(store, escalating, rec):
    [fid] = rec.host(SHOP, {"name": "Recalibrated", "severity": 3})
    validate(store, [fid])
    route(store)  # high: due 2026-05-01
    day(store, 5, 2)
    assert [e["sla_due"] for e in escalate(store).escalated] == [date(2026, 5, 1)]
    calibration.calibrate(store, fid, severity="critical", reason="card data in scope", actor=ACTOR)
    route(store)  # critical: due 2026-04-01, already past
    assert finding(store, fid)["sla_due"] == date(2026, 4, 1)
    second = escalate(store)
    assert [(e["sla_due"], e["escalated_to"]) for e in second.escalated] == [(date(2026, 4, 1), CRITICAL_TO)]
    assert len(events(store, "finding_escalated", finding_id=fid)) == 2


def test_excepted_closed_and_unnamed_bands_are_not_escalated(store, escalating, rec):
    excepted, medium, crit = rec.host(
        SHOP,
        {"name": "Accepted risk", "severity": 4},
        {"name": "Medium overdue", "severity": 2},
        {"name": "Verified", "severity": 4},
    )
    validate(store, [excepted, medium, crit])
    route(store)
    exceptions.grant(
        store, excepted, approver="Dana Whitfield", reason="legacy", expires=date(2026, 12, 1), actor=ACTOR
    )
    verification.verify(store, crit, kind="commit", evidence="shop/checkout@9f2c4e1a", actor=ACTOR)
    day(store, 9, 1)  # everything is past due
    result = escalate(store)
    assert result.escalated == []
    assert result.unescalated == {"medium": 1}  # the policy names no escalation owner for medium
    assert events(store, "finding_escalated") == []


def test_a_dry_run_writes_nothing(store, escalating, rec):
    [fid] = rec.host(SHOP, {"name": "Dry run RCE", "severity": 4})
    validate(store, [fid])
    route(store)
    day(store, 4, 3)
    before = snapshot(store)
    plan = escalate(store, dry_run=True)
    assert [e["finding_id"] for e in plan.escalated] == [fid] and snapshot(store) == before


def test_escalations_as_of_an_earlier_instant_do_not_include_later_ones(store, escalating, rec):
    [fid] = rec.host(SHOP, {"name": "As-of RCE", "severity": 4})
    validate(store, [fid])
    route(store)
    day(store, 4, 3)
    escalate(store)
    with store.read() as conn:
        assert escalation.latest(conn, "ACME", replay.instant("2026-04-02")).empty
        now = escalation.latest(conn, "ACME", replay.instant("2026-04-03"))
    assert now[["finding_id", "sla_due", "escalated_to"]].values.tolist() == [[fid, "2026-04-01", CRITICAL_TO]]
    # an escalation changes nothing the log rebuilds: the record as of then equals the stored one
    with store.read() as conn:
        stored = findings.canonical_row(dict(findings.get(conn, fid)._mapping))
    assert findings.rebuild(store, "ACME")[fid] == stored


def test_without_any_escalation_owner_nothing_is_escalated(store, engagement, rec):
    [fid] = rec.host(SHOP, {"name": "No owner named", "severity": 4})
    validate(store, [fid])
    route(store)
    day(store, 4, 3)
    result = escalate(store)
    assert (result.escalated, result.unescalated) == ([], {"critical": 1})
    assert events(store, "escalation_run") == []
