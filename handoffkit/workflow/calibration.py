"""Severity calibration: CVSS 3.1 / 4.0 scored by the ``cvss`` package, on the record only.

Environmental metrics derived from the asset's context (``--env-from-asset``), documented mapping:

========================  ==================================================================
context                   metric
========================  ==================================================================
data_sensitivity high     CR:H / IR:H / AR:H (v3.1 and v4.0)
data_sensitivity medium   CR:M / IR:M / AR:M
data_sensitivity low      CR:L / IR:L / AR:L
exposure internet         MAV = the base AV (nothing is lowered)
exposure internal         MAV:A when the base AV is N (reachable only from the internal network)
exposure isolated         MAV:L when the base AV is N or A
KEV-listed CVE            v3.1 E:H (exploit code maturity High); v4.0 E:A (Attacked)
========================  ==================================================================

The scanner's raw severity is kept untouched; the calibrated value (``severity``) is what tickets
carry, and nothing read back from a ticket ever changes it (ticket ingestion only observes drift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

from handoffkit.errors import RefusedError
from handoffkit.record import findings, owners
from handoffkit.record.log import Event, mutation
from handoffkit.record.model import SEVERITIES, SEVERITY_RANK, band_for_score
from handoffkit.record.people import require_actor
from handoffkit.record.store import Store

_LEVEL = {"high": "H", "medium": "M", "low": "L"}


@dataclass(frozen=True)
class Score:
    vector: str
    score: float
    band: str
    version: str


def score(vector: str) -> Score:
    """Score a CVSS 3.x or 4.0 vector (environmental/threat metrics included when present)."""
    text = vector.strip()
    try:
        if text.startswith("CVSS:4.0/"):
            c4 = CVSS4(text)
            return Score(c4.clean_vector(), float(c4.base_score), band_for_score(float(c4.base_score)), "4.0")
        if text.startswith(("CVSS:3.1/", "CVSS:3.0/")):
            c3 = CVSS3(text)
            value = float(c3.scores()[2])  # environmental (equals base when no env metric is set)
            return Score(c3.clean_vector(), value, band_for_score(value), text[5:8])
    except CVSSError as exc:
        raise RefusedError(f"CVSS vector {vector!r} is not valid: {exc}") from exc
    raise RefusedError(f"CVSS vector {vector!r}: expected a CVSS:3.1/…, CVSS:3.0/… or CVSS:4.0/… vector")


def environmental(vector: str, owner: owners.Owner | None, kev: bool) -> tuple[str, dict[str, str]]:
    """Add environmental (and KEV threat) metrics from the asset's context; returns the vector and
    the metrics added (the documented mapping above)."""
    metrics = dict(part.split(":", 1) for part in vector.split("/")[1:])
    added: dict[str, str] = {}
    v4 = vector.startswith("CVSS:4.0/")
    if owner is not None and owner.data_sensitivity in _LEVEL:
        for m in ("CR", "IR", "AR"):
            added[m] = _LEVEL[owner.data_sensitivity]
    if owner is not None and owner.exposure == "internal" and metrics.get("AV") == "N":
        added["MAV"] = "A"
    elif owner is not None and owner.exposure == "isolated" and metrics.get("AV") in ("N", "A"):
        added["MAV"] = "L"
    if kev:
        added["E"] = "A" if v4 else "H"
    kept = [p for p in vector.split("/")[1:] if p.split(":", 1)[0] not in added]
    return "/".join([vector.split("/")[0], *kept, *(f"{k}:{v}" for k, v in added.items())]), added


def calibrate(
    store: Store,
    finding_id: str,
    *,
    reason: str,
    actor: str,
    cvss: str | None = None,
    env_from_asset: bool = False,
    severity: str | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Set the finding's calibrated severity (from a CVSS vector and/or an explicit band) and log it."""
    actor = require_actor(actor)
    template = Event(
        type="severity_calibrated", actor=actor, finding_id=finding_id, data={"cvss": cvss, "severity": severity}
    )
    with mutation(store, template) as conn:
        row = findings.get(conn, finding_id)._mapping
        template.engagement = row["engagement"]
        if not reason or not reason.strip():
            raise RefusedError("a calibration needs a --reason")
        if not cvss and not severity:
            raise RefusedError("give --cvss VECTOR and/or --severity BAND")
        if severity is not None and severity not in SEVERITIES:
            raise RefusedError(f"--severity {severity!r}: expected one of {', '.join(SEVERITIES)}")
        if row["state"] == "verified_closed":
            raise RefusedError(f"{finding_id} is verified closed; a closed finding is not re-calibrated")
        changes, detail = _calibration(conn, row, cvss, env_from_asset, severity)
        detail |= {"reason": reason.strip(), "direction": _direction(row["severity"], changes["severity"])}
        after = findings.change(
            conn,
            store,
            row,
            changes,
            type="severity_calibrated",
            actor=actor,
            data=detail,
            expected_version=expected_version,
        )
    return {
        "finding_id": finding_id,
        "from": row["severity"],
        "to": after["severity"],
        "vector": after["calibrated_vector"],
        "score": after["calibrated_score"],
        "direction": detail["direction"],
        "row_version": after["row_version"],
    }


def _calibration(conn, row: Any, cvss: str | None, env_from_asset: bool, severity: str | None):
    changes: dict[str, Any] = {}
    detail: dict[str, Any] = {"base_vector": cvss}
    if cvss:
        base = score(cvss)
        vector = base.vector
        if env_from_asset:
            owner = owners.resolve(owners.owner_map(conn, row["engagement"]), [row["asset_ref"]])[row["asset_ref"]]
            vector, detail["environment"] = environmental(vector, owner, bool(row["kev"]))
        final = score(vector)
        changes |= {"calibrated_vector": final.vector, "calibrated_score": final.score, "severity": final.band}
        detail |= {"cvss_version": final.version, "base_score": base.score}
    if severity:
        changes["severity"] = severity
    return changes, detail


def _direction(before: str, after: str) -> str:
    diff = SEVERITY_RANK[after] - SEVERITY_RANK[before]
    return "up" if diff > 0 else "down" if diff < 0 else "same"
