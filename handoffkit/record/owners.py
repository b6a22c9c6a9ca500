"""Assets and their owners: the owners map (``params/owners.csv``) and owner resolution.

Resolution rule (also in docs/policy.md, "The owners map"): an asset reference first matches an
owners-map row with exactly the same ``asset_ref`` (case-insensitive); otherwise the first *pattern*
row, in file order, whose glob (``*``, ``?``, ``[...]``, matched case-insensitively with
:func:`fnmatch.fnmatchcase`) matches it. A reference also matches through its parents (:func:`parents`):
a URL through its origin, ``host:port`` through the host, a package in an image (``image pkg:name@1.0``)
through the image. An owner is *resolved* only when the row names both a role and a team and that team
is not one of the policy's shared queues; anything else pauses the finding (``paused_no_owner``) — it
never routes into a shared queue.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from handoffkit.errors import ConfigError, InputError
from handoffkit.record import schema
from handoffkit.record.inputs import read_bytes, read_csv

COLUMNS = ("asset_ref", "owner_role", "owner_team", "owner_name", "exposure", "data_sensitivity", "lifecycle")
EXPOSURES = ("internet", "internal", "isolated")
SENSITIVITIES = ("high", "medium", "low")
LIFECYCLES = ("active", "decommissioning")
_GLOB = set("*?[")


@dataclass(frozen=True, slots=True)
class Owner:
    """Who owns an asset, and the asset's context (used for routing and environmental CVSS)."""

    asset_ref: str
    owner_role: str | None
    owner_team: str | None
    owner_name: str | None
    exposure: str | None
    data_sensitivity: str | None
    lifecycle: str


def load_owners(path: str | Path) -> tuple[list[dict[str, Any]], bytes]:
    """Read and validate an owners map; returns the rows and the file's bytes (for its SHA-256)."""
    data = read_bytes(path)
    try:
        table = read_csv(data, str(path))
    except InputError as exc:
        raise ConfigError(str(exc), reason=exc.reason) from exc
    missing = [c for c in COLUMNS if c not in table.headers]
    if missing:
        raise ConfigError(f"{path}:1: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    rows, seen = [], set()
    for position, (row, line) in enumerate(zip(table.rows, table.lines, strict=True)):
        clean = {c: (row.get(c) or "").strip() or None for c in COLUMNS}
        ref = clean["asset_ref"]
        if not ref:
            raise ConfigError(f"{path}:{line}: asset_ref is empty; every row names an asset or a pattern")
        if ref.casefold() in seen:
            raise ConfigError(f"{path}:{line}: asset_ref {ref!r} appears twice; keep one row per asset")
        seen.add(ref.casefold())
        _check_choice(path, line, "exposure", clean["exposure"], EXPOSURES)
        _check_choice(path, line, "data_sensitivity", clean["data_sensitivity"], SENSITIVITIES)
        clean["lifecycle"] = clean["lifecycle"] or "active"
        _check_choice(path, line, "lifecycle", clean["lifecycle"], LIFECYCLES)
        clean["is_pattern"] = bool(_GLOB & set(ref))
        clean["position"] = position
        rows.append(clean)
    return rows, data


def _check_choice(path: str | Path, line: int, column: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise ConfigError(
            f"{path}:{line}: {column} {value!r} is not allowed; expected one of {', '.join(allowed)} (or empty)"
        )


def replace_assets(conn: Connection, engagement: str, rows: list[dict[str, Any]]) -> None:
    """Make the engagement's assets exactly ``rows`` (the caller logs the event)."""
    conn.execute(delete(schema.assets).where(schema.assets.c.engagement == engagement))
    if rows:
        conn.execute(insert(schema.assets), [{**r, "engagement": engagement} for r in rows])


def owner_map(conn: Connection, engagement: str) -> list[Owner]:
    """The engagement's owners-map rows in file order."""
    a = schema.assets.c
    result = conn.execute(select(schema.assets).where(a.engagement == engagement).order_by(a.position))
    return [
        Owner(r.asset_ref, r.owner_role, r.owner_team, r.owner_name, r.exposure, r.data_sensitivity, r.lifecycle)
        for r in result
    ]


def resolve(owners: list[Owner], asset_refs: list[str]) -> dict[str, Owner | None]:
    """Map each distinct asset reference to its owners-map row (see the module docstring), or None.

    Work is per distinct asset, not per finding: a programme has far fewer assets than findings.
    """
    exact = {o.asset_ref.casefold(): o for o in owners if not _GLOB & set(o.asset_ref)}
    patterns = [(o.asset_ref.casefold(), o) for o in owners if _GLOB & set(o.asset_ref)]
    out: dict[str, Owner | None] = {}
    for ref in set(asset_refs):
        key = ref.casefold()
        found = next((exact[p] for p in parents(key) if p in exact), None)
        if found is None:
            # Patterns match through the parents too: ``db-1.corp.test:5432`` is on ``db-*.corp.test``.
            found = next((o for pat, o in patterns if any(fnmatch.fnmatchcase(p, pat) for p in parents(key))), None)
        out[ref] = found
    return out


def parents(ref: str) -> list[str]:
    """The reference itself, then what it belongs to: a URL's origin, ``host:port``'s host, and the
    image a ``image pkg:name@1.0`` package reference sits in."""
    out = [ref]
    base = ref.split(" pkg:", 1)[0]
    if base != ref:
        out.append(base)
    if "://" in base:
        scheme, rest = base.split("://", 1)
        out.append(f"{scheme}://{rest.split('/', 1)[0]}")
    elif base.count(":") == 1 and base.rsplit(":", 1)[1].isdigit():
        out.append(base.rsplit(":", 1)[0])
    return list(dict.fromkeys(out))


def is_resolved(owner: Owner | None, shared_queues: list[str]) -> bool:
    """A named role on a named team that is not a shared queue."""
    if owner is None or not owner.owner_role or not owner.owner_team:
        return False
    return owner.owner_team.casefold() not in {q.casefold() for q in shared_queues}
