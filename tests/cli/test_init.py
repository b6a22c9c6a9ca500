"""``handoffkit init``: a malformed policy or owners map is one line on stderr, a non-zero exit, and
nothing written; a changed policy is a new version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from handoffkit.record import schema
from handoffkit.record.store import Store
from tests.builders import ACTOR, DATA

POLICY = (DATA / "policy.yaml").read_text(encoding="utf-8")
# line numbers below are those of tests/data/policy.yaml
MALFORMED = {
    "bad YAML": (("  bands:\n", "  bands: [\n"), "policy.yaml:6:5: not valid YAML"),
    "unknown key": (
        ("reconciliation: {cadence", "reconcilation: {cadence"),
        "policy.yaml:16: reconcilation: unknown key; expected one of",
    ),
    "wrong band name": (("    high:", "    hihg:"), "policy.yaml:6: routing.bands.hihg: 'hihg' is not allowed"),
    "missing band": (
        ("    low: {disposition: quarterly_cycle, sla_days: 180}\n", ""),
        "policy.yaml:4: routing.bands: every severity band needs a rule; missing: low",
    ),
    "permalink without {finding_id}": (
        ("findings/{finding_id}", "findings/{engagement}"),
        "policy.yaml:12: ticket_payload.permalink_template: must contain {finding_id}",
    ),
}


def counts(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        with store.read() as conn:
            return {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in (schema.engagements, schema.policies, schema.assets, schema.events)
            }
    finally:
        store.dispose()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_policy_is_one_line_and_writes_nothing(db_url: str, run, tmp_path: Path, case: str) -> None:
    (old, new), says = MALFORMED[case]
    assert old in POLICY
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace(old, new, 1), encoding="utf-8")
    result = run(
        "--db",
        db_url,
        "init",
        "-e",
        "ACME",
        "--policy",
        str(policy),
        "--owners",
        str(DATA / "owners.csv"),
        "--actor",
        ACTOR,
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"handoffkit: error: {tmp_path}/{says}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert counts(db_url) == {"engagements": 0, "policies": 0, "assets": 0, "events": 0}


def test_a_bad_owners_map_is_one_line_and_writes_nothing(db_url: str, run, tmp_path: Path) -> None:
    owners = tmp_path / "owners.csv"
    owners.write_text(
        (DATA / "owners.csv").read_text(encoding="utf-8").replace(",active\n", ",retired\n", 1), encoding="utf-8"
    )
    result = run(
        "--db",
        db_url,
        "init",
        "-e",
        "ACME",
        "--policy",
        str(DATA / "policy.yaml"),
        "--owners",
        str(owners),
        "--actor",
        ACTOR,
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"handoffkit: error: {owners}:2: lifecycle 'retired' is not allowed; expected one of "
        "active, decommissioning (or empty)\n"
    )
    assert counts(db_url) == {"engagements": 0, "policies": 0, "assets": 0, "events": 0}


def test_a_missing_policy_file_is_one_line(db_url: str, run, tmp_path: Path) -> None:
    result = run("--db", db_url, "init", "-e", "ACME", "--policy", str(tmp_path / "nope.yaml"), "--actor", ACTOR)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"handoffkit: error: {tmp_path / 'nope.yaml'}: cannot read the policy")
    assert result.stderr.count("\n") == 1


def test_rerunning_init_versions_a_changed_policy_only(acme: str, run, tmp_path: Path) -> None:
    args = [
        "--db",
        acme,
        "init",
        "-e",
        "ACME",
        "--owners",
        str(DATA / "owners.csv"),
        "--actor",
        "Ben Okoro",
        "--format",
        "json",
    ]
    same = run(*args, "--policy", str(DATA / "policy.yaml"))
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout) == {
        "engagement": "ACME",
        "created": False,
        "policy_version": 1,
        "policy_changed": False,
        "owners_loaded": None,
        "defaulted": [],
    }
    before = counts(acme)

    changed = tmp_path / "policy.yaml"
    changed.write_text(POLICY.replace("cadence: weekly", "cadence: monthly"), encoding="utf-8")
    result = run(*args, "--policy", str(changed))
    assert json.loads(result.stdout)["policy_version"] == 2
    assert counts(acme) == {**before, "policies": 2, "events": before["events"] + 1}
    listed = json.loads(run("--db", acme, "engagements", "--format", "json").stdout)
    assert listed[0]["policy_version"] == 2
