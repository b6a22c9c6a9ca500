"""Sync: read the tickets' current state from a ticket system's API, as one snapshot or nothing.

Every page is fetched and parsed before anything is written; a failure on any page (the server's,
the network's, a malformed body) leaves no snapshot, only a ``ticket_sync_refused`` failure event.
The tickets then go through the same snapshot diff as a file export
(:func:`handoffkit.tickets.snapshots.import_export`): the same events, whose origin names the API's
base URL, the query and the SHA-256 of every response (and a ``sha256`` over them all). For a Jira
ticket whose title or priority changed since its last snapshot, the issue's changelog is fetched too,
and its ``ticket_renamed`` / ``severity_drift_observed`` events say who made the edit and when.
What comes back is read, compared and logged; it changes findings only as routing events do.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select

from handoffkit.errors import HandoffkitError
from handoffkit.record import engagements, schema
from handoffkit.record.canonical import sha256_bytes
from handoffkit.record.log import Event, Source, log_event
from handoffkit.record.model import TicketSnapshot
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store
from handoffkit.tickets import trackers
from handoffkit.tickets.connection import Client, Settings, open_client
from handoffkit.tickets.detect import TicketExport, parse_document
from handoffkit.tickets.snapshots import CHUNK, TicketFileResult, import_export


class Progress(Protocol):
    """Where a sync says how far it is (the CLI's :class:`~handoffkit.report.output.Activity` bar)."""

    def __call__(self, message: str) -> None: ...

    def expect(self, total: int) -> None: ...

    def advance(self, units: int = 1) -> None: ...


class _Silent:
    def __call__(self, message: str) -> None:
        pass

    def expect(self, total: int) -> None:
        pass

    def advance(self, units: int = 1) -> None:
        pass


def sync_tickets(
    store: Store,
    engagement: str,
    system: str,
    settings: Settings,
    *,
    actor: str,
    since: str | None = None,
    client: Client | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Pull ``system``'s tickets into one snapshot; returns the import's counts plus ``requests`` and ``pages``.
    ``progress`` is told of each page fetched, and of how many there are where the system says.

    Raises:
        RemoteError: a request failed (after retries); ConfigError: no credentials; InputError: a page
            is not what the system returns. Each after logging ``ticket_sync_refused``; nothing else written.
    """
    actor = require_actor(actor)
    with store.read() as conn:
        engagements.get(conn, engagement)
        policy = engagements.policy(conn, engagement)
    result = TicketFileResult(file=settings.url, system=system)
    asked: dict[str, Any] = {"system": system, "url": settings.url}
    own = client is None
    try:
        client = client or open_client(system, settings)
        asked = trackers.query(client, policy, since)
        pages, export = _fetch(client, asked, policy, progress or _Silent())
        history = {key: trackers.jira_changelog(client, key) for key in _edited(store, engagement, export)}
    except HandoffkitError as exc:
        reason = client.scrub(str(exc)) if client is not None else str(exc)
        log_event(
            store,
            Event(
                type="ticket_sync_refused",
                actor=actor,
                engagement=engagement,
                outcome="failure",
                data={
                    "system": system,
                    "url": settings.url,
                    "query": asked,
                    "reason": reason,
                    "requests": client.requests if client else 0,
                },
            ),
        )
        if reason != str(exc):  # a body or message that echoed a credential is not raised as it came
            raise type(exc)(reason) from None
        raise
    finally:
        if own and client is not None:
            client.close()
    hashes = list(client.received)  # the listing's pages, then any changelogs, in the order received
    source = Source(
        settings.url,
        sha256_bytes("\n".join(hashes).encode()),
        {"query": asked, "requests": client.requests, "responses": hashes},
    )
    import_export(store, engagement, policy, export, source, actor, result, name=settings.url, history=history)
    return result.as_dict() | {"requests": client.requests, "pages": len(pages)}


def _edited(store: Store, engagement: str, export: TicketExport) -> list[str]:
    """Jira tickets whose title or priority differs from their last snapshot: the changelog says who
    renamed or re-prioritised them, and when (the other systems' exports have no such history here)."""
    if export.system != "jira" or not export.tickets:
        return []
    t = schema.tickets.c
    now = {k.key: (k.title, k.priority or "") for k in export.tickets}
    keys = list(now)
    edited = []
    with store.read() as conn:
        for start in range(0, len(keys), CHUNK):
            for key, title, priority in conn.execute(
                select(t.key, t.title, t.priority).where(
                    t.engagement == engagement, t.system == "jira", t.current, t.key.in_(keys[start : start + CHUNK])
                )
            ):
                if now[key] != (title, priority or ""):
                    edited.append(key)
    return sorted(edited)


def _fetch(
    client: Client, asked: dict[str, Any], policy: Any, tell: Progress
) -> tuple[list[trackers.Page], TicketExport]:
    """Every page, each parsed as it arrives; the tickets by key (a ticket seen twice: its last copy)."""
    pages: list[trackers.Page] = []
    tickets: dict[str, TicketSnapshot] = {}
    export: TicketExport | None = None
    for page in trackers.pages(client, asked):
        pages.append(page)
        if page.expected is not None:
            tell.expect(max(page.expected, len(pages)))
        tell(f"{client.system}: page {len(pages)}" + (f" of {page.expected}" if page.expected else ""))
        tell.advance()
        part = parse_document(page.doc, f"{client.system}: {page.request}", client.system,
                              jira_names=trackers.jira_names(policy))  # fmt: skip
        tickets.update((t.key, t) for t in part.tickets)
        if export is None:
            export = part
        else:
            export.skipped.update(part.skipped)
    assert export is not None  # pages() yields at least one page
    export.tickets = list(tickets.values())
    export.format = f"{export.format}-sync"
    return pages, export
