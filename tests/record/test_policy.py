"""The handoff policy and the owners map: one-line errors pointing at file:line and the key, nothing
written on an error, and a changed policy stored as a new version with its event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from handoffkit.errors import ConfigError
from handoffkit.record import engagements, schema
from handoffkit.record.owners import load_owners
from handoffkit.record.policy import load_policy
from handoffkit.record.store import Store
from tests.builders import ACTOR, chain_head, event_rows

POLICY = """\
canonical_record: {system: handoffkit, downstream: [jira]}
routing:
  bands:
    critical: {disposition: ticket, sla_days: 30}
    high: {disposition: ticket, sla_days: 60}
    medium: {disposition: sprint_backlog, sla_days: 90}
    low: {disposition: quarterly_cycle, sla_days: 180}
    info: {disposition: security_record_only, sla_days: null}
  kev_override: {disposition: ticket, sla_days: 14}
ticket_payload:
  permalink_template: "https://record.test/{engagement}/findings/{finding_id}"
ownership: {owners_file: null, shared_queues: [security]}
reconciliation: {cadence: weekly}
closure_verification: {accepted: [rescan, retest, commit, attestation]}
"""
OWNERS_HEADER = "asset_ref,owner_role,owner_team,owner_name,exposure,data_sensitivity,lifecycle\n"
OWNERS = OWNERS_HEADER + "https://shop.test,service owner,payments,Priya Raman,internet,high,active\n"

# (name, edit of POLICY, line, key path, what the message must also say)
MALFORMED = [
    ("bad YAML", ("  bands:\n", "  bands: [\n"), "5:5", None, "not valid YAML"),
    ("misspelt required key", ("routing:", "rooting:"), "2", "rooting", "did you mean 'routing'?"),
    (
        "unknown nested key",
        ("{cadence: weekly}", "{cadance: weekly}"),
        "13",
        "reconciliation.cadance",
        "did you mean 'cadence'?",
    ),
    (
        "unknown key inside a band",
        ("critical: {disposition", "critical: {dispositon"),
        "4",
        "routing.bands.critical.dispositon",
        "did you mean 'disposition'?",
    ),
    ("wrong band name", ("    high:", "    hihg:"), "5", "routing.bands.hihg", "did you mean 'high'?"),
    (
        "missing band",
        ("    info: {disposition: security_record_only, sla_days: null}\n", ""),
        "3",
        "routing.bands",
        "missing: info",
    ),
    (
        "permalink without {finding_id}",
        ("findings/{finding_id}", "findings/"),
        "11",
        "ticket_payload.permalink_template",
        "must contain {finding_id}",
    ),
    (
        "misspelt disposition",
        ("disposition: sprint_backlog", "disposition: sprint-backlog"),
        "6",
        "routing.bands.medium.disposition",
        "did you mean 'sprint_backlog'?",
    ),
    ("wrong type", ("sla_days: 30}", "sla_days: thirty}"), "4", "routing.bands.critical.sla_days", "integer"),
    (
        "unknown cadence",
        ("cadence: weekly", "cadence: daily"),
        "13",
        "reconciliation.cadence",
        "expected one of weekly, monthly",
    ),
    ("not a mapping", (POLICY, "- just\n- a list\n"), "1", None, "expected a mapping"),
    (
        "escalation owner without a role",
        ("sla_days: 60}", "sla_days: 60, escalation: payments}"),
        "5",
        "routing.bands.high.escalation",
        "expected TEAM/ROLE or TEAM/ROLE/NAME",
    ),
    (
        "escalation owner with an empty team",
        ("sla_days: 60}", "sla_days: 60, escalation: ' /head of engineering'}"),
        "5",
        "routing.bands.high.escalation",
        "expected TEAM/ROLE",
    ),
    (
        "escalation to a shared queue",
        ("sla_days: 60}", "sla_days: 60, escalation: Security/lead}"),
        "5",
        "routing.bands.high.escalation",
        "team 'Security' is a shared queue",
    ),
]


def write_policy(directory: Path, edit: tuple[str, str] | None = None, name: str = "policy.yaml") -> Path:
    text = POLICY
    if edit is not None:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_base_policy_is_valid(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path))
    assert policy.band_rule("info").disposition == "security_record_only"


@pytest.mark.parametrize("name, edit, line, key, says", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_policy_is_one_line_naming_file_line_and_key(
    tmp_path: Path, name: str, edit: tuple[str, str], line: str, key: str | None, says: str
) -> None:
    path = write_policy(tmp_path, edit)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: " + (f"{key}: " if key else "")), message
    assert says in message


def test_an_escalation_owner_per_band_is_optional_and_leaves_other_policies_unchanged(tmp_path: Path) -> None:
    base = load_policy(write_policy(tmp_path))
    named = load_policy(
        write_policy(
            tmp_path,
            ("sla_days: 30}", "sla_days: 30, escalation: ' payments / head of  engineering / Ines Duarte'}"),
            "b.yaml",
        )
    )
    assert named.band_rule("critical").escalation_owner() == {
        "owner_team": "payments",
        "owner_role": "head of engineering",
        "owner_name": "Ines Duarte",
    }
    assert named.band_rule("high").escalation_owner() is None
    # a policy naming none stores exactly as before the field existed (same document, same version)
    assert "escalation" not in json.dumps(base.document()) and "escalation" in json.dumps(named.document())
    assert named.sha256() != base.sha256()


def test_an_unreadable_policy_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read the policy"):
        load_policy(tmp_path / "missing.yaml")


@pytest.mark.parametrize("edit", [MALFORMED[0][1], MALFORMED[1][1], MALFORMED[6][1]], ids=["yaml", "key", "permalink"])
def test_init_with_a_malformed_policy_writes_nothing(store: Store, tmp_path: Path, edit: tuple[str, str]) -> None:
    path = write_policy(tmp_path, edit)
    (tmp_path / "owners.csv").write_text(OWNERS, encoding="utf-8")
    with pytest.raises(ConfigError, match=str(path)):
        engagements.init(store, "ACME", path, owners_path=tmp_path / "owners.csv", actor=ACTOR)
    assert_nothing_written(store)


def assert_nothing_written(store: Store) -> None:
    with store.read() as conn:
        for table in (schema.engagements, schema.policies, schema.assets):
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0, table.name
    assert event_rows(store) == []
    assert chain_head(store) == (0, schema.GENESIS_HASH)


# -------------------------------------------------------------------------------------- owners map


@pytest.mark.parametrize(
    "text, place, says",
    [
        (OWNERS.replace(",lifecycle", "").replace(",active", ""), "1", "missing column(s) lifecycle"),
        (
            OWNERS + "https://api.test,service owner,payments,Priya Raman,internet,high,retired\n",
            "3",
            "lifecycle 'retired' is not allowed; expected one of active, decommissioning",
        ),
        (
            OWNERS + 'https://api.test,"service\nowner",payments,,internet,high,active\n'
            "https://cdn.test,service owner,payments,,public,high,active\n",
            "5",
            "exposure 'public' is not allowed",
        ),
        (OWNERS + "HTTPS://SHOP.TEST,service owner,payments,,internet,high,active\n", "3", "appears twice"),
    ],
    ids=["missing column", "bad lifecycle", "line after a multi-line cell", "duplicate asset"],
)
def test_owners_map_errors_name_file_and_line(tmp_path: Path, text: str, place: str, says: str) -> None:
    path = tmp_path / "owners.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_owners(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{place}: ") and says in message, message


def test_init_with_a_bad_owners_map_writes_nothing(store: Store, tmp_path: Path) -> None:
    owners = tmp_path / "owners.csv"
    owners.write_text(OWNERS + "https://api.test,owner,payments,,internet,high,retired\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"owners\.csv:3: lifecycle"):
        engagements.init(store, "ACME", write_policy(tmp_path), owners_path=owners, actor=ACTOR)
    assert_nothing_written(store)


# -------------------------------------------------------------------------------------- versioning


def test_a_changed_policy_is_a_new_version_and_an_unchanged_one_writes_nothing(store: Store, tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    owners = tmp_path / "owners.csv"
    owners.write_text(OWNERS, encoding="utf-8")
    first = engagements.init(store, "ACME", path, owners_path=owners, actor=ACTOR)
    assert (first.created, first.policy_version, first.owners_loaded) == (True, 1, 1)
    assert [r["type"] for r in event_rows(store)] == ["engagement_created", "policy_versioned", "owners_loaded"]

    head = chain_head(store)
    path.write_text(
        "# a comment and a layout change no rule\n"
        + POLICY.replace("reconciliation: {cadence: weekly}", "reconciliation:\n  cadence: weekly  # reviewed"),
        encoding="utf-8",
    )
    again = engagements.init(store, "ACME", path, owners_path=owners, actor="Ben Okoro")
    assert (again.created, again.policy_changed, again.policy_version, again.owners_loaded) == (False, False, 1, None)
    assert chain_head(store) == head

    path.write_text(POLICY.replace("sla_days: 30", "sla_days: 15"), encoding="utf-8")
    changed = engagements.init(store, "ACME", path, owners_path=owners, actor="Ben Okoro")
    assert (changed.policy_changed, changed.policy_version) == (True, 2)
    new = event_rows(store)[head[0] :]
    assert [(r["type"], r["actor"], r["engagement"]) for r in new] == [("policy_versioned", "Ben Okoro", "ACME")]
    payload = json.loads(new[0]["payload"])
    assert payload["data"]["version"] == 2
    assert payload["data"]["document"]["routing"]["bands"]["critical"]["sla_days"] == 15
    assert payload["origin"]["file"] == str(path)

    with store.read() as conn:
        assert engagements.get(conn, "ACME").policy_version == 2
        assert engagements.policy(conn, "ACME").band_rule("critical").sla_days == 15
        assert engagements.policy(conn, "ACME", version=1).band_rule("critical").sla_days == 30
        stored = conn.execute(
            select(schema.policies.c.version, schema.policies.c.sha256).order_by(schema.policies.c.version)
        ).all()
    assert [v for v, _ in stored] == [1, 2]
    assert stored[1].sha256 == payload["data"]["sha256"] != stored[0].sha256
