"""The CISA KEV catalog: validation against the published schema, flagging findings (both backends)."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from handoffkit.demo import formats
from handoffkit.errors import InputError
from handoffkit.ingest import kev, pipeline
from handoffkit.record import schema
from tests.builders import ACTOR


def catalog(path, cves: list[str], due: str = "2026-03-20"):
    path.write_bytes(
        formats.kev_catalog(
            [
                {"cve": c, "vendor": "V", "product": "P", "name": f"{c} flaw", "added": "2026-02-01", "due": due}
                for c in cves
            ],
            "2026.03.01",
            "2026-03-01T12:00:00.000Z",
        )
    )
    return path


def host_scan(path, cves: list[str]):
    items = [
        {
            "port": 443,
            "protocol": "tcp",
            "svc": "www",
            "severity": 1,
            "plugin": 50000 + i,
            "name": f"Vuln {c}",
            "family": "General",
            "cves": [c],
            "vector": None,
            "score": 0,
            "output": "x",
            "description": "d",
            "solution": "s",
        }
        for i, c in enumerate(cves)
    ]
    path.write_bytes(formats.nessus([{"name": "db-1.corp.test", "ip": "10.0.0.5", "items": items}], "weekly"))
    return path


def test_real_catalog_loads_with_the_published_schema(store, corpus_file):
    path = corpus_file("cisa_kev/known_exploited_vulnerabilities.json")
    published = corpus_file("cisa_kev/known_exploited_vulnerabilities_schema.json")
    result = kev.load(store, path, actor=ACTOR, schema_path=published)
    assert (result.catalog_version, result.entries, result.added) == ("2025.08.25", 1404, 1404)


def test_bundled_schema_states_the_published_constraints(corpus_file):
    from importlib import resources

    published = json.loads(corpus_file("cisa_kev/known_exploited_vulnerabilities_schema.json").read_text())
    ours = json.loads(resources.files("handoffkit.ingest.schemas").joinpath("kev.schema.json").read_text())
    assert ours["required"] == published["required"]
    item, theirs = ours["properties"]["vulnerabilities"]["items"], published["$defs"]["vulnerability"]
    assert item["required"] == theirs["required"]
    assert item["properties"]["cveID"]["pattern"] == theirs["properties"]["cveID"]["pattern"]


def test_invalid_catalog_names_the_json_path(store, tmp_path):
    path = catalog(tmp_path / "kev.json", ["CVE-2024-0001", "CVE-2024-0002"])
    doc = json.loads(path.read_text())
    del doc["vulnerabilities"][1]["dueDate"]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"kev\.json:vulnerabilities\[1\]: .*'dueDate' is a required property"):
        kev.load(store, path, actor=ACTOR)
    doc["vulnerabilities"][1]["dueDate"] = "2024-13-45"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"vulnerabilities\[1\]\.dueDate"):
        kev.load(store, path, actor=ACTOR)


def test_later_catalog_flags_existing_findings(store, engagement, tmp_path):
    kev.load(store, catalog(tmp_path / "k1.json", ["CVE-2024-1111"]), actor=ACTOR)
    pipeline.ingest_scan(
        store, engagement, [host_scan(tmp_path / "s.nessus", ["CVE-2024-1111", "CVE-2024-2222"])], actor=ACTOR
    )
    with store.read() as conn:
        flags = dict(conn.execute(select(schema.findings.c.cves, schema.findings.c.kev)).all())
    assert flags == {"CVE-2024-1111": True, "CVE-2024-2222": False}
    result = kev.load(
        store, catalog(tmp_path / "k2.json", ["CVE-2024-1111", "CVE-2024-2222"], due="2026-03-09"), actor=ACTOR
    )
    assert (result.added, result.findings_flagged) == (1, 1)
    with store.read() as conn:
        row = conn.execute(select(schema.findings).where(schema.findings.c.cves == "CVE-2024-2222")).one()
        flagged = conn.execute(select(schema.events.c.finding_id).where(schema.events.c.type == "kev_flagged")).all()
    assert row.kev and row.kev_due == date(2026, 3, 9)
    assert [f.finding_id for f in flagged] == [row.finding_id]
