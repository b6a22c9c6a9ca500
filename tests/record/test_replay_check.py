"""``log verify --replay``: findings, links and first ticket snapshots rebuilt from the log and held against
the tables, which an attacker edits directly (no event) on each backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from handoffkit.errors import IntegrityError
from handoffkit.record import log, replay_check, schema
from handoffkit.record.store import Store
from handoffkit.tickets import links
from tests.builders import ACTOR, DONE, Exports, chain_head, event_rows, small_programme, ticket

F, L, T = schema.findings, schema.links, schema.tickets


@pytest.fixture
def record(store: Store, engagement: str, exports: Exports, tmp_path) -> Store:
    """The small programme, a Jira ticket carrying HK-3 (then closed), an orphan ticket, a manual link
    HK-1 → SEC-7 and a link HK-2 → SEC-8 added then removed."""
    small_programme(store, engagement, tmp_path)
    exports.ingest("jira", ticket("jira", 1, ["HK-3"]), ticket("jira", 2, ["HK-99"]))
    exports.ingest("jira", ticket("jira", 1, ["HK-3"], **DONE), ticket("jira", 2, ["HK-99"]))
    links.link(store, "HK-1", "SEC-7", system="jira", actor=ACTOR)
    links.link(store, "HK-2", "SEC-8", system="jira", actor=ACTOR)
    links.unlink(store, "HK-2", "SEC-8", system="jira", actor=ACTOR, reason="wrong ticket")
    return store


def _edit(store: Store, statement: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(statement)


def _finding(store: Store, fid: str) -> dict[str, Any]:
    with store.read() as conn:
        return dict(conn.execute(select(F).where(F.c.finding_id == fid)).one()._mapping)


def _first_snapshot(key: str) -> Any:
    first = select(T.c.snapshot_id).where(T.c.key == key).order_by(T.c.snapshot_id).limit(1).scalar_subquery()
    return T.c.snapshot_id == first


def _insert_finding(store: Store) -> None:
    row = {**_finding(store, "HK-3"), "finding_id": "HK-50", "number": 50, "fingerprint": "forged"}
    _edit(store, insert(F).values(**row))


def _insert_ticket(store: Store) -> None:
    with store.read() as conn:
        row = dict(conn.execute(select(T).where(_first_snapshot("SEC-2"))).one()._mapping)
    row.pop("snapshot_id")
    _edit(store, insert(T).values(**{**row, "key": "SEC-77", "title": "never imported"}))


#: Each: the edit, then the differences it must produce (table, key, column, the log's value, the table's).
EDITS: dict[str, tuple[Callable[[Store], None], tuple[Any, ...]]] = {
    "finding severity": (
        lambda s: _edit(s, update(F).where(F.c.finding_id == "HK-3").values(severity="info")),
        ("findings", "HK-3", "severity", "low", "info"),
    ),
    "finding state with its row version moved on too": (
        lambda s: _edit(
            s, update(F).where(F.c.finding_id == "HK-2").values(state="routed", row_version=F.c.row_version + 1)
        ),
        ("findings", "HK-2", "state", "verified_closed", "routed"),
        ("findings", "HK-2", "row_version", 4, 5),
    ),
    "finding owner": (
        lambda s: _edit(s, update(F).where(F.c.finding_id == "HK-1").values(owner_name="Mallory Moriarty")),
        ("findings", "HK-1", "owner_name", "Priya Raman", "Mallory Moriarty"),
    ),
    "finding KEV flag": (
        lambda s: _edit(s, update(F).where(F.c.finding_id == "HK-1").values(kev=True)),
        ("findings", "HK-1", "kev", False, True),
    ),
    "finding SLA due date": (
        lambda s: _edit(s, update(F).where(F.c.finding_id == "HK-3").values(sla_due="2099-01-01")),
        ("findings", "HK-3", "sla_due", "2026-08-29", "2099-01-01"),
    ),
    "finding inserted with no event": (_insert_finding, ("findings", "HK-50", "row", "(no row)", "present")),
    "link deactivated": (
        lambda s: _edit(s, update(L).where(L.c.ticket_key == "SEC-7").values(active=False)),
        ("links", "HK-1 jira:SEC-7", "active", True, False),
    ),
    "removed link reactivated": (
        lambda s: _edit(s, update(L).where(L.c.ticket_key == "SEC-8").values(active=True)),
        ("links", "HK-2 jira:SEC-8", "active", False, True),
    ),
    "link origin": (
        lambda s: _edit(s, update(L).where(L.c.ticket_key == "SEC-1").values(origin="manual")),
        ("links", "HK-3 jira:SEC-1", "origin", "export", "manual"),
    ),
    "link deleted": (
        lambda s: _edit(s, delete(L).where(L.c.ticket_key == "SEC-7")),
        ("links", "HK-1 jira:SEC-7", "row", "present", "(no row)"),
    ),
    "ticket title": (
        lambda s: _edit(s, update(T).where(_first_snapshot("SEC-1")).values(title="Nothing to see")),
        ("tickets", "ACME jira:SEC-1 (first snapshot)", "title", "[HK-3] Fix it", "Nothing to see"),
    ),
    "ticket carried ids": (
        lambda s: _edit(s, update(T).where(_first_snapshot("SEC-2")).values(finding_ids="HK-1")),
        ("tickets", "ACME jira:SEC-2 (first snapshot)", "finding_ids", "HK-99", "HK-1"),
    ),
    "ticket inserted with no import": (
        _insert_ticket,
        ("tickets", "ACME jira:SEC-77 (first snapshot)", "row", "(no row)", "present"),
    ),
}


def test_the_untouched_tables_equal_the_log(record: Store) -> None:
    checked = replay_check.check(record)
    assert checked.ok, checked.summary()
    assert checked.rows == {"findings": 3, "links": 3, "tickets": 2}


@pytest.mark.parametrize("edit", EDITS)
def test_a_row_edited_without_an_event_is_named_by_table_key_and_column(record: Store, edit: str) -> None:
    change, *expected = EDITS[edit]
    change(record)
    assert log.verify(record).ok  # the chain alone cannot see it
    checked = replay_check.check(record)
    found = {(d.table, d.key, d.column, d.log, d.stored) for d in checked.differences}
    assert found == set(expected) and len(checked.differences) == len(expected)
    before = (event_rows(record), chain_head(record))
    with pytest.raises(IntegrityError) as caught:
        log.verify_logged(record, "Chen Wei", replay=True)
    message = str(caught.value)
    assert message.startswith(f"the tables differ from the activity log: {len(expected)} difference(s): ")
    assert all(f"{e[0]} {e[1]} {e[2]}: the log gives {e[3]!r}, the table holds {e[4]!r}" in message for e in expected)
    assert "\n" not in message
    assert (event_rows(record), chain_head(record)) == before


def test_a_passing_replay_is_logged_with_what_it_compared(record: Store) -> None:
    result = log.verify_logged(record, "Chen Wei", replay=True)
    assert result.replayed == {"findings": 3, "links": 3, "tickets": 2}
    logged = json.loads(event_rows(record)[-1]["payload"])
    assert (logged["type"], logged["data"]["replayed"]) == ("log_verified", result.replayed)
