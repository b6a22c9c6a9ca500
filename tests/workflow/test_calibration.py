"""Severity calibration: CVSS 3.1 / 4.0 through the ``cvss`` package, environment from the asset, the raw
scanner severity kept, every change an event (issue 4, "Severity calibration")."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from handoffkit.cli import cli
from handoffkit.errors import RefusedError
from handoffkit.workflow import calibration
from tests.builders import ACTOR, SHOP, events, finding, snapshot

V31_CRIT = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V31_HIGH = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N"
V40_CRIT = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
V40_HIGH = "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N"


SCORES = [  # vector, score, band, version — the numbers the cvss package gives
    (V31_CRIT, 9.8, "critical", "3.1"),
    (V31_HIGH, 8.1, "high", "3.1"),
    (V40_CRIT, 9.3, "critical", "4.0"),
    (V40_HIGH, 7.1, "high", "4.0"),
    ("CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 2.0, "low", "3.1"),
]


def test_cvss_scores_and_band_on_the_record_raw_severity_kept(store, rec):
    ids = rec.web(SHOP, *((f"Scored XSS {i}", 2) for i in range(len(SCORES))))
    raw = finding(store, ids[0])
    assert (raw["scanner_severity"], raw["severity"]) == ("medium", "medium")

    for fid, (vector, score, band, version) in zip(ids, SCORES, strict=True):
        out = calibration.calibrate(store, fid, cvss=vector, reason="scored by hand", actor=ACTOR)

        row = finding(store, fid)
        assert (row["severity"], row["calibrated_score"], row["calibrated_vector"]) == (band, score, vector)
        assert (row["scanner_severity"], row["raw_severity"]) == ("medium", raw["raw_severity"])  # never overwritten
        assert out["from"] == "medium" and out["to"] == band and out["score"] == score
        [ev] = events(store, "severity_calibrated", finding_id=fid)
        assert ev["data"]["cvss_version"] == version and ev["data"]["base_score"] == score


def test_calibration_event_carries_from_to_vectors_reason_and_who(store, rec):
    [fid] = rec.web(SHOP, ("Event XSS", 1))

    calibration.calibrate(
        store, fid, cvss=V31_HIGH, env_from_asset=True, reason="  login page, card data ", actor="  Ben   Okoro "
    )

    [ev] = events(store, "severity_calibrated", finding_id=fid)
    assert (ev["actor"], ev["outcome"], ev["severity"]) == ("Ben Okoro", "success", "high")
    data = ev["data"]
    assert data["from"]["severity"] == "low" and data["set"]["severity"] == "high"
    assert data["base_vector"] == V31_HIGH
    assert data["set"]["calibrated_vector"] == V31_HIGH + "/CR:H/IR:H/AR:H"
    assert data["reason"] == "login page, card data" and data["direction"] == "up"


# The documented mapping (calibration.py): sensitivity → CR/IR/AR; internal → MAV:A when AV:N; KEV → E.
# shop.test is internet/high; db-*.corp.test internal/medium; unmapped.test has no context at all.
ENV = [  # where, vector, metrics added, final vector, score, band
    ("shop", V31_HIGH, {"CR": "H", "IR": "H", "AR": "H"}, V31_HIGH + "/CR:H/IR:H/AR:H", 8.8, "high"),
    ("db", V31_HIGH, {"CR": "M", "IR": "M", "AR": "M", "MAV": "A"}, V31_HIGH + "/CR:M/IR:M/AR:M/MAV:A", 7.3, "high"),
    ("db", V40_HIGH, {"CR": "M", "IR": "M", "AR": "M", "MAV": "A"}, V40_HIGH + "/CR:M/IR:M/AR:M/MAV:A", 5.5, "medium"),
    (
        "kev",
        V31_HIGH,
        {"CR": "M", "IR": "M", "AR": "M", "MAV": "A", "E": "H"},
        V31_HIGH + "/E:H/CR:M/IR:M/AR:M/MAV:A",
        7.3,
        "high",
    ),
    (
        "kev",
        V40_HIGH,
        {"CR": "M", "IR": "M", "AR": "M", "MAV": "A", "E": "A"},
        V40_HIGH + "/E:A/CR:M/IR:M/AR:M/MAV:A",
        5.5,
        "medium",
    ),
    ("nowhere", V31_HIGH, {}, V31_HIGH, 8.1, "high"),
]


def test_env_from_asset_follows_the_documented_mapping(store, rec):
    rec.kev(("CVE-2024-3094", "2026-03-10"))
    [shop] = rec.web(SHOP, ("Env XSS", 2))
    [nowhere] = rec.web("https://unmapped.test", ("Env XSS elsewhere", 2))
    db = rec.host("db-7.corp.test", {"name": "Env vuln 1", "severity": 2}, {"name": "Env vuln 2", "severity": 2})
    kev = rec.host(
        "db-8.corp.test", *({"name": f"Env KEV {i}", "severity": 2, "cves": ["CVE-2024-3094"]} for i in (1, 2))
    )
    assert [finding(store, f)["kev"] for f in (*db, *kev)] == [False, False, True, True]
    targets = [shop, db[0], db[1], kev[0], kev[1], nowhere]

    for fid, (_, vector, added, final, score, band) in zip(targets, ENV, strict=True):
        out = calibration.calibrate(store, fid, cvss=vector, env_from_asset=True, reason="asset context", actor=ACTOR)

        assert (out["vector"], out["score"], out["to"]) == (final, score, band)
        [ev] = events(store, "severity_calibrated", finding_id=fid)
        assert ev["data"]["environment"] == added


def test_explicit_band_is_recorded_as_downward_drift(store, rec):
    [fid] = rec.web(SHOP, ("Downgraded XSS", 3))
    out = calibration.calibrate(store, fid, severity="low", reason="WAF rule in front", actor=ACTOR)
    assert (out["from"], out["to"], out["direction"]) == ("high", "low", "down")
    assert (finding(store, fid)["severity"], finding(store, fid)["scanner_severity"]) == ("low", "high")


INVALID = [
    "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # unknown metric value
    "CVSS:3.1/AV:N/AC:L",  # mandatory metrics missing
    "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:Q",
    "AV:N/AC:L/Au:N/C:P/I:P/A:P",  # CVSS 2 is not accepted
    "critical",
]


def test_an_invalid_vector_is_refused_with_a_denied_event(store, rec):
    [fid] = rec.web(SHOP, ("Invalid vector XSS", 2))
    for vector in INVALID:
        before = snapshot(store)

        with pytest.raises(RefusedError, match="CVSS vector"):
            calibration.calibrate(store, fid, cvss=vector, reason="typo", actor=ACTOR)

        after = snapshot(store)
        assert {k: v for k, v in after.items() if k not in ("events", "chain_head")} == {
            k: v for k, v in before.items() if k not in ("events", "chain_head")
        }
        assert after["events"] == before["events"] + 1
        ev = events(store, "severity_calibrated", finding_id=fid)[-1]
        assert (ev["outcome"], ev["actor"], ev["data"]["cvss"]) == ("denied", ACTOR, vector)
        assert "CVSS vector" in ev["data"]["reason"]
    assert finding(store, fid)["severity"] == "medium"
    assert len(events(store, "severity_calibrated", outcome="denied")) == len(INVALID)


def test_calibrate_cli(store, rec):
    [fid] = rec.web(SHOP, ("CLI calibrated XSS", 1))
    runner = CliRunner()
    ok = runner.invoke(
        cli,
        [
            "--db",
            store.url,
            "calibrate",
            fid,
            "--cvss",
            V40_CRIT,
            "--reason",
            "RCE",
            "--actor",
            ACTOR,
            "--format",
            "json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output) | {"row_version": 0} == {
        "finding_id": fid,
        "from": "low",
        "to": "critical",
        "vector": V40_CRIT,
        "score": 9.3,
        "direction": "up",
        "row_version": 0,
    }
    bad = runner.invoke(
        cli, ["--db", store.url, "calibrate", fid, "--cvss", "CVSS:3.1/AV:Q", "--reason", "x", "--actor", ACTOR]
    )
    assert bad.exit_code == 5 and "CVSS vector" in bad.output
    assert finding(store, fid)["severity"] == "critical"
