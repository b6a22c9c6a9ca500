"""Scan ingestion into the record (both backends): identity, rescans, reopen, refusals, the gate."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from handoffkit import cli
from handoffkit.demo import formats
from handoffkit.errors import DataQualityError
from handoffkit.ingest import pipeline, quality
from handoffkit.ingest.detect import parse_file
from handoffkit.record import log, schema
from handoffkit.record.model import NormalisedFinding, ParseResult
from handoffkit.workflow import triage, verification
from tests.builders import ACTOR, DATA, corpus_scans


def zap_scan(path: Path, alerts: list[tuple[int, str, int]], generated: str = "2026-03-01T00:00:00Z") -> Path:
    """A real ZAP JSON report for https://shop.test with (plugin, name, risk) alerts, one instance each."""
    site = {
        "origin": "https://shop.test",
        "alerts": [
            {
                "plugin": plugin,
                "name": name,
                "risk": risk,
                "cwe": "79",
                "wasc": 8,
                "desc": f"{name} found",
                "solution": "fix it",
                "instances": [
                    {
                        "uri": f"https://shop.test/p{plugin}",
                        "method": "GET",
                        "param": "q",
                        "attack": "",
                        "evidence": "<x>",
                    }
                ],
            }
            for plugin, name, risk in alerts
        ],
    }
    path.write_bytes(formats.zap([site], generated))
    return path


def counts(store) -> dict[str, int]:
    with store.read() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar()
            for t in (schema.findings, schema.evidence, schema.scans, schema.events)
        }


def event_types(store, type_: str) -> list[dict]:
    with store.read() as conn:
        rows = conn.execute(
            select(schema.events.c.payload).where(schema.events.c.type == type_).order_by(schema.events.c.seq)
        ).scalars()
        return [json.loads(r) for r in rows]


ALERTS = [(10001, "Cross-site scripting", 3), (10002, "Missing header", 1), (10003, "Info leak", 0)]


def test_new_findings_evidence_and_events(store, engagement, tmp_path):
    path = zap_scan(tmp_path / "scan.json", ALERTS)
    [result] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR)
    assert (result.status, result.format, result.parsed, result.new) == ("ok", "zap", 3, 3)
    assert result.parsed_by_kind == {"web": 3}
    with store.read() as conn:
        rows = conn.execute(select(schema.findings).order_by(schema.findings.c.number)).all()
        ev = conn.execute(select(schema.evidence)).all()
    assert [r.severity for r in rows] == ["high", "low", "info"]
    assert {r.asset_ref for r in rows} == {"https://shop.test"}
    assert all(r.state == "new" and r.triage == "pending" for r in rows)
    assert len(ev) == 3 and all(e.kind == "scanner_output" and len(e.sha256) == 64 and e.content for e in ev)
    created = event_types(store, "finding_created")
    assert len(created) == 3 and created[0]["origin"]["sha256"] == result.sha256
    assert log.verify(store).ok


def test_same_file_twice_changes_nothing_but_one_duplicate_event(store, engagement, tmp_path):
    path = zap_scan(tmp_path / "scan.json", ALERTS)
    pipeline.ingest_scan(store, engagement, [path], actor=ACTOR)
    before = counts(store)
    [again] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR)
    after = counts(store)
    assert again.status == "duplicate" and again.new == 0
    assert {k: after[k] - before[k] for k in after} == {"findings": 0, "evidence": 0, "scans": 0, "events": 1}
    [dup] = event_types(store, "ingest_duplicate")
    assert dup["data"]["sha256"] == again.sha256 and dup["origin"]["sha256"] == again.sha256


def test_rerun_with_new_timestamps_is_seen_again_not_new(store, engagement, tmp_path):
    pipeline.ingest_scan(
        store, engagement, [zap_scan(tmp_path / "a.json", ALERTS, "2026-03-01T00:00:00Z")], actor=ACTOR
    )
    store.clock.fixed += timedelta(days=7)
    [rerun] = pipeline.ingest_scan(
        store, engagement, [zap_scan(tmp_path / "b.json", ALERTS, "2026-03-08T09:00:00Z")], actor=ACTOR
    )
    assert (rerun.status, rerun.new, rerun.seen_again, rerun.absent_in_rescan) == ("ok", 0, 3, 0)
    with store.read() as conn:
        seen = conn.execute(select(schema.findings.c.last_seen)).scalars().all()
    assert all(s == store.clock.fixed for s in seen)


