"""The CLI frame: where the database comes from, output formats, one-line errors, the actor, --version."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from handoffkit import __version__
from handoffkit.record import findings, schema
from handoffkit.record.model import STATES
from handoffkit.record.store import Store
from handoffkit.report.output import records, to_json
from tests.builders import DATA


def one_line_error(result, code: int, says: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("handoffkit: error: ") and result.stderr.endswith("\n")
    assert result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr


def test_db_comes_from_the_option_then_the_environment(acme: str, run, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    listed = run("engagements", "--format", "json", env={"HANDOFFKIT_DB": acme})
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [{"key": "ACME", "name": "Acme Corp", "policy_version": 1, "findings": 0}]

    missing = run("engagements", "--format", "json", env={"HANDOFFKIT_DB": other})
    assert missing.exit_code == 2 and "no handoffkit record at" in missing.stderr
    assert not (tmp_path / "other.db").exists()
    wins = run("--db", acme, "engagements", "--format", "json", env={"HANDOFFKIT_DB": other})
    assert [e["key"] for e in json.loads(wins.stdout)] == ["ACME"]


def test_without_db_the_embedded_sqlite_default_is_used(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("kev", "load", str(tmp_path / "absent.json"), "--actor", "Ana Silva")
    assert result.exit_code != 0  # the catalog is missing, but kev load may create the record
    assert (tmp_path / "handoffkit.db").is_file()
    listed = run("engagements", "--format", "json")
    assert (listed.exit_code, json.loads(listed.stdout)) == (0, [])


@pytest.mark.parametrize(
    "args",
    [
        ("engagements",),
        ("findings", "-e", "ACME"),
        ("tickets", "-e", "ACME"),
        ("events", "-e", "ACME"),
        ("exception", "list", "-e", "ACME"),
        ("check", "-e", "ACME"),
        ("log", "verify", "--actor", "Ana Silva"),
        ("reconcile", "-e", "ACME", "--actor", "Ana Silva"),
        ("route", "-e", "ACME", "--actor", "Ana Silva"),
    ],
)
def test_a_command_in_an_empty_folder_creates_no_database_and_says_how_to_start(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "handoffkit: error: no handoffkit record at handoffkit.db; start one with "
        "`handoffkit init -e ENGAGEMENT --policy POLICY.yaml --owners OWNERS.csv`"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_an_empty_postgres_schema_is_not_turned_into_a_record_by_a_read(run, pg_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    result = run("--db", pg_url, "findings", "-e", "ACME")
    assert result.exit_code == 2 and "no handoffkit record in the database" in result.stderr
    engine = create_engine(pg_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_format_json_and_csv_and_the_global_format_option(acme: str, run) -> None:
    as_json = run("--db", acme, "--format", "json", "engagements")
    assert json.loads(as_json.stdout)[0]["key"] == "ACME"
    as_csv = run("--db", acme, "engagements", "--format", "csv")
    assert list(csv.DictReader(io.StringIO(as_csv.stdout))) == [
        {"key": "ACME", "name": "Acme Corp", "policy_version": "1", "findings": "0"}
    ]
    table = run("--db", acme, "engagements")
    assert table.stdout.splitlines()[0].split() == ["key", "name", "policy_version", "findings"]
    assert "Acme Corp" in table.stdout


@pytest.mark.parametrize(
    "data",
    [
        {"counts": {"orphan_tickets": 2}, "ids": {"orphan_tickets": ["SEC-1", "SEC-2"], "stale_links": []}, "x": {}},
        [{"title": 'Caf\u00e9 \u2014 "quoted"\n', "score": 7.5, "kev": False, "due": None}],
        {"big": 2**70, "list": [1, 2]},
    ],
)
def test_json_output_is_indented_json_text_whichever_encoder_writes_it(data) -> None:
    """orjson writes the JSON output, ``json`` what orjson refuses (an integer over 64 bits): the same
    text either way, two-space indented and not ASCII-escaped."""
    assert to_json(data) == json.dumps(data, indent=2, ensure_ascii=False)


def test_findings_json_is_an_array_of_finding_objects(demo_db: tuple[str, dict], run) -> None:
    result = run("--db", demo_db[0], "findings", "-e", "DEMO", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == demo_db[1]["findings"]
    for row in rows:
        assert {"finding_id", "state", "severity", "owner_team", "owner_name", "ticket_keys"} <= set(row)
        assert row["state"] in STATES and isinstance(row["ticket_keys"], list)
    assert len({r["finding_id"] for r in rows}) == len(rows)
    assert any(r["ticket_keys"] for r in rows) and any(r["owner_team"] for r in rows)

    store = Store(demo_db[0])
    try:
        expected = json.loads(json.dumps(records(findings.current(store, "DEMO"))))
    finally:
        store.dispose()
    assert rows == expected


def test_findings_csv_parses_and_matches_the_json(demo_db: tuple[str, dict], run) -> None:
    as_json = json.loads(run("--db", demo_db[0], "findings", "-e", "DEMO", "--format", "json").stdout)
    result = run("--db", demo_db[0], "findings", "-e", "DEMO", "--format", "csv")
    assert result.exit_code == 0
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert reader.fieldnames == [*findings.PUBLIC, "ticket_keys"]
    rows = list(reader)
    assert [r["finding_id"] for r in rows] == [r["finding_id"] for r in as_json]
    assert [r["ticket_keys"] for r in rows] == [" ".join(r["ticket_keys"]) for r in as_json]
    assert [r["severity"] for r in rows] == [r["severity"] for r in as_json]


def test_a_library_error_is_one_line_on_stderr(acme: str, run) -> None:
    one_line_error(run("--db", acme, "findings", "-e", "NOPE"), 4, "no engagement 'NOPE'; known: ACME")


@pytest.mark.parametrize(
    "url, says", [("mysql://db/x", "expected sqlite:///FILE or postgresql"), ("::not a url::", "is not valid")]
)
def test_a_bad_database_url_is_one_line(run, url: str, says: str) -> None:
    one_line_error(run("--db", url, "engagements"), 2, says)


USAGE_ERRORS = [
    (["--bogus"], "No such option '--bogus'", "handoffkit --help"),
    (["findings", "-e", "ACME", "--fromat", "json"], "Did you mean '--format'?", "handoffkit findings --help"),
    (["findingz"], "No such command 'findingz'", "handoffkit --help"),
    (["log", "verifyy"], "Did you mean 'verify'?", "handoffkit log --help"),
    (["ingest", "scan", "-e", "ACME"], "Missing argument 'FILES...'", "handoffkit ingest scan --help"),
    (["payload", "-e", "ACME"], "Missing option '--target'", "handoffkit payload --help"),
    (["payload", "-e", "ACME", "--target", "trello"], "'trello' is not one of", "handoffkit payload --help"),
    (["findings", "-e", "ACME", "--as-of", "yesterday"], "is not a date", "handoffkit findings --help"),
    (["verify", "--kind", "retest"], "give a FINDING_ID", "handoffkit verify --help"),
    (["log", "export", "-e", "ACME", "--out", "x.csv", "--processes", "0"], "--processes", "handoffkit log export"),
]


@pytest.mark.parametrize("args, says, hint", USAGE_ERRORS, ids=[" ".join(a) for a, _, _ in USAGE_ERRORS])
def test_a_usage_error_is_one_line_with_a_hint_not_the_usage_block(run, tmp_path: Path, args, says, hint) -> None:
    result = run("--db", f"sqlite:///{tmp_path / 'r.db'}", *args)
    one_line_error(result, 2, says)
    assert f"(see '{hint}" in result.stderr and "Usage:" not in result.stderr


def test_a_group_without_a_command_still_shows_its_help(run) -> None:
    result = run("log")
    assert "Usage: handoffkit log [OPTIONS] COMMAND" in result.output and "verify" in result.output


def test_verbose_shows_the_traceback_then_the_line(acme: str, run) -> None:
    result = run("--db", acme, "--verbose", "findings", "-e", "NOPE")
    assert result.exit_code == 4
    assert "Traceback (most recent call last)" in result.stderr
    assert "NotFoundError" in result.stderr
    assert result.stderr.splitlines()[-1] == "handoffkit: error: no engagement 'NOPE'; known: ACME"


@pytest.mark.parametrize("env", [{}, {"HANDOFFKIT_ACTOR": "   "}], ids=["unset", "blank"])
def test_a_mutating_command_without_an_actor_is_refused_and_writes_nothing(
    db_url: str, run, env: dict[str, str]
) -> None:
    result = run("--db", db_url, "init", "-e", "ACME", "--policy", str(DATA / "policy.yaml"), env=env)
    one_line_error(result, 1, "an actor is required")
    store = Store(db_url)
    try:
        with store.read() as conn:
            assert conn.execute(select(schema.engagements)).all() == []
            assert conn.execute(select(schema.events)).all() == []
    finally:
        store.dispose()


def test_the_actor_comes_from_the_environment(db_url: str, run) -> None:
    result = run(
        "--db",
        db_url,
        "init",
        "-e",
        "ACME",
        "--policy",
        str(DATA / "policy.yaml"),
        env={"HANDOFFKIT_ACTOR": "Ben  Okoro"},
    )
    assert result.exit_code == 0, result.output
    store = Store(db_url)
    try:
        with store.read() as conn:
            actors = set(conn.execute(select(schema.events.c.actor)).scalars())
    finally:
        store.dispose()
    assert actors == {"Ben Okoro"}


def test_version_as_a_module_and_as_a_command(run, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handoffkit", "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"handoffkit, version {__version__}\n", "")
    assert run("--version").stdout == f"handoffkit, version {__version__}\n"
    help_text = subprocess.run(
        [sys.executable, "-m", "handoffkit", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert help_text.returncode == 0 and help_text.stdout.startswith("Usage: handoffkit [OPTIONS] COMMAND")
    assert "  log " in help_text.stdout and "  findings " in help_text.stdout
