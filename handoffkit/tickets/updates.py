"""Re-handoff: the ticket updates owed after a recalibration, a due-date change or a new KEV match.

A ticket is a view of the record. When the record's calibrated severity or SLA due date moves after
the ticket exists, the ticket is owed an update, computed set-based over the engagement:

- the tickets considered: open tickets (the latest snapshot observed is not ``done``; a ticket never
  imported counts as open) actively linked to an open finding (neither closed nor awaiting
  verification);
- **handed over** — for each (finding, ticket, field), what the ticket was last given: the latest of a
  ``payload_issued`` to the ticket's system (the record's value at that event), a push
  (``ticket_created`` / ``ticket_found`` / ``ticket_updated`` / ``ticket_adopted``: the value it
  carried) or a ``ticket_update_issued`` (the value it handed over). A ticket nothing was ever handed to
  (made by hand, linked from an export) is compared with the record's value when it was linked;
- **owed** — the record's value differs from the value handed over (a value changed and changed back
  owes nothing). Each line names the cause: the last event that set the record's value —
  ``recalibration`` (``severity_calibrated``), ``KEV match`` (a routing run applying the KEV override)
  or ``due-date change`` (any other routing decision).

Nothing read back from a ticket enters here: a priority engineering edited in the ticket is severity
drift (:mod:`handoffkit.reconcile`), and the update owed is still the record's value. Issuing the
updates (:func:`issue`) logs one ``ticket_update_issued`` per line, after which the line is no longer
owed; ``handoffkit push`` sends the same lines and logs them the same way. Everything is a function of
the log up to an instant, so :func:`owed` and :func:`handed_over` answer as of any ``as_of``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
from sqlalchemy import String, func, literal, select

from handoffkit.record import ids, replay, schema
from handoffkit.record.canonical import canonical_json
from handoffkit.record.csvsafe import to_csv
from handoffkit.record.frames import frame
from handoffkit.record.log import Event, append, mutation
from handoffkit.record.model import CLOSED_STATES
from handoffkit.record.people import require_actor
from handoffkit.record.policy import Policy
from handoffkit.record.store import Store
from handoffkit.tickets.payload import handoff_policy, impact, severity_label

EV, L, T = schema.events.c, schema.links.c, schema.tickets.c
FIELDS = ("severity", "due_date")
ISSUED = "ticket_update_issued"
PUSHED = ("ticket_created", "ticket_found", "ticket_updated", "ticket_adopted")
HANDOVERS = ("payload_issued", *PUSHED, ISSUED)
NOT_OWED_STATES = (*CLOSED_STATES, "awaiting_verification")
CAUSES = {"severity_calibrated": "recalibration", "kev_override": "KEV match"}
COLUMNS = [
    "finding_id",
    "ticket_key",
    "system",
    "field",
    "handed_over",
    "record",
    "cause",
    "cause_event",
    "cause_seq",
    "handed_over_by",
    "handed_over_seq",
]
_SETTING_DUE = ("finding_created", "finding_routed", "routing_decided")


# ------------------------------------------------------------------------------------------ owed


def owed(conn: Any, engagement: str, system: str | None = None, as_of: Any = None) -> pd.DataFrame:
    """The updates owed as of ``as_of`` (default now), one row per (finding, ticket, field): :data:`COLUMNS`.

    ``system`` keeps the tickets of one ticket system. Values are text: a severity band, a date
    ``YYYY-MM-DD``.
    """
    when = replay.instant(as_of)
    tickets = _open_links(conn, engagement, when)
    if system is not None:
        tickets = tickets[tickets["system"].eq(system)]
    record = _record(conn, engagement, when)
    tickets = tickets.merge(record, on="finding_id")
    tickets = tickets[~tickets["state"].isin(NOT_OWED_STATES)]
    if tickets.empty:
        return pd.DataFrame(columns=COLUMNS)
    history = _history(conn, engagement, when)
    base = _baseline(conn, engagement, when, tickets, history)
    lines = tickets.melt(
        id_vars=["finding_id", "ticket_key", "system", "link_seq"],
        value_vars=list(FIELDS),
        var_name="field",
        value_name="record",
    ).merge(base, on=["finding_id", "ticket_key", "field"], how="left")
    # no handover at all: the record's value when the ticket was linked is what the ticket was made with
    at_link = _value_at(history, lines[["finding_id", "field", "link_seq"]].rename(columns={"link_seq": "seq"}))
    fallback = lines["handed_over_seq"].isna()
    lines.loc[fallback, "handed_over"] = at_link[fallback.to_numpy()]
    lines.loc[fallback, "handed_over_by"] = "link_added"
    lines.loc[fallback, "handed_over_seq"] = lines.loc[fallback, "link_seq"]
    out = lines[lines["record"].notna() & lines["record"].ne(lines["handed_over"].fillna(""))].copy()
    out = out.merge(_causes(history), on=["finding_id", "field"], how="left")
    out["handed_over_seq"] = out["handed_over_seq"].astype("int64")
    out["cause_seq"] = out["cause_seq"].astype("Int64")
    out["handed_over"] = out["handed_over"].astype(object).where(out["handed_over"].notna(), None)
    out = out.sort_values(["ticket_key", "field"]).reset_index(drop=True)
    return out.iloc[ids.frame_order(out["finding_id"])][COLUMNS].reset_index(drop=True)


def handed_over(conn: Any, engagement: str, as_of: Any = None) -> pd.DataFrame:
    """Every ``ticket_update_issued`` at or before ``as_of``: ``occurred_at``, ``finding_id``, ``ticket_key``,
    ``system``, ``field``, ``old``, ``new``, ``cause``, ``via`` (``payload`` or ``push``), ``actor``."""
    when = replay.instant(as_of)
    cols = ["system", "field", "old", "new", "cause", "via"]
    stmt = select(
        EV.occurred_at,
        EV.finding_id,
        EV.ticket_key,
        *[replay.json_text(conn, EV.payload, "data", c).label(c) for c in cols],
        EV.actor,
    ).where(EV.engagement == engagement, EV.type == ISSUED, EV.outcome == "success")
    if when is not None:
        stmt = stmt.where(EV.occurred_at <= when)
    names = ["occurred_at", "finding_id", "ticket_key", *cols, "actor"]
    return frame(conn.execute(stmt.order_by(EV.seq)), names)


def summary(conn: Any, engagement: str, as_of: Any = None) -> pd.DataFrame:
    """Per ticket system and field: updates ``owed`` now and ``handed_over`` so far (as of ``as_of``)."""
    o = owed(conn, engagement, as_of=as_of).groupby(["system", "field"]).size().rename("owed")
    h = handed_over(conn, engagement, as_of).groupby(["system", "field"]).size().rename("handed_over")
    out = pd.concat([o, h], axis=1).fillna(0).astype("int64").reset_index()
    out = out.rename(columns={"level_0": "system", "level_1": "field"})
    return out.sort_values(["system", "field"]).reset_index(drop=True)


def _open_links(conn: Any, engagement: str, when: str | None) -> pd.DataFrame:
    """Active links as of ``when`` to tickets not closed then: finding_id, system, ticket_key, link_seq."""
    last = (
        select(func.max(EV.seq).label("seq"))
        .where(
            EV.engagement == engagement,
            EV.type.in_(("link_added", "link_removed")),
            EV.outcome == "success",
            *([EV.occurred_at <= when] if when else []),
        )
        .group_by(EV.finding_id, EV.ticket_key)
        .subquery()
    )
    stmt = (
        select(EV.finding_id, replay.json_text(conn, EV.payload, "data", "system"), EV.ticket_key, EV.seq)
        .join(last, last.c.seq == EV.seq)
        .where(EV.type == "link_added")
    )
    links = frame(conn.execute(stmt), ["finding_id", "system", "ticket_key", "link_seq"])
    latest = (
        select(func.max(T.snapshot_id).label("sid"))
        .where(T.engagement == engagement, *([T.observed_at <= when] if when else []))
        .group_by(T.system, T.key)
        .subquery()
    )
    closed = frame(
        conn.execute(
            select(T.system, T.key).join(latest, latest.c.sid == T.snapshot_id).where(T.status_category == "done")
        ),
        ["system", "ticket_key"],
    ).assign(closed=True)
    links = links.merge(closed, on=["system", "ticket_key"], how="left")
    return links[links["closed"].isna()].drop(columns="closed")


def _record(conn: Any, engagement: str, when: str | None) -> pd.DataFrame:
    state = replay.state_frame(conn, engagement, when)
    return pd.DataFrame(
        {
            "finding_id": state["finding_id"],
            "state": state["state"],
            "severity": state["severity"].astype(object),
            "due_date": state["sla_due"].dt.strftime("%Y-%m-%d").astype(object).where(state["sla_due"].notna(), None),
        }
    )


def _history(conn: Any, engagement: str, when: str | None) -> pd.DataFrame:
    """Every event that set a linked finding's severity or due date: finding_id, field, seq, value, type, rule."""
    linked = select(L.finding_id).where(L.engagement == engagement)
    common = [
        EV.engagement == engagement,
        EV.outcome == "success",
        EV.finding_id.in_(linked),
        *([EV.occurred_at <= when] if when else []),
    ]
    sev = frame(
        conn.execute(
            select(EV.finding_id, EV.seq, EV.severity, EV.type, literal(None, String))
            .where(*common, EV.type.in_(replay.STATE_TYPES), EV.severity.is_not(None))
            .order_by(EV.seq)
        ),
        ["finding_id", "seq", "value", "type", "rule"],
    )
    due = frame(
        conn.execute(
            select(
                EV.finding_id,
                EV.seq,
                replay.json_text(conn, EV.payload, "data", "set", "sla_due"),
                EV.type,
                replay.json_text(conn, EV.payload, "data", "rule"),
            )
            .where(*common, EV.type.in_(_SETTING_DUE), EV.payload.like('%"sla_due":%'))
            .order_by(EV.seq)
        ),
        ["finding_id", "seq", "value", "type", "rule"],
    )
    out = pd.concat([sev.assign(field="severity"), due.assign(field="due_date")], ignore_index=True)
    out["seq"] = out["seq"].astype("int64")
    return out


