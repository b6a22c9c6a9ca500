"""Reconciliation: the record and the ticket exports joined on the finding id (issue 5, "Reconciliation").

The demo engagement is shared by the whole session: only the read-only :func:`reconcile.gaps` runs on it.
A small engagement of our own, on a clock we move, checks ``--as-of``, the logged run and the JSON shape.
"""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from handoffkit import reconcile
from handoffkit.cli import cli
from handoffkit.errors import HandoffkitError
from handoffkit.reconcile import _side_by_side, passes
from handoffkit.record import schema
from handoffkit.record.store import Store
from handoffkit.tickets import links
from handoffkit.workflow import verification
from tests.builders import ACTOR, DONE, SHOP, at, chain_head, events, route, snapshot, ticket, validate

DRIFT_PATTERNS = (
    "severity_drift",
    "evidence_copied",
    "closure_misses",
    "tickets_outside_policy",
    "shared_queue_tickets",
    "tickets_without_id",
    "findings_not_referenced",
    "orphan_tickets",
    "routing_misses",
)
"""The six drift patterns of the demo docstring, as reconciliation categories."""
GROWING = (
    "tickets_without_id",
    "findings_not_referenced",
    "orphan_tickets",
    "tickets_outside_policy",
    "shared_queue_tickets",
)
"""Categories whose planted ids only accumulate over the demo year (stable findings, never fixed)."""


@pytest.fixture
def demo(demo_db):
    url, summary = demo_db
    store = Store(url)
    yield store, summary
    store.dispose()


def _key(value: str) -> tuple[int, str]:
    head, _, num = value.rpartition("-")
    return (int(num), head) if num.isdigit() else (0, value)


def test_reconcile_on_the_demo_finds_every_planted_drift_pattern_with_the_planted_ids(demo):
    store, summary = demo
    planted = summary["planted"]
    with store.read() as conn:
        result = reconcile.gaps(conn, "DEMO")

    shared = set(planted) & set(result.ids)
    assert set(DRIFT_PATTERNS) <= shared
    for category in sorted(shared):
        assert set(result.ids[category]) == set(planted[category]), category
        assert result.counts[category] == len(planted[category]), category
    assert sum(1 for c in DRIFT_PATTERNS if planted[c]) >= 8  # the demo did plant them (pattern 2 may be rare)
    assert summary["by_state"]["paused_no_owner"] > 0  # pattern 5: owner-less findings pause


def test_the_demo_planted_ticket_changes_each_produced_their_event(demo):
    store, summary = demo
    planted = summary["planted"]
    ev = schema.events.c

    def seen(type_: str, column: str) -> set[str]:
        with store.read() as conn:
            return set(
                conn.execute(
                    select(ev[column]).where(ev.engagement == "DEMO", ev.type == type_, ev.outcome == "success")
                ).scalars()
            )

    assert planted["renamed"] and seen("ticket_renamed", "ticket_key") == set(planted["renamed"])
    assert planted["split"] and seen("ticket_split", "finding_id") == set(planted["split"])
    assert planted["ticket_reopened"] and seen("ticket_reopened", "ticket_key") == set(planted["ticket_reopened"])


def test_as_of_the_end_of_the_demo_equals_the_current_record(demo):
    store, _ = demo
    with store.read() as conn:
        now = reconcile.gaps(conn, "DEMO")
        then = reconcile.gaps(conn, "DEMO", as_of=datetime(2026, 9, 28, 23, 59, tzinfo=UTC))
    assert {c: then.ids[c] for c in DRIFT_PATTERNS} == {c: now.ids[c] for c in DRIFT_PATTERNS}


def test_as_of_mid_period_on_the_demo(demo):
    store, summary = demo
    planted = summary["planted"]
    with store.read() as conn:
        start = reconcile.gaps(conn, "DEMO", as_of=datetime(2025, 10, 5, tzinfo=UTC))
        mid = reconcile.gaps(conn, "DEMO", as_of=datetime(2026, 1, 20, tzinfo=UTC))
    assert all(start.counts[c] == 0 for c in reconcile.CATEGORIES)  # nothing routed, no export yet
    # the first stray tickets came in December; the second pair only in April
    first_orphan, *later = sorted(planted["orphan_tickets"], key=_key)
    assert mid.ids["orphan_tickets"] == [first_orphan] and later
    for category in GROWING:
        assert set(mid.ids[category]) <= set(planted[category]), category
    assert sum(mid.counts[c] for c in GROWING) < sum(len(planted[c]) for c in GROWING)
    assert mid.as_of == "2026-01-20T00:00:00.000000Z"


