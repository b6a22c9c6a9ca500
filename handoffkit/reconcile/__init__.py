"""Reconciliation: the record and the ticket exports joined on the finding id, as set-based SQL.

Three queries (SQLAlchemy Core, the same on SQLite and PostgreSQL) return the ids behind every
category: the routing misses; one pass over the links joined to their tickets and findings with a flag
per category read off them; one pass over the current tickets likewise. Each pass costs about as much
as one category on its own, so the ten cost about what three would. A fourth counts the findings:
with the tickets pass's count, the totals a run logs beside its counts, as of the same instant.

=========================  ============================================================================
category                   meaning
=========================  ============================================================================
routing_misses             policy says ``ticket`` (finding routed there), but no ticket is linked
closure_misses             a linked ticket is closed (done) but the finding is not verified closed
severity_drift             a linked ticket's priority maps to a band other than the calibrated severity
tickets_without_id         a ticket (latest snapshot) carrying no finding id at all
findings_not_referenced    a link whose ticket does not carry the finding's id (the two sides do not
                           reference each other)
orphan_tickets             a ticket carrying only finding ids the record does not know
stale_links                an active link to a ticket absent from the latest export of its system
tickets_outside_policy     an open finding the policy does not route to ``ticket`` has a ticket anyway
                           (indiscriminate routing, e.g. tickets for informational findings)
shared_queue_tickets       a linked ticket assigned to a shared queue instead of the named owner
evidence_copied            a ticket whose text carries pasted evidence instead of the permalink
reconciliation_overdue     the previous reconciliation is older than the policy's cadence (0 or 1)
=========================  ============================================================================

With ``as_of`` the same queries run on the record as it stood then: finding state from the last event
at or before that instant, links from link events, tickets from the latest snapshot observed by then.
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Index,
    MetaData,
    String,
    Table,
    Text,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
)

from handoffkit.record import engagements, schema
from handoffkit.record.log import Event, head, log_event
from handoffkit.record.model import CLOSED_STATES
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store, driver_rows, id_list, in_memory, snapshot, strpos, twin

CATEGORIES = (
    "routing_misses",
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


@dataclass
class Reconciliation:
    engagement: str
    as_of: str
    counts: dict[str, int]
    ids: dict[str, list[str]]
    last_reconciled: str | None = None
    cadence_days: int = 7
    totals: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Sources:
    """The three sides reconciled, as tables plus the conditions selecting this engagement's rows: the
    current tables themselves, or indexed temporary tables holding the record as of an instant."""

    f: Any
    links: Any
    t: Any
    f_on: list[Any]
    l_on: list[Any]
    t_on: list[Any]
    latest_imports: Any
    same_system: bool


def _current(engagement: str) -> _Sources:
    f, lk, t = schema.findings, schema.links, schema.tickets
    return _Sources(
        f,
        lk,
        t,
        [f.c.engagement == engagement],
        [lk.c.engagement == engagement, lk.c.active],
        [t.c.engagement == engagement, t.c.current],
        _latest_imports(engagement, None),
        True,
    )


def _latest_imports(engagement: str, as_of: str | None) -> Any:
    """The latest export import of each ticket system (import ids are unique across systems, so a
    ticket is in its system's latest export when its import id is one of these)."""
    ti = schema.ticket_imports.c
    return (
        select(func.max(ti.import_id))
        .where(
            ti.engagement == engagement,
            ti.format != "defectdojo-jira-mappings",
            *([ti.observed_at <= as_of] if as_of else []),
        )
        .group_by(ti.system)
    )


_ASOF = MetaData()
_ASOF_F = Table(
    "hk_asof_findings",
    _ASOF,
    Column("finding_id", String(32), primary_key=True),
    Column("state", String(24)),
    Column("disposition", String(24)),
    Column("severity", String(8)),
    prefixes=["TEMPORARY"],
)
_ASOF_L = Table(
    "hk_asof_links",
    _ASOF,
    Column("finding_id", String(32)),
    Column("system", String(16)),
    Column("ticket_key", Text),
    Index("ix_hk_asof_links", "finding_id"),
    Index("ix_hk_asof_links_key", "ticket_key"),
    prefixes=["TEMPORARY"],
)
_ASOF_T = Table(
    "hk_asof_tickets",
    _ASOF,
    *[Column(c.name, c.type) for c in schema.tickets.columns],
    Index("ix_hk_asof_tickets_key", "key"),
    prefixes=["TEMPORARY"],
)


def _as_of(conn: Any, engagement: str, as_of: str) -> _Sources:
    """Materialise the record as of ``as_of``: finding state from the last event at or before it, links
    from link events, tickets from the latest snapshot observed by then (indexed temporary tables)."""
    ev, t = schema.events.c, schema.tickets
    for table in (_ASOF_F, _ASOF_L, _ASOF_T):
        table.drop(conn, checkfirst=True)
        table.create(conn)
    last = (
        select(ev.finding_id, func.max(ev.seq).label("seq"))
        .where(
            ev.engagement == engagement,
            ev.finding_id.is_not(None),
            ev.outcome == "success",
            ev.state.is_not(None),
            ev.occurred_at <= as_of,
        )
        .group_by(ev.finding_id)
        .subquery()
    )
    conn.execute(
        insert(_ASOF_F).from_select(
            ["finding_id", "state", "disposition", "severity"],
            select(ev.finding_id, ev.state, ev.disposition, ev.severity).join(last, last.c.seq == ev.seq),
        )
    )
    link_last = (
        select(func.max(ev.seq).label("seq"))
        .where(
            ev.engagement == engagement,
            ev.type.in_(("link_added", "link_removed")),
            ev.outcome == "success",
            ev.occurred_at <= as_of,
        )
        .group_by(ev.finding_id, ev.ticket_key)
        .subquery()
    )
    # The link's system lives in the event payload; as of a past instant links match tickets on their
    # key alone (system ""), which is unambiguous within one engagement's exports.
    conn.execute(
        insert(_ASOF_L).from_select(
            ["finding_id", "system", "ticket_key"],
            select(ev.finding_id, literal(""), ev.ticket_key)
            .join(link_last, link_last.c.seq == ev.seq)
            .where(ev.type == "link_added"),
        )
    )
    snap_last = (
        select(func.max(t.c.snapshot_id).label("sid"))
        .where(t.c.engagement == engagement, t.c.observed_at <= as_of)
        .group_by(t.c.system, t.c.key)
        .subquery()
    )
    conn.execute(
        insert(_ASOF_T).from_select(
            [c.name for c in t.columns], select(t).join(snap_last, snap_last.c.sid == t.c.snapshot_id)
        )
    )
    return _Sources(_ASOF_F, _ASOF_L, _ASOF_T, [], [], [], _latest_imports(engagement, as_of), False)


#: The categories read off the links joined to their tickets and findings, in one pass (:func:`_over_links`).
OVER_LINKS = ("closure_misses", "severity_drift", "findings_not_referenced", "tickets_outside_policy", "stale_links")
#: The categories read off the current tickets, in one pass (:func:`_over_tickets`).
OVER_TICKETS = ("tickets_without_id", "orphan_tickets", "shared_queue_tickets", "evidence_copied")
#: The record's size a run logs beside its counts: the findings and the current tickets.
TOTALS = ("findings", "tickets")


def _flagged(ids: dict[str, Any], flags: dict[str, Any], names: tuple[str, ...]) -> Any:
    """One row: per category in ``names``, the list of the ids (``ids[name]``) of the rows its flag holds
    for (:func:`~handoffkit.record.store.id_list`, filtered by the flag)."""
    return select(*[id_list(ids[n]).filter(flags[n]).label(n) for n in names])


def _over_links(src: _Sources) -> Any:
    """The active links joined to their tickets and findings, one id list per :data:`OVER_LINKS`
    category. One join instead of five: each would cost as much as the whole pass. The ticket side is
    an outer join: a link whose ticket is missing from the current export is a stale link."""
    f, lk, t = src.f, src.links, src.t
    open_state = f.c.state.not_in(CLOSED_STATES)
    # The ticket's ``finding_ids`` is the text of the ids it carries, space-separated: the rows
    # ``ticket_findings`` holds for it. Finding the link's id there reads the ticket index the join
    # already reads, where probing ``ticket_findings`` once per link cost PostgreSQL a fifth of this pass.
    # Most tickets carry one id: comparing it whole first spares building two strings per link.
    carries = or_(
        t.c.finding_ids == lk.c.finding_id,
        strpos(literal(" ") + t.c.finding_ids + " ", literal(" ") + lk.c.finding_id + " ") > 0,
    )
    # ``key`` (never NULL in a ticket) tells a link with no current ticket, from the same index.
    has_ticket = t.c.key.is_not(None)
    flags = {
        "closure_misses": and_(t.c.status_category == "done", f.c.state != "verified_closed"),
        "severity_drift": and_(t.c.priority_band.is_not(None), t.c.priority_band != f.c.severity, open_state),
        "tickets_outside_policy": and_(
            has_ticket,
            f.c.disposition.in_(("sprint_backlog", "quarterly_cycle", "security_record_only")),
            open_state,
        ),
        # Not correlated: the latest imports are found once, not once per link.
        "stale_links": or_(~has_ticket, t.c.import_id.not_in(src.latest_imports)),
        "findings_not_referenced": and_(has_ticket, ~carries),
    }
    same_ticket = and_(t.c.key == lk.c.ticket_key, *([t.c.system == lk.c.system] if src.same_system else []), *src.t_on)
    joined = lk.outerjoin(t, same_ticket).join(f, f.c.finding_id == lk.c.finding_id)
    ids = {n: t.c.key if n in TICKET_CATEGORIES else f.c.finding_id for n in OVER_LINKS}
    return _flagged(ids, flags, OVER_LINKS).select_from(joined).where(*src.l_on, *src.f_on)


def _over_tickets(engagement: str, src: _Sources, shared_queues: list[str]) -> Any:
    """The current tickets, one list of ticket keys per :data:`OVER_TICKETS` category, and their count."""
    t, tf, lk = src.t, schema.ticket_findings, src.links
    # Most tickets carry one id: finding their whole ``finding_ids`` in the record spares the probe of
    # ``ticket_findings`` (0.68 s to 0.46 s for this pass at 1M); a ticket carrying several ids, or an
    # unknown one, is looked up id by id.
    known = or_(
        _in_record(engagement, t.c.finding_ids),
        select(tf.c.finding_id)
        .where(tf.c.snapshot_id == t.c.snapshot_id, _in_record(engagement, tf.c.finding_id))
        .exists(),
    )
    # A shared queue's ticket counts only if a link reaches it: the queue test first, so the links
    # index is read for those tickets alone.
    linked = (
        select(lk.c.ticket_key)
        .where(lk.c.ticket_key == t.c.key, *([lk.c.system == t.c.system] if src.same_system else []), *src.l_on)
        .exists()
    )
    queues = [q.casefold() for q in shared_queues]
    flags = {
        "tickets_without_id": t.c.finding_ids == "",
        "orphan_tickets": and_(t.c.finding_ids != "", ~known),
        "shared_queue_tickets": and_(func.lower(t.c.assignee).in_(queues), linked),
        "evidence_copied": t.c.evidence_copied,
    }
    ids = _flagged(dict.fromkeys(OVER_TICKETS, t.c.key), flags, OVER_TICKETS)
    return ids.add_columns(func.count().label("tickets")).where(*src.t_on)


def _in_record(engagement: str, finding_id: Any) -> Any:
    """The engagement's record holds a finding of this id: looked up by its id whatever the planner
    knows (joined on the engagement instead, a store without ``ANALYZE`` statistics got a plan scanning
    the engagement's findings for every ticket), through the covering (finding id, engagement…) index:
    SQLite's planner takes the primary key's and then reads the wide row (0.9 s instead of 0.6 s for
    the tickets pass at 1M)."""
    f = schema.findings
    return (
        select(f.c.finding_id)
        .with_hint(f, f"INDEXED BY {schema.FINDINGS_LINK_SIDE.name}", "sqlite")
        .where(f.c.finding_id == finding_id, f.c.engagement == engagement)
        .exists()
    )


def _findings(src: _Sources) -> Any:
    """The number of findings in the record (as of the instant reconciled)."""
    return select(func.count().label("findings")).select_from(src.f).where(*src.f_on)


def _routing_misses(src: _Sources) -> Any:
    """Findings the policy routed to a ticket with no ticket linked."""
    f, lk = src.f, src.links
    # The finding id alone selects the engagement's links (keep the planner on the primary key).
    has_link = exists().where(lk.c.finding_id == f.c.finding_id, *(src.l_on[1:] if src.same_system else []))
    return select(id_list(f.c.finding_id).label("routing_misses")).where(
        *src.f_on, f.c.disposition == "ticket", f.c.state == "routed", ~has_link
    )


Job = Callable[[Any], dict[str, Any]]
"""A read on a connection, returning named results (a pass: each of its categories' ids, or a total)."""


def _found(
    conn: Any, engagement: str, src: _Sources, shared_queues: list[str], wanted: tuple[str, ...] = CATEGORIES + TOTALS
) -> dict[str, Any]:
    """The ids of every category found by the queries that ``wanted`` needs, once each in number order,
    and the totals it names: four queries for all ten categories and both totals, one for a single
    category."""
    jobs = [
        _pass(stmt())
        for names, stmt in (
            (OVER_LINKS, lambda: _over_links(src)),
            (("routing_misses",), lambda: _routing_misses(src)),
            ((*OVER_TICKETS, "tickets"), lambda: _over_tickets(engagement, src, shared_queues)),
            (("findings",), lambda: _findings(src)),
        )
        if not set(names).isdisjoint(wanted)
    ]
    # Temporary tables (the record as of a past instant) live on this connection alone.
    run = _side_by_side if src.f is schema.findings else _one_after_another
    found: dict[str, Any] = {}
    for part in run(_tuned(conn), jobs):
        found |= part
    return found


def _pass(stmt: Any) -> Job:
    return lambda conn: _ids(*driver_rows(conn, stmt))


def _ids(columns: list[str], rows: list[Any]) -> dict[str, Any]:
    """Each category's ids, sorted, from the one row of its pass (a column per category): JSON array
    text (SQLite), a list (PostgreSQL's driver decodes ``json``) or NULL (PostgreSQL, no ids); a
    total's column is its number."""
    (row,) = rows
    return {
        name: v if name in TOTALS else _sorted(orjson.loads(v) if isinstance(v, str) else v or [])
        for name, v in zip(columns, row, strict=True)
    }


def _one_after_another(conn: Any, jobs: list[Job]) -> list[dict[str, Any]]:
    return [job(conn) for job in jobs]


def _side_by_side(conn: Any, jobs: list[Job]) -> list[dict[str, Any]]:
    """The first job (the links pass, the longest) in a child process of its own, on its own connection,
    while the others run here: SQLite runs one query on one core, PostgreSQL one backend per connection.

    A process, not a thread: Debian's SQLite (the one Python's ``sqlite3`` uses here) counts its memory
    under one mutex for the whole process and has no per-connection lookaside memory, so two
    connections reading in two threads took that mutex for every page and value they allocated, and
    waited on it (109,000 futex calls in one run at 1M). The links pass ran 1.2 s alone and 1.9 s
    beside the other passes; in a process of its own it runs as fast as alone, and the command went
    from 2.6 to 2.7 s to 1.9 to 2.2 s. The child sorts its ids too, while this connection's queries run.

    Only on a record another connection can open (not SQLite in memory), where this process may fork a
    child (not in a daemonic worker process, nor where ``fork`` is not offered), and only if the
    child's connection sees the same log head as this one: every change appends an event, so the same
    head is the same record (both read one snapshot throughout, :func:`handoffkit.record.store.snapshot`). A
    write landing in between (a different head), or the child failing, sends the job back to this
    connection.
    """
    engine = conn.engine
    if len(jobs) < 2 or in_memory(engine.url) or not _may_fork():
        return _one_after_another(conn, jobs)
    at = head(conn)

    def elsewhere() -> dict[str, Any] | None:
        # A new engine: the child must not use, or close, the connections it inherited from this process.
        with snapshot(twin(engine)) as other:
            return jobs[0](_tuned(other)) if head(other) == at else None

    with _forked(elsewhere) as first:
        rest = _one_after_another(conn, jobs[1:])
        return [first() or jobs[0](conn), *rest]


def _may_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


@contextmanager
def _forked(fn: Callable[[], Any]) -> Iterator[Callable[[], Any]]:
    """``fn`` run in a child process forked now; yields a call that waits for what ``fn`` returned
    (None if it raised: the caller does the work itself, and sees the error). The child is ended and
    reaped on the way out, whatever happened here."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_send, args=(fn, send), daemon=True)
    child.start()
    send.close()

    def result() -> Any:
        try:
            return receive.recv()
        except EOFError:  # the child died before sending
            return None

    try:
        yield result
    finally:
        receive.close()
        child.terminate()
        child.join()


def _send(fn: Callable[[], Any], send: Any) -> None:
    try:
        out = fn()
    except Exception:
        out = None
    send.send(out)


def _tuned(conn: Any) -> Any:
    """On PostgreSQL, for the rest of this transaction: 64 MB ``work_mem``, since the links pass hashes
    every active link, current ticket and finding, which spills to disk in batches at the default 4 MB
    (4.4 s at 1M findings, 3.0 s at 64 MB); and no JIT, whose compiling cost more than it saved here."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        conn.exec_driver_sql("SET LOCAL jit = off")
    return conn


def gaps(conn: Any, engagement: str, as_of: datetime | None = None, now: datetime | None = None) -> Reconciliation:
    """Every category's ids (read-only, nothing logged): what :func:`reconcile` reports and the views use.

    Without ``as_of`` the current tables are queried; ``now`` is the instant the overdue check uses.
    """
    eng = engagements.get(conn, engagement)
    policy = engagements.policy(conn, engagement, eng.policy_version)
    when = schema.format_ts(as_of) if as_of else None
    src = _sources(conn, engagement, when)
    ids = _found(conn, engagement, src, policy.ownership.shared_queues)
    totals = {name: ids.pop(name) for name in TOTALS}
    now = when or schema.format_ts(now or datetime.now(UTC))
    last = _last_run(conn, engagement, now) or schema.format_ts(eng.created_at)
    overdue = (schema.parse_ts(now) - schema.parse_ts(last)).days > policy.reconciliation.days
    ids["reconciliation_overdue"] = [last] if overdue else []
    counts = {name: len(ids[name]) for name in CATEGORIES}
    return Reconciliation(engagement, now, counts, ids, last, policy.reconciliation.days, totals)


def category_ids(conn: Any, engagement: str, category: str, as_of: datetime | None = None) -> list[str]:
    """The ids behind one category (read-only), from the one query that finds it: :func:`gaps`' ids for
    it, at a third of the cost when all a reader wants is one list."""
    if category not in FINDING_CATEGORIES and category not in TICKET_CATEGORIES:
        raise ValueError(f"{category!r} is not a category with ids")
    policy = engagements.policy(conn, engagement)
    src = _sources(conn, engagement, schema.format_ts(as_of) if as_of else None)
    return _found(conn, engagement, src, policy.ownership.shared_queues, (category,))[category]


def _sources(conn: Any, engagement: str, when: str | None) -> _Sources:
    """The current tables, or the record as of ``when`` materialised."""
    return _as_of(conn, engagement, when) if when else _current(engagement)


def _sorted(found: list[Any]) -> list[str]:
    """Ids once each, in number order (``HK-2`` before ``HK-10``)."""
    ids = set(map(str, found))
    if _one_numbered_series(ids):
        # Same head, plain digits: number order is length then text order, two sorts in C instead of a
        # Python key per id (a second of 240,000 ids at 1M).
        return sorted(sorted(ids), key=len)
    return sorted(ids, key=_order)


def _one_numbered_series(ids: set[str]) -> bool:
    """Every id is ``<the same head>-<digits without a leading zero>`` (``HK-7``, ``HK-12``).

    One regular-expression match over the ids joined by newlines, in C (a Python test per id was a
    third of the sorting); as many newlines as ids means no id holds one, so each matched alone."""
    sample = next(iter(ids), "")
    cut = sample.rfind("-") + 1
    if cut == 0:
        return False
    text = "\n".join(ids) + "\n"
    return (
        text.count("\n") == len(ids) and re.fullmatch(f"(?:{re.escape(sample[:cut])}[1-9][0-9]*\n)*", text) is not None
    )


def reconcile(store: Store, engagement: str, *, actor: str, as_of: datetime | None = None) -> Reconciliation:
    """Run every category, log the run with its counts (one event), and return counts and ids."""
    actor = require_actor(actor)
    with store.read() as conn:
        result = gaps(conn, engagement, as_of, now=store.now())
    log_event(
        store,
        Event(
            type="reconciliation_run",
            actor=actor,
            engagement=engagement,
            data={
                "as_of": result.as_of,
                "counts": result.counts,
                "last_reconciled": result.last_reconciled,
                "totals": result.totals,
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


def _order(value: str) -> tuple[int, str]:
    head, _, num = value.rpartition("-")
    return (int(num), head) if num.isdigit() else (0, value)
