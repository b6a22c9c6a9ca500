"""Findings: the canonical record. Every change to a finding row goes through :func:`change` or
:func:`change_many`, which update the row (guarded by its row version) and append one event per
finding in the same transaction. Each such event carries ``data.set`` (the new values) and
``data.from`` (the old ones), so the record can be rebuilt from the log as of any instant
(:func:`as_of`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from itertools import compress, repeat
from operator import is_
from typing import Any

import pandas as pd
from sqlalchemy import Connection, String, func, select, type_coerce, update

from handoffkit.errors import ConcurrentEditError, ConfigError, NotFoundError
from handoffkit.record import ids, replay, schema
from handoffkit.record.canonical import canonical_value
from handoffkit.record.frames import typed
from handoffkit.record.log import Event, Source, append, event_data, iter_events
from handoffkit.record.store import Store, bulk_insert, update_rows

F = schema.findings
FIELDS = tuple(c.name for c in F.columns)
PUBLIC = (
    "finding_id",
    "engagement",
    "state",
    "triage",
    "severity",
    "scanner_severity",
    "disposition",
    "title",
    "asset_ref",
    "tool",
    "rule_ref",
    "cves",
    "cwes",
    "kev",
    "owner_team",
    "owner_role",
    "owner_name",
    "sla_due",
    "first_seen",
    "last_seen",
    "row_version",
)
"""The columns ``handoffkit findings`` shows (plus ``ticket_keys``); any other column on request."""


_NOT_LOGGED = ("finding_id", "row_version")


def next_number(conn: Connection) -> int:
    """The next free finding number (called inside a write transaction, so no one else takes it)."""
    return (conn.execute(select(func.max(F.c.number))).scalar() or 0) + 1


def get(conn: Connection, fid: str) -> Any:
    row = conn.execute(select(F).where(F.c.finding_id == fid)).first()
    if row is None:
        raise NotFoundError(f"no finding {fid!r} (finding ids look like HK-123)")
    return row


def _after(before: Mapping[str, Any], changes: Mapping[str, Any], key: str) -> Any:
    return changes[key] if key in changes else before[key]


def event_for(
    before: Mapping[str, Any],
    changes: Mapping[str, Any],
    *,
    type: str,
    actor: str,
    data: dict[str, Any] | None,
    source: Source | None,
    ticket_key: str | None,
) -> Event:
    return Event(
        type=type,
        actor=actor,
        engagement=before["engagement"],
        finding_id=before["finding_id"],
        ticket_key=ticket_key,
        state=_after(before, changes, "state"),
        disposition=_after(before, changes, "disposition"),
        severity=_after(before, changes, "severity"),
        source=source,
        data={**(data or {}), "set": dict(changes), "from": {k: before[k] for k in changes}},
    )


def create_many(
    conn: Connection,
    store: Store,
    rows: list[dict[str, Any]],
    *,
    actor: str,
    source: Source | None = None,
    data: Iterable[dict[str, Any]] | None = None,
) -> None:
    """Insert new findings (complete rows without ``row_version``) with one ``finding_created`` event each."""
    if not rows:
        return
    for row in rows:
        row["row_version"] = 1
    bulk_insert(conn, F, rows)
    bulk_insert(
        conn,
        schema.finding_cves,
        [{"finding_id": r["finding_id"], "cve_id": c} for r in rows for c in r["cves"].split()],
    )
    extras = list(data) if data is not None else [{}] * len(rows)
    append(
        conn,
        store,
        [
            Event(
                type="finding_created",
                actor=actor,
                engagement=r["engagement"],
                finding_id=r["finding_id"],
                state=r["state"],
                disposition=r["disposition"],
                severity=r["severity"],
                source=source,
                data={**extra, "set": logged},
            )
            for r, extra, logged in zip(rows, extras, _logged(rows), strict=True)
        ],
    )


def _logged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each new row's ``finding_created`` event sets: its values but None, the id and the row version.

    A copy of the row less those keys: copying a dict and deleting a few keys costs less than building
    one key by key, which a large scan does for every finding (the Nones are found in C).
    """
    out = []
    for row in rows:
        logged = row.copy()
        for key in compress(row, map(is_, row.values(), repeat(None))):
            del logged[key]
        for key in _NOT_LOGGED:
            logged.pop(key, None)
        out.append(logged)
    return out