def _value_at(history: pd.DataFrame, at: pd.DataFrame) -> pd.Series:
    """The value each (finding_id, field) had at event ``seq`` (the last setting event at or before it)."""
    if at.empty:
        return pd.Series([], dtype=object)
    keys = {"finding_id": object, "field": object, "seq": "int64"}
    probe = at.reset_index(drop=True).astype(keys).assign(_i=range(len(at)))
    hist = history[["finding_id", "field", "seq", "value"]].astype(keys).sort_values("seq")
    hit = pd.merge_asof(probe.sort_values("seq"), hist, on="seq", by=["finding_id", "field"], direction="backward")
    return hit.sort_values("_i")["value"].astype(object).reset_index(drop=True)


def _baseline(conn: Any, engagement: str, when: str | None, tickets: pd.DataFrame, history: pd.DataFrame):
    """The last handover to each (finding, ticket, field): handed_over, handed_over_by, handed_over_seq."""
    data = {
        "system": replay.json_text(conn, EV.payload, "data", "system"),
        "target": replay.json_text(conn, EV.payload, "data", "target"),
        "pushed_severity": replay.json_text(conn, EV.payload, "data", "pushed", "severity"),
        "pushed_due_date": replay.json_text(conn, EV.payload, "data", "pushed", "due_date"),
        "field": replay.json_text(conn, EV.payload, "data", "field"),
        "new": replay.json_text(conn, EV.payload, "data", "new"),
    }
    stmt = select(EV.seq, EV.type, EV.finding_id, EV.ticket_key, *[v.label(k) for k, v in data.items()]).where(
        EV.engagement == engagement,
        EV.type.in_(HANDOVERS),
        EV.outcome == "success",
        EV.finding_id.in_(select(L.finding_id).where(L.engagement == engagement)),
        *([EV.occurred_at <= when] if when else []),
    )
    ev = frame(conn.execute(stmt), ["seq", "type", "finding_id", "ticket_key", *data])
    ev["seq"] = ev["seq"].astype("int64")
    pairs = tickets[["finding_id", "ticket_key", "system"]]
    # a payload is issued before its ticket exists: it counts for every ticket of the finding on its system
    issued = ev[ev["type"].eq("payload_issued")].drop(columns=["ticket_key", "system"])
    issued = issued.merge(pairs, left_on=["finding_id", "target"], right_on=["finding_id", "system"])
    issued = pd.concat([issued.assign(field=f) for f in FIELDS], ignore_index=True)
    issued["value"] = _value_at(history, issued[["finding_id", "field", "seq"]]).to_numpy()
    pushed = ev[ev["type"].isin(PUSHED)].merge(pairs, on=["finding_id", "ticket_key", "system"])
    pushed = pd.concat([pushed.assign(field=f, value=pushed[f"pushed_{f}"]) for f in FIELDS], ignore_index=True)
    updated = ev[ev["type"].eq(ISSUED)].merge(pairs, on=["finding_id", "ticket_key", "system"])
    updated = updated.assign(value=updated["new"])
    cols = ["finding_id", "ticket_key", "field", "seq", "type", "value"]
    every = pd.concat([issued[cols], pushed[cols], updated[cols]], ignore_index=True).sort_values("seq")
    last = every.drop_duplicates(["finding_id", "ticket_key", "field"], keep="last")
    return last.rename(columns={"seq": "handed_over_seq", "type": "handed_over_by", "value": "handed_over"})


