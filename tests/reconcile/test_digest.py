"""The digest and ``notify``: each section from the record, sent to a webhook on 127.0.0.1 (Slack and
Teams shapes) or written as Markdown, once per state, the webhook URL never shown."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Response

from handoffkit.cli import cli
from handoffkit.demo import formats
from handoffkit.errors import ConfigError, RemoteError
from handoffkit.ingest import kev
from handoffkit.reconcile import reconcile
from handoffkit.reconcile.digest import build, notify
from handoffkit.record.store import Store
from handoffkit.workflow import exceptions
from tests.builders import ACTOR, add_findings, events, finding

SECRET_PATH = "/services/T0001/B0002/s3cr3tW3bh00kP4th"


def on(store: Store, day: str) -> None:
    store.clock.fixed = datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


def test_each_section_comes_from_the_record(store: Store, routed: list[str], tmp_path: Path) -> None:
    due = finding(store, routed[0])["sla_due"]
    on(store, (due.fromordinal(due.toordinal() - 3)).isoformat())
    d = build(store, "ACME")
    assert [i["finding_id"] for i in d.sections["sla_due_soon"]] == routed
    assert d.sections["sla_breached"] == []
    assert d.sections["reconciliation_overdue"][0]["last_run"] is None  # never reconciled

    reconcile(store, "ACME", record=True, actor=ACTOR)
    exceptions.grant(store, routed[1], approver="Omar Haddad", reason="compensating WAF rule",
                     expires=date.fromordinal(store.now().date().toordinal() + 5), actor=ACTOR)  # fmt: skip
    [cve_finding] = add_findings(store, "ACME", cves="CVE-2024-1111")
    path = tmp_path / "kev.json"
    entry = {"cve": "CVE-2024-1111", "vendor": "V", "product": "P", "name": "flaw", "added": "2026-02-01"}
    path.write_bytes(formats.kev_catalog([entry | {"due": "2026-06-01"}], "2026.03.01", "2026-03-01T12:00:00.000Z"))
    kev.load(store, path, actor=ACTOR)
    on(store, (due.fromordinal(due.toordinal() + 1)).isoformat())
    d = build(store, "ACME", days=7)
    # An exception takes effect at the next routing run; until then both count, as in the SLA view.
    assert [i["finding_id"] for i in d.sections["sla_breached"]] == routed
    assert d.sections["reconciliation_overdue"] == []
    assert [i["finding_id"] for i in d.sections["exceptions_expiring"]] == [routed[1]]
    assert [i["finding_id"] for i in d.sections["kev_new"]] == [cve_finding]
    text = d.markdown()
    assert f"- {routed[0]} [high]" in text and "## New KEV matches (1)" in text


@pytest.mark.parametrize("kind", ["slack", "teams"])
def test_the_same_digest_is_sent_once_per_state(
    store: Store, routed: list[str], httpserver: HTTPServer, kind: str
) -> None:
    received: list[dict] = []

    def hook(request):
        received.append(request.get_json())
        return Response("ok")

    httpserver.expect_request(SECRET_PATH, method="POST").respond_with_handler(hook)
    url = httpserver.url_for(SECRET_PATH)

    first = notify(store, "ACME", actor=ACTOR, webhook=url, webhook_format=kind)
    again = notify(store, "ACME", actor=ACTOR, webhook=url, webhook_format=kind)
    assert (first["sent"], again["sent"]) == (True, False) and len(received) == 1
    body = received[0]
    if kind == "slack":
        assert body["text"].startswith("# handoffkit digest — ACME") and body["blocks"][0]["type"] == "section"
    else:
        assert body["@type"] == "MessageCard" and "## SLA due soon" in body["text"]

    due = finding(store, routed[0])["sla_due"]
    on(store, date.fromordinal(due.toordinal() + 1).isoformat())  # the state changes: now breached
    assert notify(store, "ACME", actor=ACTOR, webhook=url, webhook_format=kind)["sent"] is True
    sent = events(store, "digest_sent")
    assert len(sent) == 2 and len(received) == 2
    assert sent[0]["data"]["destination"] == "http://127.0.0.1/…"
    assert all("s3cr3t" not in json.dumps(e) for e in events(store))


def test_a_failing_webhook_is_not_recorded_as_sent(store: Store, routed: list[str], httpserver: HTTPServer) -> None:
    httpserver.expect_request(SECRET_PATH).respond_with_response(Response("down", status=500))
    with pytest.raises(RemoteError) as raised:
        notify(store, "ACME", actor=ACTOR, webhook=httpserver.url_for(SECRET_PATH))
    assert "s3cr3t" not in str(raised.value) and "HTTP 500" in str(raised.value)
    assert events(store, "digest_sent") == []


def test_markdown_out_and_the_cli(store: Store, routed: list[str], tmp_path: Path) -> None:
    out = tmp_path / "digest.md"
    args = ["--db", store.url, "notify", "-e", "ACME", "--out", str(out), "--actor", ACTOR]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "sent to" in first.output and out.read_text().startswith("# handoffkit digest — ACME")
    out.unlink()
    second = CliRunner().invoke(cli, args)
    assert "unchanged since the last digest" in second.output and not out.exists()
    with pytest.raises(ConfigError, match="exactly one destination"):
        notify(store, "ACME", actor=ACTOR)
