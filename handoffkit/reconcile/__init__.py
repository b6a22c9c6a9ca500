"""Reconciliation: the record and the ticket exports joined on the finding id, as set-based SQL.

:mod:`~handoffkit.reconcile.categories` says what each category flags; :mod:`~handoffkit.reconcile.passes`
holds the queries (SQLAlchemy Core, the same on SQLite and PostgreSQL); with ``as_of`` they run on the
record as it stood then (:mod:`~handoffkit.reconcile.sources`). :func:`gaps` reads, :func:`reconcile`
also logs the run as one ``reconciliation_run`` event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from handoffkit.errors import ConfigError
from handoffkit.reconcile import sources
from handoffkit.reconcile.categories import CATEGORIES, FINDING_CATEGORIES, HEADLINE, TICKET_CATEGORIES
from handoffkit.reconcile.passes import TOTALS, found
from handoffkit.record import engagements, schema
from handoffkit.record.log import Event, log_event
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store

__all__ = [
    "CATEGORIES",
    "FINDING_CATEGORIES",
    "HEADLINE",
    "TICKET_CATEGORIES",
    "Reconciliation",
    "category_ids",
    "gaps",
    "reconcile",
]


@dataclass
class Reconciliation:
    engagement: str
    as_of: str
    counts: dict[str, int]
    ids: dict[str, list[str]]
    last_reconciled: str | None = None
    cadence_days: int = 7
    totals: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Per category that says why, each id's reasons (``tickets_outside_policy``, ``evidence_copied``)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def gaps(conn: Any, engagement: str, as_of: datetime | None = None, now: datetime | None = None) -> Reconciliation:
    """Every category's ids (read-only, nothing logged): what :func:`reconcile` reports and the views use.

    Without ``as_of`` the current tables are queried; ``now`` is the instant the overdue check uses.
    """
    eng = engagements.get(conn, engagement)
    when = schema.format_ts(as_of) if as_of else None
    now = when or schema.format_ts(now or datetime.now(UTC))
    policy = engagements.policy_at(conn, engagement, now)
    src = sources.of(conn, engagement, when, now)
    ids = found(conn, engagement, src, policy.ownership.shared_queues)
    totals = {name: ids.pop(name) for name in TOTALS}
    reasons = ids.pop("reasons")
    last = _last_run(conn, engagement, now) or schema.format_ts(eng.created_at)
    overdue = (schema.parse_ts(now) - schema.parse_ts(last)).days > policy.reconciliation.days
    ids["reconciliation_overdue"] = [last] if overdue else []
    counts = {name: len(ids[name]) for name in CATEGORIES}
    return Reconciliation(engagement, now, counts, ids, last, policy.reconciliation.days, totals, reasons)


def category_ids(conn: Any, engagement: str, category: str, as_of: datetime | None = None) -> list[str]:
    """The ids behind one category (read-only), from the one query that finds it: :func:`gaps`' ids for
    it, running only the query that finds that category."""
    if category not in FINDING_CATEGORIES and category not in TICKET_CATEGORIES:
        raise ValueError(f"{category!r} is not a category with ids")
    when = schema.format_ts(as_of) if as_of else None
    now = when or schema.format_ts(datetime.now(UTC))
    policy = engagements.policy_at(conn, engagement, now)
    src = sources.of(conn, engagement, when, now)
    return found(conn, engagement, src, policy.ownership.shared_queues, (category,))[category]


def reconcile(
    store: Store, engagement: str, *, as_of: datetime | None = None, record: bool = False, actor: str | None = None
) -> Reconciliation:
    """Run every category and return counts and ids; with ``record=True`` (and an ``actor``), also log
    the run with its counts (one event) — a run of the cadence, which the checklist counts.

    Without ``record`` nothing is written: an analyst exploring gaps does not add runs to the record.
    A recorded run as of a past instant is ``retrospective``: like any run it counts for the cadence
    interval in which it was run, and the trend of runs leaves it out (it describes another instant).
    """
    now = store.now()
    if actor is not None and not record:  # the call of 0.1 that logged the run: never drop it silently
        raise ConfigError("reconcile: an actor without record=True records nothing; pass record=True to log the run")
    if record:
        actor = require_actor(actor or "")
    with store.read() as conn:
        result = gaps(conn, engagement, as_of, now=now)
    if not record:
        return result
    log_event(
        store,
        Event(
            type="reconciliation_run",
            actor=actor or "",
            engagement=engagement,
            data={
                "as_of": result.as_of,
                "counts": result.counts,
                "last_reconciled": result.last_reconciled,
                "totals": result.totals,
                "retrospective": as_of is not None and as_of < now,
            },
        ),
    )
    return result


def _last_run(conn, engagement: str, when: str) -> str | None:
    ev = schema.events.c
    return conn.execute(
        select(func.max(ev.occurred_at)).where(
            ev.engagement == engagement,
            ev.type == "reconciliation_run",
            ev.outcome == "success",
            ev.occurred_at <= when,
        )
    ).scalar()