def _causes(history: pd.DataFrame) -> pd.DataFrame:
    """The event that set each (finding_id, field)'s current value: cause, cause_event, cause_seq.

    A due date moved by the routing run after a recalibration (the band's SLA changed) names that
    calibration; one moved by the KEV override names the KEV match.
    """
    h = history.astype({"finding_id": object, "field": object, "seq": "int64"}).sort_values("seq")
    h = h.assign(prev_seq=h.groupby(["finding_id", "field"])["seq"].shift())
    moved = h["value"].ne(h.groupby(["finding_id", "field"])["value"].shift())
    last = h[moved].drop_duplicates(["finding_id", "field"], keep="last").copy()
    last["cause"] = last["type"].map(CAUSES).where(last["field"].eq("severity"))
    last.loc[last["field"].eq("due_date"), "cause"] = last["rule"].map(CAUSES)
    recal = h[moved & h["type"].eq("severity_calibrated")][["finding_id", "seq"]].rename(columns={"seq": "cal_seq"})
    due = last[last["field"].eq("due_date") & last["cause"].isna()].sort_values("seq")
    if len(due) and len(recal):
        hit = pd.merge_asof(
            due, recal.assign(seq=recal["cal_seq"]).sort_values("seq"), on="seq", by="finding_id", direction="backward"
        )
        by_cal = hit["cal_seq"].notna() & (hit["prev_seq"].isna() | (hit["cal_seq"] > hit["prev_seq"]))
        hit = hit[by_cal.to_numpy()]
        idx = last.index[last["finding_id"].isin(hit["finding_id"]) & last["field"].eq("due_date")]
        cal_of = dict(zip(hit["finding_id"], hit["cal_seq"].astype("int64"), strict=True))
        last.loc[idx, "cause"] = "recalibration"
        last.loc[idx, "type"] = "severity_calibrated"
        last.loc[idx, "seq"] = last.loc[idx, "finding_id"].map(cal_of)
    last["cause"] = last["cause"].fillna(
        last["field"].map({"due_date": "due-date change", "severity": "severity change"})
    )
    return pd.DataFrame(
        {
            "finding_id": last["finding_id"],
            "field": last["field"],
            "cause": last["cause"],
            "cause_event": last["type"],
            "cause_seq": last["seq"],
        }
    )


