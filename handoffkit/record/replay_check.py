"""The current tables held against the activity log: findings, tickets and links rebuilt from the events
and compared cell by cell (``handoffkit log verify --replay``).

The hash chain proves the log was not edited; it says nothing of a row edited in ``findings`` with no
event. Every change to a finding logs ``data.set`` (:mod:`handoffkit.record.findings`), so the whole row,
``row_version`` included, is rebuilt from the log and must equal the stored one. A link is rebuilt from
its ``link_added`` / ``link_removed`` events (active: the last of them; origin: the first ``link_added``).
A ticket's first snapshot is rebuilt from its ``ticket_seen`` event (title, status, the finding ids it
carried); later snapshots are logged only by the changes they act on (a closure, a rename seen by a
linked finding), so they are not rebuilt — the findings those changes touched are. A row with no event
behind it, and an event whose row is gone, are differences too.

Each difference names the table, the row's key and the column, with the value the log gives and the
value the table holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, String, func, select, type_coerce

from handoffkit.record import findings, schema
from handoffkit.record.canonical import canonical_value
from handoffkit.record.frames import driver_frame
from handoffkit.record.log import iter_events
from handoffkit.record.store import Store

#: Stands for "no row" in a difference (the log or the table lacks the row altogether).
ABSENT = "(no row)"
#: How many differences an error message spells out (the count says how many there are).
SHOWN = 5


@dataclass(frozen=True, slots=True)
class Difference:
    """One cell (or row) where the tables and the log disagree."""

    table: str
    key: str
    column: str
    log: Any
    stored: Any

    def __str__(self) -> str:
        return f"{self.table} {self.key} {self.column}: the log gives {self.log!r}, the table holds {self.stored!r}"

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "column": self.column, "log": self.log, "stored": self.stored}


@dataclass
class ReplayCheck:
    """What :func:`check` compared and the differences it found (empty: the tables are the log's)."""

    rows: dict[str, int]
    differences: list[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "differences": [d.as_dict() for d in self.differences]}

    def summary(self) -> str:
        """The differences on one line: how many, then the first :data:`SHOWN`."""
        shown = "; ".join(str(d) for d in self.differences[:SHOWN])
        more = len(self.differences) - SHOWN
        return f"{len(self.differences)} difference(s): {shown}" + (f"; … {more} more" if more > 0 else "")


def check(store: Store) -> ReplayCheck:
    """Rebuild findings, links and first ticket snapshots from the log; compare them with the tables."""
    differences: list[Difference] = []
    rows: dict[str, int] = {}
    with store.read() as conn:
        for name, rebuilt, stored in (
            ("findings", _findings_from_log(conn), _stored_findings(conn)),
            ("links", _links_from_log(conn), _stored_links(conn)),
            ("tickets", _tickets_from_log(conn), _stored_tickets(conn)),
        ):
            rows[name] = len(stored)
            differences += _compare(name, rebuilt, stored)
    return ReplayCheck(rows, differences)


# ------------------------------------------------------------------------------------------ compare


def _compare(table: str, rebuilt: pd.DataFrame, stored: pd.DataFrame) -> list[Difference]:
    """Both frames indexed by the row's key (text), with the same columns: every differing cell, and
    every row one side lacks. Cells are compared vectorised; only those that differ as stored are put
    in canonical form (NFC text, booleans), so a backend's 0/1 or a decomposed accent is no difference."""
    out = [Difference(table, key, "row", ABSENT, "present") for key in stored.index.difference(rebuilt.index)]
    out += [Difference(table, key, "row", "present", ABSENT) for key in rebuilt.index.difference(stored.index)]
    common = rebuilt.index.intersection(stored.index)
    log, held = rebuilt.loc[common].astype(object), stored.loc[common, rebuilt.columns].astype(object)
    same = (log == held) | (log.isna() & held.isna())
    for column in rebuilt.columns:
        for key in common[~same[column].to_numpy()]:
            logged, kept = _plain(log.at[key, column]), _plain(held.at[key, column])
            kept = _canonical(kept, logged)
            if logged != kept:
                out.append(Difference(table, key, column, logged, kept))
    return sorted(out, key=lambda d: (d.key, d.column))


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _canonical(stored: Any, logged: Any) -> Any:
    if isinstance(logged, bool) and isinstance(stored, int):
        return bool(stored)
    return canonical_value(stored)


# ------------------------------------------------------------------------------------------ findings


def _findings_from_log(conn: Connection) -> pd.DataFrame:
    ev = schema.events.c
    stmt = select(ev.finding_id, ev.payload).where(
        ev.finding_id.is_not(None), ev.outcome == "success", ev.payload.like('%"set":{%')
    )
    rows = findings.replay_rows(iter_events(conn, stmt))
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(findings.FIELDS))
    return frame.drop(columns="finding_id")