def test_rescan_absence_becomes_evidence_and_reappearance_reopens(store, engagement, tmp_path):
    pipeline.ingest_scan(store, engagement, [zap_scan(tmp_path / "a.json", ALERTS)], actor=ACTOR)
    fid = "HK-1"
    triage.triage(store, [fid], "validated", reason="real", actor=ACTOR)
    from handoffkit.workflow import routing

    routing.route(store, engagement, actor=ACTOR)
    store.clock.fixed += timedelta(days=7)
    [rescan] = pipeline.ingest_scan(store, engagement, [zap_scan(tmp_path / "b.json", ALERTS[1:])], actor=ACTOR)
    assert rescan.absent_in_rescan == 1
    with store.read() as conn:
        absent = conn.execute(select(schema.evidence).where(schema.evidence.c.kind == "absent_in_rescan")).all()
    assert [a.finding_id for a in absent] == [fid]
    store.clock.fixed += timedelta(days=1)
    verification.verify(store, fid, kind="rescan", evidence="weekly rescan", actor=ACTOR)
    store.clock.fixed += timedelta(days=7)
    [back] = pipeline.ingest_scan(
        store, engagement, [zap_scan(tmp_path / "c.json", ALERTS, "2026-03-20T00:00:00Z")], actor=ACTOR
    )
    assert (back.reopened, back.new) == (1, 0)
    [reopen] = event_types(store, "finding_reopened")
    assert reopen["finding_id"] == fid and reopen["state"] == "reopened"


def test_scope_glob_limits_absence(store, engagement, tmp_path):
    pipeline.ingest_scan(store, engagement, [zap_scan(tmp_path / "a.json", ALERTS)], actor=ACTOR)
    [other] = pipeline.ingest_scan(
        store, engagement, [zap_scan(tmp_path / "b.json", ALERTS[:1])], actor=ACTOR, scope="https://elsewhere.test*"
    )
    assert other.absent_in_rescan == 0
    [inside] = pipeline.ingest_scan(
        store,
        engagement,
        [zap_scan(tmp_path / "c.json", ALERTS[:1], "2026-03-02T00:00:00Z")],
        actor=ACTOR,
        scope="https://shop.test*",
    )
    assert inside.absent_in_rescan == 2


def test_broken_file_fails_alone_and_is_logged(store, engagement, tmp_path):
    good = zap_scan(tmp_path / "good.json", ALERTS)
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    unknown = tmp_path / "notes.json"
    unknown.write_text('{"hello": "world"}')
    before = counts(store)
    results = pipeline.ingest_scan(store, engagement, [truncated, good, unknown], actor=ACTOR)
    assert [r.status for r in results] == ["failed", "ok", "failed"]
    assert str(truncated) in results[0].error and ":" in results[0].error.split(str(truncated))[1]
    assert "supported formats" in results[2].error
    after = counts(store)
    assert after["findings"] - before["findings"] == 3 and after["scans"] - before["scans"] == 1
    refused = event_types(store, "scan_refused")
    assert [r["outcome"] for r in refused] == ["failure", "failure"]
    assert refused[0]["origin"]["file"] == str(truncated)


def test_quality_gate_refuses_a_bad_batch_and_keeps_the_result(store, engagement, tmp_path, monkeypatch):
    """A parser defect (a malformed CVE slipping through) is stopped by the gate before the store."""
    bad = NormalisedFinding(
        fingerprint="f1",
        title="t",
        asset_ref="https://shop.test",
        tool="zap",
        severity="high",
        raw_severity="High",
        cves=("CVE-21-1",),
        source_ref="site[0].alerts[0]",
        raw=b"{}",
    )
    from handoffkit.ingest import detect

    monkeypatch.setattr(detect, "parse_file", lambda *a, **k: ParseResult("zap", "zap", records=[bad]))
    path = zap_scan(tmp_path / "scan.json", ALERTS)
    before = counts(store)
    [result] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR)
    assert result.status == "failed" and "data-quality gate" in result.error and "site[0].alerts[0]" in result.error
    assert counts(store)["findings"] == before["findings"]
    with store.read() as conn:
        kept = conn.execute(select(schema.validations)).all()
    # kept without the values it quotes: the refused batch's content never reaches the record
    assert kept and not kept[-1].success and "CVE-21-1" not in kept[-1].result
    failed = [r for r in json.loads(kept[-1].result)["results"] if not r["success"]]
    assert [(r["expectation_config"]["kwargs"]["column"], r["result"]["unexpected_count"]) for r in failed] == [
        ("cves", 1)
    ]


