"""A connection to a ticket system's REST API: where it is, who we are there, and how a request is made.

Settings come from a parameters file (``params/trackers.yaml``: one section per system, see
docs/operations.md) with command-line overrides. Credentials come from the environment
(``HANDOFFKIT_<SYSTEM>_TOKEN``, ``_USER``, ``_PASSWORD``) or from a credentials file the parameters
name; they travel only in request headers, never in a URL, so no request line the record, the log or
an error message shows can hold them, and every message is also scrubbed of them before it leaves.

Requests go through httpx with a timeout. 429, 502, 503 and 504 answers and transport failures are
retried with bounded exponential backoff (tenacity); a ``Retry-After`` header (seconds or an HTTP date)
or an exhausted rate limit (``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset``, GitHub's 403 of
that kind included) sets the wait instead. A wait longer than ``max_wait`` is not slept through: the
request fails. Any failure is one line naming the system and the request, as a
:class:`~handoffkit.errors.RemoteError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import tenacity
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handoffkit.errors import ConfigError, RemoteError
from handoffkit.record.canonical import sha256_bytes

SYSTEMS = ("jira", "github", "servicenow")
RETRIED_STATUS = frozenset({429, 502, 503, 504})
_SCRUBBED = "[credentials removed]"


class Settings(BaseModel):
    """One system's section of the parameters file."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://")
    """Base URL of the site (Jira, ServiceNow) or of the API (GitHub: https://api.github.com)."""
    credentials: Path | None = None
    """A YAML file with ``token`` (and ``user``/``password`` where the system takes them)."""
    deployment: Literal["cloud", "datacenter"] = "cloud"
    """Jira only: Cloud pages with ``nextPageToken``, Data Center with ``startAt``."""
    jql: str | None = None
    """Jira only: replaces the JQL derived from the policy."""
    repo: str | None = Field(default=None, pattern=r"^[^/\s]+/[^/\s]+$")
    """GitHub only: ``owner/repo`` whose issues are listed (or searched)."""
    label: str | None = None
    """GitHub only: list only issues with this label."""
    search: str | None = None
    """GitHub only: a search query (``/search/issues``) instead of the repository listing."""
    table: str = "incident"
    """ServiceNow only: the Table API table."""
    query: str | None = None
    """ServiceNow only: the ``sysparm_query``."""
    page_size: int = Field(default=100, ge=1, le=1000)
    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=5, ge=0, le=10)
    backoff: float = Field(default=1.0, ge=0)
    max_wait: float = Field(default=120.0, ge=0)


def load_settings(path: str | Path | None, system: str, **overrides: Any) -> Settings:
    """The ``system`` section of the parameters file at ``path``, with non-None ``overrides`` on top.

    Raises:
        ConfigError: the file is unreadable, lacks the section, or a value is wrong.
    """
    section: dict[str, Any] = {}
    if path is not None:
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the tracker parameters: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get(system, {}), dict):
            raise ConfigError(f"{path}: expected a mapping with a `{system}:` section")
        section = dict(doc.get(system) or {})
        if section.get("credentials"):
            section["credentials"] = Path(path).parent / Path(section["credentials"]).expanduser()
    section.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**section)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or system
        raise ConfigError(f"{path or 'options'}: {system}.{where}: {err['msg']}") from exc


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    user: str | None = None
    password: str | None = None
    secret_url: str | None = None
    """A URL that is itself the credential (a chat webhook): scrubbed like a token, never sent as one."""

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.password, self.secret_url) if s)


