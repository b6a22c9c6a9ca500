"""Hostile input through every refusal path leaves no byte of itself in the record (issue 20, items 1 and 6).

Each case plants a canary secret in a file that must be refused — a scan, a ticket export, a KEV catalog,
a policy, an owners map, a retest's evidence file — and then dumps every table of the database and the
activity-log export: the canary is nowhere. Scan and ticket refusals are ``failure`` events carrying the
file's name, SHA-256 and size, the place and a fixed reason; the other files of the same command still
load; a refused policy, owners map or catalog writes nothing at all. Every case runs on both backends.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from handoffkit.demo import formats
from handoffkit.errors import ConfigError, InputError, RefusedError
from handoffkit.ingest import kev, pipeline
from handoffkit.record import engagements, inputs, schema
from handoffkit.record.store import Store
from handoffkit.report import log_export
from handoffkit.tickets import snapshots
from handoffkit.workflow import verification
from handoffkit.workflow.evidence_files import EvidenceFiles
from tests.builders import ACTOR, DATA, DONE, SHOP, events, snapshot, ticket

CANARY = "AKIAHKCANARY7F3A9C"
SECRET = f"wJalrXUtnFEMI/{CANARY}/bPxRfiCYEXAMPLEKEY"
#: What is searched for: the canary's core, case-insensitively, in text and in stored bytes decoded.
NEEDLES = (CANARY.lower(), "hkcanary7f3a9c")


def _zap(title: str = "Canary-free alert") -> bytes:
    alert = {"plugin": 40012, "name": title, "risk": 3, "cwe": 79, "wasc": 8, "desc": "d", "solution": "s"}
    alert["instances"] = [{"uri": f"{SHOP}/p", "method": "GET", "param": "q", "evidence": "e"}]
    return formats.zap([{"origin": SHOP, "alerts": [alert]}], "Mon, 2 Mar 2026 08:00:00")


def _sarif_with(level: str) -> bytes:
    run = {
        "tool": {"driver": {"name": "semgrep", "rules": [{"id": "r1"}]}},
        "results": [
            {
                "ruleId": "r1",
                "level": level,
                "message": {"text": "m"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"}}}],
            }
        ],
    }
    return json.dumps({"version": "2.1.0", "runs": [run]}).encode()


TENABLE_HEADER = "Plugin ID,CVE,CVSS v2.0 Base Score,Risk,Host,Protocol,Port,Name,Synopsis,Description,Solution"

#: name → (file name, bytes): scanner files that must be refused, each carrying the canary.
SCAN_CASES: dict[str, tuple[str, bytes]] = {
    "shadow-line-as-csv": ("shadow", f"root:{SECRET}:19000:0:99999:7:::\n".encode()),
    "dotenv": (".env", f"AWS_ACCESS_KEY_ID={CANARY}\nAWS_SECRET_ACCESS_KEY={SECRET}\n".encode()),
    "unknown-json-object": ("x.json", json.dumps({SECRET: CANARY, "token": SECRET}).encode()),
    "unknown-json-array": ("x.json", json.dumps([SECRET, CANARY]).encode()),
    "unknown-xml-root": ("x.xml", f"<{CANARY}><k>{SECRET}</k></{CANARY}>".encode()),
    "raw-nul-in-json": ("nul.json", b'{"a": "' + CANARY.encode() + b'\x00"}'),
    "escaped-nul-in-sarif": ("nul.sarif", _sarif_with("error").replace(b'"m"', f'"{CANARY}\\u0000"'.encode())),
    "nul-in-csv": ("nul.csv", f"{TENABLE_HEADER}\n1,,,High,{CANARY}\x00,tcp,80,n,s,d,x\n".encode()),
    "utf16-odd-length": ("u16.csv", codecs.BOM_UTF16_LE + f"{TENABLE_HEADER}\n{CANARY}".encode("utf-16-le") + b"A"),
    "utf16-lone-surrogate": ("u16s.csv", codecs.BOM_UTF16_LE + CANARY.encode("utf-16-le") + b"\x00\xd8A\x00"),
    "bom-then-invalid-byte": ("bom.csv", codecs.BOM_UTF8 + f"{TENABLE_HEADER}\n".encode() + b"\xff" + SECRET.encode()),
    "bom-then-invalid-json": ("bom.json", codecs.BOM_UTF8 + b'{"k": "\xc3' + SECRET.encode() + b'"}'),
    "latin1-csv-without-fallback": ("l1.csv", f"{TENABLE_HEADER}\n1,,,High,h\xe9{CANARY},tcp".encode("latin-1")),
    "short-last-row": ("cut.csv", f"{TENABLE_HEADER}\n1,,,High,{CANARY},tcp,80,n,s,d,x\n2,,,High,{SECRET}\n".encode()),
    "unbalanced-quote": ("q.csv", f'{TENABLE_HEADER}\n1,,,High,h,tcp,80,n,s,"{SECRET}\n'.encode()),
    "long-row": ("long.csv", f"{TENABLE_HEADER}\n1,,,High,h,tcp,80,n,s,d,x,{SECRET}\n".encode()),
    "xxe-to-secret": (
        "xxe.nessus",
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///{CANARY}">]><r>&x;</r>'.encode(),
    ),
    "entity-with-secret": ("ent.xml", f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "{SECRET}">]><r>&x;</r>'.encode()),
    "malformed-xml": ("bad.xml", f"<NessusClientData_v2><Report name='{SECRET}'>".encode()),
    "duplicate-json-key": ("dup.json", f'{{"{SECRET}": 1, "{SECRET}": 2}}'.encode()),
    "nan-json": ("nan.json", f'{{"{SECRET}": NaN}}'.encode()),
    "truncated-sarif": ("cut.sarif", _sarif_with("error")[:-20].replace(b'"m"', f'"{SECRET}"'.encode())),
    "unknown-severity": ("sev.sarif", _sarif_with(SECRET)),
    "deep-json": ("deep.json", f'{{"{SECRET}":'.encode() + b"[" * 5000 + b"]" * 5000 + b"}"),
    "truncated-nessus": ("cut.nessus", f'<NessusClientData_v2><Report name="{SECRET}"><ReportHost name="h'.encode()),
    "truncated-zap": ("cut.json", _zap(SECRET)[:-7]),
    "xml-char-ref-nul": ("nulref.xml", f"<OWASPZAPReport><site name='{SECRET}'>&#0;</site></OWASPZAPReport>".encode()),
    "utf16-xml-with-nul": ("u16.xml", codecs.BOM_UTF16_LE + f"<r>{SECRET}\x00</r>".encode("utf-16-le")),
    "external-dtd": (
        "ext.xml",
        f'<?xml version="1.0"?><!DOCTYPE issues SYSTEM "http://{CANARY}.test/x.dtd"><issues/>'.encode(),
    ),
    "parameter-entity": (
        "pe.xml",
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///{CANARY}"> %p;]><r/>'.encode(),
    ),
    "sarif-runs-not-a-list": ("shape.sarif", json.dumps({"version": "2.1.0", "runs": SECRET}).encode()),
    "trivy-unknown-severity": (
        "trivy.json",
        formats.trivy(
            "shop:1",
            [
                {
                    "cve": "CVE-2024-1",
                    "pkg": "p",
                    "installed": "1",
                    "fixed": "2",
                    "severity": SECRET,
                    "title": SECRET,
                    "cwe": "CWE-1",
                    "vector": None,
                    "score": None,
                }
            ],
            "2026-03-02T08:00:00Z",
        ),
    ),
    "lone-surrogate-escape": ("sur.sarif", _sarif_with("error").replace(b'"m"', f'"\\ud800{SECRET}"'.encode())),
    "utf32-json": ("u32.json", codecs.BOM_UTF32_LE + f'{{"{SECRET}": 1}}'.encode("utf-32-le")),
    "invalid-utf8-json": ("bad8.json", b'{"k": "\xff' + SECRET.encode() + b'"}'),
    "overlong-utf8": ("over.json", b'{"k": "\xc0\xaf' + SECRET.encode() + b'"}'),
    "json-string-scalar": ("scalar.json", json.dumps(SECRET).encode()),
    "csv-header-only": ("h.csv", f"{CANARY},{SECRET}\n".encode()),
    "only-a-bom": ("bom-only.json", codecs.BOM_UTF8),
    "whitespace-only": ("blank.json", b" \r\n\t \r\n"),
}


def _needles_in(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        texts = [raw.decode("utf-8", "replace"), raw.decode("utf-16-le", "replace"), raw.decode("latin-1")]
    else:
        texts = [str(value)]
    return any(n in t.lower() for t in texts for n in NEEDLES)


def leaks(store: Store) -> list[str]:
    """``table.column`` of every stored value holding the canary (every table, every row)."""
    found = []
    with store.read() as conn:
        for table in schema.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                found += [f"{table.name}.{col}" for col, value in row._mapping.items() if _needles_in(value)]
    return found


def exported_leaks(store: Store, engagement: str, tmp_path: Path) -> bool:
    out = tmp_path / "export.csv"
    log_export.export_log(store, engagement, out, actor=ACTOR)
    return _needles_in(out.read_bytes())


def assert_refusal_event(event: dict, path: Path) -> None:
    data = event["data"]
    assert event["outcome"] == "failure"
    assert (data["file"], data["sha256"], data["size"]) == (
        str(path),
        hashlib.sha256(path.read_bytes()).hexdigest(),
        path.stat().st_size,
    )
    assert data["reason"] and data["kind"] == "InputError"
    assert data["place"] is None or data["place"][0].isdigit() or data["place"].startswith("byte ")


# ------------------------------------------------------------------------------------------------ scans


@pytest.mark.parametrize("case", sorted(SCAN_CASES))
def test_a_refused_scan_leaves_no_byte_and_the_next_file_loads(store, engagement, tmp_path, case):
    name, data = SCAN_CASES[case]
    hostile, good = tmp_path / name, tmp_path / "good-zap.json"
    hostile.write_bytes(data)
    good.write_bytes(_zap())
    results = pipeline.ingest_scan(store, engagement, [hostile, good], actor=ACTOR)
    assert [r.status for r in results] == ["failed", "ok"], results[0].error
    assert results[0].error.startswith(str(hostile)) and "\n" not in results[0].error
    [refused] = events(store, "scan_refused")
    assert_refusal_event(refused, hostile)
    assert leaks(store) == []
    assert not exported_leaks(store, engagement, tmp_path)


def _special_path(kind: str, tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_text(f"root:{SECRET}:19000::\n")
    if kind == "symlink-to-secret":
        (tmp_path / "scan.csv").symlink_to(secret)
        return tmp_path / "scan.csv"
    if kind == "directory":
        return secret.parent
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe.json")
        return tmp_path / "pipe.json"
    if kind == "missing":
        return tmp_path / "missing.json"
    return Path("/dev/null")


@pytest.mark.parametrize("kind", ["symlink-to-secret", "directory", "fifo", "device", "missing"])
def test_a_path_that_is_no_regular_scan_file_fails_alone(store, engagement, tmp_path, kind):
    path = _special_path(kind, tmp_path)
    good = tmp_path / "good-zap.json"
    good.write_bytes(_zap())
    results = pipeline.ingest_scan(store, engagement, [path, good], actor=ACTOR)
    assert [r.status for r in results] == ["failed", "ok"]
    [refused] = events(store, "scan_refused")
    assert refused["data"]["file"] == str(path) and refused["data"]["reason"]
    assert leaks(store) == []


def test_a_file_over_the_cap_is_refused_unread(store, engagement, tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "DEFAULT_MAX_BYTES", 64)
    big = tmp_path / "big.json"
    big.write_bytes(json.dumps({"k": SECRET * 10}).encode())
    [result] = pipeline.ingest_scan(store, engagement, [big], actor=ACTOR)
    assert result.status == "failed" and "cap" in result.error
    assert events(store, "scan_refused")[0]["data"]["reason"] == "over the size cap"
    assert leaks(store) == []


def test_a_batch_the_gate_refuses_keeps_counts_not_values(store, engagement, tmp_path, monkeypatch):
    from handoffkit.ingest import detect
    from handoffkit.record.model import NormalisedFinding, ParseResult

    bad = NormalisedFinding(
        fingerprint="f1",
        title=SECRET,
        asset_ref=SHOP,
        tool="zap",
        severity="high",
        raw_severity="High",
        cves=(f"CVE-{CANARY}",),
        source_ref=f"item {CANARY}",
        raw=SECRET.encode(),
    )
    monkeypatch.setattr(detect, "parse_file", lambda *a, **k: ParseResult("zap", "zap", records=[bad]))
    path = tmp_path / "scan.json"
    path.write_bytes(_zap())
    [result] = pipeline.ingest_scan(store, engagement, [path], actor=ACTOR)
    assert result.status == "failed" and CANARY in result.error  # the person sees what failed …
    assert leaks(store) == []  # … the record keeps only that it failed, where, and how many rows


# ---------------------------------------------------------------------------------------------- tickets

TICKET_CASES: dict[str, tuple[str, Callable[[], bytes]]] = {
    **{f"scan-{k}": (name, (lambda d=data: d)) for k, (name, data) in SCAN_CASES.items() if "csv" in name},
    "jira-cut-mid-row": (
        "jira.csv",
        lambda: formats.jira_csv([ticket("jira", 1, ["HK-1"]), ticket("jira", 2, ["HK-2"], title=SECRET)])[:-60],
    ),
    "jira-unbalanced-quote": (
        "jira.csv",
        lambda: formats.jira_csv([ticket("jira", 1, ["HK-1"], title=f'{SECRET} "x')]).replace(b'""x', b'"x')[:-10],
    ),
    "jira-nul": ("jira.csv", lambda: formats.jira_csv([ticket("jira", 1, ["HK-1"], title=f"{SECRET}\x00")])),
    "github-nul-escape": (
        "gh.json",
        lambda: formats.github_issues([ticket("github", 1, ["HK-1"], title=SECRET)]).replace(
            SECRET.encode(), f"{SECRET}\\u0000".encode()
        ),
    ),
    "github-truncated": ("gh.json", lambda: formats.github_issues([ticket("github", 1, ["HK-1"], title=SECRET)])[:-5]),
    "servicenow-duplicate-key": ("sn.json", lambda: f'{{"records": [], "records": ["{SECRET}"]}}'.encode()),
    "servicenow-utf16-odd": ("sn.json", lambda: codecs.BOM_UTF16_LE + f'{{"{SECRET}": 1}}'.encode("utf-16-le") + b"{"),
    "jira-long-row": ("jira.csv", lambda: formats.jira_csv([ticket("jira", 1, ["HK-1"])]) + f"{SECRET},".encode() * 40),
    "jira-not-an-export": ("jira.csv", lambda: f"{CANARY},x\n{SECRET},y\n".encode()),
    "github-not-an-export": ("gh.json", lambda: json.dumps({"token": SECRET}).encode()),
    "servicenow-nan": ("sn.json", lambda: f'{{"records": [{{"number": "{SECRET}", "x": NaN}}]}}'.encode()),
    "servicenow-bom-invalid": ("sn.json", lambda: codecs.BOM_UTF8 + b'{"records": ["\xff' + SECRET.encode() + b'"]}'),
}
SYSTEM_OF = {"jira.csv": "jira", "gh.json": "github", "sn.json": "servicenow"}


@pytest.mark.parametrize("case", sorted(TICKET_CASES))
def test_a_refused_ticket_export_leaves_no_byte_and_the_next_file_loads(store, routed, tmp_path, case):
    name, build = TICKET_CASES[case]
    system = SYSTEM_OF.get(name, "jira")
    hostile, good = tmp_path / name, tmp_path / "good-export.csv"
    hostile.write_bytes(build())
    good.write_bytes(formats.jira_csv([ticket("jira", 7, [routed[0]])]))
    before = snapshot(store)
    results = snapshots.ingest_tickets(store, "ACME", [hostile], system=system, actor=ACTOR)
    assert [r.status for r in results] == ["failed"], results[0].error
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k not in ("events", "chain_head")} == {
        k: v for k, v in before.items() if k not in ("events", "chain_head")
    }
    [refused] = events(store, "ticket_import_refused")
    assert_refusal_event(refused, hostile)
    [ok] = snapshots.ingest_tickets(store, "ACME", [good], system="jira", actor=ACTOR)
    assert ok.status == "ok" and ok.linked == 1
    assert leaks(store) == []
    assert not exported_leaks(store, "ACME", tmp_path)


def test_the_same_export_twice_is_one_duplicate_event_and_no_snapshot(store, routed, tmp_path):
    path = tmp_path / "jira.csv"
    path.write_bytes(formats.jira_csv([ticket("jira", 1, [routed[0]]) | DONE]))
    [first] = snapshots.ingest_tickets(store, "ACME", [path], system="jira", actor=ACTOR)
    before = snapshot(store)
    again = tmp_path / "jira-copy.csv"
    again.write_bytes(path.read_bytes())
    [second] = snapshots.ingest_tickets(store, "ACME", [again], system="jira", actor=ACTOR)
    assert (first.status, second.status) == ("ok", "duplicate")
    after = snapshot(store)
    assert (after["tickets"], after["ticket_imports"], after["links"]) == (
        before["tickets"],
        before["ticket_imports"],
        before["links"],
    )
    assert after["events"] == before["events"] + 1
    [dup] = events(store, "ticket_import_duplicate")
    assert dup["data"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(events(store, "ticket_closed_observed")) == 1
    # the same bytes under another system are not that system's duplicate
    [other] = snapshots.ingest_tickets(store, "ACME", [again], system="servicenow", actor=ACTOR)
    assert other.status == "failed"


# ------------------------------------------------------------------------------------------------- KEV

KEV_CASES: dict[str, bytes] = {
    "not-json": f"cveID,{SECRET}\n".encode(),
    "schema-violation": json.dumps(
        {"title": "t", "catalogVersion": SECRET, "dateReleased": CANARY, "count": 1, "vulnerabilities": [{}]}
    ).encode(),
    "bad-cve": formats.kev_catalog(
        [
            {
                "cve": f"CVE-{CANARY}",
                "vendor": "v",
                "product": "p",
                "name": "n",
                "added": "2026-01-01",
                "due": "2026-02-01",
            }
        ],
        "2026.01.01",
        "2026-01-01T00:00:00.000Z",
    ),
    "nul": json.dumps({"title": f"{SECRET}\x00"}).encode(),
    "duplicate-key": f'{{"title": "{SECRET}", "title": "x"}}'.encode(),
    "utf16-odd": codecs.BOM_UTF16_LE + f'{{"title": "{SECRET}"}}'.encode("utf-16-le") + b"}",
    "bom-invalid": codecs.BOM_UTF8 + b'{"title": "\xfe' + SECRET.encode() + b'"}',
    "nan": f'{{"title": "{SECRET}", "count": NaN}}'.encode(),
    "deep": f'{{"title": "{SECRET}", "x": '.encode() + b"[" * 5000 + b"]" * 5000 + b"}",
    "xml-instead": f"<catalog>{SECRET}</catalog>".encode(),
}


@pytest.mark.parametrize("case", sorted(KEV_CASES))
def test_a_refused_kev_catalog_writes_nothing(store, engagement, tmp_path, case):
    path = tmp_path / "kev.json"
    path.write_bytes(KEV_CASES[case])
    before = snapshot(store)
    with pytest.raises(InputError) as refused:
        kev.load(store, path, actor=ACTOR)
    assert str(refused.value).startswith(str(path)) and "\n" not in str(refused.value)
    assert snapshot(store) == before and leaks(store) == []


# ----------------------------------------------------------------------------------- policy and owners

POLICY = (DATA / "policy.yaml").read_text()
POLICY_CASES: dict[str, tuple[bytes, str]] = {
    "binary": (b"\x7fELF\x02\x01\x01\x00" + SECRET.encode(), r":1: a NUL character"),
    "nul-mid-file": (POLICY.encode() + b"\n# " + SECRET.encode() + b"\x00\n", r":\d+: a NUL character"),
    "not-utf8": (POLICY.encode() + b"\n# \xff" + SECRET.encode(), r":\d+ \(byte \d+\): not UTF-8"),
    "utf16-policy": (codecs.BOM_UTF16_LE + POLICY.encode("utf-16-le"), r":1 \(byte 0\): not UTF-8"),
    "duplicate-top-key": (POLICY.encode() + b"\nrouting: {}\n", r":\d+:1: key 'routing' appears twice"),
    "duplicate-nested-key": (
        POLICY.replace("    info:", "    high: {disposition: ticket, sla_days: 1}\n    info:").encode(),
        r":\d+:5: key 'high' appears twice",
    ),
    "sla-beyond-3650": (POLICY.replace("sla_days: 60", "sla_days: 36500").encode(), r":\d+: routing\.bands\.high"),
    "kev-sla-beyond-3650": (
        POLICY.replace("sla_days: 14,", "sla_days: 3651,").encode(),
        r":\d+: routing\.kev_override\.sla_days",
    ),
    "unknown-key-is-a-secret": (POLICY.encode() + f"\n{CANARY}: {SECRET}\n".encode(), r":\d+: .*unknown key"),
    "secret-as-a-value": (
        POLICY.replace("cadence: weekly", f"cadence: {SECRET}").encode(),
        r":\d+: reconciliation.cadence: .* is not allowed",
    ),
    "invalid-yaml": (POLICY.encode() + f"\n  bad: [{SECRET}\n".encode(), r":\d+:\d+: not valid YAML"),
    "alias-bomb": (
        b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        b"e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
        r":\d+: .*unknown key",
    ),
    "a-list-not-a-mapping": (f"- {SECRET}\n".encode(), r":1: expected a mapping"),
    "python-object-tag": (
        POLICY.encode() + f'\nx: !!python/object/apply:os.system ["echo {SECRET}"]\n'.encode(),
        r":\d+:\d+: not valid YAML",
    ),
    "tab-indentation": (POLICY.encode() + f"\nrouting:\n\tbands: {SECRET}\n".encode(), r":\d+:\d+: not valid YAML"),
    "huge-sla": (POLICY.replace("sla_days: 60", "sla_days: 1000000000000000000000").encode(), r":\d+: routing\.bands"),
    "negative-sla": (POLICY.replace("sla_days: 60", "sla_days: -60").encode(), r":\d+: routing\.bands\.high"),
    "sla-as-words": (POLICY.replace("sla_days: 60", f"sla_days: {SECRET}").encode(), r":\d+: routing\.bands\.high"),
}


@pytest.mark.parametrize("kind", ["device", "fifo", "directory", "missing"])
def test_a_policy_path_that_is_no_regular_file_is_one_line(store, tmp_path, kind):
    path = {"device": Path("/dev/zero"), "directory": tmp_path, "missing": tmp_path / "nope.yaml"}.get(kind)
    if kind == "fifo":
        path = tmp_path / "policy.yaml"
        os.mkfifo(path)  # opened for reading, a pipe without a writer would block for ever
    before = snapshot(store)
    with pytest.raises(ConfigError, match=rf"^{path}: (not a regular file|cannot read the policy)") as refused:
        engagements.init(store, "ACME", path, actor=ACTOR)
    assert "\n" not in str(refused.value) and snapshot(store) == before


@pytest.mark.parametrize("case", sorted(POLICY_CASES))
def test_a_bad_policy_is_one_line_with_its_place_and_writes_nothing(store, tmp_path, case):
    data, place = POLICY_CASES[case]
    path = tmp_path / "policy.yaml"
    path.write_bytes(data)
    before = snapshot(store)
    with pytest.raises(ConfigError, match=rf"^{path}{place}") as refused:
        engagements.init(store, "ACME", path, owners_path=DATA / "owners.csv", actor=ACTOR)
    assert "\n" not in str(refused.value)
    assert snapshot(store) == before and leaks(store) == []


def test_an_engagement_key_longer_than_its_column_is_refused(store):
    width = schema.engagements.c.key.type.length
    with pytest.raises(ConfigError, match=rf"is {width + 1} characters; expected at most {width}"):
        engagements.init(store, "K" * (width + 1), DATA / "policy.yaml", actor=ACTOR)
    engagements.init(store, "K" * width, DATA / "policy.yaml", actor=ACTOR)  # exactly the width fits
    assert [e["engagement"] for e in events(store, "engagement_created")] == ["K" * width]


HEADER = "asset_ref,owner_role,owner_team,owner_name,exposure,data_sensitivity,lifecycle"
OWNERS_CASES: dict[str, bytes] = {
    "bad-choice": f"{HEADER}\nhttps://a.test,r,t,n,{SECRET},high,active\n".encode(),
    "short-last-row": f"{HEADER}\nhttps://a.test,r,t,n,internet,high,active\nhttps://{SECRET},r\n".encode(),
    "unbalanced-quote": f'{HEADER}\nhttps://a.test,r,t,"{SECRET},internet,high,active\n'.encode(),
    "nul": f"{HEADER}\nhttps://a.test,r,t,{SECRET}\x00,internet,high,active\n".encode(),
    "not-utf8": f"{HEADER}\nhttps://a.test,r,t,".encode() + b"\xff" + SECRET.encode() + b",internet,high,active\n",
    "missing-column": f"asset_ref,{CANARY}\nhttps://a.test,{SECRET}\n".encode(),
    "duplicate-asset": f"{HEADER}\n{SECRET},r,t,n,internet,high,active\n{SECRET},r,t,n,internet,high,active\n".encode(),
    "empty-asset": f"{HEADER}\n,r,t,{SECRET},internet,high,active\n".encode(),
    "utf16-odd": codecs.BOM_UTF16_LE + f"{HEADER}\n{SECRET}".encode("utf-16-le") + b"x",
    "bom-invalid": codecs.BOM_UTF8
    + f"{HEADER}\n".encode()
    + b"\xfe"
    + SECRET.encode()
    + b",r,t,n,internet,high,active\n",
    "bad-lifecycle": f"{HEADER}\nhttps://a.test,r,t,n,internet,high,{SECRET}\n".encode(),
}


@pytest.mark.parametrize("case", sorted(OWNERS_CASES))
def test_a_bad_owners_map_is_one_line_and_writes_nothing(store, tmp_path, case):
    path = tmp_path / "owners.csv"
    path.write_bytes(OWNERS_CASES[case])
    before = snapshot(store)
    with pytest.raises(ConfigError, match=rf"^{path}:\d+") as refused:
        engagements.init(store, "ACME", DATA / "policy.yaml", owners_path=path, actor=ACTOR)
    assert "\n" not in str(refused.value)
    assert snapshot(store) == before and leaks(store) == []


# ----------------------------------------------------------------------------------- retest evidence

EVIDENCE_CASES = (
    "absolute-outside",
    "relative-outside",
    "dot-dot",
    "symlink-out",
    "symlinked-directory-out",
    "fifo",
    "directory",
    "device",
    "etc-shadow",
    "proc-environ",
    "over-cap",
    "no-directory-configured",
    "directory-missing",
    "symlink-chain-out",
    "home-tilde",
    "root-directory",
)


def _evidence(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, EvidenceFiles]:
    root, outside = tmp_path / "evidence", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "shadow"
    secret.write_text(f"root:{SECRET}:19000::\n")
    files = EvidenceFiles(root, max_bytes=64)
    if case == "absolute-outside":
        return str(secret), files
    if case == "relative-outside":
        monkeypatch.chdir(outside)
        return "shadow", files
    if case == "dot-dot":
        return str(root / ".." / "outside" / "shadow"), files
    if case == "symlink-out":
        (root / "report.txt").symlink_to(secret)
        return "report.txt", files
    if case == "symlinked-directory-out":
        (root / "q3").symlink_to(outside, target_is_directory=True)
        return str(root / "q3" / "shadow"), files
    if case == "fifo":
        os.mkfifo(root / "pipe")
        return str(root / "pipe"), files
    if case == "directory":
        (root / "sub").mkdir()
        return str(root / "sub"), files
    if case == "device":
        return "/dev/zero", files
    if case == "etc-shadow":
        return "/etc/shadow" if Path("/etc/shadow").exists() else "/etc/passwd", files
    if case == "proc-environ":
        return "/proc/self/environ", files
    if case == "over-cap":
        (root / "big.txt").write_text(SECRET * 10)
        return "big.txt", files
    if case == "symlink-chain-out":
        (root / "hop").symlink_to(tmp_path / "hop2")
        (tmp_path / "hop2").symlink_to(secret)
        return str(root / "hop"), files
    if case == "home-tilde":
        monkeypatch.setenv("HOME", str(outside))
        return "~/shadow", files
    if case == "root-directory":
        return "/", files
    if case == "no-directory-configured":
        return str(secret), EvidenceFiles(None)
    return str(secret), EvidenceFiles(tmp_path / "nowhere")


@pytest.mark.parametrize("case", EVIDENCE_CASES)
def test_retest_evidence_outside_the_directory_is_refused_unread(store, routed, tmp_path, monkeypatch, case):
    monkeypatch.setenv("HK_TEST_CANARY", SECRET)  # what /proc/self/environ would give away
    given, files = _evidence(case, tmp_path, monkeypatch)
    with pytest.raises(RefusedError) as refused:
        verification.verify(store, routed[0], kind="retest", evidence=given, actor=ACTOR, evidence_files=files)
    assert "\n" not in str(refused.value)
    [denied] = events(store, "finding_verified_closed", outcome="denied")
    assert denied["finding_id"] == routed[0]
    with store.read() as conn:
        assert conn.execute(select(schema.evidence).where(schema.evidence.c.kind == "retest")).all() == []
    assert leaks(store) == []
    assert not exported_leaks(store, "ACME", tmp_path)


def test_a_file_inside_the_directory_is_kept_by_hash_and_name(store, routed, tmp_path):
    root = tmp_path / "evidence"
    (root / "q3").mkdir(parents=True)
    (root / "q3" / "retest.txt").write_text("not reproducible after the fix")
    (root / "latest.txt").symlink_to(root / "q3" / "retest.txt")  # a link that stays inside is followed
    out = verification.verify(
        store, routed[0], kind="retest", evidence="latest.txt", actor=ACTOR, evidence_files=EvidenceFiles(root)
    )
    with store.read() as conn:
        row = conn.execute(select(schema.evidence).where(schema.evidence.c.evidence_id == out["evidence_id"])).one()
    assert (row.location, row.sha256, row.media_type) == (
        "q3/retest.txt",
        hashlib.sha256(b"not reproducible after the fix").hexdigest(),
        "text/plain",
    )


def test_text_evidence_naming_no_file_is_still_text(store, routed, tmp_path):
    out = verification.verify(
        store,
        routed[0],
        kind="retest",
        evidence="run:manual-12 retested by hand: no longer reproducible",  # a retest text names its tool run
        actor=ACTOR,
        evidence_files=EvidenceFiles(tmp_path),
    )
    assert out["state"] == "verified_closed"
