"""The registry walk: every format keeps the parser contract, is documented, refuses hostile variants of its
own samples, and reads at least one real corpus file to the count SOURCES.md gives."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pytest

from handoffkit.errors import InputError
from handoffkit.ingest.detect import parse_file
from handoffkit.ingest.registry import FORMATS, PARSERS, Parser
from tests.builders import DATA, ROOT, corpus_scans
from tests.ingest.test_corpus import FOLDERS, counted

SAMPLES: dict[str, tuple[str, ...]] = {
    "sarif": ("sarif_two_runs.sarif",),
    "nessus": ("nessus_small.xml",),
    "tenable-csv": ("tenable_io.csv", "tenable_semicolon.csv", "tenable_vm.csv"),
    "qualys": ("qualys_small.xml", "qualys_small.csv"),
    "nexpose": ("nexpose_small.xml",),
    "openvas": ("openvas_small.xml", "openvas_small.csv"),
    "grype": ("grype_small.json",),
    "snyk": ("snyk_small.json",),
    "gitlab": ("gitlab_small.json",),
    "github-dependabot": ("github_dependabot_rest.json",),
    "osv-scanner": ("osv_scanner_small.json",),
    "npm-audit": ("npm_audit_small.json",),
    "pip-audit": ("pip_audit_old.json",),
    "asff": ("asff_small.json",),
    "aws-inspector2": ("inspector2_small.json",),
    "wiz": ("wiz_issues.csv", "wiz_vulnerabilities.csv"),
    "nuclei": ("nuclei_small.jsonl",),
    "sonarqube": ("sonarqube_hotspots.json",),
    "veracode": ("veracode_small.xml",),
    "checkmarx-one": ("checkmarx_one_api.json",),
    "qualys-was": ("qualys_was_small.xml",),
    "zap": ("zap_legacy_1_4.xml", "zap_small.json"),
    "trivy": ("trivy_k8s_cluster.json",),
    "semgrep": ("semgrep_small.json",),
    "burp": ("burp_small.xml",),
    "generic": ("generic_small.csv", "generic_small.json"),
    "defectdojo": ("defectdojo_findings_page.json",),
}
"""Format → its hand-written samples under tests/data/scans, one or more per container it reads."""

NO_CORPUS = {
    "defectdojo": "the corpus holds no DefectDojo findings-API export",
}
"""Formats the shared corpus has no file of, and why (the test checks that stays true)."""

SCANS = DATA / "scans"
CASES = [(fmt, name) for fmt, names in SAMPLES.items() for name in names]
DEEP = 50_000
"""Deeper than any real export and than the interpreter's recursion limit."""


def container(text: str) -> str:
    return {"{": "json", "[": "json", "<": "xml"}.get(text.lstrip()[0], "csv")


def sample_text(name: str) -> str:
    data = (SCANS / name).read_bytes()
    boms = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    for bom, codec in boms:
        if data.startswith(bom):
            return data.decode(codec)
    return data.decode("utf-8")


def refused(data: bytes, name: str) -> str:
    with pytest.raises(InputError) as caught:
        parse_file(data, name)
    message = str(caught.value)
    assert message.startswith(f"{name}"), message
    return message


# ------------------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_keeps_the_parser_contract(fmt: str) -> None:
    parser = PARSERS[fmt]
    assert isinstance(parser, Parser)
    assert fmt == parser.FORMAT
    assert parser.CONTAINERS and set(parser.CONTAINERS) <= {"json", "xml", "csv"}
    assert parser.sniff(None) is False and parser.sniff({}) is False and parser.sniff([]) is False


def test_a_module_missing_parse_is_not_a_parser() -> None:
    class Half:
        FORMAT, CONTAINERS = "half", ("json",)

        def sniff(self, doc: object) -> bool:
            return False

    assert not isinstance(Half(), Parser)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_documented_with_its_record_rule(fmt: str) -> None:
    doc = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| [^|]+ \| `{re.escape(fmt)}` \|", doc, re.MULTILINE), f"{fmt}: no row in the formats table"
    section = re.search(rf"^## {re.escape(fmt)}\b.*?(?=^## |\Z)", doc, re.MULTILINE | re.DOTALL)
    assert section, f"{fmt}: no '## {fmt}' section in docs/formats.md"
    for part in ("**Record**", "**Sniff**", "**Severity**", "**Fingerprint**"):
        assert part in section.group(0), f"{fmt}: its section says nothing under {part}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_has_a_sample_of_each_container_it_reads(fmt: str) -> None:
    names = SAMPLES.get(fmt, ())
    assert {container(sample_text(n)) for n in names} == set(PARSERS[fmt].CONTAINERS)
    for name in names:
        assert parse_file((SCANS / name).read_bytes(), name).format == fmt


def test_samples_name_only_registered_formats() -> None:
    assert set(SAMPLES) == set(FORMATS) and set(NO_CORPUS) <= set(FORMATS)


