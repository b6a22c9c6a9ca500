"""Ticket payloads: validated against the policy's JSON Schema, one per routed-to-ticket finding, every
target and format, the evidence as a permalink only, issuing logged with SHA-256 (issue 4, "Ticket payload")."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from handoffkit.cli import cli
from handoffkit.errors import RefusedError
from handoffkit.record import engagements, findings, schema
from handoffkit.record.canonical import canonical_json
from handoffkit.record.inputs import read_csv
from handoffkit.tickets import payload
from handoffkit.tickets.detect import parse_export
from handoffkit.tickets.finding_ids import extract_finding_ids
from tests.builders import ACTOR, QUEUE, SHOP, events, finding, route, snapshot, validate

PERMALINK = "https://record.test/ACME/findings/{}"
VECTOR = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N"


@pytest.fixture
def ticketed(store, rec) -> list[str]:
    """Two findings routed to a ticket with an owner (one with a CVE, one with a CWE), plus findings that
    must never get a payload (a sprint-backlog medium, a paused critical)."""
    host = rec.host(
        SHOP, {"name": "Payload OpenSSL", "severity": 3, "cves": ["CVE-2024-1234"], "vector": VECTOR, "score": 8.1}
    )
    web = rec.web(SHOP, ("Payload XSS", 3), ("Payload medium", 2))
    paused = rec.host(QUEUE, {"name": "Payload paused", "severity": 4})
    validate(store, [*host, *web, *paused])
    route(store)
    return [host[0], web[0], web[1], paused[0]]


def _neutral(store, fid: str) -> tuple[dict, dict]:
    with store.read() as conn:
        row = findings.get(conn, fid)._mapping
        policy = engagements.policy(conn, "ACME")
        return payload.neutral(row, policy, "ab" * 32), payload.json_schema(policy, "ACME")


def test_a_payload_without_a_permalink_fails_schema_validation(store, ticketed):
    good, schema_doc = _neutral(store, ticketed[0])
    payload.validate(good, schema_doc)  # the real payload passes
    assert "permalink" in schema_doc["required"]

    without = {k: v for k, v in good.items() if k != "permalink"}
    with pytest.raises(RefusedError, match="'permalink' is a required property"):
        payload.validate(without, schema_doc)
    with pytest.raises(RefusedError, match="at permalink"):
        payload.validate(good | {"permalink": "https://elsewhere.test/HK-1"}, schema_doc)


MALFORMED = [
    ({"evidence": "GET /?q=<script> HTTP/1.1"}, "Additional properties"),  # no field for a copy of the evidence
    ({"finding_id": "SEC-1"}, "at finding_id"),
    ({"severity": "urgent"}, "at severity"),
    ({"due_date": "next week"}, "at due_date"),
    ({"cve_cwe": ["log4shell"]}, "at cve_cwe/0"),
    ({"owner": {"team": "payments"}}, "'role' is a required property"),
]


def test_the_schema_refuses_malformed_payloads(store, ticketed):
    good, schema_doc = _neutral(store, ticketed[0])
    for change, where in MALFORMED:
        with pytest.raises(RefusedError, match=where):
            payload.validate(good | change, schema_doc)


def test_payloads_carry_the_required_fields_and_never_the_evidence(store, ticketed):
    host, web = ticketed[:2]
    with store.read() as conn:
        evidence = {
            fid: conn.execute(select(schema.evidence.c.content).where(schema.evidence.c.finding_id == fid)).scalar()
            for fid in (host, web)
        }
    assert b"<script>evidence-" in evidence[web] and b"output of weekly" in evidence[host]

    texts = {
        (t, f): payload.issue(store, "ACME", target=t, actor=ACTOR, fmt=f)["text"]
        for t in payload.TARGETS
        for f in payload.FORMATS
    }

    for text in texts.values():
        for fid, cve_cwe in ((host, "CVE-2024-1234"), (web, "CWE-79")):
            assert PERMALINK.format(fid) in text and cve_cwe in text and f"[{fid}]" in text
        assert "2026-05-01" in text and "https://shop.test" in text and "Reproduce with" in text
        assert "<script>evidence-" not in text and "output of weekly" not in text
        assert not any(fid in text for fid in ticketed[2:])


def test_jira_rest_payload(store, ticketed):
    host = ticketed[0]
    [first, _] = payload.issue(store, "ACME", target="jira", actor=ACTOR)["payloads"]
    fields = first["fields"]
    assert (fields["project"], fields["issuetype"], fields["priority"]) == (
        {"key": "SEC"},
        {"name": "Bug"},
        {"name": "High"},
    )
    assert fields["summary"] == f"[{host}] Payload OpenSSL"
    assert fields["labels"] == [host, "handoffkit", "severity-high"]
    assert fields["duedate"] == "2026-05-01" and fields["components"] == [{"name": "payments"}]
    assert f"Record: {PERMALINK.format(host)}" in fields["description"] and VECTOR in fields["description"]


def test_jira_csv_payload_round_trips_through_the_jira_csv_parser(store, ticketed):
    host, web = ticketed[:2]
    text = payload.issue(store, "ACME", target="jira", actor=ACTOR, fmt="csv")["text"]
    header = next(csv.reader(io.StringIO(text)))
    assert header.count("Labels") == payload.JIRA_CSV_LABEL_COLUMNS >= 2 and "Finding ID" in header

    table = read_csv(text.encode(), "payload.csv")
    assert [r["Finding ID"] for r in table.rows] == [host, web]
    assert [r["Labels"] for r in table.rows] == [
        [host, "handoffkit", "severity-high"],
        [web, "handoffkit", "severity-high"],
    ]

    # Jira's importer assigns the key and the initial status; its export then reads back with our parser.
    rows = list(csv.reader(io.StringIO(text)))
    imported = io.StringIO()
    csv.writer(imported).writerows(
        [[*rows[0], "Issue key", "Status"]] + [[*r, f"SEC-{i}", "To Do"] for i, r in enumerate(rows[1:], 1)]
    )
    export = parse_export(imported.getvalue().encode(), "imported.csv", "jira")
    assert [(t.key, t.title, t.priority, t.labels) for t in export.tickets] == [
        ("SEC-1", f"[{host}] Payload OpenSSL", "High", tuple(sorted((host, "handoffkit", "severity-high")))),
        ("SEC-2", f"[{web}] Payload XSS", "High", tuple(sorted((web, "handoffkit", "severity-high")))),
    ]
    assert [extract_finding_ids(t) for t in export.tickets] == [(host,), (web,)]
    assert all(PERMALINK.format(f) in t.description for t, f in zip(export.tickets, (host, web), strict=True))


def test_servicenow_and_github_payloads(store, ticketed):
    host, web = ticketed[:2]
    sn = json.loads(payload.issue(store, "ACME", target="servicenow", actor=ACTOR)["text"])
    assert [r["u_finding_id"] for r in sn["records"]] == [host, web]
    first = sn["records"][0]
    assert (
        first["u_permalink"],
        first["priority"],
        first["due_date"],
        first["assignment_group"],
        first["cmdb_ci"],
    ) == (PERMALINK.format(host), "2 - High", "2026-05-01", "payments", SHOP)

    gh = json.loads(payload.issue(store, "ACME", target="github", actor=ACTOR)["text"])
    assert [(i["title"], i["labels"]) for i in gh] == [
        (f"[{host}] Payload OpenSSL", [host, "handoffkit", "severity:high"]),
        (f"[{web}] Payload XSS", [web, "handoffkit", "severity:high"]),
    ]
    assert "CVE-2024-1234" in gh[0]["body"] and PERMALINK.format(host) in gh[0]["body"]

    md = payload.issue(store, "ACME", target="github", actor=ACTOR, fmt="md")["text"]
    assert md.startswith(f"## [{host}] Payload OpenSSL\n") and f"## [{web}] Payload XSS" in md


def test_issuing_logs_one_payload_issued_event_per_finding_with_its_sha256(store, ticketed):
    before = snapshot(store)
    result = payload.issue(store, "ACME", target="servicenow", actor=ACTOR)

    expected = [hashlib.sha256(canonical_json(p).encode()).hexdigest() for p in result["payloads"]]
    assert result["sha256"] == expected and len(set(expected)) == 2
    issued = events(store, "payload_issued")
    assert [(e["finding_id"], e["data"]["sha256"], e["data"]["target"]) for e in issued] == [
        (ticketed[0], expected[0], "servicenow"),
        (ticketed[1], expected[1], "servicenow"),
    ]
    assert all(e["actor"] == ACTOR and e["disposition"] == "ticket" for e in issued)
    after = snapshot(store)
    assert after["events"] == before["events"] + 2 and after["findings_versions"] == before["findings_versions"]


def test_only_findings_routed_to_a_ticket_with_an_owner_get_a_payload(store, ticketed):
    medium, paused = ticketed[2:]
    assert finding(store, medium)["disposition"] == "sprint_backlog"
    assert finding(store, paused)["state"] == "paused_no_owner"
    with pytest.raises(RefusedError, match=rf"{medium} \(routed, sprint_backlog\), {paused} \(paused_no_owner"):
        payload.issue(store, "ACME", target="jira", actor=ACTOR, finding_ids=[medium, paused])
    with pytest.raises(RefusedError, match="not findings of ACME: HK-999"):
        payload.issue(store, "ACME", target="jira", actor=ACTOR, finding_ids=["HK-999"])
    assert len(events(store, "payload_issued", outcome="denied")) == 2
    assert payload.issue(store, "ACME", target="jira", actor=ACTOR, finding_ids=[ticketed[1]])["count"] == 1


def test_payload_cli_writes_a_file(store, ticketed, tmp_path):
    out = tmp_path / "jira.csv"
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            store.url,
            "payload",
            "-e",
            "ACME",
            "--target",
            "jira",
            "--format",
            "csv",
            "--out",
            str(out),
            "--actor",
            ACTOR,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 payload(s) written" in result.output
    assert [r["Finding ID"] for r in read_csv(out.read_bytes(), str(out)).rows] == ticketed[:2]