# -------------------------------------------------------------------- a small programme we control


@pytest.fixture
def programme(store, rec, exports):
    """Day 2: A, B, C routed to a ticket. Day 3: SEC-1 (A, priority lowered) and SEC-2 (B) raised; C never
    gets one. Day 5: SEC-2 closed. Day 7: B verified by a retest; SEC-3 raised for C. Day 8: A linked by hand
    to SEC-9, a ticket no export shows (a stale link)."""
    a, b, c = rec.web(SHOP, ("Rec A", 3), ("Rec B", 3), ("Rec C", 3))
    validate(store, [a, b, c])
    route(store)
    _at(store, 3)
    exports.ingest("jira", ticket("jira", 1, [a], band="low"), ticket("jira", 2, [b]))
    _at(store, 5)
    exports.ingest("jira", ticket("jira", 1, [a], band="low"), ticket("jira", 2, [b]) | DONE)
    _at(store, 7)
    verification.verify(store, b, kind="retest", evidence="run:retest-7 fixed", actor=ACTOR)
    exports.ingest("jira", ticket("jira", 1, [a], band="low"), ticket("jira", 2, [b]) | DONE, ticket("jira", 3, [c]))
    _at(store, 8)
    links.link(store, a, "SEC-9", system="jira", actor=ACTOR)
    return a, b, c


def _at(store, day: int) -> None:
    store.clock.fixed = datetime(2026, 3, day, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (2, {"routing_misses": ["a", "b", "c"]}),
        (4, {"routing_misses": ["c"], "severity_drift": ["a"]}),
        (6, {"routing_misses": ["c"], "severity_drift": ["a"], "closure_misses": ["b"]}),
        (7, {"severity_drift": ["a"]}),
        (9, {"severity_drift": ["a"], "stale_links": ["a"]}),
    ],
)
def test_as_of_any_instant_on_both_backends(store, programme, day, expected):
    names = dict(zip("abc", programme, strict=True))
    with store.read() as conn:
        result = reconcile.gaps(conn, "ACME", as_of=datetime(2026, 3, day, 23, tzinfo=UTC))
    got = {c: ids for c, ids in result.ids.items() if ids and c not in ("reconciliation_overdue",)}
    assert got == {c: [names[x] for x in ids] for c, ids in expected.items()}


def test_a_ticket_references_a_finding_by_its_whole_id_on_both_backends(store, programme, exports):
    """A ticket carrying ``<A's id>0`` (another, longer id) does not reference A; a ticket carrying several
    ids references each of them, wherever it lists it; now and as of an instant."""
    a, b, c = programme
    _at(store, 9)
    kept = (ticket("jira", 1, [a], band="low"), ticket("jira", 2, [b]) | DONE, ticket("jira", 3, [c]))
    exports.ingest("jira", *kept, ticket("jira", 4, [f"{a}0", b, c]))
    links.link(store, a, "SEC-4", system="jira", actor=ACTOR)
    with store.read() as conn:
        now = reconcile.gaps(conn, "ACME")
        then = reconcile.gaps(conn, "ACME", as_of=datetime(2026, 3, 9, 23, tzinfo=UTC))
    for result in (now, then):
        assert result.ids["findings_not_referenced"] == [a]
        assert result.ids["orphan_tickets"] == []  # it carries known ids too


def test_as_of_after_the_last_change_equals_the_current_record(store, programme):
    with store.read() as conn:
        now = reconcile.gaps(conn, "ACME", now=store.now())
        then = reconcile.gaps(conn, "ACME", as_of=datetime(2026, 3, 9, tzinfo=UTC))
    assert {c: now.ids[c] for c in reconcile.CATEGORIES[:-1]} == {c: then.ids[c] for c in reconcile.CATEGORIES[:-1]}


