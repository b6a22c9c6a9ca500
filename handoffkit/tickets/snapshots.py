"""Ticket exports: the downstream view, read back and compared snapshot to snapshot.

Each import of an export is a snapshot of its tickets. Compared with the previous snapshot of the
same ticket, it produces events:

- ``ticket_seen`` — first sight of a ticket; ``link_added`` for each known finding id it carries;
- ``ticket_split`` — a finding id already linked to another ticket: both links are kept;
- ``ticket_renamed`` — the title changed (the link is kept; logged with the finding and the ticket);
- ``ticket_closed_observed`` — the ticket reached the *done* category: its open findings move to
  ``awaiting_verification`` and never further (only verification evidence closes a finding);
- ``ticket_reopened`` — back out of *done*: findings awaiting verification return to ``routed``;
- ``severity_drift_observed`` — the ticket's priority maps to a band other than the record's
  calibrated severity (on first sight or when the priority is edited); the record is untouched;
- ``orphan_ticket_seen`` — a ticket carrying no, or only unknown, finding ids.

When the policy names a ticket scope (``ticket_payload.scope``: the engagement's Jira projects, GitHub
repositories, labels, ServiceNow query), a ticket outside it is another engagement's: it is left out
before anything is compared (never stored, never an orphan here), and the import's ``ticket_import``
event says how many were left out (``out_of_scope``). Never an error: a shared tracker's export holds
every engagement's tickets.

Each file is one transaction: a malformed export leaves the record unchanged and logs a ``failure``
that names the file without quoting it (:mod:`~handoffkit.record.refusals`); the same export imported
again adds no snapshot and logs one ``ticket_import_duplicate``.
The finding ids are read where the policy says (label, custom field, ``[HK-123]`` token).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from handoffkit.errors import HandoffkitError
from handoffkit.record import engagements, findings, schema
from handoffkit.record.canonical import sha256_bytes
from handoffkit.record.inputs import read_bytes
from handoffkit.record.log import Event, Source, append, log_event
from handoffkit.record.model import TicketSnapshot
from handoffkit.record.people import require_actor
from handoffkit.record.refusals import as_refusal, refusal
from handoffkit.record.store import Store, bulk_insert
from handoffkit.tickets import batches, evidence, links

if TYPE_CHECKING:
    from handoffkit.tickets.detect import TicketExport

T = schema.tickets
CHUNK = 10_000
CLOSABLE = links.CLOSABLE


@dataclass
class TicketFileResult:
    """What one ticket export did (the ``--format json`` shape of ``ingest tickets``)."""

    file: str
    sha256: str | None = None
    system: str | None = None
    format: str | None = None
    tickets: int = 0
    new_tickets: int = 0
    linked: int = 0
    orphans: int = 0
    closed_observed: int = 0
    reopened: int = 0
    renamed: int = 0
    split: int = 0
    severity_drift: int = 0
    out_of_scope: int = 0
    """Tickets of the export outside the policy's ticket scope: another engagement's, left out."""
    skipped: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ingest_tickets(
    store: Store,
    engagement: str,
    paths: Sequence[str | Path],
    *,
    system: str,
    actor: str,
    progress: Callable[[str], None] | None = None,
) -> list[TicketFileResult]:
    """Import ticket exports (or, with ``system="defectdojo"``, DefectDojo Jira mappings)."""
    actor = require_actor(actor)
    with store.read() as conn:
        engagements.get(conn, engagement)
        policy = engagements.policy(conn, engagement)
    results = []
    for path in paths:
        result = TicketFileResult(file=str(path), system=system)
        source, data = None, None
        try:
            data = read_bytes(path)
            result.sha256 = sha256_bytes(data)
            source = Source(str(path), result.sha256)
            if system == "defectdojo":
                _import_dojo_links(store, engagement, data, source, actor, result)
            elif not _duplicate(store, engagement, system, source, actor, result):
                _import_export(store, engagement, policy, data, source, system, actor, result)
            if progress:
                progress(f"{path}: {result.tickets} tickets, {result.linked} links, {result.orphans} orphans")
        except (HandoffkitError, ValueError) as exc:
            error = as_refusal(exc, str(path))
            result.status, result.error = "failed", str(error)
            log_event(
                store,
                Event(
                    type="ticket_import_refused",
                    actor=actor,
                    engagement=engagement,
                    outcome="failure",
                    source=source,
                    data={**refusal(error, path, data), "system": system},
                ),
            )
        results.append(result)
    return results


def _duplicate(
    store: Store, engagement: str, system: str, source: Source, actor: str, result: TicketFileResult
) -> bool:
    """Was this very export (same bytes) of ``system`` imported into the engagement already? Then it adds
    no snapshot — it observes nothing new — and logs one ``ticket_import_duplicate`` event."""
    i = schema.ticket_imports.c
    with store.read() as conn:
        found = conn.execute(
            select(i.import_id, i.format, i.count)
            .where(i.engagement == engagement, i.system == system, i.sha256 == source.sha256)
            .order_by(i.import_id)
        ).first()
    if found is None:
        return False
    result.status, result.format, result.tickets = "duplicate", found.format, found.count
    log_event(
        store,
        Event(
            type="ticket_import_duplicate",
            actor=actor,
            engagement=engagement,
            source=source,
            data={"system": system, "sha256": source.sha256, "import_id": found.import_id},
        ),
    )
    return True


def _import_export(
    store: Store,
    engagement: str,
    policy: Any,
    data: bytes,
    source: Source,
    system: str,
    actor: str,
    result: TicketFileResult,
) -> None:
    from handoffkit.tickets.detect import parse_export

    export = parse_export(data, source.file, system)
    import_export(store, engagement, policy, export, source, actor, result, name=Path(source.file).name)


def import_export(
    store: Store,
    engagement: str,
    policy: Any,
    export: TicketExport,
    source: Source,
    actor: str,
    result: TicketFileResult,
    *,
    name: str,
    history: dict[str, list[dict[str, Any]]] | None = None,
) -> None:
    """Write one parsed export as a snapshot and its events, in one transaction (a file's or a sync's).

    ``name`` is what the import is listed under (the file name, or the API's base URL). ``history``
    (ticket key → its tracker's change history of title and priority, from a sync) is added to that
    ticket's ``ticket_renamed`` and ``severity_drift_observed`` events as ``changelog``: who edited, when.
    """
    from handoffkit.tickets.finding_ids import extract_finding_ids

    system = export.system
    export = in_scope(export, policy, result)
    result.format, result.tickets = export.format, len(export.tickets)
    result.skipped = [{"reason": r, "count": c} for r, c in sorted(export.skipped.items())]
    permalink = re.compile(policy.ticket_payload.permalink_pattern(engagement))
    carried = {
        t.key: extract_finding_ids(t, policy.ticket_payload.finding_id_from, policy.ticket_payload.custom_field)
        for t in export.tickets
    }
    with store.write() as conn:
        now = store.now()
        import_id = conn.execute(
            insert(schema.ticket_imports).values(
                engagement=engagement,
                system=system,
                sha256=source.sha256,
                file_name=name,
                format=export.format,
                observed_at=now,
                actor=actor,
                count=len(export.tickets),
            )
        ).inserted_primary_key[0]
        keys = [t.key for t in export.tickets]
        previous = _current_snapshots(conn, engagement, system, keys)
        linked = links.by_ticket(conn, engagement, system, keys)
        all_ids = sorted({fid for ids in (*carried.values(), *linked.values()) for fid in ids})
        stored = _stored_evidence(conn, engagement, all_ids)
        batch = _Batch(
            engagement,
            system,
            actor,
            source,
            result,
            _findings(conn, engagement, all_ids),
            links.link_states(conn, all_ids),
            history=history or {},
        )
        rows = []
        for ticket in export.tickets:
            ids = carried[ticket.key]
            band = policy.band_for_priority(system, ticket.priority)
            mine = [stored[f] for f in dict.fromkeys((*ids, *linked.get(ticket.key, []))) if f in stored]
            rows.append(_snapshot_row(ticket, engagement, system, import_id, now, ids, band, permalink, mine))
            batch.compare(ticket, previous.get(ticket.key), ids, linked.get(ticket.key, []), band)
        for start in range(0, len(keys), CHUNK):
            conn.execute(
                update(T)
                .where(
                    T.c.engagement == engagement,
                    T.c.system == system,
                    T.c.current,
                    T.c.key.in_(keys[start : start + CHUNK]),
                )
                .values(current=False)
            )
        _insert_snapshots(conn, rows, carried)
        batch.events.append(
            Event(
                type="ticket_import",
                actor=actor,
                engagement=engagement,
                source=source,
                data={k: v for k, v in result.as_dict().items() if k not in ("status", "error")}
                | {"import_id": import_id},
            )
        )
        batch.write(conn, store)


def in_scope(export: TicketExport, policy: Any, result: TicketFileResult) -> TicketExport:
    """The export's tickets within the policy's ticket scope (all of them when it names none); the
    others are counted in ``result.out_of_scope``."""
    scope = policy.ticket_payload.scope
    if scope is None:
        return export
    kept = [t for t in export.tickets if scope.holds(t)]
    result.out_of_scope = len(export.tickets) - len(kept)
    return dataclasses.replace(export, tickets=kept)


def _snapshot_row(
    t: TicketSnapshot,
    engagement: str,
    system: str,
    import_id: int,
    now: Any,
    ids: tuple[str, ...],
    band: str | None,
    permalink: re.Pattern[str],
    stored: list[evidence.Stored],
) -> dict[str, Any]:
    text = f"{t.title}\n{t.description or ''}"
    pasted = evidence.patterns(t.description) + evidence.copied(text, stored)
    return {
        "import_id": import_id,
        "engagement": engagement,
        "system": system,
        "key": t.key,
        "title": t.title,
        "status": t.status,
        "status_category": t.status_category,
        "priority": t.priority,
        "priority_band": band,
        "assignee": t.assignee,
        "labels": " ".join(t.labels),
        "finding_ids": " ".join(ids),
        "batch_id": batches.carried(t.labels, t.title, t.description),
        "url": t.url,
        "resolution": t.resolution,
        "has_permalink": bool(permalink.search(text)),
        "evidence_copied": bool(pasted),
        "evidence_reasons": json.dumps(pasted, ensure_ascii=False) if pasted else None,
        "observed_at": now,
        "current": True,
    }


def _insert_snapshots(conn: Connection, rows: list[dict[str, Any]], carried: dict[str, tuple[str, ...]]) -> None:
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        ids = conn.execute(insert(T).returning(T.c.snapshot_id, T.c.key, sort_by_parameter_order=True), chunk).all()
        bulk_insert(
            conn,
            schema.ticket_findings,
            [{"snapshot_id": sid, "finding_id": fid} for sid, key in ids for fid in carried[key]],
        )


def _current_snapshots(conn: Connection, engagement: str, system: str, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for start in range(0, len(keys), CHUNK):
        for row in conn.execute(
            select(T).where(
                T.c.engagement == engagement,
                T.c.system == system,
                T.c.current,
                T.c.key.in_(keys[start : start + CHUNK]),
            )
        ):
            out[row.key] = row
    return out


_FOLLOWED = ("finding_id", "engagement", "state", "disposition", "severity", "row_version")
"""What a ticket import reads of each finding it touches (its events and state changes need no more)."""


def _stored_evidence(conn: Connection, engagement: str, ids: list[str]) -> dict[str, evidence.Stored]:
    """The stored scanner output of each finding, against the text its own record fields hold."""
    f, e = schema.findings.c, schema.evidence.c
    record_fields = (f.title, f.description, f.asset_ref, f.location, f.rule_ref, f.cves, f.cwes, f.cvss_vector)
    contents: dict[str, list[tuple[bytes, str | None]]] = {}
    texts: dict[str, list[str]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for fid, *fields in conn.execute(
            select(f.finding_id, *record_fields).where(f.engagement == engagement, f.finding_id.in_(chunk))
        ):
            texts[fid] = [v for v in fields if v]
        for fid, content, media in conn.execute(
            select(e.finding_id, e.content, e.media_type).where(
                e.finding_id.in_(chunk), e.kind.in_(("scanner_output", "request_response")), e.content.is_not(None)
            )
        ):
            contents.setdefault(fid, []).append((content, media))
    return {fid: evidence.Stored.of(fid, found, texts.get(fid, [])) for fid, found in contents.items()}


def _findings(conn: Connection, engagement: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    f = schema.findings.c
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), CHUNK):
        for row in conn.execute(
            select(*[f[c] for c in _FOLLOWED]).where(
                f.engagement == engagement, f.finding_id.in_(ids[start : start + CHUNK])
            )
        ):
            out[row.finding_id] = dict(row._mapping)
    return out


@dataclass
class _Batch:
    """What one export changes, worked out in memory ticket by ticket and written set-based at the end
    (no per-ticket round trip). ``known`` holds working copies of the findings involved: each change
    updates its copy, so the next ticket sees it and every event carries the state it left behind."""

    engagement: str
    system: str
    actor: str
    source: Source
    result: TicketFileResult
    known: dict[str, dict[str, Any]]
    link_state: dict[str, dict[tuple[str, str], bool]]
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    changes: list[findings.Change] = field(default_factory=list)
    new_links: list[dict[str, Any]] = field(default_factory=list)
    reactivated: list[tuple[str, str]] = field(default_factory=list)

    def compare(
        self, ticket: TicketSnapshot, before: Any, ids: tuple[str, ...], linked: list[str], band: str | None
    ) -> None:
        """The events one ticket's new snapshot produces against its previous one (module docstring).

        Findings the ticket carries are linked; findings linked to it otherwise (by hand, from DefectDojo)
        follow its renames, closures, reopenings and priority edits just the same.
        """
        ours = [self.known[i] for i in ids if i in self.known]
        followers = ours + [self.known[i] for i in linked if i in self.known and i not in ids]
        if before is None:
            self.result.new_tickets += 1
            self._event(
                ticket.key, "ticket_seen", {"title": ticket.title, "status": ticket.status, "finding_ids": list(ids)}
            )
        if not ours:
            self.result.orphans += 1
            if before is None or before.finding_ids != " ".join(ids):
                self._event(ticket.key, "orphan_ticket_seen", {"finding_ids": list(ids), "unknown": list(ids)})
        for finding in followers:
            newly_linked = finding["finding_id"] in ids and self._link(finding, ticket.key)
            if before is not None and before.title != ticket.title:
                self.result.renamed += 1
                renamed = {"from": before.title, "to": ticket.title} | self._changes(ticket.key, "title")
                self._event(ticket.key, "ticket_renamed", renamed, finding)
            self._status(ticket, before, finding, newly_linked)
            priority_edited = before is None or (before.priority or "") != (ticket.priority or "")
            if priority_edited and band is not None and band != finding["severity"]:
                self.result.severity_drift += 1
                self._event(
                    ticket.key,
                    "severity_drift_observed",
                    {
                        "ticket_priority": ticket.priority,
                        "ticket_band": band,
                        "record_severity": finding["severity"],
                        "previous_priority": before.priority if before is not None else None,
                    }
                    | self._changes(ticket.key, "priority"),
                    finding,
                )

    def _changes(self, key: str, field_name: str) -> dict[str, Any]:
        """The tracker's own record of the edits of one field (a sync's changelog), when it has one."""
        edits = [h for h in self.history.get(key, []) if h["field"] == field_name]
        return {"changelog": edits} if edits else {}

    def _event(self, key: str, type_: str, data: dict[str, Any], finding: dict[str, Any] | None = None) -> None:
        self.events.append(
            Event(
                type=type_,
                actor=self.actor,
                engagement=self.engagement,
                finding_id=finding["finding_id"] if finding else None,
                ticket_key=key,
                state=finding["state"] if finding else None,
                disposition=finding["disposition"] if finding else None,
                severity=finding["severity"] if finding else None,
                source=self.source,
                data={"system": self.system, **data},
            )
        )

    def _link(self, finding: dict[str, Any], key: str) -> bool:
        """Link the finding to the ticket (new, or re-activated); False if it already was."""
        mine = self.link_state.setdefault(finding["finding_id"], {})
        state = mine.get((self.system, key))
        if state:
            return False
        others = [k for (s, k), on in mine.items() if on]
        if state is None:
            self.new_links.append(links.row(finding, self.system, key, origin="export", at=None))
        else:
            self.reactivated.append((finding["finding_id"], key))
        mine[(self.system, key)] = True
        self.result.linked += 1
        self.events.append(
            links.added_event(finding, self.system, key, origin="export", actor=self.actor, source=self.source)
        )
        if others:
            self.result.split += 1
            self._event(key, "ticket_split", {"other_tickets": others}, finding)
        return True

    def _status(self, ticket: TicketSnapshot, before: Any, finding: dict[str, Any], newly_linked: bool) -> None:
        """Closure (done — also for a finding just linked to a done ticket) moves open findings to
        awaiting_verification and never further; leaving done sends them back to routed."""
        was_done = before is not None and before.status_category == "done" and not newly_linked
        now_done = ticket.status_category == "done"
        data = {"status": ticket.status, "resolution": ticket.resolution}
        if now_done and not was_done:
            self.result.closed_observed += 1
            closable = finding["state"] in CLOSABLE
            self._change(
                ticket,
                finding,
                {"state": "awaiting_verification"} if closable else {},
                "ticket_closed_observed",
                data if closable else data | {"finding_unchanged": f"already {finding['state']}"},
            )
        elif was_done and not now_done:
            self.result.reopened += 1
            self._change(
                ticket,
                finding,
                {"state": "routed"} if finding["state"] == "awaiting_verification" else {},
                "ticket_reopened",
                data,
            )

    def _change(
        self, ticket: TicketSnapshot, finding: dict[str, Any], changes: dict[str, Any], type_: str, data: dict[str, Any]
    ) -> None:
        before = dict(finding)
        self.changes.append(findings.Change(before, changes))
        self.events.append(
            findings.event_for(
                before,
                changes,
                type=type_,
                actor=self.actor,
                data={"system": self.system, **data},
                source=self.source,
                ticket_key=ticket.key,
            )
        )
        finding.update(changes)

    def write(self, conn: Connection, store: Store) -> None:
        """Everything the export changed, set-based, and its events in the order they arose."""
        now = schema.format_ts(store.now())
        bulk_insert(conn, schema.links, [{**r, "created_at": now} for r in self.new_links])
        links.reactivate(conn, self.system, self.reactivated)
        findings.apply(conn, self.changes)
        append(conn, store, self.events)


def _import_dojo_links(
    store: Store, engagement: str, data: bytes, source: Source, actor: str, result: TicketFileResult
) -> None:
    """DefectDojo's jira_finding_mappings: its finding ids → our findings (by external id) → links."""
    from handoffkit.tickets.detect import parse_links

    export = parse_links(data, source.file)
    result.format, result.tickets = "defectdojo-jira-mappings", len(export.links)
    skipped = dict(export.skipped)
    f = schema.findings.c
    with store.write() as conn:
        by_external = {
            r.external_id: dict(r._mapping)
            for r in conn.execute(select(schema.findings).where(f.engagement == engagement, f.external_id.is_not(None)))
        }
        new_events = []
        for item in export.links:
            finding = by_external.get(item.dojo_finding_id)
            if finding is None:
                skipped["unknown_defectdojo_finding"] = skipped.get("unknown_defectdojo_finding", 0) + 1
                continue
            ev = links.add(
                conn,
                store,
                finding,
                "jira",
                item.jira_key,
                origin="defectdojo",
                actor=actor,
                source=source,
                note=f"DefectDojo finding {item.dojo_finding_id}",
            )
            if ev is not None:
                result.linked += 1
                new_events.append(ev)
        result.skipped = [{"reason": r, "count": c} for r, c in sorted(skipped.items())]
        if export.next_page:
            result.skipped.append({"reason": "more_pages_not_in_file", "count": 1})
        new_events.append(
            Event(
                type="ticket_import",
                actor=actor,
                engagement=engagement,
                source=source,
                data={k: v for k, v in result.as_dict().items() if k not in ("status", "error")},
            )
        )
        append(conn, store, new_events)


__all__ = ["TicketFileResult", "import_export", "ingest_tickets"]
