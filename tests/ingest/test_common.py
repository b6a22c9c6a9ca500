"""The shared normalisations every parser relies on."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from handoffkit.ingest import common
from handoffkit.ingest.common import MALFORMED_CVE, code_asset, cwes, host_asset, take_cves, url_origin
from handoffkit.ingest.detect import parse_file
from handoffkit.record.model import ParseResult


def test_cves_are_upper_cased_deduplicated_and_validated() -> None:
    result = ParseResult(format="x", tool="x")
    found = take_cves(
        result,
        "cve-2021-44228, CVE-2021-44228;CVE-2014-0160",
        ["CVE-21-1", "GHSA-abcd-efgh-ijkl"],
        None,
        "CVE-2023-123456",
    )
    assert found == ("CVE-2021-44228", "CVE-2014-0160", "CVE-2023-123456")
    assert result.skipped == {MALFORMED_CVE: 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("external/cwe/cwe-079", ("CWE-79",)),
        (["CWE-89: Improper Neutralization", "CWE-89"], ("CWE-89",)),
        (261, ("CWE-261",)),
        ("CERT #836068,CWE #310", ("CWE-310",)),
        ("0", ()),
        (-1, ()),
        (None, ()),
    ],
)
def test_cwes(raw: object, expected: tuple[str, ...]) -> None:
    assert cwes(raw) == expected


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://shop.example:443/a?b#c", "https://shop.example"),
        ("HTTP://Shop.Example:8080/x", "http://shop.example:8080"),
        ("http://[2001:db8::1]:8000/", "http://[2001:db8::1]:8000"),
        ("shop.example/path", None),
        ("http://host:notaport/", None),
    ],
)
def test_url_origin(url: str, origin: str | None) -> None:
    assert url_origin(url) == origin


@pytest.mark.parametrize(
    ("host", "port", "asset"),
    [
        ("db-01", "5432", "db-01:5432"),
        ("db-01", "0", "db-01"),
        ("http://google.com/", 80, "http://google.com"),
        ("", "22", "unknown"),
    ],
)
def test_host_asset(host: str, port: str, asset: str) -> None:
    assert host_asset(host, port) == asset


@pytest.mark.parametrize(
    ("path", "asset"),
    [
        ("frontend/docker/Dockerfile", "frontend"),
        ("./src/app.py", "src"),
        ("tasks.py", "."),
        ("file:///home/ci/repo/src/App.tsx", "/home/ci/repo/src"),
        (None, "unknown"),
    ],
)
def test_code_asset(path: str | None, asset: str) -> None:
    assert code_asset(path) == asset


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: codecs.BOM_UTF8 + text.encode(),
        lambda text: text.encode("utf-16"),
    ],
    ids=["utf-8-bom", "utf-16"],
)
def test_json_with_a_byte_order_mark_is_detected(
    scan_bytes: Callable[[str], bytes], encode: Callable[[str], bytes]
) -> None:
    result = parse_file(encode(scan_bytes("semgrep_small.json").decode()), "semgrep.json")
    assert (result.format, len(result.records)) == ("semgrep", 2)


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("Tue Mar 11 2020 13:42:00 GMT-0400 (EDT)", "2020-03-11T17:42:00"),  # JavaScript's Date.toString()
        ("11 Mar 2020 01:42PM GMT-0400", "2020-03-11T17:42:00"),  # Qualys WAS
        ("2020-03-11 13:42 UTC+05:30", "2020-03-11T08:12:00"),
        ("2020-03-11T13:42:00-04:00", "2020-03-11T17:42:00"),
        ("Wed, 11 Mar 2020 13:42:00 GMT", "2020-03-11T13:42:00"),
        ("2020-03-11 13:42:00 EST", "2020-03-11T13:42:00"),  # an abbreviation other than UTC/GMT: read as UTC
    ],
)
def test_an_offset_after_gmt_or_utc_means_what_people_mean_not_the_posix_inversion(written: str, utc: str) -> None:
    assert common.instant(written) == datetime.fromisoformat(utc).replace(tzinfo=UTC)