# ------------------------------------------------------------------------------------------ render


def changes_by_ticket(lines: pd.DataFrame) -> dict[tuple[str, str], dict[str, list[Any]]]:
    """(finding_id, ticket_key) → {field: [handed over, record]} (the shape push sends)."""
    out: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for fid, key, fld, old, new in lines[["finding_id", "ticket_key", "field", "handed_over", "record"]].itertuples(
        index=False
    ):
        out.setdefault((fid, key), {})[fld] = [old, new]
    return out


def for_target(policy: Policy, system: str, finding_id: str, key: str, changes: dict[str, list[Any]]) -> dict:
    """One ticket's update in its system's shape: only severity (as the system's priority) and due date."""
    tp = policy.ticket_payload
    if system == "jira":
        fields: dict[str, Any] = {}
        update: dict[str, Any] = {}
        if "severity" in changes:
            old, new = changes["severity"]
            fields["priority"] = {"name": tp.priority_for("jira", new)}
            removed = [{"remove": severity_label(policy, "jira", old)}] if old else []
            update["labels"] = [*removed, {"add": severity_label(policy, "jira", new)}]
        if "due_date" in changes:
            fields["duedate"] = changes["due_date"][1]
        return {"key": key, "finding_id": finding_id, "fields": fields, **({"update": update} if update else {})}
    if system == "servicenow":
        body: dict[str, Any] = {"number": key, "u_finding_id": finding_id}
        if "severity" in changes:
            body["priority"] = tp.priority_for("servicenow", changes["severity"][1])
            rank = impact(changes["severity"][1])
            body |= {"impact": rank, "urgency": rank}
        if "due_date" in changes:
            body["due_date"] = changes["due_date"][1]
        return body
    labels: dict[str, list[str]] = {"add": [], "remove": []}
    doc: dict[str, Any] = {"issue": key, "finding_id": finding_id}
    if "severity" in changes:
        old, new = changes["severity"]
        labels["add"].append(severity_label(policy, "github", new))
        if old:
            labels["remove"].append(severity_label(policy, "github", old))
        doc["labels"] = labels
    if "due_date" in changes:
        old, new = changes["due_date"]
        # GitHub issues have no due-date field: the change is said where engineering reads it.
        doc["comment"] = f"Due date on the security record: {new} (was {old})."
    return doc