def test_gate_unit_checks():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "fingerprint": ["a", "a"],
            "title": ["x", ""],
            "asset_ref": ["h", "h"],
            "severity": ["high", "urgent"],
            "cves": ["CVE-2024-12345", ""],
            "cwes": ["CWE-79", "79"],
            "source_ref": ["line 2", "line 3"],
        }
    )
    with pytest.raises(DataQualityError) as err:
        quality.gate(frame, "f.csv")
    text = str(err.value)
    for fragment in ("fingerprint", "severity", "'urgent'", "cwes", "title", "line 3"):
        assert fragment in text


def test_cli_json_shape_and_exit_code(store, engagement, tmp_path):
    good = zap_scan(tmp_path / "good.json", ALERTS)
    bad = tmp_path / "bad.xml"
    bad.write_text("<OWASPZAPReport><site>")
    runner = CliRunner()
    out = runner.invoke(
        cli.cli,
        ["--db", store.url, "ingest", "scan", str(good), "-e", engagement, "--actor", ACTOR, "--format", "json"],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert set(doc["files"][0]) == {
        "file",
        "sha256",
        "format",
        "parsed",
        "parsed_by_kind",
        "new",
        "seen_again",
        "reopened",
        "absent_in_rescan",
        "scanned_at",
        "skipped",
        "status",
        "error",
    }
    failed = runner.invoke(
        cli.cli,
        [
            "--db",
            store.url,
            "ingest",
            "scan",
            str(bad),
            "-e",
            engagement,
            "--actor",
            ACTOR,
            "--format",
            "json",
            "--scanner",
            "zap",
        ],
    )
    assert failed.exit_code != 0
    row = json.loads(failed.stdout)["files"][0]
    assert row["status"] == "failed"
    # the whole error, one line on stderr, whatever the output format
    assert failed.stderr.splitlines() == [f"handoffkit: error: {' '.join(row['error'].split())}"]


def _one_corpus_file_per_format() -> list:
    """For each registered format, its smallest corpus file whose SOURCES.md count is all open findings."""
    from handoffkit.ingest.registry import FORMATS
    from tests.ingest.test_corpus import FOLDERS, NO_LONGER_OPEN

    scans = sorted(
        (s for s in corpus_scans() if s.count and s.file.split("/", 1)[0] in FOLDERS and s.file not in NO_LONGER_OPEN),
        key=lambda s: s.size,
    )
    chosen = {}
    for scan in scans:
        chosen.setdefault(FOLDERS[scan.file.split("/", 1)[0]], scan)
    return [pytest.param(chosen[f], id=f) for f in FORMATS if f in chosen] or [
        pytest.param(None, marks=pytest.mark.skip(reason="corpus unavailable: no SOURCES.md"))
    ]


@pytest.mark.corpus
@pytest.mark.parametrize("scan", _one_corpus_file_per_format())
def test_a_corpus_file_of_each_format_ingests(store, engagement, corpus, scan):
    [result] = pipeline.ingest_scan(store, engagement, [corpus / scan.file], actor=ACTOR)
    assert result.status == "ok", result.error
    parsed = parse_file((corpus / scan.file).read_bytes(), scan.file)
    assert result.parsed == len(parsed.records) and result.new == len({r.fingerprint for r in parsed.records})
    with store.read() as conn:
        stored = conn.execute(select(func.count()).select_from(schema.findings)).scalar_one()
        tools = set(conn.execute(select(schema.findings.c.tool)).scalars())
    assert stored == result.new and tools == {parsed.tool}  # rescan scope is per tool: one name per file


def test_a_finding_an_export_lists_as_fixed_is_absent_in_the_rescan(store, engagement, tmp_path):
    later = (DATA / "scans" / "tenable_vm.csv").read_text(encoding="utf-8")
    earlier = later.replace(";medium;FIXED;", ";medium;ACTIVE;")  # the month before, 57582 was still open
    (tmp_path / "april.csv").write_text(earlier, encoding="utf-8")
    (tmp_path / "may.csv").write_text(later, encoding="utf-8")
    [april] = pipeline.ingest_scan(store, engagement, [tmp_path / "april.csv"], actor=ACTOR)
    [may] = pipeline.ingest_scan(store, engagement, [tmp_path / "may.csv"], actor=ACTOR)
    assert (april.new, may.new, may.seen_again, may.absent_in_rescan) == (5, 0, 4, 1)
    with store.read() as conn:
        absent = (
            conn.execute(
                select(schema.findings.c.rule_ref)
                .join(schema.evidence, schema.evidence.c.finding_id == schema.findings.c.finding_id)
                .where(schema.evidence.c.kind == "absent_in_rescan")
            )
            .scalars()
            .all()
        )
    assert absent == ["57582"]


def _sarif_results(tool: str, fps: list[str]) -> list[dict[str, object]]:
    return [
        {"rule": f"{tool}.r{fp}", "title": "t", "level": "warning", "score": 5.0, "cwe": "CWE-79", "message": "m",
         "uri": f"{fp}.py", "line": 1, "fingerprint": fp}
        for fp in fps
    ]  # fmt: skip


def _sarif_runs(path: Path, *runs: tuple[str, str, list[str]]) -> Path:
    """A SARIF file with one run per (tool, repository, result fingerprints)."""
    path.write_bytes(
        formats.sarif(
            {"tool": tool, "version": "1", "repo": f"https://git.test/{repo}", "results": _sarif_results(tool, fps)}
            for tool, repo, fps in runs
        )
    )
    return path


def test_a_rescan_with_several_tools_proves_absence_per_tool_where_that_tool_looked(store, engagement, tmp_path):
    first = _sarif_runs(tmp_path / "a.sarif", ("semgrep", "repo-a", ["s1", "s2"]), ("codeql", "repo-b", ["c1"]))
    pipeline.ingest_scan(store, engagement, [first], actor=ACTOR)
    # Semgrep once looked at repo-b too (another file): only a Semgrep scan of repo-b can prove that one gone.
    [elsewhere] = pipeline.ingest_scan(
        store, engagement, [_sarif_runs(tmp_path / "b.sarif", ("semgrep", "repo-b", ["sx"]))], actor=ACTOR
    )
    assert elsewhere.new == 1
    store.clock.fixed += timedelta(days=7)
    # The rescan: Semgrep no longer reports s2 on repo-a; CodeQL still reports c1 on repo-b.
    rescan_file = _sarif_runs(tmp_path / "c.sarif", ("semgrep", "repo-a", ["s1"]), ("codeql", "repo-b", ["c1"]))
    [rescan] = pipeline.ingest_scan(store, engagement, [rescan_file], actor=ACTOR)
    with store.read() as conn:
        f, e = schema.findings.c, schema.evidence.c
        gone = conn.execute(
            select(f.fingerprint, f.tool, f.asset_ref)
            .join(schema.evidence, e.finding_id == f.finding_id)
            .where(e.kind == "absent_in_rescan")
        ).all()
        scope = json.loads(
            conn.execute(select(schema.scans.c.scope).order_by(schema.scans.c.scan_id.desc())).first()[0]
        )
    # s2 is absent (its own tool looked at its repository); Semgrep's finding on repo-b is not (only CodeQL
    # looked there in this file).
    assert rescan.absent_in_rescan == 1
    assert [(tool, asset) for _, tool, asset in gone] == [("semgrep", "https://git.test/repo-a")]
    assert scope["tools"] == {"codeql": ["https://git.test/repo-b"], "semgrep": ["https://git.test/repo-a"]}
