"""The batch handoffs a page shows (issue 25, item 2): one row per batch issued by the instant, its members,
tickets and gaps then — nothing issued or observed later."""

from __future__ import annotations

from handoffkit.report import views
from handoffkit.tickets import batches
from tests.builders import ACTOR, SHOP, at, route, ticket, validate

MEDIUM = "batch-medium-2026-02-23-payments"


def test_batches_as_of_each_instant(store, rec, exports):
    one, two, high = rec.web(SHOP, ("View medium one", 2), ("View medium two", 2), ("View high", 3))
    validate(store, [one, two, high])
    route(store)
    at(store, 3)
    batches.issue(store, "ACME", target="jira", actor=ACTOR)
    at(store, 4)
    exports.ingest(
        "jira",
        ticket("jira", 1, [one, two], band="medium", labels=[MEDIUM, one, two]),
        ticket("jira", 2, [two], band="medium"),  # a per-finding ticket beside the batch's: outside the policy
    )
    at(store, 5)

    assert views.batches(store, "ACME", as_of="2026-03-02").empty
    assert views.batches_caption(views.batches(store, "ACME", as_of="2026-03-02")) == "No batch handoff issued by then."
    issued = views.batches(store, "ACME", as_of="2026-03-03").to_dict("records")
    assert [(r["batch_id"], r["findings"], r["tickets"], r["batch_misses"], r["outside_policy"]) for r in issued] == [
        (MEDIUM, 2, "", 2, 0)
    ]
    raised = views.batches(store, "ACME", as_of="2026-03-04")
    row = raised.to_dict("records")[0]
    assert (row["band"], row["period"], row["owner_team"]) == ("medium", "2026-02-23", "payments")
    assert (row["tickets"], row["batch_misses"], row["outside_policy"]) == ("SEC-1", 0, 1)
    caption = views.batches_caption(raised)
    assert "1 batch tickets raised for 1 of them, carrying 2 findings" in caption
    assert "0 findings in a batch with no ticket linked" in caption and "1 with a ticket outside" in caption
    assert list(views.ticket_mapping(store, "ACME", as_of="2026-03-03")["category"]).count("batch_misses") == 1
