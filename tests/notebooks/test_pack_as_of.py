"""A pack as of an instant never changes (issue 19, item 1).

The small programme (March 2026) is reported as of 25 March; then every kind of write the CLI offers
happens later — a changed policy and owners map, scans, the KEV catalog, triage, calibration, routing,
exceptions, payloads, ticket exports, links, ticket updates handed over, a verification, reconciliations
(one of them retrospective, as of the same instant), checks, log verification and export, another
report — and the pack is rendered
again as of the same instant. Its CSV and data-quality results are the same bytes, and every page reads
the same. Only ``manifest.json``'s ``rendering`` block and the executed notebooks may differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import html5lib
import pytest
import yaml
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.demo import formats
from tests.builders import DATA, DONE, ROOT, small_programme, ticket, zap_scan

from .packs import render

AS_OF = "2026-03-25"
PAGES = (
    "quarterly_leadership",
    "routing_decisions",
    "ticket_mapping",
    "severity_calibration",
    "closure_verification",
    "activity_log",
)


def page_text(path: Path) -> str:
    body = html5lib.parse(path.read_bytes(), namespaceHTMLElements=False).find("body")
    return "\n".join(t.strip() for t in body.itertext() if t.strip())


def cli_ok(url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--db", url, *args])
    assert result.exit_code == 0, (args, result.output)
    return result.output


def later_writes(url: str, work: Path) -> None:
    """Every kind of write the CLI offers, on the real clock (long after 25 March 2026)."""
    actor = ["--actor", "Ben Okoro"]
    policy = work / "policy.yaml"
    text = (DATA / "policy.yaml").read_text(encoding="utf-8")
    policy.write_text(text.replace("cadence: weekly", "cadence: monthly").replace("unassigned]", "platform]"))
    owners = work / "owners.csv"
    owners.write_text((DATA / "owners.csv").read_text(encoding="utf-8").replace("Priya Raman", "Li Wei"))
    cli_ok(url, "init", "-e", "ACME", "--policy", str(policy), "--owners", str(owners), *actor)

    cli_ok(url, "ingest", "scan", str(zap_scan(work / "scan3.json", [2, 3], "2026-11-01")), "-e", "ACME", *actor)
    host = [{"name": "db.shop.test", "ip": "10.0.0.9", "items": [_item("CVE-2021-44228")]}]
    (work / "hosts.nessus").write_bytes(formats.nessus(host, "weekly"))
    cli_ok(url, "ingest", "scan", str(work / "hosts.nessus"), "-e", "ACME", "--scanned-at", "2026-11-02", *actor)
    catalog = formats.kev_catalog(
        [{"cve": "CVE-2021-44228", "vendor": "Apache", "product": "Log4j", "name": "Log4Shell",
          "added": "2021-12-10", "due": "2021-12-24"}],
        "2026.11.01",
        "2026-11-01T00:00:00.000Z",
    )  # fmt: skip
    (work / "kev.json").write_bytes(catalog)
    cli_ok(url, "kev", "load", str(work / "kev.json"), *actor)
    cli_ok(url, "triage", "HK-4", "--as", "validated", "--reason", "later", *actor)
    cli_ok(url, "calibrate", "HK-3", "--cvss", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", "--reason", "x", *actor)
    cli_ok(url, "route", "-e", "ACME", *actor)
    grant = ["--approver", "Dana Whitfield", "--expires", "2030-01-31", "--reason", "later"]
    cli_ok(url, "exception", "grant", "HK-3", *grant, *actor)
    cli_ok(url, "exception", "revoke", "HK-3", "--reason", "sooner", *actor)
    cli_ok(url, "payload", "-e", "ACME", "--target", "jira", "--format", "csv", "--out", str(work / "pl.csv"), *actor)
    export = formats.jira_csv(
        [
            ticket("jira", 1, ["HK-1"], **DONE),
            ticket("jira", 2, ["HK-3"], band="low", description="!screenshot.png|thumbnail!"),
            ticket("jira", 3, ["HK-404"]),
        ]
    )
    (work / "jira.csv").write_bytes(export)
    cli_ok(url, "ingest", "tickets", str(work / "jira.csv"), "--system", "jira", "-e", "ACME", *actor)
    cli_ok(url, "link", "HK-2", "SEC-77", "--system", "jira", *actor)
    cli_ok(url, "unlink", "HK-2", "SEC-77", "--system", "jira", *actor)
    cli_ok(url, "calibrate", "HK-3", "--severity", "high", "--reason", "exploit published", *actor)
    cli_ok(url, "route", "-e", "ACME", *actor)
    assert "SEC-2" in cli_ok(url, "payload", "-e", "ACME", "--updates", "--target", "jira", "--format", "md", *actor)
    cli_ok(url, "verify", "HK-3", "--kind", "retest", "--evidence", "run:retest-3 fixed", *actor)
    cli_ok(url, "reconcile", "-e", "ACME", *actor)
    cli_ok(url, "reconcile", "-e", "ACME", "--as-of", AS_OF, *actor)
    cli_ok(url, "check", "-e", "ACME")
    cli_ok(url, "log", "verify", *actor)
    cli_ok(url, "log", "export", "-e", "ACME", "--out", str(work / "all.csv"), *actor)
    cli_ok(url, "report", "--params", str(_params(work / "now.yaml", None)), "--out", str(work / "now"), *actor)


def _item(cve: str) -> dict:
    return {
        "port": 443, "protocol": "tcp", "svc": "www", "severity": 4, "plugin": 155999, "name": "Log4Shell",
        "family": "General", "cves": [cve], "vector": None, "score": None, "output": "JNDI lookup answered",
        "description": "Remote code execution.", "solution": "Upgrade.", "risk": "Critical",
    }  # fmt: skip


def _params(path: Path, as_of: str | None) -> Path:
    doc = {
        "db": "sqlite:///does-not-exist.db",
        "engagement": "ACME",
        "period_start": "2026-03-01",
        "period_end": "2026-03-31",
        "as_of": as_of,
        "notebooks_dir": str(ROOT / "notebooks"),
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_pack_as_of_an_instant_reads_the_same_after_any_later_activity(db_url, store, engagement, tmp_path):
    small_programme(store, engagement, tmp_path)
    params = _params(tmp_path / "q1.yaml", AS_OF)
    render(db_url, params, tmp_path / "first")
    later_writes(db_url, tmp_path)
    render(db_url, params, tmp_path / "second")

    first, second = tmp_path / "first", tmp_path / "second"
    for name in ("activity_log.csv", "data_quality.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    for name in (*PAGES, "index", "data_quality"):  # the leadership's change since the last quarter too
        assert page_text(first / f"{name}.html") == page_text(second / f"{name}.html"), name
    # The later activity is real: the record itself moved on, and a pack as of now shows it.
    assert "HK-4" in (tmp_path / "all.csv").read_text(encoding="utf-8")
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (first, second)]
    assert manifests[0]["chain_head"] == manifests[1]["chain_head"]
    assert {k for k in manifests[0] if manifests[0][k] != manifests[1][k]} <= {"rendering", "files"}
    changed = {f for f in manifests[0]["files"] if manifests[0]["files"][f] != manifests[1]["files"][f]}
    assert changed <= {f"notebooks/{name}.ipynb" for name in PAGES}
