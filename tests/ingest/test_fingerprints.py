"""Fingerprints survive a rescan: the same findings with new timestamps, scan ids, plugin output,
payloads or shifted lines keep their fingerprints; a different place gets a different one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from handoffkit.ingest.detect import parse_file

ScanBytes = Callable[[str], bytes]


def fingerprints(data: bytes, name: str) -> list[str]:
    return [r.fingerprint for r in parse_file(data, name).records]


def rescan_json(data: bytes, change: Callable[[Any], None]) -> bytes:
    doc = json.loads(data)
    change(doc)
    return json.dumps(doc).encode()


def replaced(data: bytes, *pairs: tuple[bytes, bytes]) -> bytes:
    for old, new in pairs:
        assert old in data, old
        data = data.replace(old, new)
    return data


def sarif_rescan(doc: dict[str, Any]) -> None:
    run, eslint = doc["runs"]
    run["invocations"][0]["startTimeUtc"] = "2024-06-01T10:00:00Z"
    run["automationDetails"]["id"] = "nightly/2024-06-01"
    run["tool"]["driver"]["semanticVersion"] = "2.16.1"
    for result in run["results"]:  # code moved down; CodeQL's line hash follows it
        region = result["locations"][0]["physicalLocation"]["region"]
        region["startLine"] += 7
        result["message"]["text"] += " (seen again)"
    eslint["results"][0]["message"]["text"] = "eval is evil."


def trivy_rescan(doc: dict[str, Any]) -> None:
    resource = doc["Resources"][0]["Results"]
    resource[0]["Vulnerabilities"][0]["InstalledVersion"] = "1.52.0-1+deb12u0"  # still not the fix
    resource[0]["Vulnerabilities"][0]["Severity"] = "CRITICAL"
    resource[1]["Misconfigurations"][0]["CauseMetadata"]["StartLine"] = 35
    doc["Resources"][1]["Results"][0]["Secrets"][0]["StartLine"] = 9


def semgrep_rescan(doc: dict[str, Any]) -> None:
    for result in doc["results"]:
        result["start"]["line"] += 20
        result["end"]["line"] += 20
        result["extra"]["message"] = "reworded by a newer rule version"
    doc["version"] = "1.80.0"


def dojo_rescan(doc: dict[str, Any]) -> None:
    for n, finding in enumerate(doc["results"]):
        finding.update(id=900 + n, test=99, date="2024-06-01", created="2024-06-01T00:00:00Z", active=True)


RESCANS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("sarif_two_runs.sarif", lambda b: rescan_json(b, sarif_rescan)),
    ("trivy_k8s_cluster.json", lambda b: rescan_json(b, trivy_rescan)),
    ("semgrep_small.json", lambda b: rescan_json(b, semgrep_rescan)),
    ("defectdojo_findings_page.json", lambda b: rescan_json(b, dojo_rescan)),
    (
        "nessus_small.xml",
        lambda b: replaced(
            b,
            (b"Wed May  1 10:30:00 2024", b"Sat Jun  1 22:00:00 2024"),
            (b"Wed May  1 10:40:00 2024", b"Sat Jun  1 22:10:00 2024"),
            (b"weekly-2024-05-01", b"weekly-2024-06-01"),
            (b"Scan duration : 600 sec", b"Scan duration : 912 sec"),
            (b"Installed version : 3.0.8", b"Installed version : 3.0.8a"),
            (b'severity="4"', b'severity="3"'),
        ),
    ),
    (
        "tenable_io.csv",
        lambda b: replaced(
            b,
            (b"2024-04-02T08:00:00Z,2024-05-01T08:00:00Z", b"2024-04-02T08:00:00Z,2024-06-01T08:00:00Z"),
            (b"Installed version : 2.14.1", b"Installed version : 2.14.0"),
        ),
    ),
    (
        "tenable_semicolon.csv",
        lambda b: replaced(
            b, (b"Installed : 3.0.8", b"Installed : 3.0.7"), (b"Scan duration : 453 sec", b"Scan duration : 1 sec")
        ),
    ),
    (
        "zap_legacy_1_4.xml",
        lambda b: replaced(
            b, (b"Mon, 3 Jun 2013 10:00:00", b"Tue, 4 Jun 2013 09:00:00"), (b"alert(1);", b"alert(document.domain);")
        ),
    ),
    (
        "burp_small.xml",
        lambda b: replaced(
            b,
            (b"8123456789012345678", b"9000000000000000001"),
            (b"Wed May 01 10:00:00 CEST 2024", b"Sat Jun 01 10:00:00 CEST 2024"),
            (b"abc&lt;script&gt;alert(1)&lt;/script&gt;xyz", b"qqq&lt;script&gt;alert(2)&lt;/script&gt;qqq"),
            (b"SFRUUC8xLjEgMjAwIE9LDQoNCjxodG1sPmFiYzwvaHRtbD4=", b"SFRUUC8xLjEgMjAwIE9LDQoNCg=="),
        ),
    ),
    ("generic_utf16.csv", lambda b: b.decode("utf-16").replace("01/05/2024", "01/06/2024").encode("utf-16")),
]


@pytest.mark.parametrize(("name", "rescan"), RESCANS, ids=[name for name, _ in RESCANS])
def test_rescan_keeps_fingerprints(scan_bytes: ScanBytes, name: str, rescan: Callable[[bytes], bytes]) -> None:
    original = scan_bytes(name)
    again = rescan(original)
    assert again != original
    assert fingerprints(again, name) == fingerprints(original, name)


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("nessus_small.xml", b'port="443"', b'port="8443"'),
        ("zap_legacy_1_4.xml", b"<param>q</param>", b"<param>query</param>"),
        ("burp_small.xml", b"/search [q parameter]", b"/search [term parameter]"),
        ("tenable_io.csv", b"web-01.corp.example,WEB01,156032", b"web-02.corp.example,WEB02,156032"),
    ],
)
def test_a_different_place_is_a_different_finding(scan_bytes: ScanBytes, name: str, old: bytes, new: bytes) -> None:
    original = scan_bytes(name)
    assert fingerprints(replaced(original, (old, new)), name) != fingerprints(original, name)


def test_sarif_without_tool_fingerprints_uses_the_line(scan_bytes: ScanBytes) -> None:
    def move_eslint(doc: dict[str, Any]) -> None:
        doc["runs"][1]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 30

    original = scan_bytes("sarif_two_runs.sarif")
    before, after = fingerprints(original, "a.sarif"), fingerprints(rescan_json(original, move_eslint), "b.sarif")
    assert before[:3] == after[:3] and before[3] != after[3]


def test_nessus_and_tenable_csv_share_the_fingerprint_recipe(scan_bytes: ScanBytes) -> None:
    xml_openssl = parse_file(scan_bytes("nessus_small.xml"), "scan.nessus").records[1]
    csv = replaced(
        scan_bytes("tenable_semicolon.csv"), (b"db-01.corp.example;tcp;5432", b"app-01.corp.example;tcp;443")
    )
    csv_openssl = parse_file(csv, "scan.csv").records[0]
    assert xml_openssl.fingerprint == csv_openssl.fingerprint
