"""Layouts the sample corpus lacks, from the hand-written fixtures under tests/data/scans."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from handoffkit.errors import InputError
from handoffkit.ingest.common import MALFORMED_CVE
from handoffkit.ingest.detect import parse_file
from handoffkit.ingest.registry import FORMATS
from handoffkit.record.model import ParseResult

Parse = Callable[[str], ParseResult]


def test_the_broadest_shapes_are_sniffed_last() -> None:
    # DefectDojo's generic "findings" array and paginated "results" would also match other formats' documents
    assert FORMATS[-2:] == ("generic", "defectdojo") and len(set(FORMATS)) == len(FORMATS)


def test_sarif_two_runs(parse_scan: Parse, scan_bytes: Callable[[str], bytes]) -> None:
    result = parse_scan("sarif_two_runs.sarif")
    assert result.tool == "CodeQL, ESLint" and result.tool_version is None
    xss, sqli, rejected, no_eval, console, unlocated = result.records
    assert (xss.severity, xss.cwes, xss.asset_ref) == ("medium", ("CWE-79",), "https://github.com/example/shop")
    assert xss.location == "src/routes/search.js:42" and xss.tool_version == "2.15.0"
    assert xss.references == ("https://codeql.github.com/codeql-query-help/javascript/js-reflected-xss/",)
    # rule.toolComponent.index 0 → tool.extensions[0].rules[0]
    assert (sqli.rule_ref, sqli.title, sqli.severity, sqli.cwes) == (
        "js/sql-injection",
        "Database query built from user-controlled sources",
        "high",
        ("CWE-89",),
    )
    assert sqli.suppressed and not rejected.suppressed
    assert (no_eval.severity, no_eval.raw_severity, no_eval.asset_ref) == ("high", "error", "file:///builds/shop/")
    assert (no_eval.tool, no_eval.tool_version) == ("ESLint", "8.57.0")
    assert console.suppressed and console.severity == "low"
    assert (unlocated.severity, unlocated.asset_ref, unlocated.location) == ("info", "unknown", None)
    assert [r.source_ref for r in result.records][3:] == [
        "runs[1].results[0]",
        "runs[1].results[1]",
        "runs[1].results[2]",
    ]
    item = json.loads(scan_bytes("sarif_two_runs.sarif"))["runs"][0]["results"][1]
    assert sqli.raw == json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_sarif_duplicate_results_are_all_kept(scan_bytes: Callable[[str], bytes]) -> None:
    doc = json.loads(scan_bytes("sarif_two_runs.sarif"))
    doc["runs"][0]["results"].append(doc["runs"][0]["results"][0])
    result = parse_file(json.dumps(doc).encode(), "twice.sarif")
    assert len(result.records) == 7
    assert result.records[3].source_ref == "runs[0].results[3]"
    assert result.records[0].fingerprint == result.records[3].fingerprint


def test_zap_legacy_alertitems_without_instances(parse_scan: Parse) -> None:
    result = parse_scan("zap_legacy_1_4.xml")
    assert (result.format, result.tool_version) == ("zap", "1.4.1")
    xss, cookie = result.records
    assert (xss.severity, xss.asset_ref, xss.cwes, xss.rule_ref) == (
        "high",
        "http://shop.example:8080",
        ("CWE-79",),
        "40012",
    )
    assert xss.location == "http://shop.example:8080/search?q=test [q]"
    assert (cookie.severity, cookie.asset_ref) == ("low", "https://shop.example")
    assert result.scope_assets == {"http://shop.example:8080", "https://shop.example"}


def test_trivy_kubernetes_cluster_report(parse_scan: Parse) -> None:
    result = parse_scan("trivy_k8s_cluster.json")
    assert result.parsed_by_kind == {"misconfiguration": 1, "secret": 1, "vulnerability": 2}
    assert result.skipped == {"passed misconfiguration check": 1}
    rapid_reset, ghsa, escalation, key = result.records
    assert rapid_reset.asset_ref == "prod-eu/shop/Deployment/web pkg:libnghttp2-14@1.52.0-1"
    assert (rapid_reset.cves, rapid_reset.cvss_score, rapid_reset.severity) == (("CVE-2023-44487",), 7.5, "high")
    assert (ghsa.cves, ghsa.rule_ref, ghsa.severity, ghsa.raw_severity) == (
        (),
        "GHSA-xxxx-yyyy-zzzz",
        "info",
        "UNKNOWN",
    )
    assert (escalation.kind, escalation.asset_ref, escalation.location) == (
        "misconfiguration",
        "prod-eu/shop/Deployment/web",
        "Deployment/web:31",
    )
    assert (key.kind, key.severity, key.asset_ref) == ("secret", "critical", "prod-eu/shop/ConfigMap/web-env")
    assert {"prod-eu/shop/Deployment/web", "prod-eu/shop/ConfigMap/web-env"} <= result.scope_assets


def test_trivy_older_cluster_layout(scan_bytes: Callable[[str], bytes]) -> None:
    doc = json.loads(scan_bytes("trivy_k8s_cluster.json"))
    older = {
        "ClusterName": doc["ClusterName"],
        "Vulnerabilities": doc["Resources"][:1],
        "Misconfigurations": doc["Resources"][1:],
    }
    result = parse_file(json.dumps(older).encode(), "older-cluster.json")
    assert result.parsed_by_kind == {"misconfiguration": 1, "secret": 1, "vulnerability": 2}
    assert result.records[0].source_ref == "Vulnerabilities[0].Results[0].Vulnerabilities[0]"


def test_tenable_io_csv(parse_scan: Parse) -> None:
    result = parse_scan("tenable_io.csv")
    assert (result.format, result.tool) == ("tenable-csv", "Tenable.io")
    log4shell, untrusted, openssl = result.records
    assert (log4shell.asset_ref, log4shell.severity, log4shell.cves) == (
        "web-01.corp.example:8080",
        "critical",
        ("CVE-2021-44228",),
    )
    assert log4shell.cvss_vector == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H" and log4shell.cvss_score == 10.0
    assert untrusted.asset_ref == "10.0.0.6:443"  # no FQDN: the IPv4 address names the host
    assert untrusted.source_ref == "line 4"  # the first row's Plugin Output spans two lines
    assert openssl.cves == ("CVE-2023-2650", "CVE-2023-1255")
    assert result.skipped[MALFORMED_CVE] == 1


def test_tenable_semicolon_csv_repeats_rows_per_cve(parse_scan: Parse) -> None:
    result = parse_scan("tenable_semicolon.csv")
    first, second, info = result.records
    assert first.fingerprint == second.fingerprint
    assert first.cves == second.cves == ("CVE-2023-2650", "CVE-2023-1255")
    assert (first.asset_ref, first.cvss_score) == ("db-01.corp.example:5432", 7.8)
    assert (info.severity, info.asset_ref) == ("info", "db-01.corp.example")


def test_utf16_csv(parse_scan: Parse) -> None:
    result = parse_scan("generic_utf16.csv")
    sqli, hsts = result.records
    assert sqli.title == "Injection SQL dans « recherche »"
    assert (sqli.severity, sqli.cwes, sqli.asset_ref) == ("high", ("CWE-89",), "https://boutique.example")
    assert hsts.suppressed  # FalsePositive TRUE


def test_defectdojo_findings_page(parse_scan: Parse) -> None:
    result = parse_scan("defectdojo_findings_page.json")
    assert result.format == "defectdojo"
    log4shell, password, headers = result.records
    assert [r.external_id for r in result.records] == ["101", "102", "103"]
    assert (log4shell.cves, log4shell.cwes, log4shell.severity) == (("CVE-2021-44228",), ("CWE-502",), "critical")
    assert log4shell.asset_ref == "org.apache.logging.log4j:log4j-core"
    assert (password.asset_ref, password.location, password.suppressed) == (
        "services",
        "services/billing/config.py:14",
        True,
    )
    assert (headers.cwes, headers.asset_ref, headers.severity) == ((), "unknown", "info")
    assert result.skipped[MALFORMED_CVE] == 1
    assert len(result.warnings) == 1 and "3 of 5 findings" in result.warnings[0]


def test_defectdojo_bare_list(scan_bytes: Callable[[str], bytes]) -> None:
    findings = json.loads(scan_bytes("defectdojo_findings_page.json"))["results"]
    result = parse_file(json.dumps(findings).encode(), "findings.json")
    assert result.format == "defectdojo" and len(result.records) == 3 and result.warnings == []
    assert result.records[0].source_ref == "[0]"


def test_defectdojo_fingerprint_prefers_tool_ids(scan_bytes: Callable[[str], bytes]) -> None:
    doc = json.loads(scan_bytes("defectdojo_findings_page.json"))
    before = [r.fingerprint for r in parse_file(json.dumps(doc).encode(), "a.json").records]
    for finding in doc["results"]:
        finding["title"] += " (renamed)"
    after = [r.fingerprint for r in parse_file(json.dumps(doc).encode(), "b.json").records]
    assert after == before  # unique_id_from_tool / hash_code carry the identity


def test_nessus_fields(parse_scan: Parse) -> None:
    result = parse_scan("nessus_small.xml")
    info, openssl = result.records
    assert result.tool_version == "10.7.2"
    assert (info.severity, info.asset_ref, info.location) == ("info", "app-01.corp.example", "0/tcp (general)")
    assert (openssl.severity, openssl.asset_ref, openssl.cwes) == ("critical", "app-01.corp.example:443", ("CWE-20",))
    assert openssl.cves == ("CVE-2023-2650", "CVE-2023-1255")
    assert openssl.cvss_vector.startswith("CVSS:3.0/") and openssl.cvss_score == 9.8
    assert "CVSS v2: CVSS2#AV:N/AC:L/Au:N/C:P/I:P/A:P (base 7.5)" in openssl.description
    assert openssl.source_ref == "ReportHost[1]/ReportItem[2]"
    assert result.skipped[MALFORMED_CVE] == 1
    assert "10.0.0.8" in result.scope_assets  # a host with no items


def test_burp_internal_dtd_is_accepted(parse_scan: Parse) -> None:
    result = parse_scan("burp_small.xml")
    xss, frameable = result.records
    assert (xss.asset_ref, xss.location, xss.cwes) == (
        "https://shop.example:8443",
        "/search [q parameter]",
        ("CWE-79",),
    )
    assert xss.references == ("https://portswigger.net/web-security/cross-site-scripting",)
    assert b"R0VUIC9zZWFyY2g" in xss.raw
    assert frameable.severity == "info"


def test_semgrep_suppression_and_placeholder_fingerprint(parse_scan: Parse) -> None:
    result = parse_scan("semgrep_small.json")
    sqli, evaluated = result.records
    assert (sqli.asset_ref, sqli.cwes, sqli.title) == (
        "shop",
        ("CWE-89",),
        "Detected user input flowing into a raw SQL query.",
    )
    assert evaluated.suppressed and evaluated.asset_ref == "." and evaluated.severity == "medium"
    assert result.scope_assets == {"shop", ".", "docs"}


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("nessus_small.xml", "nessus"),
        ("zap_legacy_1_4.xml", "zap"),
        ("generic_utf16.csv", "generic"),
        ("tenable_io.csv", "tenable-csv"),
    ],
)
def test_forcing_the_right_format_works(scan_bytes: Callable[[str], bytes], name: str, fmt: str) -> None:
    assert parse_file(scan_bytes(name), name, fmt).format == fmt


def test_cp1252_csv_needs_the_explicit_fallback() -> None:
    data = "Date,Title,CweId,Url,Severity\n01/05/2024,Clé exposée,798,https://a.example/,High\n".encode("cp1252")
    with pytest.raises(InputError, match=r"^legacy\.csv:2 \(byte \d+\): not UTF-8"):
        parse_file(data, "legacy.csv")
    (record,) = parse_file(data, "legacy.csv", fallback_encoding="cp1252").records
    assert record.title == "Clé exposée"


def test_tenable_vm_dotted_export(parse_scan: Parse) -> None:
    result = parse_scan("tenable_vm.csv")
    assert (result.format, result.tool) == ("tenable-csv", "Tenable VM")
    log4shell, openssl, untrusted, info = result.records
    assert (log4shell.asset_ref, log4shell.rule_ref) == ("web-01.corp.example:8080", "156032")
    assert log4shell.severity == "critical"
    assert (log4shell.cves, log4shell.cwes, log4shell.cvss_score) == (("CVE-2021-44228",), ("CWE-502",), 10.0)
    assert log4shell.cvss_vector == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"
    assert log4shell.location == "8080/tcp" and "Affected versions" in log4shell.description
    assert (openssl.cves, openssl.cwes) == (("CVE-2023-2650", "CVE-2023-1255"), ("CWE-400", "CWE-787"))
    assert untrusted.asset_ref == "10.0.0.6:443"  # no FQDN nor host name: the displayed IPv4 address
    assert (info.severity, info.asset_ref) == ("info", "10.0.0.6")
    assert result.skipped["fixed finding (state FIXED)"] == 1
    assert "web-01.corp.example" in result.scope_assets  # the fixed finding's host was scanned
    assert result.scanned_at.isoformat() == "2024-05-01T08:12:00+00:00"


def test_tenable_vm_matches_the_nessus_fingerprint(scan_bytes: Callable[[str], bytes]) -> None:
    vm = scan_bytes("tenable_vm.csv").decode()
    header = vm.split("\n", 1)[0]
    classic = header.replace("definition.id", "Plugin ID").replace("asset.display_fqdn", "Host")
    classic = classic.replace("asset.id", "Asset UUID")
    as_classic = parse_file(vm.replace(header, classic, 1).encode(), "classic.csv")
    as_vm = parse_file(vm.encode(), "vm.csv")
    assert as_classic.tool == "Tenable.io"
    assert [r.fingerprint for r in as_vm.records] == [r.fingerprint for r in as_classic.records]


def test_tenable_vm_unknown_severity_names_the_line(scan_bytes: Callable[[str], bytes]) -> None:
    vm = scan_bytes("tenable_vm.csv").decode().replace(";critical;ACTIVE;", ";severe;ACTIVE;", 1)
    with pytest.raises(InputError, match=r"^vm\.csv:line 2: unknown severity 'severe'"):
        parse_file(vm.encode(), "vm.csv")


def test_qualys_xml_detections_take_their_details_from_the_glossary(parse_scan: Parse) -> None:
    result = parse_scan("qualys_small.xml")
    assert (result.format, result.tool) == ("qualys", "Qualys VM")
    cert, dns = result.records
    assert (cert.asset_ref, cert.rule_ref, cert.severity, cert.raw_severity) == (
        "web-01.corp.example:443",
        "38170",
        "low",
        "2 (Vuln)",
    )
    assert (cert.cvss_score, cert.cvss_vector) == (6.5, "AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N")
    assert cert.location == "443/tcp (https) shop.corp.example" and "signed by itself" in cert.description
    assert (dns.severity, dns.raw_severity, dns.asset_ref) == ("info", "1 (Ig)", "web-01.corp.example")
    assert result.skipped["fixed detection (status Fixed)"] == 1
    assert "10.0.0.9" in result.scope_assets  # a host without detections was scanned
    assert result.scanned_at.isoformat() == "2024-05-01T08:30:00+00:00"


def test_qualys_csv_rows(parse_scan: Parse) -> None:
    result = parse_scan("qualys_small.csv")
    update, cert = result.records
    assert (update.asset_ref, update.severity, update.cves) == (
        "web-01.corp.example",
        "critical",
        ("CVE-2021-31166", "CVE-2021-31188"),
    )
    assert update.cvss_score == 9.8  # the base score, not Qualys's temporal CVSS3 column
    assert update.references == ("https://msrc.microsoft.com/update-guide",)
    assert (cert.asset_ref, cert.source_ref) == ("DB01:443", "line 4")  # no DNS name: NetBIOS
    assert "10.0.0.7" in result.scope_assets and result.skipped["fixed detection (status Fixed)"] == 1


def test_qualys_dtd_elsewhere_is_refused(scan_bytes: Callable[[str], bytes]) -> None:
    moved = scan_bytes("qualys_small.xml").replace(b"qualysguard.qg2.apps.qualys.eu", b"qualys.eu.attacker.example")
    with pytest.raises(InputError, match=r"^q\.xml:2:1: refused hostile XML"):
        parse_file(moved, "q.xml")


def test_qualys_unknown_level_names_the_detection(scan_bytes: Callable[[str], bytes]) -> None:
    odd = scan_bytes("qualys_small.xml").replace(b"<SEVERITY>2</SEVERITY>", b"<SEVERITY>7</SEVERITY>")
    with pytest.raises(
        InputError, match=r"^q\.xml:HOST_LIST/HOST\[1\]/VULN_INFO_LIST/VULN_INFO\[1\]: unknown severity '7'"
    ):
        parse_file(odd, "q.xml")


def test_nexpose_vulnerable_tests_only(parse_scan: Parse) -> None:
    result = parse_scan("nexpose_small.xml")
    assert (result.format, result.tool, result.tool_version) == ("nexpose", "Rapid7 Nexpose", "2.0")
    icmp, traversal = result.records
    assert (icmp.asset_ref, icmp.severity, icmp.raw_severity, icmp.cves) == (
        "web-01.corp.example",
        "low",
        "1 (Moderate)",
        ("CVE-1999-0524",),
    )
    assert icmp.cvss_vector == "AV:L/AC:L/Au:N/C:N/I:N/A:N"  # v2 as written, parentheses removed
    # the definition id differs in case from the test id
    assert (traversal.asset_ref, traversal.severity, traversal.cves) == (
        "web-01.corp.example:443",
        "critical",
        ("CVE-2021-41773",),
    )
    assert traversal.cvss_vector.startswith("CVSS:3.1/") and traversal.location == "443/tcp (HTTPS) /icons/"
    assert traversal.references == ("https://httpd.apache.org/security/vulnerabilities_24.html",)
    assert result.skipped == {"test not vulnerable (not-vulnerable)": 1}
    assert "10.0.0.9" in result.scope_assets
    assert result.scanned_at.isoformat() == "2024-05-01T07:15:12+00:00"


def test_openvas_gmp_report(parse_scan: Parse) -> None:
    result = parse_scan("openvas_small.xml")
    assert (result.format, result.tool) == ("openvas", "Greenbone OpenVAS")
    traversal, timestamps, weak_mac = result.records
    assert (traversal.asset_ref, traversal.severity, traversal.raw_severity) == (
        "web-01.corp.example:443",
        "high",
        "High (7.5)",
    )
    assert traversal.title == "Apache HTTP Server 2.4.49 Path Traversal Vulnerability"
    assert (traversal.cves, traversal.cwes, traversal.cvss_score) == (("CVE-2021-41773",), ("CWE-22",), 7.5)
    assert traversal.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"
    assert traversal.references == ("https://httpd.apache.org/security/vulnerabilities_24.html",)
    assert (timestamps.asset_ref, timestamps.severity, timestamps.location) == (
        "web-01.corp.example",
        "info",
        "general/tcp",
    )
    assert weak_mac.suppressed and weak_mac.severity == "info"
    assert "10.0.0.9" in result.scope_assets
    assert result.scanned_at.isoformat() == "2024-05-01T07:30:00+00:00"


def test_openvas_csv_matches_the_xml_fingerprint(parse_scan: Parse) -> None:
    csv_result, xml_result = parse_scan("openvas_small.csv"), parse_scan("openvas_small.xml")
    traversal, timestamps = csv_result.records
    assert traversal.fingerprint == xml_result.records[0].fingerprint
    assert (traversal.severity, traversal.cves, traversal.source_ref) == ("high", ("CVE-2021-41773",), "line 2")
    assert (timestamps.asset_ref, timestamps.severity, timestamps.location) == ("10.0.0.6", "low", None)
    assert csv_result.scanned_at.isoformat() == "2024-05-01T07:20:00+00:00"


def test_grype_current_layout(parse_scan: Parse) -> None:
    result = parse_scan("grype_small.json")
    assert (result.format, result.tool, result.tool_version) == ("grype", "Anchore Grype", "0.74.0")
    log4j, busybox = result.records
    assert log4j.asset_ref == "registry.example/shop:1.4 pkg:log4j-core@2.14.1"
    assert (log4j.rule_ref, log4j.cves, log4j.severity, log4j.cvss_score) == (
        "GHSA-jfh8-c2jp-5v3q",
        ("CVE-2021-44228",),  # the GHSA match names its CVE among the related vulnerabilities
        "critical",
        10.0,
    )
    assert "fixed in: 2.15.0" in log4j.description and log4j.location == "/app/lib/log4j-core-2.14.1.jar"
    assert (busybox.severity, busybox.raw_severity, busybox.cvss_score) == ("high", "Unknown", 7.5)
    assert result.scanned_at.isoformat().startswith("2024-05-01T08:00:00.123456")
    assert "registry.example/shop:1.4" in result.scope_assets


def test_grype_upgrade_that_keeps_the_vulnerability_is_the_same_finding(scan_bytes: Callable[[str], bytes]) -> None:
    before = parse_file(scan_bytes("grype_small.json"), "a.json").records[0]
    upgraded = scan_bytes("grype_small.json").replace(b'"version": "2.14.1"', b'"version": "2.14.2"')
    after = parse_file(upgraded, "b.json").records[0]
    assert after.asset_ref.endswith("@2.14.2") and after.fingerprint == before.fingerprint


def test_snyk_all_projects_paths_and_licences(parse_scan: Parse) -> None:
    result = parse_scan("snyk_small.json")
    via_utils, direct, licence = result.records
    assert via_utils.fingerprint != direct.fingerprint  # one advisory, two dependency paths
    assert via_utils.asset_ref == "shop-api pkg:lodash@4.17.15"
    assert via_utils.location == "package-lock.json shop-api@1.0.0 > express-utils@2.1.0 > lodash@4.17.15"
    assert (via_utils.cves, via_utils.cwes, via_utils.cvss_score) == (("CVE-2020-8203",), ("CWE-1321",), 7.4)
    assert (licence.kind, licence.severity) == ("finding", "low")
    assert {"shop-api", "shop-web"} <= result.scope_assets  # a project without issues was tested too
    assert [r.source_ref for r in result.records] == [f"[0].vulnerabilities[{i}]" for i in range(3)]


def test_gitlab_sast_schema_15(parse_scan: Parse) -> None:
    result = parse_scan("gitlab_small.json")
    assert (result.format, result.tool, result.tool_version) == ("gitlab", "GitLab Semgrep", "1.70.0")
    sqli, weak = result.records
    assert (sqli.kind, sqli.asset_ref, sqli.location, sqli.cwes) == ("code", "api", "api/orders.py:48", ("CWE-89",))
    assert (sqli.rule_ref, sqli.severity) == ("semgrep_id:bandit.B608", "high")
    assert (weak.severity, weak.raw_severity, weak.asset_ref) == ("info", "Unknown", ".")
    assert result.scanned_at.isoformat() == "2024-05-01T07:05:00+00:00"


def test_gitlab_report_ids_are_not_identity(scan_bytes: Callable[[str], bytes]) -> None:
    first = parse_file(scan_bytes("gitlab_small.json"), "a.json").records
    rerun = parse_file(scan_bytes("gitlab_small.json").replace(b"5c8f2d9e", b"77777777"), "b.json").records
    assert [r.fingerprint for r in first] == [r.fingerprint for r in rerun]


def test_dependabot_rest_alerts(parse_scan: Parse) -> None:
    result = parse_scan("github_dependabot_rest.json")
    assert result.format == "github-dependabot"
    lodash, pyyaml = result.records
    assert (lodash.asset_ref, lodash.location, lodash.rule_ref) == (
        "acme/shop pkg:lodash",
        "web/package-lock.json",
        "GHSA-p6mc-m468-83gw",
    )
    assert (lodash.cves, lodash.cwes, lodash.cvss_score, lodash.severity) == (
        ("CVE-2020-8203",),
        ("CWE-770",),
        7.4,
        "high",
    )
    assert pyyaml.suppressed and not lodash.suppressed  # dismissed in GitHub
    assert result.skipped["alert no longer open (fixed)"] == 1


def test_osv_scanner_severity_sources(parse_scan: Parse) -> None:
    scored, worded, bare = parse_scan("osv_scanner_small.json").records
    assert (scored.severity, scored.cvss_score, scored.cves, scored.cwes) == (
        "medium",
        5.3,
        ("CVE-2020-28493",),
        ("CWE-400",),
    )
    assert scored.asset_ref == "/src/shop/poetry.lock pkg:jinja2@2.11.2"
    assert (worded.severity, worded.raw_severity) == ("high", "HIGH")
    assert (bare.severity, bare.raw_severity) == ("medium", "")  # no score, no word: medium, to calibrate


def test_npm_audit_packages_affected_through_others(parse_scan: Parse) -> None:
    semver, make_dir = parse_scan("npm_audit_small.json").records
    assert (semver.asset_ref, semver.severity, semver.cwes, semver.cvss_score) == (
        "unknown pkg:semver",
        "medium",
        ("CWE-1333",),
        5.3,
    )
    assert semver.rule_ref == "GHSA-c2qf-rxjj-qqgw" and semver.location == "node_modules/semver"
    assert make_dir.title == "make-dir is vulnerable through semver" and make_dir.cvss_score is None


def test_pip_audit_old_layout(parse_scan: Parse) -> None:
    result = parse_scan("pip_audit_old.json")
    (django,) = result.records
    assert (django.asset_ref, django.cves, django.severity) == (
        "unknown pkg:Django@3.2.0",
        ("CVE-2021-33203",),
        "medium",
    )
    assert "fixed in: 3.2.4" in django.description
    assert result.skipped["dependency not audited (skip_reason)"] == 1


def test_asff_open_findings_only(parse_scan: Parse) -> None:
    result = parse_scan("asff_small.json")
    bucket, image = result.records
    assert (bucket.asset_ref, bucket.rule_ref, bucket.severity, bucket.kind) == (
        "arn:aws:s3:::shop-uploads",
        "aws-foundational-security-best-practices/v/1.0.0/S3.8",
        "high",
        "misconfiguration",
    )
    assert bucket.references == ("https://docs.aws.amazon.com/console/securityhub/S3.8/remediation",)
    assert image.asset_ref == "arn:aws:ecr:eu-west-1:111122223333:repository/shop/sha256:cc pkg:golang.org/x/net@v0.7.0"
    assert (image.severity, image.raw_severity, image.cves, image.cvss_score) == (
        "critical",
        "Normalized 90",
        ("CVE-2023-44487",),
        7.5,
    )
    assert image.suppressed and image.location == "AwsEcrContainerImage app/go.mod"
    assert result.skipped["resolved finding (Workflow.Status RESOLVED)"] == 1
    assert "AWS::::Account:111122223333" in result.scope_assets  # the resolved finding's resource was checked
    assert result.scanned_at.isoformat() == "2024-05-01T07:00:00+00:00"


def test_inspector2_kinds_and_untriaged(parse_scan: Parse) -> None:
    result = parse_scan("inspector2_small.json")
    package, code = result.records
    assert (package.asset_ref, package.severity, package.raw_severity) == (
        "shop@sha256:cc pkg:golang.org/x/net@v0.7.0",
        "high",
        "UNTRIAGED",
    )
    assert package.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H" and package.location == "app/go.mod"
    assert (code.kind, code.cwes, code.location, code.suppressed) == ("code", ("CWE-89",), "handler.py:14", True)
    assert result.skipped["closed finding (status CLOSED)"] == 1 and "i-0abc" in result.scope_assets
    assert result.scanned_at.isoformat() == "2024-05-01T06:00:00+00:00"


def test_wiz_issues_export(parse_scan: Parse) -> None:
    result = parse_scan("wiz_issues.csv")
    exposed, blobs = result.records
    assert exposed.asset_ref == "/subscriptions/s1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/web-01"
    assert (exposed.severity, exposed.rule_ref, exposed.kind) == ("critical", "wc-id-1", "misconfiguration")
    assert exposed.references == ("https://app.wiz.io/issues#~(issue~'issue-0001')",)
    assert blobs.suppressed and not exposed.suppressed  # IGNORED in Wiz
    assert result.skipped["resolved in Wiz"] == 1
    assert any(a.endswith("/old-01") for a in result.scope_assets)  # the resolved issue's resource was assessed


def test_wiz_vulnerability_findings_export(parse_scan: Parse) -> None:
    result = parse_scan("wiz_vulnerabilities.csv")
    (net,) = result.records
    assert net.asset_ref.endswith("/virtualmachines/web-01 pkg:golang.org/x/net@v0.7.0")
    assert (net.cves, net.severity, net.raw_severity, net.cvss_score) == (("CVE-2023-44487",), "high", "HIGH", 7.5)
    assert "fixed in: v0.17.0" in net.description and net.location == "/app/go.mod"
    assert result.skipped["resolved in Wiz"] == 1
    assert result.scanned_at.isoformat() == "2024-05-01T06:00:00+00:00"


def test_nuclei_json_lines(parse_scan: Parse) -> None:
    result = parse_scan("nuclei_small.jsonl")
    traversal, tls10, tls12, nginx = result.records
    assert (traversal.asset_ref, traversal.severity, traversal.cves, traversal.cwes) == (
        "https://shop.test",
        "critical",
        ("CVE-2021-41773",),
        ("CWE-22",),
    )
    assert (traversal.cvss_score, traversal.kind) == (9.8, "web")
    assert (tls10.asset_ref, tls10.kind) == ("shop.test:443", "host")
    assert tls10.fingerprint != tls12.fingerprint  # one template, one place, two results told apart
    assert nginx.rule_ref == "tech-detect:nginx" and nginx.references == (
        "https://github.com/projectdiscovery/nuclei-templates",
    )
    assert result.scanned_at.isoformat() == "2024-05-01T06:00:07+00:00"


def test_nuclei_bad_line_is_named(scan_bytes: Callable[[str], bytes]) -> None:
    lines = scan_bytes("nuclei_small.jsonl").split(b"\n")
    lines[3] = lines[3][:40]
    with pytest.raises(InputError, match=r"^n\.jsonl:4:\d+: invalid JSON Lines"):
        parse_file(b"\n".join(lines), "n.jsonl")
    lines[3] = b"[1, 2]"
    with pytest.raises(InputError, match=r"^n\.jsonl:4:1: invalid JSON Lines: expected one JSON object per line"):
        parse_file(b"\n".join(lines), "n.jsonl")


def test_nuclei_one_result_and_the_array_export(scan_bytes: Callable[[str], bytes]) -> None:
    lines = [line for line in scan_bytes("nuclei_small.jsonl").split(b"\n") if line.strip()]
    assert len(parse_file(lines[0], "one.jsonl").records) == 1
    array = parse_file(b"[" + b",\n".join(lines) + b"]", "all.json")
    assert (array.format, len(array.records)) == ("nuclei", 4)


def test_sonarqube_hotspots_page(parse_scan: Parse) -> None:
    result = parse_scan("sonarqube_hotspots.json")
    sqli, debug = result.records
    assert (sqli.asset_ref, sqli.rule_ref, sqli.location, sqli.severity) == (
        "shop-api",
        "pythonsecurity:S2077",
        "api/orders.py:48",
        "high",
    )
    assert debug.suppressed and debug.severity == "low"  # reviewed as SAFE
    assert result.skipped["fixed in SonarQube"] == 1
    assert result.warnings == []  # the page holds all three


def test_sonarqube_partial_page_warns(corpus_file: Callable[[str], Path]) -> None:
    result = parse_file(corpus_file("sonarqube/findings_over_api.json").read_bytes(), "page.json")
    assert result.warnings == ["a page of 5 of 42 issues: fetch the other pages to have them all"]
    first = result.records[0]
    assert (first.cves, first.cwes) == (("CVE-2024-2529",), ("CWE-937", "CWE-120"))


def test_veracode_static_dynamic_and_sca(parse_scan: Parse) -> None:
    result = parse_scan("veracode_small.xml")
    sqli, leak, log4j = result.records
    assert (sqli.asset_ref, sqli.kind, sqli.severity, sqli.raw_severity, sqli.cwes) == (
        "shop",
        "code",
        "high",
        "4 (High)",
        ("CWE-89",),
    )
    assert sqli.location == "shop.war com/shop/dao/OrderDao.java:48"
    assert (leak.asset_ref, leak.kind, leak.suppressed) == ("https://shop.test:8443", "web", True)
    assert (log4j.asset_ref, log4j.cves, log4j.severity, log4j.cvss_score) == (
        "shop pkg:log4j-core@2.14.1",
        ("CVE-2021-44228",),
        "critical",
        10.0,
    )
    assert result.skipped["fixed flaw (remediation_status Fixed)"] == 1
    assert result.scanned_at.isoformat() == "2024-05-01T08:20:00+00:00"


def test_checkmarx_one_api_results(parse_scan: Parse) -> None:
    result = parse_scan("checkmarx_one_api.json")
    sqli, root, log4j = result.records
    assert (sqli.kind, sqli.asset_ref, sqli.location, sqli.cwes, sqli.severity) == (
        "code",
        "api",
        "/api/src/main/java/shop/OrderDao.java:48",
        ("CWE-89",),
        "high",
    )
    assert (root.kind, root.suppressed, root.asset_ref) == ("misconfiguration", True, "deploy")
    assert (log4j.kind, log4j.asset_ref, log4j.cves, log4j.cvss_score) == (
        "vulnerability",
        "unknown pkg:Maven-org.apache.logging.log4j:log4j-core-2.14.1",
        ("CVE-2021-44228",),
        10.0,
    )
    assert log4j.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"
    assert result.skipped["fixed in Checkmarx One"] == 1
    assert result.scanned_at.isoformat() == "2024-05-01T08:10:00+00:00"


def test_checkmarx_one_scan_report_sca_packages(corpus_file: Callable[[str], Path]) -> None:
    doc = json.loads(corpus_file("checkmarx_one/vulnerabilities_from_scan_results.json").read_bytes())
    doc["scaScanResults"]["packages"] = [
        {
            "packageName": "lodash",
            "packageVersion": "4.17.15",
            "vulnerabilities": [
                {"cveName": "CVE-2020-8203", "severity": "High", "cvssScore": 7.4, "cweId": "CWE-1321"}
            ],
        }
    ]
    result = parse_file(json.dumps(doc).encode(), "report.json")
    lodash = result.records[-1]
    assert (lodash.asset_ref, lodash.cves, lodash.severity, lodash.kind) == (
        "example-123/loiskjdye pkg:lodash@4.17.15",
        ("CVE-2020-8203",),
        "high",
        "vulnerability",
    )
    assert len(result.records) == 147 and result.records[0].asset_ref == "example-123/loiskjdye"


def test_qualys_was_detections_and_information_gathered(parse_scan: Parse) -> None:
    result = parse_scan("qualys_was_small.xml")
    search, cart, dns = result.records
    assert (search.asset_ref, search.location, search.severity, search.cwes, search.cvss_score) == (
        "https://shop.test",
        "https://shop.test/search?q=x [q]",
        "critical",
        ("CWE-79",),
        6.1,
    )
    assert search.fingerprint != cart.fingerprint and cart.suppressed  # one QID at two URLs; IGNORED
    assert (dns.severity, dns.asset_ref, dns.raw_severity) == ("info", "https://shop.test", "1 (Information Gathered)")
    # "GMT+0200" is two hours ahead of UTC, not behind (dateutil alone reads it the POSIX way)
    assert result.scanned_at.isoformat() == "2024-05-01T08:15:00+00:00"
