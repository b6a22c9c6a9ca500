"""Hostile, broken or unknown input is refused with an InputError naming the file and the place."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handoffkit.errors import InputError
from handoffkit.ingest.detect import parse_file
from handoffkit.ingest.registry import FORMATS

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE NessusClientData_v2 [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<NessusClientData_v2><Report><ReportHost name="&xxe;"/></Report></NessusClientData_v2>
"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE issues SYSTEM "http://attacker.example/burp.dtd">
<issues burpVersion="2023.1"/>
"""
BURP_DTD_WITH_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE issues [
<!ELEMENT issues ANY>
<!ENTITY boom "boom">
]>
<issues burpVersion="2023.1">&boom;</issues>
"""

HOSTILE = [
    ("billion-laughs.xml", BILLION_LAUGHS, r"2:1", "refused hostile XML"),
    ("xxe.nessus", XXE, r"2:1", "refused hostile XML"),
    ("external-dtd.xml", EXTERNAL_DTD, r"2:1", "refused hostile XML"),
    ("burp-with-entity.xml", BURP_DTD_WITH_ENTITY, r"4:1", "EntitiesForbidden"),
    ("duplicate-keys.sarif", b'{"version": "2.1.0",\n "runs": [], "runs": []}', r"1:1", "duplicate key 'runs'"),
    (
        "nan.json",
        b'{"results": [{"check_id": "x", "note": "NaN in a string is fine",\n "score": NaN}], "errors": []}',
        r"2:11",
        "NaN",
    ),
    ("deep.json", b"[" * 50_000 + b"]" * 50_000, r"1:501", "nested deeper"),
    ("truncated.sarif", b'{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"', r"1:\d+", "invalid JSON"),
    (
        "truncated.nessus",
        b'<?xml version="1.0"?>\n<NessusClientData_v2>\n<Report name="x">\n<ReportHost name="a">',
        r"4:\d+",
        "malformed XML",
    ),
    (
        "truncated-burp.xml",
        b'<?xml version="1.0"?>\n<!DOCTYPE issues [\n<!ELEMENT issues ANY>\n]>\n<issues burpVersion="1">',
        r"5:\d+",
        "malformed XML",
    ),
    (
        "truncated.csv",
        b'Plugin ID,Host,Name\n19506,a,Scan info\n10180,b,"Ping the remote host\n',
        r"3",
        "malformed CSV",
    ),
]


@pytest.mark.parametrize(("name", "data", "place", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_refused_with_file_and_place(name: str, data: bytes, place: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_file(data, name)
    message = str(caught.value)
    assert re.match(rf"{re.escape(name)}:{place}: ", message), message
    assert reason in message


@pytest.mark.parametrize(
    ("name", "data", "shape"),
    [
        ("mystery.json", b'{"scan": {"items": []}}', "JSON object with keys scan"),
        ("mystery.xml", b"<report><item/></report>", "XML root <report>"),
        ("mystery.csv", b"id,summary\n1,something\n", "CSV with columns id, summary"),
        ("mystery-list.json", b"[]", "JSON array of 0 items"),
    ],
)
def test_unknown_format_lists_the_supported_ones(name: str, data: bytes, shape: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"{name}: unknown scan format ({shape})")) as caught:
        parse_file(data, name)
    assert ", ".join(FORMATS) in str(caught.value)


def test_empty_file() -> None:
    with pytest.raises(InputError, match=r"^blank\.json: empty file"):
        parse_file(b" \n\t", "blank.json")


def test_forced_format_must_match(scan_bytes: Callable[[str], bytes]) -> None:
    with pytest.raises(InputError, match=r"^scan\.nessus: content looks like XML, but format 'sarif' reads JSON"):
        parse_file(scan_bytes("nessus_small.xml"), "scan.nessus", "sarif")
    with pytest.raises(InputError, match=r"^scan\.json: not a trivy file \(JSON object with keys \$schema"):
        parse_file(scan_bytes("sarif_two_runs.sarif"), "scan.json", "trivy")
    with pytest.raises(InputError, match=r"unknown format 'nesus'; expected auto or one of sarif, nessus"):
        parse_file(scan_bytes("nessus_small.xml"), "scan.nessus", "nesus")


@pytest.mark.parametrize(
    ("name", "data", "where"),
    [
        (
            "level.sarif",
            b'{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, '
            b'"results": [{"ruleId": "r", "level": "fatal"}]}]}',
            "runs[0].results[0]: unknown SARIF level",
        ),
        (
            "severity.json",
            b'{"findings": [{"title": "t", "severity": "Severe"}]}',
            "findings[0]: unknown severity 'Severe'",
        ),
        (
            "results.sarif",
            b'{"version": "2.1.0", "runs": [{"results": {"not": "a list"}}]}',
            "runs[0].results: expected the results (a JSON array)",
        ),
        (
            "risk.xml",
            b'<OWASPZAPReport version="2.11"><site name="http://a"><alerts><alertitem><riskcode>9</riskcode>'
            b"<instances><instance><uri>http://a/</uri></instance></instances></alertitem></alerts></site>"
            b"</OWASPZAPReport>",
            "site[1]/alerts/alertitem[1]/instances/instance[1]: unknown severity '9'",
        ),
    ],
)
def test_bad_values_name_the_item(name: str, data: bytes, where: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"{name}:{where}")):
        parse_file(data, name)


SHAPES = [
    lambda x: {"version": "2.1.0", "runs": x},
    lambda x: {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t", "rules": x}}, "results": [x]}]},
    lambda x: {"SchemaVersion": 2, "ArtifactName": "img", "Results": x},
    lambda x: {"SchemaVersion": 2, "Results": [{"Target": "t", "Vulnerabilities": [x]}]},
    lambda x: {"results": [{"check_id": "c", "extra": x}], "errors": []},
    lambda x: {"findings": [x]},
    lambda x: {"@version": "2.12.0", "site": x},
    lambda x: {"count": 1, "next": None, "results": [{"id": 1, "title": "t", "severity": "Low", "hash_code": x}]},
    # the wave-2 formats: their sniffed shape with an odd value where an item or a field goes
    lambda x: {"matches": [x], "descriptor": {"name": "grype"}, "source": {"target": x}},
    lambda x: {"matches": [{"vulnerability": x, "artifact": {"name": "a"}}], "descriptor": {"name": "grype"}},
    lambda x: {"projectName": "p", "packageManager": "npm", "vulnerabilities": [x]},
    lambda x: {"version": "15.0.0", "vulnerabilities": [x], "scan": x},
    lambda x: {"data": {"repository": {"name": "r", "vulnerabilityAlerts": {"nodes": [x]}}}},
    lambda x: {"results": [{"source": {"path": "p"}, "packages": [x]}]},
    lambda x: {"auditReportVersion": 2, "vulnerabilities": {"a": x}},
    lambda x: {"dependencies": [{"name": "a", "version": "1", "vulns": [x]}]},
    lambda x: {"Findings": [{"SchemaVersion": "2018-10-08", "Severity": x, "Resources": x, "Vulnerabilities": x}]},
    lambda x: {"findings": [{"findingArn": "a", "packageVulnerabilityDetails": x, "resources": x}]},
    lambda x: [{"template-id": "t", "info": {"severity": "low", "classification": x}, "matched-at": x}],
    lambda x: {"issues": [{"rule": "r", "impacts": x, "textRange": x}], "paging": x},
    lambda x: {"results": [{"type": "sast", "similarityId": "1", "data": x, "vulnerabilityDetails": x}], "scanID": 1},
    lambda x: {"reportHeader": {"projectName": "p"}, "scanResults": {"resultsList": [x]}},
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.sampled_from(SHAPES), value=JSON_VALUES)
def test_odd_json_is_parsed_or_refused_never_a_traceback(shape: Callable[[object], object], value: object) -> None:
    try:
        parse_file(json.dumps(shape(value)).encode(), "odd.json")
    except InputError as exc:
        assert str(exc).startswith("odd.json")