@pytest.mark.parametrize("as_of", [None, datetime(2026, 2, 15, tzinfo=UTC)])
def test_one_category_alone_gives_the_ids_the_full_reconciliation_gives(demo, as_of):
    """``category_ids`` runs only the query its category needs; its list is the full run's."""
    store, _ = demo
    with store.read() as conn:
        full = reconcile.gaps(conn, "DEMO", as_of)
        for category in (*reconcile.FINDING_CATEGORIES, *reconcile.TICKET_CATEGORIES):
            assert reconcile.category_ids(conn, "DEMO", category, as_of) == full.ids[category], category
        assert sum(full.counts[c] for c in reconcile.FINDING_CATEGORIES) > 0
        with pytest.raises(ValueError, match="reconciliation_overdue"):
            reconcile.category_ids(conn, "DEMO", "reconciliation_overdue")


def test_the_links_pass_runs_beside_the_others_and_comes_back_if_the_head_moved(demo_db, monkeypatch):
    """On a file SQLite record and on PostgreSQL the links pass runs in a child process on its own
    connection at the same log head, and this process runs only the other three queries; when the
    child sees another head (a write landed in between), or fails, this process runs that pass too."""
    store = Store(demo_db[0])
    with store.read() as conn:
        expected = reconcile.gaps(conn, "DEMO").ids
    used: list[int] = []
    rows = passes.driver_rows
    monkeypatch.setattr(
        passes, "driver_rows", lambda c, stmt: used.append(id(c.connection.dbapi_connection)) or rows(c, stmt)
    )
    with store.read() as conn:
        main = id(conn.connection.dbapi_connection)
        assert reconcile.gaps(conn, "DEMO").ids == expected
        assert used == [main] * 3  # the links pass ran in the child, whose calls are not seen here
        # Every connection sees another head; the child fails before it connects.
        for name, fake in (("head", lambda c: (id(c), "")), ("twin", lambda engine: 1 / 0)):
            used.clear()
            with monkeypatch.context() as patched:
                patched.setattr(_side_by_side, name, fake)
                assert reconcile.gaps(conn, "DEMO").ids == expected
            assert used == [main] * 4, name
    store.dispose()


def _gaps_ids(url: str) -> dict:
    store = Store(url)
    try:
        with store.read() as conn:
            return reconcile.gaps(conn, "DEMO").ids
    finally:
        store.dispose()


