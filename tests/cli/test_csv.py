"""Every CSV the command line writes is formula-safe (issue 20, item 9).

A record is built through the CLI with a formula canary — ``=``, ``+``, ``-``, ``@``, tab, CR — in every
text field a person or a scanner controls: scanner titles, descriptions and rules, the owners map's role,
team and person, reasons, approvers, ticket titles and assignees, the Jira custom-field name of the
policy. Then every command that can print CSV is run with ``--format csv``, ``payload --format csv``
for each ticket system, and ``log export``: no cell of any of them starts a formula, and the canaries are
there, neutralised, so the check cannot pass on an output that lost them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from handoffkit.demo import formats
from handoffkit.record.csvsafe import FORMULA_START
from tests.builders import ACTOR, DATA, GENERATED, ticket

CANARIES = ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=tab", "\r=cr"]
TEAM = '=HYPERLINK("http://evil.test/team","payments")'
#: Canaries that survive trimming whole; tab and CR lead cells only where a field keeps its whitespace.
VISIBLE = ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(A1:A9)", TEAM]


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        (DATA / "policy.yaml").read_text().replace('custom_field: "Finding ID"', 'custom_field: "=Finding ID"')
    )
    owners = tmp_path / "owners.csv"
    owners.write_text(
        "asset_ref,owner_role,owner_team,owner_name,exposure,data_sensitivity,lifecycle\n"
        f'https://shop.test,+service owner,"{TEAM.replace(chr(34), chr(34) * 2)}",@Priya Raman,internet,high,active\n'
    )
    return policy, owners


def _scan(tmp_path: Path) -> Path:
    alerts = [
        {
            "plugin": 41000 + i,
            "name": f"{canary} alert {i}",
            "risk": 3,
            "cwe": 79,
            "wasc": 8,
            "desc": canary,
            "solution": canary,
            "instances": [{"uri": f"https://shop.test/p{i}", "method": "GET", "param": canary, "evidence": canary}],
        }
        for i, canary in enumerate(CANARIES)
    ]
    path = tmp_path / "zap.json"
    path.write_bytes(formats.zap([{"origin": "https://shop.test", "alerts": alerts}], GENERATED))
    return path


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def assert_formula_safe(text: str, what: str) -> list[str]:
    cells = _cells(text)
    assert cells, f"{what}: no CSV at all"
    running = [c for c in cells if c.startswith(FORMULA_START)]
    assert running == [], f"{what}: cells that start a formula: {running[:5]}"
    return cells


def test_every_csv_the_cli_writes_is_formula_safe(db_url: str, run, tmp_path: Path) -> None:
    def ok(*args: str) -> str:
        result = run("--db", db_url, *args)
        assert result.exit_code == 0, result.output
        return result.stdout

    policy, owners = _setup(tmp_path)
    outputs: dict[str, str] = {}
    outputs["init"] = ok(
        "init", "-e", "ACME", "--policy", str(policy), "--owners", str(owners), "--actor", ACTOR, "--format", "csv"
    )
    outputs["ingest scan"] = ok(
        "ingest", "scan", str(_scan(tmp_path)), "-e", "ACME", "--actor", ACTOR, "--format", "csv"
    )
    ids = [f"HK-{n}" for n in range(1, len(CANARIES) + 1)]
    outputs["triage"] = ok(
        "triage", *ids, "--as", "validated", "--reason", CANARIES[0], "--actor", ACTOR, "--format", "csv"
    )
    outputs["calibrate"] = ok(
        "calibrate", ids[0], "--severity", "critical", "--reason", CANARIES[3], "--actor", ACTOR, "--format", "csv"
    )
    outputs["route"] = ok("route", "-e", "ACME", "--actor", ACTOR, "--format", "csv")
    outputs["exception grant"] = ok(
        "exception",
        "grant",
        ids[5],
        "--approver",
        "+Dana Whitfield",
        "--reason",
        CANARIES[2],
        "--expires",
        "2027-03-31",
        "--actor",
        ACTOR,
        "--format",
        "csv",
    )
    outputs["exception list"] = ok("exception", "list", "-e", "ACME", "--format", "csv")
    for target in ("jira", "servicenow", "github"):
        outputs[f"payload {target}"] = ok(
            "payload", "-e", "ACME", "--target", target, "--format", "csv", "--actor", ACTOR
        )
    export = tmp_path / "jira-export.csv"
    export.write_bytes(
        formats.jira_csv(
            [ticket("jira", 1, [ids[0]], title=CANARIES[1]) | {"assignee": CANARIES[3]}, ticket("jira", 2, [])]
        )
    )
    outputs["ingest tickets"] = ok(
        "ingest", "tickets", str(export), "--system", "jira", "-e", "ACME", "--actor", ACTOR, "--format", "csv"
    )
    outputs["link"] = ok(
        "link", ids[1], "SEC-9", "--system", "jira", "--note", CANARIES[0], "--actor", ACTOR, "--format", "csv"
    )
    outputs["unlink"] = ok(
        "unlink", ids[1], "SEC-9", "--system", "jira", "--reason", CANARIES[1], "--actor", ACTOR, "--format", "csv"
    )
    outputs["verify"] = ok(
        "verify",
        ids[2],
        "--kind",
        "retest",
        "--evidence",
        f"run:csv-1 {CANARIES[3]}",
        "--actor",
        ACTOR,
        "--format",
        "csv",
    )
    outputs["exception revoke"] = ok(
        "exception", "revoke", ids[5], "--reason", CANARIES[1], "--actor", ACTOR, "--format", "csv"
    )
    outputs["findings"] = ok("findings", "-e", "ACME", "--format", "csv")
    outputs["findings as of"] = ok("findings", "-e", "ACME", "--as-of", "2099-01-01", "--format", "csv")
    outputs["reconcile"] = ok("reconcile", "-e", "ACME", "--actor", ACTOR, "--format", "csv")
    outputs["check"] = ok("check", "-e", "ACME", "--format", "csv")
    outputs["engagements"] = ok("engagements", "--format", "csv")
    log = tmp_path / "activity.csv"
    ok("log", "export", "-e", "ACME", "--out", str(log), "--actor", ACTOR)
    outputs["log export"] = log.read_text(encoding="utf-8")

    seen: set[str] = set()
    for what, text in outputs.items():
        seen.update(assert_formula_safe(text, what))
    # the canaries reached the outputs, neutralised with a leading quote (the check saw them)
    for canary in VISIBLE:
        assert any(c.startswith("'" + canary) for c in seen), canary
    payload = _cells(outputs["payload jira"])
    assert "'" + TEAM in payload and "'=Finding ID" in payload  # the owner team, the policy-named column


@pytest.mark.parametrize("canary", CANARIES)
def test_a_payload_csv_cell_from_any_field_is_neutralised(canary: str) -> None:
    from handoffkit.record.csvsafe import rows_to_csv

    text = rows_to_csv([canary, "b"], [[canary, canary]])
    assert all(not c.startswith(FORMULA_START) for c in _cells(text))
