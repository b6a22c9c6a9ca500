"""Every real sample file parses with auto-detection to its format and the count SOURCES.md gives (read from
SOURCES.md, never copied here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handoffkit.errors import InputError
from handoffkit.ingest.detect import parse_file
from handoffkit.record.model import FINDING_KINDS, SEVERITIES, ParseResult
from tests.builders import CORPUS, NOT_SCANS, CorpusScan, corpus_scans

pytestmark = pytest.mark.corpus
UNAVAILABLE = pytest.mark.skip(reason=f"corpus unavailable: no SOURCES.md under {CORPUS} (set HANDOFFKIT_CORPUS)")

FOLDERS = {
    "sarif": "sarif",
    "nessus": "nessus",
    "tenable_csv": "tenable-csv",
    "zap": "zap",
    "trivy": "trivy",
    "semgrep": "semgrep",
    "burp": "burp",
    "generic": "generic",
    "qualys": "qualys",
    "nexpose": "nexpose",
    "openvas": "openvas",
    "anchore_grype": "grype",
    "snyk": "snyk",
    "gitlab_sast": "gitlab",
    "gitlab_dep_scan": "gitlab",
    "github_vulnerability": "github-dependabot",
    "osv_scanner": "osv-scanner",
    "npm_audit_7_plus": "npm-audit",
    "pip_audit": "pip-audit",
    "awssecurityhub": "asff",
    "aws_inspector2": "aws-inspector2",
    "wiz": "wiz",
    "nuclei": "nuclei",
    "sonarqube": "sonarqube",
    "veracode": "veracode",
    "checkmarx_one": "checkmarx-one",
    "qualys_webapp": "qualys-was",
}
"""Corpus folder → the format its files are detected as."""

COUNTED_KIND = {"trivy": "vulnerability"}
"""SOURCES.md counts only these records of a format (Trivy: ``Vulnerabilities`` entries; the file's
misconfigurations and secrets are listed apart)."""

NO_LONGER_OPEN = {
    "awssecurityhub/config_many_findings.json": "passed control check",
    "aws_inspector2/aws_inspector2_many_vul.json": "closed finding",
    "wiz/multiple_findings.csv": "resolved in Wiz",
}
"""Files whose SOURCES.md count includes entries that are not open findings (ASFF control results that
PASSED, an Inspector finding whose status is CLOSED, a Wiz issue RESOLVED): the parser skips them with
this reason, so the records plus those skipped make the SOURCES.md count, and the records alone are
fewer."""

SCANS = corpus_scans()
READ = [s for s in SCANS if s.file.split("/", 1)[0] in FOLDERS]
CVE = re.compile(r"CVE-\d{4}-\d{4,}")
CWE = re.compile(r"CWE-[1-9]\d*")


def parse(corpus: Path, name: str) -> ParseResult:
    return parse_file((corpus / name).read_bytes(), name)


def counted(result: ParseResult) -> int:
    kind = COUNTED_KIND.get(result.format)
    return result.parsed_by_kind.get(kind, 0) if kind else len(result.records)


@pytest.mark.parametrize("scan", READ or [pytest.param(None, marks=UNAVAILABLE)], ids=lambda s: s and s.file)
def test_detects_format_and_counts_records(corpus: Path, scan: CorpusScan) -> None:
    if scan.size == 0:  # SOURCES.md: "an empty 0-byte file counts 0"; an empty file is no scan at all
        with pytest.raises(InputError, match=r": empty file; expected a scanner output"):
            parse(corpus, scan.file)
        return
    result = parse(corpus, scan.file)
    assert result.format == FOLDERS[scan.file.split("/", 1)[0]]
    reason = NO_LONGER_OPEN.get(scan.file)
    if reason is None:
        assert counted(result) == scan.count
    else:
        closed = sum(n for why, n in result.skipped.items() if why.startswith(reason))
        assert closed > 0 and counted(result) + closed == scan.count


def test_every_scanner_folder_of_the_corpus_is_read(corpus: Path) -> None:
    assert {s.file.split("/", 1)[0] for s in SCANS} <= set(FOLDERS)


def test_trivy_counts_each_kind(corpus: Path) -> None:
    by_kind = parse(corpus, "trivy/misconfigurations_and_secrets.json").parsed_by_kind
    assert by_kind == {"vulnerability": 2, "misconfiguration": 1, "secret": 2}


def test_every_scanner_file_is_listed_in_sources(corpus: Path) -> None:
    present = {
        f"{d.name}/{f.name}" for d in corpus.iterdir() if d.is_dir() and d.name not in NOT_SCANS for f in d.iterdir()
    }
    assert present == {s.file for s in SCANS}


@pytest.mark.parametrize("name", [s.file for s in READ if s.count] or [pytest.param(None, marks=UNAVAILABLE)])
def test_every_record_is_complete(corpus: Path, name: str) -> None:
    result = parse(corpus, name)
    for record in result.records:
        assert record.title and record.asset_ref and record.tool and record.source_ref, record.source_ref
        assert record.severity in SEVERITIES and record.kind in FINDING_KINDS
        assert record.raw and record.raw_media_type in ("application/json", "application/xml")
        assert len(record.fingerprint) == 32
        assert all(CVE.fullmatch(c) for c in record.cves) and all(CWE.fullmatch(c) for c in record.cwes)
        assert all("://" in ref for ref in record.references)
        assert record.asset_ref in result.scope_assets


def by_rule(result: ParseResult, rule: str) -> list:
    return [r for r in result.records if r.rule_ref == rule]


def test_nessus_keeps_informational_items_and_every_host(corpus: Path) -> None:
    result = parse(corpus, "nessus/nessus_v_unknown.xml")
    assert sum(r.severity == "info" for r in result.records) == 266
    assert all(r.severity == "info" for r in result.records if r.raw_severity.startswith("0"))
    assert {"qa3app01", "qa3app02", "qa3app03", "qa3app04", "qa3app05", "qa3app06", "qa3app09"} <= result.scope_assets
    rdp = next(r for r in by_rule(result, "18405") if r.asset_ref == "qa3app09:3389")
    assert rdp.cves == ("CVE-2005-1794",)
    assert rdp.severity == "medium"
    assert rdp.cvss_vector == "CVSS2#AV:N/AC:H/Au:N/C:P/I:P/A:P" and rdp.cvss_score == 5.1
    assert result.tool_version == "5.2.1"


def test_nessus_host_without_items_is_in_scope(corpus: Path) -> None:
    result = parse(corpus, "nessus/nessus_was_no_vuln.xml")
    assert result.records == [] and result.scope_assets == {"http://google.com"}


def test_nessus_was_item(corpus: Path) -> None:
    (xss,) = parse(corpus, "nessus/nessus_was_one_vuln.xml").records
    assert (xss.severity, xss.kind, xss.cwes, xss.asset_ref) == ("high", "web", ("CWE-79",), "http://google.com")
    assert xss.cvss_score == 7.1 and "CVSS v2: - (base 7.5)" in xss.description


def test_sarif_suppressed_results_are_kept(corpus: Path) -> None:
    result = parse(corpus, "sarif/eslint.sarif")
    assert len(result.records) == 10
    assert sum(r.suppressed for r in result.records) == 5


def test_sarif_codeql_rule_metadata(corpus: Path) -> None:
    result = parse(corpus, "sarif/codeQL-output.sarif")
    sqli = by_rule(result, "py/sql-injection")[0]
    assert (sqli.severity, sqli.raw_severity, sqli.cwes) == ("high", "error", ("CWE-89",))
    assert sqli.asset_ref in {"good", "bad", "utils"} and sqli.location.endswith(tuple("0123456789"))
    assert by_rule(result, "py/empty-except")[0].severity == "low"  # default level note


def test_sarif_snyk_cwe_from_rule_properties(corpus: Path) -> None:
    xss = by_rule(parse(corpus, "sarif/snykcode_issue_9270.json"), "javascript/XSS")[0]
    assert xss.cwes == ("CWE-79",) and xss.severity == "medium"


def test_sarif_security_severity_and_base_uri(corpus: Path) -> None:
    (result,) = parse(corpus, "sarif/trivy_config.sarif").records
    assert (result.severity, result.raw_severity) == ("medium", "security-severity 5.5")
    assert result.asset_ref == "file:///home/example/"
    assert result.location == "modules/azure-cosmosdb/main.tf:164"


def test_tenable_rows_of_one_plugin_share_fingerprint_and_cves(corpus: Path) -> None:
    rows = by_rule(parse(corpus, "tenable_csv/tenable_many_vuln.csv"), "176703")
    assert len(rows) == 10
    assert len({r.fingerprint for r in rows}) == 1
    assert all(len(r.cves) == 10 and "CVE-2022-31624" in r.cves for r in rows)


def test_tenable_sc_columns(corpus: Path) -> None:
    result = parse(corpus, "tenable_csv/nessus_many_vuln.csv")
    assert result.tool == "Tenable.sc"
    assert result.skipped["empty CSV row"] == 529
    weak_hash = by_rule(result, "35291")[0]
    assert (weak_hash.asset_ref, weak_hash.cves, weak_hash.cwes) == ("10.1.1.1:443", ("CVE-2004-2761",), ("CWE-310",))
    assert by_rule(result, "65821")[0].cves == ("CVE-2013-2566", "CVE-2015-2808")


def test_zap_json_instances(corpus: Path) -> None:
    result = parse(corpus, "zap/owasp_zap.json")
    cors = by_rule(result, "10098")
    assert len(cors) == 5
    assert {(r.asset_ref, r.severity, r.cwes) for r in cors} == {
        ("https://example-backend.example.com", "medium", ("CWE-264",))
    }


def test_zap_site_without_alerts_is_in_scope(corpus: Path) -> None:
    assert parse(corpus, "zap/empty_2.9.0.xml").scope_assets == {"https://isaac.nl"}


def test_zap_xml_instance_evidence_is_one_instance(corpus: Path) -> None:
    first = parse(corpus, "zap/zap-results-first-scan.xml").records[0]
    assert first.raw.count(b"<instance>") == 1 and b"<pluginid>10031</pluginid>" in first.raw
    assert first.asset_ref == "http://bodgeit.securecodebox-demo.svc:8080" and first.severity == "info"


def test_trivy_vulnerability_fields(corpus: Path) -> None:
    vuln = parse(corpus, "trivy/misconfigurations_and_secrets.json").records[0]
    assert vuln.cves == ("CVE-2021-33503",) and vuln.cwes == ("CWE-400",)
    assert vuln.asset_ref == ". pkg:urllib3@1.26.3" and vuln.severity == "high"
    assert vuln.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"


def test_trivy_unknown_severity_is_info_without_cvss(corpus: Path) -> None:
    result = parse(corpus, "trivy/trivy_v0.2.1_python3.json")
    unknown = [r for r in result.records if r.raw_severity == "UNKNOWN"]
    assert len(unknown) == 18 and {r.severity for r in unknown} == {"info"}


def test_semgrep_metadata(corpus: Path) -> None:
    first = parse(corpus, "semgrep/juice-shop_semgrep_os.json").records[0]
    assert (first.severity, first.cwes, first.asset_ref) == ("high", ("CWE-89",), "data")
    assert first.location == "data/static/codefixes/dbSchemaChallenge_1.ts:5"


def test_burp_keeps_base64_request_in_raw(corpus: Path) -> None:
    result = parse(corpus, "burp/seven_findings.xml")
    assert sum(r.severity == "info" for r in result.records) == 9
    assert all(r.asset_ref == "http://bwa" for r in result.records)
    assert any(b'base64="true"' in r.raw and b"<request" in r.raw for r in result.records)


def test_burp_classifications_give_cwes(corpus: Path) -> None:
    result = parse(corpus, "burp/burpvulns_v2_1_02.xml")
    assert any(r.cwes == ("CWE-523",) for r in result.records)


def test_generic_empty_finding_still_counts(corpus: Path) -> None:
    (record,) = parse(corpus, "generic/generic_empty.json").records
    assert (record.title, record.asset_ref, record.severity, record.raw_severity) == (
        "(untitled)",
        "unknown",
        "info",
        "",
    )


def test_generic_json_and_csv_fields(corpus: Path) -> None:
    first = parse(corpus, "generic/generic_report1.json").records[0]
    assert (first.cves, first.cwes, first.severity) == (("CVE-2020-36234",), ("CWE-261",), "medium")
    assert first.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:H/UI:R/S:C/C:L/I:L/A:N"
    rows = parse(corpus, "generic/generic_report1.csv").records
    assert [r.cwes for r in rows] == [(f"CWE-{n}",) for n in range(1, 6)]
    assert {r.asset_ref for r in rows} == {"https://vulnerable.endpoint.com"}
    assert rows[0].source_ref == "line 2"
