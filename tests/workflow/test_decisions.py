"""Routing decisions (issue 25, item 1): a person decides a finding's owner or holds it, as an event that
routing, the checklist and any as-of replay read from the log."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from handoffkit.errors import NotFoundError, RefusedError
from handoffkit.record import findings, replay, schema
from handoffkit.report import checklist, views
from handoffkit.workflow import decisions, triage, verification
from tests.builders import ACTOR, SHOP, events, finding, route, snapshot, validate

UNMAPPED = "https://unmapped.test"
DAY2 = datetime(2026, 3, 5, 10, tzinfo=UTC)


@pytest.fixture
def paused(store, rec) -> str:
    [fid] = rec.host(UNMAPPED, {"name": "Critical SSRF", "severity": 4})
    validate(store, [fid])
    route(store)
    assert finding(store, fid)["state"] == "paused_no_owner"
    return fid


def assets(store) -> list[tuple]:
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(select(schema.assets).order_by(schema.assets.c.asset_ref))]


def test_an_owner_decision_releases_a_paused_finding_and_the_next_route_routes_it_to_that_owner(store, paused):
    before = assets(store)

    out = decisions.decide(
        store, paused, owner="Payments/Service Owner/Priya  Raman", reason="shop team owns the SSRF", actor=ACTOR
    )

    row = finding(store, paused)
    # the owners map's spelling of team and role; released back to routing, not yet routed
    assert (row["state"], row["disposition"], row["owner_team"], row["owner_role"], row["owner_name"]) == (
        "validated",
        None,
        "payments",
        "service owner",
        "Priya Raman",
    )
    assert out["owner"] == "payments/service owner/Priya Raman"
    [ev] = events(store, "routing_decided", finding_id=paused)
    assert (ev["actor"], ev["data"]["decision"], ev["data"]["reason"]) == (ACTOR, "owner", "shop team owns the SSRF")

    store.clock.fixed = DAY2
    result = route(store)

    row = finding(store, paused)
    assert (row["state"], row["disposition"], row["owner_team"], row["owner_name"]) == (
        "routed",
        "ticket",
        "payments",
        "Priya Raman",
    )
    assert row["sla_due"] == date(2026, 4, 1)  # the critical band's 30 days from validation, per policy
    [_, routed] = events(store, "finding_routed", finding_id=paused)
    assert (routed["data"]["rule"], routed["data"]["owner_by"]) == ("band:critical", "decision")
    assert result.held_back["no_owner"] == 0
    assert assets(store) == before  # the owners map was not edited
    assert route(store).changes == []  # the decision stays in force: a re-run changes nothing


def test_a_hold_keeps_a_routable_finding_out_of_routing_until_its_day(store, rec):
    [fid] = rec.web(SHOP, ("Held high", 3))
    validate(store, [fid])
    decisions.decide(store, fid, hold_until=date(2026, 3, 20), reason="waiting for the vendor", actor=ACTOR)
    row = finding(store, fid)
    assert (row["state"], row["disposition"], row["owner_team"], row["sla_due"]) == (
        "held_back",
        "held_decision",
        None,
        None,
    )

    store.clock.fixed = datetime(2026, 3, 19, 23, tzinfo=UTC)
    result = route(store)
    assert finding(store, fid)["disposition"] == "held_decision" and result.held_back["decision"] == 1

    store.clock.fixed = datetime(2026, 3, 20, 8, tzinfo=UTC)  # the hold's day: routed per policy again
    route(store)
    row = finding(store, fid)
    assert (row["state"], row["disposition"], row["owner_name"]) == ("routed", "ticket", "Priya Raman")


def test_a_hold_then_an_owner_decision_the_latest_decision_is_in_force(store, paused):
    decisions.decide(store, paused, hold_until=date(2026, 6, 1), reason="pending asset inventory", actor=ACTOR)
    decisions.decide(store, paused, owner="infrastructure/system administrator", reason="inventory done", actor=ACTOR)
    route(store)
    row = finding(store, paused)
    assert (row["state"], row["owner_team"], row["owner_name"]) == ("routed", "infrastructure", None)


@pytest.mark.parametrize(
    "owner, message",
    [
        ("paymnts/service owner", "not in the owners map (did you mean 'payments'?)"),
        ("payments/system administrator", "is not a role of team 'payments'"),
        ("security/service owner", "is a shared queue"),
        ("payments", "expected TEAM/ROLE"),
        ("/service owner", "expected TEAM/ROLE"),
    ],
    ids=["unknown-team", "role-of-another-team", "shared-queue", "no-role", "no-team"],
)
def test_an_owner_the_owners_map_does_not_name_is_refused_and_logged(store, paused, owner, message):
    before = finding(store, paused)
    with pytest.raises(RefusedError, match=re.escape(message)):
        decisions.decide(store, paused, owner=owner, reason="guess", actor=ACTOR)
    assert finding(store, paused) == before
    [denied] = events(store, "routing_decided", outcome="denied")
    assert denied["finding_id"] == paused and message.split(" (")[0] in denied["data"]["reason"]


@pytest.mark.parametrize("until", [date(2026, 3, 1), date(2026, 3, 2)], ids=["past", "today"])
def test_a_hold_date_not_in_the_future_is_refused(store, paused, until):
    with pytest.raises(RefusedError, match="not after today"):
        decisions.decide(store, paused, hold_until=until, reason="later", actor=ACTOR)
    assert finding(store, paused)["state"] == "paused_no_owner"
    assert len(events(store, "routing_decided", outcome="denied")) == 1


def test_the_named_owner_cannot_hold_their_own_finding(store, routed):
    with pytest.raises(RefusedError, match="cannot hold their own finding"):
        decisions.decide(store, routed[0], hold_until=date(2026, 5, 1), reason="busy", actor="  priya RAMAN ")
    assert finding(store, routed[0])["state"] == "routed"
    # someone else may
    decisions.decide(store, routed[0], hold_until=date(2026, 5, 1), reason="freeze", actor=ACTOR)
    assert finding(store, routed[0])["disposition"] == "held_decision"


def test_decisions_on_closed_untriaged_or_missing_findings_are_refused(store, rec):
    fp, new = rec.web(SHOP, ("False alarm", 3), ("Not triaged", 3))
    triage.triage(store, [fp], "false_positive", reason="scanner noise", actor=ACTOR)
    for fid in (fp, new):
        with pytest.raises(RefusedError, match="a routing decision applies to a validated finding"):
            decisions.decide(store, fid, owner="payments/service owner", reason="route it", actor=ACTOR)
    with pytest.raises(NotFoundError):
        decisions.decide(store, "HK-999", owner="payments/service owner", reason="route it", actor=ACTOR)
    assert [e["finding_id"] for e in events(store, "routing_decided", outcome="denied")] == [fp, new]
    assert events(store, "routing_decided", outcome="success") == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"owner": "payments/service owner", "reason": "  "}, "needs a --reason"),
        ({"owner": "payments/service owner", "hold_until": date(2026, 5, 1), "reason": "x"}, "either --owner"),
        ({"reason": "x"}, "either --owner"),
    ],
    ids=["blank-reason", "owner-and-hold", "neither"],
)
def test_a_decision_needs_exactly_one_of_owner_or_hold_and_a_reason(store, paused, kwargs, message):
    with pytest.raises(RefusedError, match=message):
        decisions.decide(store, paused, actor=ACTOR, **kwargs)
    assert finding(store, paused)["state"] == "paused_no_owner"


def test_no_actor_no_decision(store, paused):
    with pytest.raises(Exception, match="an actor is required"):
        decisions.decide(store, paused, owner="payments/service owner", reason="x", actor="  ")
    assert events(store, "routing_decided") == []


def test_the_owner_comes_back_from_the_log_as_of_any_instant(store, engagement, paused):
    store.clock.fixed = DAY2
    decisions.decide(store, paused, owner="payments/service owner/Priya Raman", reason="owns it", actor=ACTOR)
    store.clock.fixed = datetime(2026, 3, 9, 10, tzinfo=UTC)
    route(store)

    # the whole row, rebuilt from the log alone, equals the stored one
    with store.read() as conn:
        stored = findings.canonical_row(dict(findings.get(conn, paused)._mapping))
    assert findings.rebuild(store, engagement)[paused] == stored

    def at(when: str) -> tuple:
        with store.read() as conn:
            row = replay.state_frame(conn, engagement, when).set_index("finding_id").loc[paused]
        return row["state"], row["owner_team"]

    assert at("2026-03-02") == ("paused_no_owner", None)  # a later decision does not leak into earlier
    assert at("2026-03-05") == ("validated", "payments")
    assert at("2026-03-09") == ("routed", "payments")
    as_of = findings.as_of(store, engagement, "2026-03-05").set_index("finding_id").loc[paused]
    assert (as_of["owner_team"], as_of["owner_name"]) == ("payments", "Priya Raman")


def test_the_checklist_counts_decided_findings_as_of_the_decision(store, engagement, rec):
    [fid] = rec.web(SHOP, ("Decided high", 3))
    validate(store, [fid])
    store.clock.fixed = DAY2
    decisions.decide(store, fid, hold_until=date(2026, 4, 1), reason="change freeze", actor=ACTOR)

    def item6(when: datetime):
        return next(i for i in checklist.evaluate(store, engagement, when) if i.number == 6)

    now = item6(datetime(2026, 3, 5, 23, tzinfo=UTC))
    assert (now.status, now.numbers["total"], now.numbers["decided_by_person"]) == ("pass", 1, 1)
    earlier = item6(datetime(2026, 3, 2, 23, tzinfo=UTC))
    assert (earlier.status, earlier.numbers.get("decided_by_person", 0)) == ("not-yet-measurable", 0)


def test_the_decision_log_reads_the_latest_decision_per_finding_as_of(store, engagement, paused):
    decisions.decide(store, paused, hold_until=date(2026, 6, 1), reason="first", actor=ACTOR)
    store.clock.fixed = DAY2
    decisions.decide(store, paused, owner="payments/service owner", reason="second", actor="Dana Whitfield")
    with store.read() as conn:
        now = decisions.log(conn, engagement)
        then = decisions.log(conn, engagement, replay.instant("2026-03-02"))
        lapsed = decisions.in_force(conn, engagement, date(2026, 6, 1), replay.instant("2026-03-02"))
    assert now[["finding_id", "decision", "owner_team", "reason", "actor"]].values.tolist() == [
        [paused, "owner", "payments", "second", "Dana Whitfield"]
    ]
    assert then[["decision", "until", "reason"]].values.tolist() == [["hold", "2026-06-01", "first"]]
    assert lapsed.empty


def test_the_routing_view_lists_the_decisions_taken_as_of(store, engagement, paused):
    decisions.decide(store, paused, hold_until=date(2026, 3, 20), reason="vendor fix due", actor=ACTOR)
    view = views.routing_decisions_taken(store, engagement, as_of="2026-03-02")
    assert view.columns.tolist() == list(views.DECISION_COLUMNS)
    assert view[["finding_id", "decision", "until", "in_force", "actor"]].values.tolist() == [
        [paused, "hold", "2026-03-20", True, ACTOR]
    ]
    assert not views.routing_decisions_taken(store, engagement, as_of="2026-03-20")["in_force"].any()
    assert views.routing_decisions_taken(store, engagement, as_of="2026-03-01").empty  # before it was taken


def test_a_decision_on_a_verified_closed_or_awaiting_finding_is_refused(store, routed):
    closed, waiting = routed
    verification.verify(store, closed, kind="commit", evidence="shop/checkout@9f2c4e1a", actor=ACTOR)
    before = snapshot(store)
    with pytest.raises(RefusedError, match="is verified_closed"):
        decisions.decide(store, closed, owner="payments/service owner", reason="reassign", actor=ACTOR)
    with pytest.raises(RefusedError, match="is verified_closed"):
        decisions.decide(store, closed, hold_until=date(2026, 9, 1), reason="hold", actor=ACTOR)
    after = snapshot(store)
    assert after["events"] == before["events"] + 2 and after["findings_versions"] == before["findings_versions"]
    # a routed finding may be re-assigned; its due date and disposition stay as the policy set them
    decisions.decide(store, waiting, owner="infrastructure/system administrator/Amara Okafor", reason="x", actor=ACTOR)
    route(store)
    row = finding(store, waiting)
    assert (row["state"], row["disposition"], row["owner_name"], row["sla_due"]) == (
        "routed",
        "ticket",
        "Amara Okafor",
        date(2026, 5, 1),
    )
