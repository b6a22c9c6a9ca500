"""The portfolio (issue 25): one leadership page across every engagement, as of an instant.

Two engagements (ACME's small programme; GLOBEX, younger, with critical and KEV-listed findings) are
reported as of 25 March 2026; then every kind of later write happens — a third engagement, a rename,
a changed policy, findings, a KEV catalog, routing, tickets, a verification, reconciliations, another
portfolio — and the portfolio as of 25 March is rendered again: the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import html5lib
import pandas as pd
import pytest
from click.testing import CliRunner

from handoffkit import reconcile
from handoffkit.cli import cli
from handoffkit.record import engagements
from handoffkit.record.model import SEVERITIES
from handoffkit.report import checklist, facts, portfolio
from handoffkit.workflow import verification
from tests.browser import CHROMIUM, SCREENSHOTS, visit_pack
from tests.builders import ACTOR, DATA, DONE, Exports, Record, add_findings, at, events, route, small_programme, ticket

AS_OF = "2026-03-25"
KEV_CVE = "CVE-2021-44228"


def page_text(path: Path) -> str:
    body = html5lib.parse(path.read_bytes(), namespaceHTMLElements=False).find("body")
    return "\n".join(t.strip() for t in body.itertext() if t.strip())


def policy_file(folder: Path, name: str, edit: tuple[str, str] = ("", "")) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text((DATA / "policy.yaml").read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    (folder / "owners.csv").write_bytes((DATA / "owners.csv").read_bytes())
    return path


def two_engagements(store, tmp_path: Path) -> None:
    """ACME (the ``engagement`` fixture) runs the small programme; GLOBEX starts on 21 March."""
    small_programme(store, "ACME", tmp_path)
    at(store, 21)
    engagements.init(store, "GLOBEX", policy_file(tmp_path, "globex"), actor=ACTOR, name="Globex web shop")
    add_findings(store, "GLOBEX", 2, severity="critical", triage="new", state="new")
    add_findings(store, "GLOBEX", 1, severity="high", cves=KEV_CVE, triage="new", state="new")
    from handoffkit.workflow import triage

    triage.triage(store, ["HK-4", "HK-5", "HK-6"], "validated", reason="confirmed", actor=ACTOR)
    Record(store, "GLOBEX", tmp_path).kev((KEV_CVE, "2026-03-22"))
    route(store, "GLOBEX")
    reconcile.reconcile(store, "ACME", record=True, actor=ACTOR)


def later_writes(store, tmp_path: Path) -> None:
    """After 25 March: every kind of write, in the two engagements and a new one."""
    at(store, 28)
    engagements.init(store, "INITECH", policy_file(tmp_path, "initech"), actor=ACTOR)
    add_findings(store, "INITECH", 3, severity="critical")
    engagements.init(store, "GLOBEX", policy_file(tmp_path, "globex"), actor=ACTOR, name="Globex renamed")
    # ACME's policy changes: a ticket band without an SLA fails checklist item 2 from now on, not as of before
    later = policy_file(
        tmp_path, "acme-later", ("critical: {disposition: ticket, sla_days: 30}", "critical: {disposition: ticket}")
    )
    engagements.init(store, "ACME", later, owners_path=DATA / "owners.csv", actor=ACTOR)
    assert next(i for i in checklist.evaluate(store, "ACME") if i.number == 2).status == "fail"
    add_findings(store, "ACME", 2, severity="critical")
    add_findings(store, "GLOBEX", 1, severity="low", cves="CVE-2023-4863")
    Record(store, "GLOBEX", tmp_path).kev(("CVE-2023-4863", "2026-03-01"))
    route(store, "ACME")
    route(store, "GLOBEX")
    Exports(store, "GLOBEX", tmp_path).ingest("jira", ticket("jira", 1, ["HK-4"], **DONE), ticket("jira", 2, ["HK-1"]))
    verification.verify(store, "HK-5", kind="retest", evidence="run:retest-5 fixed", actor=ACTOR)
    for key in ("ACME", "GLOBEX"):
        reconcile.reconcile(store, key, record=True, actor=ACTOR)
    reconcile.reconcile(store, "GLOBEX", as_of=engagements_instant(AS_OF), record=True, actor=ACTOR)
    portfolio.render(store, out_dir=tmp_path / "now", actor=ACTOR)


def engagements_instant(day: str):
    from handoffkit.cli import parse_instant

    return parse_instant(day)


def test_a_portfolio_as_of_an_instant_reads_the_same_after_any_later_activity(store, engagement, tmp_path):
    two_engagements(store, tmp_path)
    at(store, 26)
    first = portfolio.render(store, as_of=AS_OF, out_dir=tmp_path / "first", actor=ACTOR)
    later_writes(store, tmp_path)
    second = portfolio.render(store, as_of=AS_OF, out_dir=tmp_path / "second", actor=ACTOR)

    for name in (portfolio.CSV, portfolio.PAGE, portfolio.MANIFEST):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    assert first.engagements == second.engagements == ["ACME", "GLOBEX"]
    # The later activity is real: the portfolio as of now shows the new engagement, the rename and more.
    now = (tmp_path / "now" / portfolio.CSV).read_text(encoding="utf-8")
    assert "INITECH" in now and "Globex renamed" in now and now != (first.out_dir / portfolio.CSV).read_text()
    assert "Globex web shop" in page_text(second.page) and "INITECH" not in page_text(second.page)


def test_each_row_is_what_the_engagements_own_leadership_page_shows(store, engagement, tmp_path):
    two_engagements(store, tmp_path)
    at(store, 26)
    table = portfolio.figures(store, AS_OF).set_index("engagement")

    assert list(table.index) == ["ACME", "GLOBEX", portfolio.TOTAL]
    for key in ("ACME", "GLOBEX"):
        f = facts.compute(store, key, "2026-03-01", "2026-03-31", AS_OF)
        row = table.loc[key]
        assert [row[f"open_{b}"] for b in SEVERITIES] == [f.open_by_severity[b] for b in SEVERITIES]
        assert (row["open_findings"], row["kev_overdue"]) == (f.open_findings, f.kev_breached)
        assert row["sla_compliance_pct"] == pytest.approx(f.sla_compliance_pct, nan_ok=True)
        assert (row["checklist_passing"], row["checklist_items"]) == (f.checklist_counts["pass"], len(f.checklist))
    assert table.loc["GLOBEX", "kev_overdue"] == 1 and table.loc["GLOBEX", "open_critical"] == 2
    assert table.loc["ACME", "last_reconciliation"].startswith("2026-03-21")
    # GLOBEX never reconciled, but is younger than its weekly cadence: not overdue yet
    assert pd.isna(table.loc["GLOBEX", "last_reconciliation"]) and not table.loc["GLOBEX", "reconciliation_overdue"]
    total = table.loc[portfolio.TOTAL]
    assert total["open_findings"] == table.loc[["ACME", "GLOBEX"], "open_findings"].sum()
    assert total["checklist_items"] == 28 and pd.isna(total["last_reconciliation"])  # GLOBEX never ran one
    late = portfolio.figures(store, "2026-03-29").set_index("engagement")  # eight days after its creation
    assert late.loc["GLOBEX", "reconciliation_overdue"] and late.loc[portfolio.TOTAL, "reconciliation_overdue"]


def test_an_engagement_created_after_the_instant_is_not_there(store, engagement, tmp_path):
    two_engagements(store, tmp_path)
    assert list(portfolio.figures(store, "2026-03-20")["engagement"]) == ["ACME", portfolio.TOTAL]
    assert portfolio.figures(store, "2026-02-01").empty  # before ACME itself
    page = portfolio.render(store, as_of="2026-02-01", out_dir=tmp_path / "early", actor=ACTOR).page
    assert "No engagement on the record as of 2026-02-01 23:59 UTC" in page_text(page)


def test_an_engagement_links_its_pack_only_as_of_the_same_instant(store, engagement, tmp_path):
    two_engagements(store, tmp_path)
    out = tmp_path / "portfolio-2026-03-25"
    when = "2026-03-25T23:59:59.999999Z"
    (out / "ACME").mkdir(parents=True)
    (out / "ACME" / "manifest.json").write_text(json.dumps({"engagement": "ACME", "as_of": when}))
    (tmp_path / "GLOBEX-2026-03-25").mkdir()  # the pack's default directory, but as of another instant
    other = {"engagement": "GLOBEX", "as_of": "2026-03-24T23:59:59.999999Z"}
    (tmp_path / "GLOBEX-2026-03-25" / "manifest.json").write_text(json.dumps(other))

    page = portfolio.render(store, as_of=AS_OF, out_dir=out, actor=ACTOR).page.read_text(encoding="utf-8")

    assert '<a href="ACME/index.html">ACME</a>' in page and "GLOBEX-2026-03-25" not in page
    (tmp_path / "GLOBEX-2026-03-25" / "manifest.json").write_text(json.dumps({**other, "as_of": when}))
    page = portfolio.render(store, as_of=AS_OF, out_dir=out, actor=ACTOR).page.read_text(encoding="utf-8")
    assert '<a href="../GLOBEX-2026-03-25/index.html">GLOBEX</a>' in page


def test_the_cli_renders_the_portfolio_and_logs_it(store, engagement, tmp_path):
    two_engagements(store, tmp_path)
    args = ["--db", store.url, "report", "--portfolio", "--as-of", AS_OF, "--out", str(tmp_path / "p")]
    out = CliRunner().invoke(cli, [*args, "--actor", ACTOR, "--format", "json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["engagements"] == ["ACME", "GLOBEX"] and Path(result["page"]).is_file()
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["chain_head"] == result["chain_head"] and set(manifest["files"]) == {
        "portfolio.csv",
        "portfolio.html",
    }
    [logged] = events(store, "portfolio_rendered")
    assert (logged["engagement"], logged["data"]["manifest_sha256"]) == (None, result["manifest_sha256"])

    refused = CliRunner().invoke(cli, [*args, "--params", str(DATA / "policy.yaml"), "--actor", ACTOR])
    assert refused.exit_code == 2 and "--portfolio takes no --params" in refused.output
    missing = CliRunner().invoke(cli, ["--db", store.url, "report", "--actor", ACTOR])
    assert missing.exit_code == 2 and "--params" in missing.output and len(missing.output.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium unavailable at {CHROMIUM} (apt-get install -y chromium)")
def test_the_portfolio_page_opens_offline_and_wraps_no_id_date_or_number(store, engagement, tmp_path):
    two_engagements(store, tmp_path)
    out = portfolio.render(store, as_of=AS_OF, out_dir=tmp_path / "p", actor=ACTOR).out_dir
    seen = visit_pack(out, ["portfolio"], SCREENSHOTS / "portfolio")
    [page] = seen.pages
    assert (seen.broken_links, page.requests_blocked, page.wrapped) == ({}, [], [])
    assert [href.rsplit("/", 1)[-1] for href in page.nav] == ["portfolio.html", "manifest.json"]
    assert (SCREENSHOTS / "portfolio" / "portfolio.png").stat().st_size > 10_000
