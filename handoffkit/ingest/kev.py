"""The CISA Known Exploited Vulnerabilities catalog: loading it and flagging findings.

The catalog is a user-supplied file (no network at run time), validated against the published
schema's constraints (``handoffkit/schemas/kev.schema.json``, or the published schema file itself
with ``schema_path``). Loading replaces the stored catalog; every finding in any engagement whose
CVE is listed and that is not yet flagged gets ``kev = true`` (with the catalog's earliest due date)
and a ``kev_flagged`` event. Routing applies the KEV override on its next run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select

from handoffkit.errors import InputError, located
from handoffkit.record import findings, schema
from handoffkit.record._jsonschema import jsonschema
from handoffkit.record.canonical import sha256_bytes
from handoffkit.record.inputs import load_json, read_bytes
from handoffkit.record.log import Event, Source, append
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store


@dataclass
class KevLoad:
    catalog_version: str
    entries: int
    added: int
    findings_flagged: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _schema(schema_path: str | Path | None) -> dict[str, Any]:
    if schema_path:
        return load_json(read_bytes(schema_path), str(schema_path))
    return json.loads(resources.files("handoffkit.ingest.schemas").joinpath("kev.schema.json").read_text())


def validate_catalog(doc: Any, source: str, schema_path: str | Path | None = None) -> None:
    """Raise InputError naming the JSON path of the first schema violation."""
    validator = jsonschema.Draft7Validator(_schema(schema_path), format_checker=jsonschema.FormatChecker())
    error = next(iter(sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        raise InputError(
            located(source, path or "(top level)", f"not a KEV catalog per its published schema: {error.message}")
        )


def load(store: Store, path: str | Path, *, actor: str, schema_path: str | Path | None = None) -> KevLoad:
    """Validate and load a KEV catalog file, then flag the findings it lists."""
    actor = require_actor(actor)
    data = read_bytes(path)
    doc = load_json(data, str(path))
    validate_catalog(doc, str(path), schema_path)
    source = Source(str(path), sha256_bytes(data))
    entries = {v["cveID"]: v for v in doc["vulnerabilities"]}
    with store.write() as conn:
        before = set(conn.execute(select(schema.kev.c.cve_id)).scalars())
        conn.execute(delete(schema.kev))
        conn.execute(
            insert(schema.kev),
            [
                {
                    "cve_id": cve,
                    "vendor_project": v.get("vendorProject"),
                    "product": v.get("product"),
                    "name": v.get("vulnerabilityName"),
                    "date_added": date.fromisoformat(v["dateAdded"]),
                    "due_date": date.fromisoformat(v["dueDate"]),
                    "ransomware": v.get("knownRansomwareCampaignUse"),
                    "catalog_version": doc["catalogVersion"],
                }
                for cve, v in entries.items()
            ],
        )
        flagged = _flag(conn, store, actor, source, doc["catalogVersion"])
        added = len(set(entries) - before)
        append(
            conn,
            store,
            [
                Event(
                    type="kev_loaded",
                    actor=actor,
                    source=source,
                    data={
                        "catalog_version": doc["catalogVersion"],
                        "entries": len(entries),
                        "count_field": doc["count"],
                        "added": added,
                        "findings_flagged": flagged,
                    },
                )
            ],
        )
    return KevLoad(doc["catalogVersion"], len(entries), added, flagged)


def _flag(conn, store: Store, actor: str, source: Source, version: str) -> int:
    """Set-based: findings not yet flagged whose CVEs appear in the catalog."""
    f, fc, k = schema.findings, schema.finding_cves, schema.kev
    due = (
        select(fc.c.finding_id, func.min(k.c.due_date).label("due"))
        .join(k, k.c.cve_id == fc.c.cve_id)
        .group_by(fc.c.finding_id)
        .subquery()
    )
    rows = conn.execute(
        select(f, due.c.due)
        .join(due, due.c.finding_id == f.c.finding_id)
        .where(f.c.kev.is_(False))
        .order_by(f.c.number)
    ).all()
    changes = [findings.Change(r._mapping, {"kev": True, "kev_due": r.due}, {"catalog_version": version}) for r in rows]
    findings.change_many(conn, store, changes, type="kev_flagged", actor=actor, source=source)
    return len(changes)