def change(
    conn: Connection,
    store: Store,
    before: Mapping[str, Any],
    changes: dict[str, Any],
    *,
    type: str,
    actor: str,
    data: dict[str, Any] | None = None,
    source: Source | None = None,
    ticket_key: str | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Apply ``changes`` to one finding and log ``type``; returns the row after the change.

    ``expected_version`` is the row version the caller read (an analyst's notebook, say); when the
    row has moved on since, :class:`ConcurrentEditError` is raised and nothing is written.
    """
    version = before["row_version"] if expected_version is None else expected_version
    if version != before["row_version"]:
        raise ConcurrentEditError(
            f"finding {before['finding_id']} is at version {before['row_version']}, not {version}: "
            "someone else changed it since you read it; reload and retry"
        )
    if changes:
        done = conn.execute(
            update(F)
            .where(F.c.finding_id == before["finding_id"], F.c.row_version == version)
            .values(**changes, row_version=version + 1)
        ).rowcount
        if done != 1:
            raise ConcurrentEditError(
                f"finding {before['finding_id']} was changed by someone else while "
                "this change was being made; nothing was written — retry"
            )
    append(
        conn,
        store,
        [event_for(before, changes, type=type, actor=actor, data=data, source=source, ticket_key=ticket_key)],
    )
    return {**before, **changes, "row_version": version + (1 if changes else 0)}


@dataclass(slots=True)
class Change:
    """One finding's part of a bulk change (see :func:`change_many`).

    ``before`` is the row as this change finds it (after any earlier change to it in the same batch);
    ``type`` overrides the batch's event type for this item.
    """

    before: Mapping[str, Any]
    changes: dict[str, Any]
    data: dict[str, Any] | None = None
    ticket_key: str | None = None
    type: str | None = None


def change_many(
    conn: Connection, store: Store, items: list[Change], *, type: str, actor: str, source: Source | None = None
) -> None:
    """Apply many changes set-based (see :func:`apply`) and log one event per item, in order."""
    apply(conn, items)
    append(
        conn,
        store,
        [
            event_for(
                i.before,
                i.changes,
                type=i.type or type,
                actor=actor,
                data=i.data,
                source=source,
                ticket_key=i.ticket_key,
            )
            for i in items
        ],
    )


def apply(conn: Connection, items: list[Change]) -> None:
    """Write the changes only (the caller logs their events): one staging insert and one UPDATE … FROM
    per column set. Several changes to one finding collapse into one update whose row version moves on
    by their number, guarded by the version the first of them read."""
    merged: dict[str, dict[str, Any]] = {}
    for item in items:
        if item.changes:
            fid = item.before["finding_id"]
            row = merged.setdefault(fid, {"expected_version": item.before["row_version"], "version_step": 0})
            row.update(item.changes)
            row["version_step"] += 1
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for fid, row in merged.items():
        by_columns.setdefault(tuple(sorted(row)), []).append({"finding_id": fid, **row})
    for rows in by_columns.values():
        update_rows(conn, F, "finding_id", rows, version="row_version")


# ------------------------------------------------------------------------------------------- reads


def frame(conn: Connection, engagement: str, columns: Iterable[str] | None = None, where=None) -> pd.DataFrame:
    """Current findings of an engagement as a DataFrame (optionally only some columns / rows)."""
    names = list(columns or FIELDS)
    # Instants and dates come back as their stored text and are parsed column-wise below: parsing
    # them value by value in the row loop costs more than the query on a large record.
    texts = {n for n in names if isinstance(F.c[n].type, (schema.Timestamp, schema.Day))}
    stmt = select(*[type_coerce(F.c[n], String) if n in texts else F.c[n] for n in names])
    stmt = stmt.where(F.c.engagement == engagement)
    if where is not None:
        stmt = stmt.where(where)
    rows = conn.execute(stmt.order_by(F.c.number)).all()
    # Column by column: pandas probing every SQLAlchemy Row for attributes costs more than the query.
    values = list(zip(*rows, strict=True)) or [()] * len(names)
    df = pd.DataFrame({name: list(col) for name, col in zip(names, values, strict=True)}, columns=names)
    for n in texts:
        parsed = pd.to_datetime(df[n], utc=True, format="ISO8601")
        df[n] = (
            parsed
            if isinstance(F.c[n].type, schema.Timestamp)
            else parsed.dt.date.astype(object).where(parsed.notna(), None)
        )
    return df


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as plain dicts: missing values become None, numpy scalars Python ones."""
    out = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    return [
        {
            k: (v.item() if hasattr(v, "item") else v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)
            for k, v in row.items()
        }
        for row in out
    ]


def ticket_keys(conn: Connection, engagement: str) -> dict[str, list[str]]:
    """Active ticket links per finding, as ``system:key`` strings."""
    lk = schema.links.c
    out: dict[str, list[str]] = {}
    for fid, system, key in conn.execute(
        select(lk.finding_id, lk.system, lk.ticket_key)
        .where(lk.engagement == engagement, lk.active)
        .order_by(lk.finding_id, lk.system, lk.ticket_key)
    ):
        out.setdefault(fid, []).append(f"{system}:{key}")
    return out


def public_columns(extra: Iterable[str] = ()) -> list[str]:
    """The public columns, then each of ``extra`` (other findings columns, in the order asked) not among them.

    Raises:
        ConfigError: naming a column the findings table does not have.
    """
    extra = list(extra)
    unknown = [c for c in extra if c not in FIELDS]
    if unknown:
        raise ConfigError(f"no findings column {unknown[0]!r}; the columns are {', '.join(FIELDS)}")
    return [*PUBLIC, *(c for c in dict.fromkeys(extra) if c not in PUBLIC)]


def current(store: Store, engagement: str, extra: Iterable[str] = ()) -> pd.DataFrame:
    """The stored current state, in the public shape plus the ``extra`` columns asked for (see :func:`public_columns`;
    typed: :func:`handoffkit.record.frames.typed`)."""
    from handoffkit.record import engagements

    names = public_columns(extra)
    with store.read() as conn:
        engagements.get(conn, engagement)
        df = frame(conn, engagement, names)
        keys = ticket_keys(conn, engagement)
    df["ticket_keys"] = df["finding_id"].map(lambda f: keys.get(f, []))
    return typed(df)


def rebuild(store: Store, engagement: str, as_of: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Rebuild every finding of an engagement from the activity log alone (up to ``as_of``).

    Values come back in their canonical (logged) form: dates and instants as text.
    """
    ev = schema.events.c
    stmt = select(ev.finding_id, ev.payload).where(
        ev.engagement == engagement, ev.finding_id.is_not(None), ev.outcome == "success"
    )
    if as_of is not None:
        stmt = stmt.where(ev.occurred_at <= schema.format_ts(as_of))
    with store.read() as conn:
        return replay_rows(iter_events(conn, stmt))


def replay_rows(logged: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Finding rows rebuilt from ``(finding_id, payload)`` pairs in ``seq`` order: each event's ``data.set``
    applied in turn, the row version counting the events that changed something."""
    state: dict[str, dict[str, Any]] = {}
    for fid, payload in logged:
        changes = event_data(payload).get("set")
        if not changes:
            continue
        row = state.get(fid)
        if row is None:
            row = state[fid] = {**dict.fromkeys(FIELDS), "finding_id": fid, "row_version": 0}
        row.update(changes)
        row["row_version"] += 1
    return state


def canonical_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row in the log's canonical form, for comparing with :func:`rebuild`."""
    return {k: canonical_value(v) for k, v in row.items()}


def as_of(store: Store, engagement: str, when: datetime | date | str, extra: Iterable[str] = ()) -> pd.DataFrame:
    """The findings as they stood at ``when``, rebuilt from the log, in the public shape plus the ``extra``
    columns asked for (typed, as :func:`current`).

    ``when`` is an aware datetime, a date or ``YYYY-MM-DD`` (the end of that day, UTC), or ISO 8601 text.
    """
    from handoffkit.record import engagements

    names = public_columns(extra)
    when = schema.parse_ts(replay.instant(when))
    with store.read() as conn:
        engagements.get(conn, engagement)
    rows = rebuild(store, engagement, when)
    links = _links_as_of(store, engagement, when)
    df = pd.DataFrame([{c: r.get(c) for c in names} for r in rows.values()], columns=names)
    df["ticket_keys"] = df["finding_id"].map(lambda f: links.get(f, []))
    return typed(df.iloc[ids.frame_order(df["finding_id"])].reset_index(drop=True) if len(df) else df)


def _links_as_of(store: Store, engagement: str, when: datetime) -> dict[str, list[str]]:
    ev = schema.events.c
    stmt = select(ev.payload).where(
        ev.engagement == engagement,
        ev.type.in_(("link_added", "link_removed")),
        ev.outcome == "success",
        ev.occurred_at <= schema.format_ts(when),
    )
    active: dict[tuple[str, str], bool] = {}
    with store.read() as conn:
        for (payload,) in iter_events(conn, stmt):
            doc = json.loads(payload)
            ref = (doc["finding_id"], f"{doc['data']['system']}:{doc['ticket_key']}")
            active[ref] = doc["type"] == "link_added"
    out: dict[str, list[str]] = {}
    for (fid, key), on in sorted(active.items()):
        if on:
            out.setdefault(fid, []).append(key)
    return out
