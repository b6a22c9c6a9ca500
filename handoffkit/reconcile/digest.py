"""The digest: what needs someone's attention today, sent to a chat webhook or written as Markdown.

Sections, each a set-based query on the current record (the day is the store's clock, UTC):

- ``sla_breached`` — open findings past their SLA due date;
- ``sla_due_soon`` — open findings due within ``due_soon_days`` (the SLA view's "due soon");
- ``reconciliation_overdue`` — no reconciliation run within the policy's cadence;
- ``exceptions_expiring`` — active exceptions that expire within ``days``;
- ``kev_new`` — findings flagged KEV-listed within the last ``days`` days.

The digest's ``sha256`` is over these sections only (no send time), so the same state gives the same
digest; :func:`notify` sends it unless the last digest sent to the same destination had that hash.
Each send is a ``digest_sent`` event. A webhook URL is a secret (whoever holds it can post): the
event, the log and any error show only its scheme and host and a SHA-256 of the whole URL.
Webhook bodies: ``slack`` — ``{"text", "blocks"}`` for a Slack incoming webhook; ``teams`` — a
``MessageCard`` for a Teams incoming webhook. Both carry the same Markdown text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import and_, func, select

from handoffkit.errors import ConfigError
from handoffkit.record import engagements, schema
from handoffkit.record.canonical import canonical_json, sha256_bytes
from handoffkit.record.log import Event, log_event
from handoffkit.record.model import OPEN_STATES
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store
from handoffkit.tickets.connection import Client, Credentials, Settings
from handoffkit.workflow.sla import DUE_SOON_DAYS

WEBHOOK_FORMATS = ("slack", "teams")
SECTIONS = ("sla_breached", "sla_due_soon", "reconciliation_overdue", "exceptions_expiring", "kev_new")
TITLES = {
    "sla_breached": "SLA breached",
    "sla_due_soon": "SLA due soon",
    "reconciliation_overdue": "Reconciliation overdue",
    "exceptions_expiring": "Exceptions expiring",
    "kev_new": "New KEV matches",
}


@dataclass
class Digest:
    engagement: str
    day: str
    sections: dict[str, list[dict[str, Any]]]

    @property
    def sha256(self) -> str:
        return sha256_bytes(canonical_json({"engagement": self.engagement, "sections": self.sections}).encode())

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(items) for name, items in self.sections.items()}

    def markdown(self) -> str:
        lines = [f"# handoffkit digest — {self.engagement}, {self.day}", ""]
        for name in SECTIONS:
            items = self.sections[name]
            lines.append(f"## {TITLES[name]} ({len(items)})")
            lines += [f"- {_line(name, item)}" for item in items] or ["- none"]
            lines.append("")
        return "\n".join(lines)


def _line(section: str, item: dict[str, Any]) -> str:
    if section == "reconciliation_overdue":
        return f"last run {item['last_run'] or 'never'}; the policy asks every {item['cadence_days']} days"
    if section == "exceptions_expiring":
        return f"{item['finding_id']} expires {item['expires_on']} (approved by {item['approver']})"
    if section == "kev_new":
        return f"{item['finding_id']} {item['title']} (flagged {item['flagged_at'][:10]})"
    owner = item["owner_team"] or "no owner"
    return f"{item['finding_id']} [{item['severity']}] {item['title']} — due {item['sla_due']} ({owner})"


def build(store: Store, engagement: str, *, days: int = 7, due_soon_days: int = DUE_SOON_DAYS) -> Digest:
    """The digest of ``engagement`` today (read-only)."""
    today = store.now().date()
    with store.read() as conn:
        engagements.get(conn, engagement)
        policy = engagements.policy(conn, engagement)
        sections = {
            "sla_breached": _due(conn, engagement, None, today - timedelta(days=1)),
            "sla_due_soon": _due(conn, engagement, today, today + timedelta(days=due_soon_days)),
            "reconciliation_overdue": _reconciliation(conn, engagement, today, policy.reconciliation.days),
            "exceptions_expiring": _expiring(conn, engagement, today + timedelta(days=days)),
            "kev_new": _kev(conn, engagement, today - timedelta(days=days)),
        }
    return Digest(engagement, today.isoformat(), sections)


def _due(conn: Any, engagement: str, start: date | None, end: date) -> list[dict[str, Any]]:
    f = schema.findings.c
    where = [f.engagement == engagement, f.state.in_(sorted(OPEN_STATES)), f.sla_due.is_not(None), f.sla_due <= end]
    if start is not None:
        where.append(f.sla_due >= start)
    rows = conn.execute(
        select(f.finding_id, f.severity, f.title, f.sla_due, f.owner_team)
        .where(and_(*where))
        .order_by(f.sla_due, f.number)
    )
    return [{**r._mapping, "sla_due": r.sla_due.isoformat()} for r in rows]


def _reconciliation(conn: Any, engagement: str, today: date, cadence: int) -> list[dict[str, Any]]:
    ev = schema.events.c
    last = conn.execute(
        select(func.max(ev.occurred_at)).where(
            ev.engagement == engagement, ev.type == "reconciliation_run", ev.outcome == "success"
        )
    ).scalar()
    overdue = last is None or (today - date.fromisoformat(last[:10])).days > cadence
    return [{"last_run": last[:10] if last else None, "cadence_days": cadence}] if overdue else []


def _expiring(conn: Any, engagement: str, until: date) -> list[dict[str, Any]]:
    x = schema.exceptions.c
    rows = conn.execute(
        select(x.finding_id, x.expires_on, x.approver)
        .where(x.engagement == engagement, x.status == "active", x.expires_on <= until)
        .order_by(x.expires_on, x.finding_id)
    )
    return [{**r._mapping, "expires_on": r.expires_on.isoformat()} for r in rows]


def _kev(conn: Any, engagement: str, since: date) -> list[dict[str, Any]]:
    ev, f = schema.events.c, schema.findings.c
    rows = conn.execute(
        select(ev.finding_id, func.min(ev.occurred_at).label("flagged_at"), f.title)
        .join(schema.findings, f.finding_id == ev.finding_id)
        .where(ev.engagement == engagement, ev.type == "kev_flagged", ev.occurred_at >= since.isoformat())
        .group_by(ev.finding_id, f.title)
        .order_by(ev.finding_id)
    )
    return [dict(r._mapping) for r in rows]


def webhook_body(digest: Digest, kind: str) -> dict[str, Any]:
    """The JSON a Slack or Teams incoming webhook takes."""
    text = digest.markdown()
    summary = f"handoffkit digest — {digest.engagement}, {digest.day}"
    if kind == "teams":
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": summary, "text": text}
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}


def notify(
    store: Store,
    engagement: str,
    *,
    actor: str,
    webhook: str | None = None,
    webhook_format: str = "slack",
    out: str | Path | None = None,
    days: int = 7,
    due_soon_days: int = DUE_SOON_DAYS,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Build the digest and send it to ``webhook`` or write it to ``out`` — unless this destination was
    last sent the same digest. Returns ``{"sent", "destination", "sha256", "counts", "markdown"}``.

    Raises:
        ConfigError: neither or both destinations, or an unknown webhook format.
        RemoteError: the webhook refused or kept failing (nothing logged as sent).
    """
    actor = require_actor(actor)
    if (webhook is None) == (out is None):
        raise ConfigError("notify: give exactly one destination, a webhook URL or an output file")
    if webhook_format not in WEBHOOK_FORMATS:
        raise ConfigError(f"notify: webhook format {webhook_format!r}; expected one of {', '.join(WEBHOOK_FORMATS)}")
    digest = build(store, engagement, days=days, due_soon_days=due_soon_days)
    destination = _shown(webhook) if webhook else str(out)
    dest_sha = sha256_bytes((webhook or str(Path(out).resolve())).encode())  # type: ignore[arg-type]
    result = {"sent": False, "destination": destination, "sha256": digest.sha256, "counts": digest.counts}
    if _last_sent(store, engagement, dest_sha) == digest.sha256:
        return result | {"markdown": digest.markdown()}
    if webhook:
        settings = Settings(url=webhook, timeout=timeout, retries=3)
        with Client("webhook", settings, Credentials(secret_url=webhook)) as client:
            client.request("POST", webhook, json=webhook_body(digest, webhook_format))
    else:
        Path(out).write_text(digest.markdown(), encoding="utf-8")  # type: ignore[arg-type]
    log_event(
        store,
        Event(
            type="digest_sent",
            actor=actor,
            engagement=engagement,
            data={"destination": destination, "destination_sha256": dest_sha,
                  "format": webhook_format if webhook else "markdown",
                  "sha256": digest.sha256, "counts": digest.counts, "day": digest.day},
        ),
    )  # fmt: skip
    return result | {"sent": True, "markdown": digest.markdown()}


def _shown(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}/…"


def _last_sent(store: Store, engagement: str, dest_sha: str) -> str | None:
    ev = schema.events.c
    with store.read() as conn:
        for text in conn.execute(
            select(ev.payload)
            .where(ev.engagement == engagement, ev.type == "digest_sent", ev.outcome == "success")
            .order_by(ev.seq.desc())
        ).scalars():
            data = json.loads(text)["data"]
            if data["destination_sha256"] == dest_sha:
                return data["sha256"]
    return None
