"""Tickets the policy forbids are flagged, each with its reason (issue 19, item 4), and the checklist's
exceptions item fails on a ticket still open for an excepted finding (item 3).

A finding under an exception in force, on an asset being decommissioned, new and untriaged, a false
positive or a duplicate must not have a ticket still open; a band that never routes to a ticket must not
have one at all. The look-alikes stay clean: a ticket of a routed finding, a closed ticket of a false
positive, a ticket of a finding whose exception was revoked.
"""

from __future__ import annotations

from datetime import date

from handoffkit import reconcile
from handoffkit.report import checklist
from handoffkit.workflow import exceptions, triage
from tests.builders import ACTOR, DONE, LEGACY, SHOP, route, ticket, validate


def test_every_forbidden_ticket_is_flagged_with_its_reason_and_the_look_alikes_are_not(store, rec, exports):
    excepted, false_pos, dup, new, routed, closed_fp, revoked, medium = rec.web(
        SHOP,
        ("Excepted", 3),
        ("False positive", 3),
        ("Duplicate", 3),
        ("Untriaged", 3),
        ("Routed", 3),
        ("False positive, ticket closed", 3),
        ("Exception revoked", 3),
        ("Medium", 2),
    )
    [decommissioning] = rec.web(LEGACY, ("On a legacy asset", 3))
    validate(store, [excepted, false_pos, dup, routed, closed_fp, revoked, medium, decommissioning])
    route(store)
    for fid in (excepted, revoked):
        exceptions.grant(
            store, fid, approver="Dana Whitfield", reason="accepted", expires=date(2026, 12, 31), actor=ACTOR
        )
    exceptions.revoke(store, revoked, reason="fixed sooner", actor=ACTOR)
    triage.triage(store, [false_pos, closed_fp], "false_positive", reason="not exploitable", actor=ACTOR)
    triage.triage(store, [dup], "duplicate", duplicate_of=routed, reason="same flaw", actor=ACTOR)
    keys = [excepted, false_pos, dup, new, routed, revoked, medium, decommissioning]
    rows = [ticket("jira", n, [fid]) for n, fid in enumerate(keys, 1)]
    rows.append(ticket("jira", 50, [closed_fp], **DONE))
    exports.ingest("jira", *rows)

    with store.read() as conn:
        gaps = reconcile.gaps(conn, "ACME")
    reasons = gaps.reasons["tickets_outside_policy"]
    assert reasons == {
        excepted: ["exception"],
        false_pos: ["false_positive"],
        dup: ["duplicate"],
        new: ["not_validated"],
        medium: ["sprint_backlog"],
        decommissioning: ["decommissioning"],
    }
    assert gaps.ids["tickets_outside_policy"] == sorted(reasons, key=lambda f: int(f[3:]))
    assert gaps.counts["tickets_outside_policy"] == 6

    item = {i.number: i for i in checklist.evaluate(store, "ACME")}[13]
    assert (item.status, item.ids, item.numbers["with_open_ticket"]) == ("fail", [excepted], 1)