def _stored_findings(conn: Connection) -> pd.DataFrame:
    f = schema.findings
    texts = {c.name for c in f.columns if isinstance(c.type, (schema.Timestamp, schema.Day))}
    cols = [type_coerce(c, String).label(c.name) if c.name in texts else c for c in f.columns]
    return driver_frame(conn, select(*cols), list(findings.FIELDS)).set_index("finding_id")


# ------------------------------------------------------------------------------------------ links


def _links_from_log(conn: Connection) -> pd.DataFrame:
    ev = schema.events.c
    stmt = select(ev.type, ev.finding_id, ev.ticket_key, ev.engagement, ev.payload).where(
        ev.type.in_(("link_added", "link_removed")), ev.outcome == "success"
    )
    links: dict[str, dict[str, Any]] = {}
    for row in iter_events(conn, stmt):
        data = json.loads(row.payload)["data"]
        key = _link_key(row.finding_id, data["system"], row.ticket_key)
        link = links.setdefault(key, {"engagement": row.engagement, "origin": data.get("origin"), "active": True})
        link["active"] = row.type == "link_added"
    return pd.DataFrame.from_dict(links, orient="index", columns=["engagement", "origin", "active"])


def _stored_links(conn: Connection) -> pd.DataFrame:
    lk = schema.links.c
    frame = driver_frame(
        conn,
        select(lk.finding_id, lk.system, lk.ticket_key, lk.engagement, lk.origin, lk.active),
        ["finding_id", "system", "ticket_key", "engagement", "origin", "active"],
    )
    frame.index = [_link_key(*k) for k in zip(frame["finding_id"], frame["system"], frame["ticket_key"], strict=True)]
    return frame[["engagement", "origin", "active"]]


def _link_key(finding_id: str, system: str, ticket_key: str) -> str:
    return f"{finding_id} {system}:{ticket_key}"


# ------------------------------------------------------------------------------------------ tickets


def _tickets_from_log(conn: Connection) -> pd.DataFrame:
    ev = schema.events.c
    stmt = select(ev.engagement, ev.ticket_key, ev.payload).where(ev.type == "ticket_seen", ev.outcome == "success")
    seen: dict[str, dict[str, Any]] = {}
    for row in iter_events(conn, stmt):
        data = json.loads(row.payload)["data"]
        seen.setdefault(
            _ticket_key(row.engagement, data["system"], row.ticket_key),
            {"title": data["title"], "status": data["status"], "finding_ids": " ".join(data["finding_ids"])},
        )
    return pd.DataFrame.from_dict(seen, orient="index", columns=["title", "status", "finding_ids"])


def _stored_tickets(conn: Connection) -> pd.DataFrame:
    t = schema.tickets.c
    first = (
        select(func.min(t.snapshot_id).label("snapshot_id")).group_by(t.engagement, t.system, t.key).subquery("first")
    )
    frame = driver_frame(
        conn,
        select(t.engagement, t.system, t.key, t.title, t.status, t.finding_ids).join(
            first, first.c.snapshot_id == t.snapshot_id
        ),
        ["engagement", "system", "key", "title", "status", "finding_ids"],
    )
    frame.index = [_ticket_key(*k) for k in zip(frame["engagement"], frame["system"], frame["key"], strict=True)]
    return frame[["title", "status", "finding_ids"]]


def _ticket_key(engagement: str, system: str, key: str) -> str:
    return f"{engagement} {system}:{key} (first snapshot)"