def test_in_a_daemonic_worker_process_the_passes_run_one_after_another(demo_sqlite):
    """A daemonic process (a pool's worker) may not fork a child: the links pass runs there too."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_gaps_ids, (demo_sqlite[0],)) == _gaps_ids(demo_sqlite[0])


def test_reconcile_logs_exactly_one_event_with_the_counts(store, programme):
    _at(store, 12)
    before = snapshot(store)

    result = reconcile.reconcile(store, "ACME", record=True, actor=ACTOR)

    after = snapshot(store)
    assert {k: v for k, v in after.items() if k not in ("events", "chain_head")} == {
        k: v for k, v in before.items() if k not in ("events", "chain_head")
    }
    assert after["events"] == before["events"] + 1
    [run] = events(store, "reconciliation_run")
    assert (run["actor"], run["outcome"], run["engagement"]) == (ACTOR, "success", "ACME")
    assert run["data"]["counts"] == result.counts and run["data"]["as_of"] == result.as_of
    assert result.counts["routing_misses"] == 0 and result.counts["severity_drift"] == 1
    # weekly cadence: 10 days since the engagement began is overdue; the next day it is not
    assert result.ids["reconciliation_overdue"] == ["2026-03-02T09:30:00.000000Z"]
    _at(store, 13)
    again = reconcile.reconcile(store, "ACME", record=True, actor=ACTOR)
    assert again.last_reconciled == "2026-03-12T12:00:00.000000Z" and again.ids["reconciliation_overdue"] == []
    assert len(events(store, "reconciliation_run")) == 2


def test_reconcile_cli_json_shape_and_as_of(store, programme):
    a, b, c = programme
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["--db", store.url, "reconcile", "-e", "ACME", "--actor", ACTOR, "--format", "json", "--as-of", "2026-03-06"],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert set(doc) == {"engagement", "as_of", "counts", "ids", "last_reconciled", "cadence_days", "totals", "reasons"}
    assert list(doc["counts"]) == list(reconcile.CATEGORIES) and set(doc["ids"]) == set(reconcile.CATEGORIES)
    assert all(len(doc["ids"][k]) == n for k, n in doc["counts"].items())
    assert doc["as_of"] == "2026-03-06T23:59:59.999999Z" and doc["cadence_days"] == 7
    assert (doc["ids"]["closure_misses"], doc["ids"]["routing_misses"]) == ([b], [c])
    # The totals are the record's as of then too: SEC-3 came on day 7.
    assert doc["totals"] == {"findings": 3, "tickets": 2}
    assert len(events(store, "reconciliation_run")) == 1
    with store.read() as conn:
        assert reconcile.gaps(conn, "ACME").totals == {"findings": 3, "tickets": 3}

    table = runner.invoke(cli, ["--db", store.url, "reconcile", "-e", "ACME", "--actor", ACTOR])
    assert table.exit_code == 0 and "severity_drift" in table.output and a in table.output
    bad = runner.invoke(cli, ["--db", store.url, "reconcile", "-e", "ACME", "--actor", ACTOR, "--as-of", "soon"])
    assert bad.exit_code == 2 and "'soon'" in bad.output


def test_a_retrospective_run_counts_when_it_ran_and_never_fills_a_past_interval(store, programme):
    """Issue 19, item 1: reconciling as of 10 March on the 28th is logged as retrospective; as of the 27th
    the cadence item does not see it, as of the 29th it counts at the 28th (the gaps before the 21st stay
    gaps), and the trend of runs leaves it out. ``check --as-of`` reads the checklist as of any instant."""
    from handoffkit.report import checklist, metrics

    at(store, 21)
    reconcile.reconcile(store, "ACME", record=True, actor=ACTOR)
    at(store, 28)
    past = reconcile.reconcile(store, "ACME", record=True, actor=ACTOR, as_of=datetime(2026, 3, 10, tzinfo=UTC))
    assert past.as_of == "2026-03-10T00:00:00.000000Z"
    assert [e["data"]["retrospective"] for e in events(store, "reconciliation_run")] == [False, True]

    def cadence(day: int):
        return checklist.evaluate(store, "ACME", as_of=datetime(2026, 3, day, 12, tzinfo=UTC))[9]

    assert (cadence(27).numbers["runs"], cadence(27).ids) == (1, ["2026-03-02→2026-03-21"])
    assert (cadence(29).numbers["runs"], cadence(29).ids) == (2, ["2026-03-02→2026-03-21"])
    with store.read() as conn:
        trend = metrics.reconciliation_trend(conn, "ACME", as_of="2026-03-31")
    assert list(trend["occurred_at"]) == ["2026-03-21T09:00:00.000000Z"]

    args = ["--db", store.url, "check", "-e", "ACME", "--as-of", "2026-03-27", "--format", "json"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[9]["numbers"]["runs"] == 1


def test_reconcile_from_the_api_reads_only_unless_asked_to_record(store: Store, engagement: str) -> None:
    before = chain_head(store)
    read = reconcile.reconcile(store, engagement)
    assert chain_head(store) == before  # nothing logged, nothing to count for the cadence
    recorded = reconcile.reconcile(store, engagement, record=True, actor=ACTOR)
    assert chain_head(store)[0] == before[0] + 1
    assert (read.counts, read.totals) == (recorded.counts, recorded.totals)
    with pytest.raises(HandoffkitError):
        reconcile.reconcile(store, engagement, record=True)  # a recorded run names its person
    with pytest.raises(HandoffkitError, match="pass record=True"):
        reconcile.reconcile(store, engagement, actor=ACTOR)  # 0.1's call: refused rather than silently unlogged
    assert chain_head(store)[0] == before[0] + 1
