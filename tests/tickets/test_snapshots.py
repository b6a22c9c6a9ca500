"""Each import of a ticket export is a snapshot compared with the previous one: a rename, a split, a close,
a reopen and a priority edit each produce exactly their event (issue 5, "Ticket export ingest")."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from handoffkit.record import schema
from handoffkit.workflow import verification
from tests.builders import ACTOR, DONE, IN_PROGRESS, events, finding, route, ticket

SYSTEMS = ["jira", "github", "servicenow"]


def _seq(store) -> int:
    with store.read() as conn:
        return conn.execute(select(func.max(schema.events.c.seq))).scalar() or 0


def _types_of(store, since: int) -> list[str]:
    return [e["type"] for e in events(store) if e["seq"] > since]


def _snapshot_count(store) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(schema.tickets)).scalar()


def _links(store) -> list[tuple[str, str, str, bool]]:
    lk = schema.links.c
    with store.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(lk.finding_id, lk.ticket_key, lk.origin, lk.active).order_by(lk.finding_id, lk.ticket_key)
            )
        ]


@pytest.mark.parametrize("system", SYSTEMS)
def test_each_change_produces_exactly_its_event(store, routed, exports, system):
    """One ticket's life, export by export; after each import exactly the expected events (and the
    ``ticket_import`` bookkeeping event) are new, and the record's severity is never touched."""
    fid = routed[0]
    first = ticket(system, 1, [fid])
    renamed = first | {"title": f"[{fid}] Fix it (prod)"}
    lowered = ticket(system, 1, [fid], band="low") | {"title": renamed["title"]}  # GitHub: the label changes
    second = ticket(system, 2, [fid], title=f"[{fid}] Backend part")
    steps = [  # (rows exported, events expected, finding state after)
        ([first], ["ticket_seen", "link_added"], "routed"),
        ([first], None, "routed"),  # the same export again: a duplicate, no snapshot
        # work started: nothing to observe (GitHub has no such state: the same export, a duplicate)
        ([first | IN_PROGRESS], None if system == "github" else [], "routed"),
        ([renamed | IN_PROGRESS], ["ticket_renamed"], "routed"),
        ([lowered | IN_PROGRESS], ["severity_drift_observed"], "routed"),
        ([lowered | IN_PROGRESS, second], ["ticket_seen", "link_added", "ticket_split"], "routed"),
        ([lowered | DONE, second], ["ticket_closed_observed"], "awaiting_verification"),
        ([lowered | IN_PROGRESS | {"updated": "2026-03-09T10:00:00.000+0000"}, second], ["ticket_reopened"], "routed"),
    ]
    keys = [first["key"], second["key"]]
    for step, (rows, expected, state) in enumerate(steps):
        since = _seq(store)
        if expected is None:
            snapshots_before = _snapshot_count(store)
            exports.ingest(system, *rows, expect="duplicate")
            assert _types_of(store, since) == ["ticket_import_duplicate"], step
            assert _snapshot_count(store) == snapshots_before, step
            continue
        exports.ingest(system, *rows)

        assert _types_of(store, since) == [*expected, "ticket_import"], step
        new = [e for e in events(store) if e["seq"] > since and e["type"] != "ticket_import"]
        # logged on both sides: the finding and the ticket (ticket_seen is about the ticket alone)
        assert all(e["ticket_key"] in keys and e["outcome"] == "success" for e in new), step
        assert all(e["finding_id"] == fid for e in new if e["type"] != "ticket_seen"), step
        row = finding(store, fid)
        assert (row["state"], row["severity"], row["calibrated_vector"]) == (state, "high", None), step

    by_type = {e["type"]: e for e in events(store) if e["finding_id"] == fid}
    assert (by_type["ticket_renamed"]["data"]["from"], by_type["ticket_renamed"]["data"]["to"]) == (
        f"[{fid}] Fix it",
        f"[{fid}] Fix it (prod)",
    )
    drift = by_type["severity_drift_observed"]["data"]
    assert (drift["ticket_band"], drift["record_severity"], drift["previous_priority"]) == (
        "low",
        "high",
        first["priority"],
    )
    assert by_type["ticket_split"]["data"]["other_tickets"] == [keys[0]]
    assert _links(store) == [(fid, k, "export", True) for k in sorted(keys)]  # rename and split keep every link


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_drifted_priority_on_first_sight_is_observed(store, routed, exports, system):
    since = _seq(store)
    exports.ingest(system, ticket(system, 1, [routed[0]], band="medium"))
    assert _types_of(store, since) == ["ticket_seen", "link_added", "severity_drift_observed", "ticket_import"]
    assert finding(store, routed[0])["severity"] == "high"


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_closed_ticket_never_closes_a_finding(store, routed, exports, system):
    fid, other = routed
    exports.ingest(system, ticket(system, 1, [fid]), ticket(system, 2, [other]))
    closed = [ticket(system, 1, [fid]) | DONE, ticket(system, 2, [other]) | DONE | {"resolution": "Won't Fix"}]

    exports.ingest(system, *closed)
    exports.ingest(system, *closed, expect="duplicate")  # the same export again
    route(store)  # and a routing run in between
    exports.ingest(system, *[t | {"updated": "2026-03-09T10:00:00.000+0000"} for t in closed])  # seen closed again

    for f in (fid, other):
        row = finding(store, f)
        assert (row["state"], row["closed_at"]) == ("awaiting_verification", None)
        assert len(events(store, "ticket_closed_observed", finding_id=f)) == 1
    assert events(store, "finding_verified_closed") == []
    assert {e["type"] for e in events(store)}.isdisjoint({"finding_closed", "finding_verified_closed"})

    verification.verify(store, fid, kind="retest", evidence="run:retest-1 fixed", actor=ACTOR)
    assert finding(store, fid)["state"] == "verified_closed"  # evidence, not the ticket, closes it


def test_a_split_ticket_closing_leaves_the_finding_awaiting_verification(store, routed, exports):
    fid = routed[0]
    exports.ingest("jira", ticket("jira", 1, [fid]), ticket("jira", 2, [fid], title=f"[{fid}] Part two"))
    since = _seq(store)
    exports.ingest("jira", ticket("jira", 1, [fid]) | DONE, ticket("jira", 2, [fid], title=f"[{fid}] Part two") | DONE)
    closed = [e for e in events(store, "ticket_closed_observed") if e["seq"] > since]
    assert [e["ticket_key"] for e in closed] == ["SEC-1", "SEC-2"]
    assert closed[1]["data"]["finding_unchanged"] == "already awaiting_verification"
    assert finding(store, fid)["state"] == "awaiting_verification"
