"""The evidence pack for the demo: files, manifest and anchor, the report_rendered event, determinism,
numbers on the page equal to the numbers recomputed from the exported CSV, and offline, script-free pages."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import html5lib
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from handoffkit.cli import cli
from handoffkit.record import _memo, findings, replay, schema
from handoffkit.record.csvsafe import unsafe_cell
from handoffkit.record.store import Store
from handoffkit.report import checklist, metrics, pack
from handoffkit.report.pages import check_offline
from tests.builders import ACTOR

from .packs import Pack, params_file, private_copy, render

pytestmark = [pytest.mark.slow]

SVG = "{http://www.w3.org/2000/svg}"
CHARTS = {
    "quarterly_leadership": 5,
    "routing_decisions": 1,
    "ticket_mapping": 2,
    "severity_calibration": 1,
    "closure_verification": 2,
    "activity_log": 2,
}


def page(pack: Pack, name: str) -> str:
    return (pack.out / f"{name}.html").read_text(encoding="utf-8")


def test_every_step_after_the_export_is_scheduled() -> None:
    """The pages and the quality check run in :data:`pack.LONGEST_FIRST` order: a page missing from it
    would never be rendered."""
    assert sorted(pack.LONGEST_FIRST) == sorted([*pack.TITLES, pack.QUALITY_JSON])


def test_pages_share_memo_entries_through_a_private_folder_removed_afterwards(monkeypatch) -> None:
    monkeypatch.setenv(_memo.SHARED_MEMO_ENV, "/somewhere/the/user/set")
    with pack._shared_memo():
        folder = Path(os.environ[_memo.SHARED_MEMO_ENV])  # what the kernels started here inherit
        assert folder.is_dir() and folder != Path("/somewhere/the/user/set")
    assert not folder.exists()
    assert os.environ[_memo.SHARED_MEMO_ENV] == "/somewhere/the/user/set"


def test_the_pack_holds_every_page_the_csv_the_quality_results_and_the_manifest(demo_pack: Pack) -> None:
    names = {p.name for p in demo_pack.out.iterdir()}
    assert {f"{n}.html" for n in pack.TITLES} | {"activity_log.csv", "data_quality.json", "manifest.json"} <= names
    for n in pack.TITLES:  # the CLI prints every path
        assert str(demo_pack.out / f"{n}.html") in demo_pack.output
    quality = json.loads((demo_pack.out / "data_quality.json").read_text())
    assert quality["summary"]["success"] is True and quality["rows"] > 0
    assert quality["great_expectations"]["statistics"]["evaluated_expectations"] >= 8


def test_the_manifest_seals_every_file(demo_pack: Pack) -> None:
    manifest = json.loads((demo_pack.out / "manifest.json").read_text())
    on_disk = {
        p.relative_to(demo_pack.out).as_posix()
        for p in demo_pack.out.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert set(manifest["files"]) == on_disk
    from handoffkit.record.canonical import sha256_bytes

    for name, entry in manifest["files"].items():
        assert sha256_bytes((demo_pack.out / name).read_bytes()) == entry["sha256"], name
    store = Store(demo_pack.url, create=False)
    with store.read() as conn:
        seq, row_hash = replay.head(conn, replay.instant("2026-09-30"))
    assert manifest["chain_head"] == {"seq": seq, "row_hash": row_hash}
    assert manifest["as_of"] == "2026-09-30T23:59:59.999999Z" and manifest["period"] == {
        "start": "2026-07-01",
        "end": "2026-09-30",
    }
    assert {"handoffkit", "pandas", "papermill", "great-expectations", "python"} <= set(
        manifest["rendering"]["versions"]
    )
    assert "does-not-exist" not in manifest["parameters"]["db"]  # --db won over the file's db


def test_log_verify_accepts_the_manifest_as_anchor(demo_pack: Pack, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            private_copy(demo_pack, tmp_path),
            "log",
            "verify",
            "--anchor",
            str(demo_pack.out / "manifest.json"),
            "--actor",
            ACTOR,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "anchor seq" in result.output and "matches" in result.output


def test_the_render_is_logged_for_the_checklist(demo_pack: Pack) -> None:
    store = Store(demo_pack.url, create=False)
    ev = schema.events.c
    with store.read() as conn:
        rendered = [
            json.loads(p) for p in conn.execute(select(ev.payload).where(ev.type == "report_rendered")).scalars()
        ]
        exported = conn.execute(select(ev.payload).where(ev.type == "log_exported")).scalars().all()
    data = rendered[0]["data"]
    assert data["views"] == list(pack.TITLES) and data["as_of"] == "2026-09-30T23:59:59.999999Z"
    from handoffkit.record.canonical import sha256_bytes

    assert data["manifest_sha256"] == sha256_bytes((demo_pack.out / "manifest.json").read_bytes())
    assert data["out"] == str(demo_pack.out) and len(exported) >= 1
    items = {i.number: i for i in checklist.evaluate(store, "DEMO")}
    assert (items[11].status, items[12].status) == ("pass", "pass")


def test_rendering_again_as_of_the_same_instant_gives_the_same_csv(demo_pack: Pack, tmp_path: Path) -> None:
    params = params_file(tmp_path / "again.yaml", "DEMO", notebooks=["activity_log"])
    render(private_copy(demo_pack, tmp_path), params, tmp_path / "again")
    assert (tmp_path / "again" / "activity_log.csv").read_bytes() == (demo_pack.out / "activity_log.csv").read_bytes()


def test_the_report_bar_counts_its_steps_to_the_end(demo_pack: Pack, tmp_path: Path, monkeypatch) -> None:
    """On a terminal the report's bar knows its steps (the export, each page, the quality check, the index,
    the seal) and ends on the last of them."""
    import io
    import sys

    from handoffkit.report.output import Activity

    monkeypatch.setattr("sys.stderr", type("Err", (io.StringIO,), {"isatty": lambda self: True})())
    params = params_file(tmp_path / "bar.yaml", "DEMO", notebooks=["activity_log", "routing_decisions"])
    with Activity.choose(None, None) as activity:
        pack.render(params, db=private_copy(demo_pack, tmp_path), out_dir=tmp_path / "bar", actor=ACTOR,
                    progress=activity)  # fmt: skip
        task = activity._bar.tasks[0]
        assert task.total == 2 + 4 and task.completed == task.total
        activity._bar.refresh()
    assert "6/6" in sys.stderr.getvalue() and "eta" in sys.stderr.getvalue()


def tiles(html: str) -> dict[str, str]:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return {
        "".join(t.find("div[@class='hk-tile-label']").itertext()): "".join(
            t.find("div[@class='hk-tile-value']").itertext()
        )
        for t in document.iter("div")
        if "hk-tile" in (t.get("class") or "").split()
    }


def test_the_headline_tiles_equal_the_csv_and_the_record(demo_pack: Pack) -> None:
    shown = tiles(page(demo_pack, "quarterly_leadership"))
    with (demo_pack.out / "activity_log.csv").open(encoding="utf-8", newline="") as fh:
        rows = [{k: unsafe_cell(v) for k, v in r.items()} for r in csv.DictReader(fh)]

    def count(type_: str) -> int:
        return sum(r["type"] == type_ and r["outcome"] == "success" and r["engagement"] == "DEMO" for r in rows)

    store = Store(demo_pack.url, create=False)
    record = findings.rebuild(store, "DEMO", schema.parse_ts("2026-09-30T23:59:59.999999Z"))
    open_now = [r for r in record.values() if r["state"] not in ("verified_closed", "false_positive", "duplicate")]
    assert shown["created in period"] == f"{count('finding_created'):,}"
    assert shown["verified closures in period"] == f"{count('finding_verified_closed'):,}"
    assert shown["open findings"] == f"{len(open_now):,}"
    assert shown["KEV findings open"] == f"{sum(bool(r['kev']) for r in open_now):,}"
    assert re.fullmatch(r"\d+\.\d%", shown["SLA compliance"])
    assert re.fullmatch(r"\d+ of 14", shown["checklist items passing"])
    assert shown["open critical findings"] == f"{sum(r['severity'] == 'critical' for r in open_now):,}"


@pytest.mark.parametrize("name", list(pack.TITLES))
def test_each_page_is_offline_code_free_and_has_its_charts(demo_pack: Pack, name: str) -> None:
    html = page(demo_pack, name)
    assert check_offline(html) == []
    document = html5lib.parse(html, namespaceHTMLElements=False)
    assert len(document.findall(f".//{SVG}svg")) >= CHARTS[name]
    assert "views.parameters" not in html and "display.chart" not in html  # code is hidden
    header = document.find(".//header[@class='hk-report-header']")
    assert "As of2026-09-30 23:59 UTC" in "".join(header.itertext())  # to the minute on pages
    assert len(document.findall(".//h1")) == 1  # one title


def test_the_narrative_is_on_the_leadership_page(demo_pack: Pack) -> None:
    document = html5lib.parse(page(demo_pack, "quarterly_leadership"), namespaceHTMLElements=False)
    paragraphs = ["".join(p.itertext()) for p in document.iterfind(".//div[@class='hk-narrative']/p")]
    assert len(paragraphs) >= 6 and paragraphs[0].startswith("Between 2026-07-01 and 2026-09-30")
    rows = document.findall(".//table[@class='hk-table hk-checklist']/tbody/tr")
    assert len(rows) == 14


def test_a_relative_out_dir_while_notebooks_run_side_by_side(demo_pack: Pack, tmp_path: Path, monkeypatch) -> None:
    """Notebooks run in threads beside the export: nothing may depend on (or change) the working directory."""
    import os

    monkeypatch.chdir(tmp_path)
    params = params_file(tmp_path / "two.yaml", "DEMO", notebooks=["routing_decisions", "activity_log"])
    render(private_copy(demo_pack, tmp_path), params, Path("relative") / "pack")
    assert os.getcwd() == str(tmp_path)
    written = {p.name for p in (tmp_path / "relative" / "pack").iterdir()}
    assert {"routing_decisions.html", "activity_log.html", "activity_log.csv", "manifest.json"} <= written


def test_the_full_gap_lists_are_csv_files_the_pages_link(demo_pack: Pack) -> None:
    store = Store(demo_pack.url, create=False)
    try:
        with store.read() as conn:
            metrics_counts = metrics.gaps(conn, "DEMO", "2026-09-30T23:59:59.999999Z").counts
    finally:
        store.dispose()
    manifest = json.loads((demo_pack.out / "manifest.json").read_text(encoding="utf-8"))
    for category in pack.GAP_FILES:
        path = demo_pack.out / "gaps" / f"{category}.csv"
        with path.open(encoding="utf-8", newline="") as fh:
            counts = sum(1 for _ in csv.DictReader(fh))
        assert counts == metrics_counts[category], category
        assert f"gaps/{category}.csv" in manifest["files"]
    # Each gap's table is on one page only: the two a topic page decides are not repeated on the mapping page.
    home = {"closure_misses": "closure_verification", "severity_drift": "severity_calibration"}
    for category in ("routing_misses", "closure_misses", "severity_drift", "orphan_tickets", "tickets_without_id"):
        n = metrics_counts[category]
        shown = page(demo_pack, home.get(category, "ticket_mapping"))
        linked = f'href="gaps/{category}.csv"' in shown  # only where the page leaves rows off
        assert linked == (n > 15) and (f"showing 15 of {n:,} rows" in shown) == (n > 15), category
        if category in home:
            assert f"showing 15 of {n:,} rows" not in page(demo_pack, "ticket_mapping"), category
    # (the test record's lists are short; display's tests cover the link beside a clipped table)