def load_credentials(system: str, settings: Settings) -> Credentials:
    """From the credentials file the parameters name, else ``HANDOFFKIT_<SYSTEM>_TOKEN|USER|PASSWORD``.

    Raises:
        ConfigError: neither holds a token or password (the message names where to put one, never a value).
    """
    prefix = f"HANDOFFKIT_{system.upper()}_"
    if settings.credentials is not None:
        try:
            doc = yaml.safe_load(settings.credentials.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            # The YAML error could quote the file's content, that is the secret: name the file only.
            raise ConfigError(
                f"{settings.credentials}: cannot read the credentials file ({type(exc).__name__})"
            ) from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{settings.credentials}: expected a mapping with `token` (and `user`/`password`)")
        found = Credentials(*(_text(doc.get(k)) for k in ("token", "user", "password")))
        where = str(settings.credentials)
    else:
        found = Credentials(*(_text(os.environ.get(prefix + k)) for k in ("TOKEN", "USER", "PASSWORD")))
        where = f"{prefix}TOKEN (or {prefix}USER and {prefix}PASSWORD)"
    if not found.secrets():
        raise ConfigError(f"{system}: no credentials; set {where}")
    return found


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _auth_headers(system: str, settings: Settings, creds: Credentials) -> dict[str, str]:
    if not (creds.token or creds.password):
        return {}
    if creds.user and (creds.password or (system == "jira" and settings.deployment == "cloud")):
        # Jira Cloud: e-mail + API token; ServiceNow: user + password. Basic auth, built by httpx.
        basic = httpx.BasicAuth(creds.user, creds.password or creds.token or "")
        request = next(basic.auth_flow(httpx.Request("GET", settings.url)))
        return {"Authorization": request.headers["Authorization"]}
    return {"Authorization": f"Bearer {creds.token or creds.password}"}


class _Retry(Exception):
    """A retryable answer, with the wait the server asked for (None: back off)."""

    def __init__(self, message: str, wait: float | None) -> None:
        super().__init__(message)
        self.wait = wait


@dataclass
class Client:
    """Requests to one system, retried and counted; every failure a one-line :class:`RemoteError`."""

    system: str
    settings: Settings
    credentials: Credentials
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    requests: int = 0
    waits: list[float] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    """The SHA-256 of every body answered, in order (a sync's origin names them)."""
    _http: httpx.Client | None = None
    _not_before: float = 0.0
    _secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        auth = _auth_headers(self.system, self.settings, self.credentials)
        # A server may echo the header itself back (Basic auth is the secret, base64-encoded).
        self._secrets = sorted({*self.credentials.secrets(), *(v.split(" ", 1)[-1] for v in auth.values())}, key=len)
        self._http = httpx.Client(
            base_url=self.settings.url.rstrip("/"),
            headers={"Accept": "application/json", "User-Agent": "handoffkit", **auth},
            timeout=self.settings.timeout,
            transport=self.transport,
            follow_redirects=False,  # a redirect to another host would carry the Authorization header
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, url: str, *, params: Any = None, json: Any = None, allow: tuple[int, ...] = ()
    ) -> httpx.Response:
        """One request (a relative path or a URL the server gave, e.g. a ``Link`` next page), retried.

        ``allow`` lists error statuses the caller handles itself (returned, not raised). A ``POST`` is not
        retried after a timeout or a broken connection: the server may have acted on it.

        Raises:
            RemoteError: the server refused, kept failing past the retries, or asked for too long a wait.
        """
        line = self._line(method, url, params)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.settings.retries + 1),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retry),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._once, method, url, params, json, line, allow)
        except _Retry as exc:
            raise RemoteError(
                self.scrub(f"{line}: {exc} (gave up after {self.settings.retries + 1} attempts)")
            ) from None

    def _once(self, method: str, url: str, params: Any, json: Any, line: str, allow: tuple[int, ...]) -> httpx.Response:
        pause = self._not_before - time.time()
        if pause > 0:
            self._sleep(self._bounded(pause, line, "the rate limit resets"))
        self.requests += 1
        try:
            assert self._http is not None
            response = self._http.request(method, url, params=params, json=json)
        except httpx.TransportError as exc:
            why = (
                f"timed out after {self.settings.timeout:g} s"
                if isinstance(exc, httpx.TimeoutException)
                else f"connection failed ({type(exc).__name__})"
            )
            if method == "POST":
                raise RemoteError(self.scrub(f"{line}: {why}; not retried, the server may have acted on it")) from None
            raise _Retry(why, None) from None
        self._note_rate_limit(response)
        if response.is_success or response.status_code in allow:
            self.received.append(sha256_bytes(response.content))
            return response
        rate_limited = response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"
        if response.status_code in RETRIED_STATUS or rate_limited:
            asked = _retry_after(response) or (self._not_before - time.time() if rate_limited else None)
            wait = self._bounded(asked, line, f"HTTP {response.status_code} asks to wait") if asked else None
            raise _Retry(f"HTTP {response.status_code}", wait)
        raise RemoteError(self.scrub(f"{line}: {self._refusal(response)}"))

    def _refusal(self, response: httpx.Response) -> str:
        status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code == 401:
            return f"{status}: the credentials were refused (expired or revoked?); renew them and run again"
        if response.status_code == 403:
            return f"{status}: these credentials may not make this request"
        said = " ".join(response.text.split())[:200]
        return f"{status}: {said}" if said else status

    def _note_rate_limit(self, response: httpx.Response) -> None:
        """An exhausted limit (``X-RateLimit-Remaining: 0``) holds the next request until the reset."""
        if response.headers.get("x-ratelimit-remaining") != "0":
            return
        reset = response.headers.get("x-ratelimit-reset")
        try:
            at = float(reset) if reset else None
        except ValueError:
            at = None
        if at is not None:
            self._not_before = at / 1000 if at > 1e11 else at  # some servers give milliseconds

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        asked = exc.wait if isinstance(exc, _Retry) else None
        if asked is not None:
            return asked
        return min(self.settings.backoff * 2 ** (retry_state.attempt_number - 1), self.settings.max_wait)

    def _bounded(self, seconds: float, line: str, why: str) -> float:
        if seconds > self.settings.max_wait:
            raise RemoteError(
                self.scrub(f"{line}: {why} {seconds:.0f} s, more than max_wait {self.settings.max_wait:g} s; run later")
            )
        return max(seconds, 0.0)

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.sleep(seconds)

    def _line(self, method: str, url: str, params: Any) -> str:
        assert self._http is not None
        return f"{self.system}: {method} {self._http.build_request(method, url, params=params).url}"

    def scrub(self, text: str) -> str:
        """``text`` with every credential value replaced (a server may echo a token back)."""
        for secret in reversed(self._secrets):  # longest first: a token may sit inside the encoded header
            text = text.replace(secret, _SCRUBBED)
        return text


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def open_client(system: str, settings: Settings, **kwargs: Any) -> Client:
    """A :class:`Client` with the credentials :func:`load_credentials` finds."""
    return Client(system, settings, load_credentials(system, settings), **kwargs)
