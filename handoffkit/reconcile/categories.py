"""The reconciliation categories: what each one flags, and whether its ids are findings or tickets.

=========================  ============================================================================
category                   meaning
=========================  ============================================================================
routing_misses             policy says ``ticket`` (finding routed there), but no ticket is linked
batch_misses               a batched finding (``payload --batch``; sprint backlog or quarterly cycle) with
                           no ticket linked: its batch ticket was never raised (an unbatched finding of a
                           batching band is no gap: the next ``payload --batch`` takes it)
closure_misses             a linked ticket is closed (done) but the finding is not verified closed
severity_drift             a linked ticket's priority maps to a band other than the calibrated severity
tickets_without_id         a ticket (latest snapshot) carrying no finding id at all
findings_not_referenced    a link whose ticket does not carry the finding's id (the two sides do not
                           reference each other)
orphan_tickets             a ticket carrying only finding ids the record does not know
stale_links                an active link to a ticket absent from the latest export of its system
tickets_outside_policy     an open finding the policy does not route to ``ticket`` has a ticket anyway
                           (indiscriminate routing, e.g. tickets for informational findings) — other than
                           the batch ticket of its own batch; or a ticket names a batch the finding is not in
                           (or the finding, batched, was since routed to a ticket of its own)
shared_queue_tickets       a linked ticket assigned to a shared queue instead of the named owner
evidence_copied            a ticket whose text carries pasted evidence instead of the permalink
reconciliation_overdue     the previous reconciliation is older than the policy's cadence (0 or 1)
=========================  ============================================================================
"""

from __future__ import annotations

CATEGORIES = (
    "routing_misses",
    "batch_misses",
    "closure_misses",
    "severity_drift",
    "tickets_without_id",
    "findings_not_referenced",
    "orphan_tickets",
    "stale_links",
    "tickets_outside_policy",
    "shared_queue_tickets",
    "evidence_copied",
    "reconciliation_overdue",
)
HEADLINE = ("routing_misses", "closure_misses", "severity_drift")
#: The categories whose ids are ticket keys, and those whose ids are finding ids (``reconciliation_overdue``
#: lists the last run's instant).
TICKET_CATEGORIES = ("orphan_tickets", "tickets_without_id", "shared_queue_tickets", "evidence_copied")
FINDING_CATEGORIES = tuple(c for c in CATEGORIES if c not in TICKET_CATEGORIES and c != "reconciliation_overdue")