# ------------------------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(("fmt", "name"), CASES)
def test_truncated_sample_is_refused(fmt: str, name: str) -> None:
    text = sample_text(name)
    if container(text) == "csv":
        # a cut inside a quoted cell is what a truncated CSV export looks like (a cut between rows is a
        # shorter file, undetectable): CSV samples carry a quoted cell
        quote = text.index('"', text.index("\n"))
        cuts = [quote + 1]
    else:
        cuts = [len(text) // 3, len(text) // 2, 2 * len(text) // 3]
    for cut in cuts:
        message = refused(text[:cut].encode(), name)
        assert re.match(rf"{re.escape(name)}:\d+", message), message


@pytest.mark.parametrize(("fmt", "name"), CASES)
def test_wrong_encoding_is_refused(fmt: str, name: str) -> None:
    text = sample_text(name)
    data = text.encode()
    kind = container(text)
    if kind == "xml":  # inside the root element's text, where only the encoding can be wrong
        at = re.search(rb"<(?![?!])[^>]*>", data).end()
    else:  # the first data row of a CSV, the first string of a JSON document
        at = data.index(b"\n") + 1 if kind == "csv" else data.index(b'"') + 1
    latin1 = data[:at] + "é".encode("cp1252") + data[at:]
    message = refused(latin1, name)
    assert re.search(r"not (valid )?UTF-8|not well-formed|invalid", message), message
    without_bom = text.encode("utf-16-le")
    if kind == "xml" and "encoding=" not in text.split("\n", 1)[0]:
        # XML 1.0 appendix F: UTF-16 is recognised from "<?" / "<" without a BOM, unless a declaration says otherwise
        assert len(parse_file(without_bom, name).records) == len(parse_file(data, name).records)
    else:  # JSON (RFC 8259) and our CSV exports are UTF-8, or UTF-16 only with its byte-order mark
        refused(without_bom, name)


@pytest.mark.parametrize(("fmt", "name"), [c for c in CASES if container(sample_text(c[1])) == "json"])
def test_deep_json_nesting_is_refused_and_shallow_extra_nesting_ignored(fmt: str, name: str) -> None:
    text = sample_text(name)
    start = text.index(text.lstrip()[0]) + 1
    extra = "[" * DEEP + "]" * DEEP
    insert = f'"~nested": {extra},' if text.lstrip()[0] == "{" else f"{extra},"
    message = refused((text[:start] + insert + text[start:]).encode(), name)
    assert "nested" in message
    if text.lstrip()[0] == "{":
        expected = len(parse_file(text.encode(), name).records)
        shallow = '"~nested": ' + "[" * 100 + "]" * 100 + ","
        assert len(parse_file((text[:start] + shallow + text[start:]).encode(), name).records) == expected


@pytest.mark.parametrize(("fmt", "name"), [c for c in CASES if container(sample_text(c[1])) == "xml"])
def test_deep_xml_nesting_is_read_or_refused_never_a_crash(fmt: str, name: str) -> None:
    text = sample_text(name)
    root = re.search(r"<(?![?!])[^>]*>", text)
    at = root.end()
    deep = "<deep>" * DEEP + "</deep>" * DEEP
    expected = len(parse_file(text.encode(), name).records)
    try:
        result = parse_file((text[:at] + deep + text[at:]).encode(), name)
    except InputError as exc:
        assert str(exc).startswith(name)
    else:
        assert len(result.records) == expected


@pytest.mark.parametrize(("fmt", "name"), [c for c in CASES if container(sample_text(c[1])) == "xml"])
@pytest.mark.parametrize(
    "declaration",
    [
        '<!DOCTYPE {root} [<!ENTITY boom "boom">]>',
        '<!DOCTYPE {root} [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE {root} SYSTEM "http://attacker.example/x.dtd">',
    ],
    ids=["entity", "xxe", "external-dtd"],
)
def test_xml_entities_and_external_references_are_refused(fmt: str, name: str, declaration: str) -> None:
    text = sample_text(name)
    root = re.search(r"<(?![?!])([\w:.-]+)", text)
    doctype = re.search(r"<!DOCTYPE[^\[>]*(\[.*?\]\s*)?>", text, re.DOTALL)
    body = text[: doctype.start()] + text[doctype.end() :] if doctype else text
    at = body.index(f"<{root.group(1)}")
    hostile = body[:at] + declaration.format(root=root.group(1)) + "\n" + body[at:]
    assert "refused hostile XML" in refused(hostile.encode(), name)


# ------------------------------------------------------------------------------------------ corpus


@pytest.mark.corpus
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_a_corpus_file_to_the_sources_count(corpus: Path, fmt: str) -> None:
    mine = [s for s in corpus_scans() if FOLDERS.get(s.file.split("/", 1)[0]) == fmt and s.size]
    if fmt in NO_CORPUS:
        assert not mine, f"{fmt} has corpus files now: drop it from NO_CORPUS"
        return
    assert mine, f"{fmt}: no corpus folder maps to it in test_corpus.FOLDERS"
    matches = [s for s in mine if counted(parse_file((corpus / s.file).read_bytes(), s.file)) == s.count]
    assert matches, f"{fmt}: no corpus file parses to its SOURCES.md count"
