"""Fixtures for the CLI tests: a clean environment, a click runner, and an initialised database."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from handoffkit.cli import cli
from tests.builders import ACTOR, DATA


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No database or actor leaks in from the shell running the tests."""
    monkeypatch.delenv("HANDOFFKIT_DB", raising=False)
    monkeypatch.delenv("HANDOFFKIT_ACTOR", raising=False)


@pytest.fixture
def run():
    """``run(*args, env=None)`` → click's Result (stdout and stderr kept apart)."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def acme(db_url: str, run) -> str:
    """A database (each backend) with engagement ACME initialised through the CLI; returns its URL."""
    result = run(
        "--db",
        db_url,
        "init",
        "-e",
        "ACME",
        "--name",
        "Acme Corp",
        "--policy",
        str(DATA / "policy.yaml"),
        "--owners",
        str(DATA / "owners.csv"),
        "--actor",
        ACTOR,
    )
    assert result.exit_code == 0, result.output
    return db_url
