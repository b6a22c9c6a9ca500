"""The connection to a ticket system: parameters, credentials that never show, retries and waits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from handoffkit.errors import ConfigError, RemoteError
from handoffkit.tickets.connection import Settings, load_settings, open_client
from tests.tickets.trackers import CANARY, json_response


def test_credentials_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HANDOFFKIT_GITHUB_TOKEN", CANARY)
    s = Settings(url="http://127.0.0.1:9")
    client = open_client("github", s)
    assert client._http.headers["Authorization"] == f"Bearer {CANARY}"
    client.close()
    monkeypatch.delenv("HANDOFFKIT_GITHUB_TOKEN")
    with pytest.raises(ConfigError, match="set HANDOFFKIT_GITHUB_TOKEN") as raised:
        open_client("github", s)
    assert CANARY not in str(raised.value)


def test_a_broken_credentials_file_is_named_but_not_quoted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"token: [{CANARY}\n")
    with pytest.raises(ConfigError) as raised:
        open_client("jira", Settings(url="http://127.0.0.1:9", credentials=path))
    assert str(path) in str(raised.value) and CANARY not in str(raised.value)


def test_tracker_parameters_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "trackers.yaml"
    path.write_text("jira:\n  url: ftp://x\n")
    with pytest.raises(ConfigError, match=r"trackers.yaml: jira.url: String should match"):
        load_settings(path, "jira")
    path.write_text("jira:\n  url: https://x.test\n  pagesize: 5\n")
    with pytest.raises(ConfigError, match=r"jira\.pagesize: Extra inputs"):
        load_settings(path, "jira")


@pytest.mark.parametrize("system", ["jira", "github", "servicenow"])
def test_the_shipped_tracker_parameters_load(system: str) -> None:
    from tests.builders import ROOT

    loaded = load_settings(ROOT / "params" / "trackers.yaml", system)
    assert loaded.url.startswith("https://") and loaded.credentials is None  # credentials never in params


@pytest.mark.slow  # waits in real time (Retry-After, a rate-limit reset or a client timeout)
def test_retry_after_as_an_http_date_is_honoured(httpserver: HTTPServer, monkeypatch) -> None:
    from email.utils import formatdate

    monkeypatch.setenv("HANDOFFKIT_JIRA_TOKEN", CANARY)
    answers = iter([Response("", status=503, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}),
                    json_response({"ok": True})])  # fmt: skip
    httpserver.expect_request("/x").respond_with_handler(lambda request: next(answers))
    client = open_client("jira", Settings(url=httpserver.url_for("").rstrip("/")))
    assert client.request("GET", "x").json() == {"ok": True}
    assert len(client.waits) == 1 and 0 < client.waits[0] <= 2


def test_a_redirect_is_not_followed_with_the_credentials(httpserver: HTTPServer, monkeypatch) -> None:
    monkeypatch.setenv("HANDOFFKIT_GITHUB_TOKEN", CANARY)
    httpserver.expect_request("/x").respond_with_response(
        Response("", status=302, headers={"Location": "https://evil.test/"})
    )
    client = open_client("github", Settings(url=httpserver.url_for("").rstrip("/")))
    with pytest.raises(RemoteError, match=r"^github: GET http://127\.0\.0\.1:\d+/x: HTTP 302"):
        client.request("GET", "x")


def test_the_whole_authorization_header_is_scrubbed(monkeypatch) -> None:
    import base64

    monkeypatch.setenv("HANDOFFKIT_JIRA_USER", "ana@example.test")
    monkeypatch.setenv("HANDOFFKIT_JIRA_TOKEN", CANARY)
    client = open_client("jira", Settings(url="http://127.0.0.1:9"))
    encoded = base64.b64encode(f"ana@example.test:{CANARY}".encode()).decode()
    said = client.scrub(f"echo: Basic {encoded} and {CANARY}")
    assert CANARY not in said and encoded not in said
    client.close()


@pytest.mark.slow  # waits in real time (Retry-After, a rate-limit reset or a client timeout)
def test_an_exhausted_rate_limit_holds_the_next_request_until_the_reset(httpserver: HTTPServer, monkeypatch) -> None:
    monkeypatch.setenv("HANDOFFKIT_GITHUB_TOKEN", CANARY)
    reset = str(int(time.time()) + 2)
    answers = iter([json_response([], headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}),
                    json_response([], headers={"X-RateLimit-Remaining": "4999"})])  # fmt: skip
    seen: list[float] = []

    def answer(request):
        seen.append(time.time())
        return next(answers)

    httpserver.expect_request("/x").respond_with_handler(answer)
    client = open_client("github", Settings(url=httpserver.url_for("").rstrip("/")))
    client.request("GET", "x")
    client.request("GET", "x")
    assert len(client.waits) == 1 and seen[1] >= int(reset) - 0.05