def sha256(rendered: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(rendered).encode()).hexdigest()


def events_for(
    lines: pd.DataFrame, rendered: dict[tuple[str, str], dict[str, Any]], *, actor: str, engagement: str, via: str,
    fmt: str | None = None, finding_rows: dict[str, Any] | None = None,
) -> list[Event]:  # fmt: skip
    """One ``ticket_update_issued`` per line (the rendered update's SHA-256 ties it to what was handed over)."""
    out = []
    for r in lines.to_dict(orient="records"):
        doc = rendered[(r["finding_id"], r["ticket_key"])]
        row = (finding_rows or {}).get(r["finding_id"], {})
        out.append(
            Event(
                type=ISSUED, actor=actor, engagement=engagement, finding_id=r["finding_id"],
                ticket_key=r["ticket_key"], state=row.get("state"), disposition=row.get("disposition"),
                severity=row.get("severity"),
                data={
                    "system": r["system"], "field": r["field"], "old": r["handed_over"], "new": r["record"],
                    "cause": r["cause"], "cause_event": r["cause_event"],
                    "cause_seq": None if pd.isna(r["cause_seq"]) else int(r["cause_seq"]),
                    "handed_over_by": r["handed_over_by"], "sha256": sha256(doc), "via": via,
                    **({"format": fmt} if fmt else {}),
                },
            )
        )  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------ issue


def issue(store: Store, engagement: str, *, target: str, actor: str, fmt: str = "json") -> dict[str, Any]:
    """Render and log the updates owed to ``target``'s tickets; returns ``{"text", "count", "lines", "updates"}``.

    Each line logs one ``ticket_update_issued``; a second run with nothing changed lists nothing.
    """
    actor = require_actor(actor)
    template = Event(type=ISSUED, actor=actor, engagement=engagement, data={"target": target, "format": fmt})
    with mutation(store, template) as conn:
        policy = handoff_policy(conn, engagement, target, fmt)
        lines = owed(conn, engagement, target)
        changes = changes_by_ticket(lines)
        rendered = {k: for_target(policy, target, k[0], k[1], c) for k, c in changes.items()}
        rows = _finding_rows(conn, sorted({k[0] for k in changes}))
        append(conn, store, events_for(lines, rendered, actor=actor, engagement=engagement, via="payload", fmt=fmt,
                                       finding_rows=rows))  # fmt: skip
    docs = list(rendered.values())
    listing = lines.astype(object).where(lines.notna(), None)
    if fmt == "csv":
        text = to_csv(listing.to_dict(orient="records"), COLUMNS)
    elif fmt == "md":
        text = markdown(listing)
    else:
        text = json.dumps({"records": docs} if target == "servicenow" else docs, indent=2, ensure_ascii=False)
    return {"text": text, "count": len(lines), "lines": listing.to_dict(orient="records"), "updates": docs}


def _finding_rows(conn: Any, finding_ids: list[str]) -> dict[str, Any]:
    f = schema.findings.c
    out: dict[str, Any] = {}
    for start in range(0, len(finding_ids), 10_000):
        for r in conn.execute(
            select(f.finding_id, f.state, f.disposition, f.severity).where(
                f.finding_id.in_(finding_ids[start : start + 10_000])
            )
        ):
            out[r.finding_id] = dict(r._mapping)
    return out


def markdown(lines: pd.DataFrame) -> str:
    """The owed lines as a Markdown table (for a person updating the tickets by hand)."""
    head = "| finding | ticket | system | field | handed over | record | cause |\n" + "| --- " * 7 + "|"
    body = [
        f"| {r['finding_id']} | {r['ticket_key']} | {r['system']} | {r['field']} | {r['handed_over'] or '—'} | "
        f"{r['record']} | {r['cause']} ({r['cause_event']} #{r['cause_seq']}) |"
        for r in lines.to_dict(orient="records")
    ]
    return "\n".join(["## Ticket updates owed", "", head, *body, ""])
