"""The handoff policy: its six fields (docs/policy.md), validated, with errors that point at file:line.

A policy is YAML (see ``params/policy.yaml``). Validation is pydantic; every error is turned into one
line naming the file, the line, the key path and what was expected, with the closest valid key
suggested for a misspelt one. The stored form is canonical JSON, versioned per engagement.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handoffkit.errors import ConfigError, InputError
from handoffkit.record import ids
from handoffkit.record.canonical import canonical_json
from handoffkit.record.model import BATCH_DEFAULTS, DISPOSITIONS, SEVERITIES, VERIFICATION_KINDS, TicketSnapshot

if TYPE_CHECKING:
    import yaml

Band = Literal["critical", "high", "medium", "low", "info"]
Disposition = Literal["ticket", "sprint_backlog", "quarterly_cycle", "security_record_only"]
System = Literal["jira", "servicenow", "github"]
PayloadField = Literal[
    "finding_id",
    "severity",
    "asset",
    "reproduction",
    "cve_cwe",
    "due_date",
    "permalink",
    "affected_version",
    "remediation",
    "cvss_vector",
    "title",
    "owner",
]
REQUIRED_PAYLOAD: tuple[str, ...] = (
    "finding_id",
    "severity",
    "asset",
    "reproduction",
    "cve_cwe",
    "due_date",
    "permalink",
)

DEFAULT_PRIORITIES: dict[str, dict[str, str]] = {
    "jira": {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low", "info": "Lowest"},
    "servicenow": {
        "critical": "1 - Critical",
        "high": "2 - High",
        "medium": "3 - Moderate",
        "low": "4 - Low",
        "info": "5 - Planning",
    },
    "github": {
        "critical": "severity:critical",
        "high": "severity:high",
        "medium": "severity:medium",
        "low": "severity:low",
        "info": "severity:info",
    },
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanonicalRecord(_Strict):
    """Which system holds the record (this one) and which are downstream views of it."""

    system: Literal["handoffkit"] = "handoffkit"
    downstream: list[System] = Field(default_factory=lambda: ["jira"], min_length=1)


MAX_SLA_DAYS = 3650
"""Ten years: an SLA longer than that is a typo (days for hours, an extra digit), not a policy."""


class BandRule(_Strict):
    disposition: Disposition
    sla_days: int | None = Field(default=None, gt=0, le=MAX_SLA_DAYS)
    """Days from validation to the due date; ``null`` for no SLA (record-only findings)."""
    escalation: str | None = None
    """``TEAM/ROLE[/NAME]`` a finding of this band past its due date is escalated to (optional)."""
    batch: Literal["sprint", "quarter", "none"] | None = None
    """How ``payload --batch`` hands this band over: one ticket per owner team per ``sprint`` (two weeks
    from a Monday) or ``quarter``, or ``none``; unset, the disposition decides (:data:`BATCH_DEFAULTS`)."""

    @model_validator(mode="after")
    def _batchable(self) -> BandRule:
        if self.batch in ("sprint", "quarter") and self.disposition not in BATCH_DEFAULTS:
            raise ValueError(
                f"batch: {self.batch} on a {self.disposition} band; only the "
                f"{' and '.join(BATCH_DEFAULTS)} dispositions batch (a ticket band gets a ticket per finding, "
                "a record-only band none): set batch: none or remove it"
            )
        return self

    @property
    def batch_cadence(self) -> str | None:
        """``sprint`` or ``quarter`` when findings of this band are handed over in batches, else None."""
        if self.batch == "none":
            return None
        return self.batch or BATCH_DEFAULTS.get(self.disposition)

    @field_validator("escalation")
    @classmethod
    def _owner_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [" ".join(p.split()) for p in value.split("/", 2)]
        if len(parts) < 2 or not all(parts):
            raise ValueError(f"{value!r}: expected TEAM/ROLE or TEAM/ROLE/NAME (e.g. payments/head of engineering)")
        return "/".join(parts)

    def escalation_owner(self) -> dict[str, str | None] | None:
        """The escalation owner as ``owner_team``, ``owner_role``, ``owner_name`` (None: none named)."""
        if self.escalation is None:
            return None
        team, role, *name = self.escalation.split("/", 2)
        return {"owner_team": team, "owner_role": role, "owner_name": name[0] if name else None}


class KevOverride(_Strict):
    """A KEV-listed CVE routes to ``disposition`` with ``sla_days`` (or the catalog's earlier due date)."""

    disposition: Disposition = "ticket"
    sla_days: int = Field(default=14, gt=0, le=MAX_SLA_DAYS)
    use_catalog_due_date: bool = True


class Routing(_Strict):
    bands: dict[Band, BandRule]
    kev_override: KevOverride = KevOverride()

    @field_validator("bands")
    @classmethod
    def _every_band(cls, bands: dict[str, BandRule]) -> dict[str, BandRule]:
        missing = [b for b in SEVERITIES if b not in bands]
        if missing:
            raise ValueError(f"every severity band needs a rule; missing: {', '.join(missing)}")
        return bands


def _same(text: str) -> str:
    """A project, repository, label or field value compared case- and space-insensitively."""
    return " ".join(text.split()).casefold()


class TicketScope(_Strict):
    """Which tickets of a shared tracker belong to this engagement (``ticket_payload.scope``).

    A ticket is the engagement's when every criterion naming its system holds: a Jira ticket's project
    (its key's prefix) is one of ``jira_projects``, a GitHub issue's repository one of ``github_repos``,
    a Jira or GitHub ticket carries one of ``labels``, a ServiceNow record matches ``servicenow_query``.
    A system no criterion names is read whole. Compared case- and space-insensitively (``sec`` is the
    project ``SEC``; ``SEC2`` is another).
    """

    jira_projects: list[str] = Field(default_factory=list)
    github_repos: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    servicenow_query: str | None = None
    """``u_field=value`` terms joined by ``^`` (all must hold): a sync sends it with its query, a file
    export is checked against the records' ``u_*`` fields."""

    @field_validator("jira_projects", "github_repos", "labels")
    @classmethod
    def _named(cls, values: list[str]) -> list[str]:
        if any(not v.strip() for v in values):
            raise ValueError("an empty name; expected each entry to name a project, repository or label")
        return values

    @field_validator("github_repos")
    @classmethod
    def _repo_shape(cls, values: list[str]) -> list[str]:
        for value in values:
            if value.strip().count("/") != 1 or not all(value.strip().split("/")):
                raise ValueError(f"{value!r}: expected OWNER/REPO (e.g. acme/shop)")
        return values

    @field_validator("servicenow_query")
    @classmethod
    def _query_terms(cls, value: str | None) -> str | None:
        if value is not None:
            for term in value.split("^"):
                name, equals, wanted = term.partition("=")
                if not equals or not name.strip().startswith("u_") or not wanted.strip():
                    raise ValueError(
                        f"{term!r}: expected u_FIELD=VALUE terms joined by ^ (e.g. u_engagement=ACME); "
                        "a file export carries only the records' u_* fields to check"
                    )
        return value

    def servicenow_terms(self) -> dict[str, str]:
        """``servicenow_query`` as field → wanted value (compared case- and space-insensitively)."""
        terms = (t.partition("=") for t in (self.servicenow_query or "").split("^") if t)
        return {name.strip(): _same(wanted) for name, _, wanted in terms}

    def holds(self, ticket: TicketSnapshot) -> bool:
        """Whether ``ticket`` is this engagement's (see the class docstring)."""
        checks: list[bool] = []
        if ticket.system == "jira" and self.jira_projects:
            checks.append(_same(ticket.key.rpartition("-")[0]) in {_same(p) for p in self.jira_projects})
        if ticket.system == "github" and self.github_repos:
            checks.append(_same(ticket.key.rpartition("#")[0]) in {_same(r) for r in self.github_repos})
        if ticket.system in ("jira", "github") and self.labels:
            checks.append(bool({_same(x) for x in ticket.labels} & {_same(x) for x in self.labels}))
        if ticket.system == "servicenow" and self.servicenow_query:
            shown = {name: _same(str(value)) for name, value in ticket.fields.items()}
            checks.append(all(shown.get(name) == wanted for name, wanted in self.servicenow_terms().items()))
        return all(checks)


class TicketPayload(_Strict):
    """What a ticket created from a finding must carry; evidence travels as a permalink only."""

    required: list[PayloadField] = Field(default_factory=lambda: list(REQUIRED_PAYLOAD))
    optional: list[PayloadField] = Field(default_factory=lambda: ["affected_version", "remediation", "cvss_vector"])
    permalink_template: str = "https://handoffkit.example.invalid/{engagement}/findings/{finding_id}"
    finding_id_from: list[Literal["label", "custom_field", "token"]] = Field(
        default_factory=lambda: ["label", "custom_field", "token"], min_length=1
    )
    custom_field: str = "Finding ID"
    priorities: dict[System, dict[Band, str]] = Field(default_factory=dict)
    jira_project: str = "SEC"
    jira_issue_type: str = "Bug"
    jira_finding_field_id: str | None = None
    """Jira's id of the finding-id custom field (``customfield_10042``) for REST payloads, if known."""
    scope: TicketScope | None = None
    """Which tickets are this engagement's; none named: every ticket an export or sync reads."""

    def permalink(self, engagement: str, finding_id: str) -> str:
        """The record's address of one finding (what a ticket carries instead of the evidence)."""
        return self.permalink_template.format(engagement=engagement, finding_id=finding_id)

    def permalink_pattern(self, engagement: str) -> str:
        """Regular-expression text matching any finding's permalink in ``engagement``."""
        prefix = self.permalink_template.split("{finding_id}")[0].replace("{engagement}", engagement)
        return re.escape(prefix) + ids.PATTERN

    @field_validator("permalink_template")
    @classmethod
    def _has_id(cls, value: str) -> str:
        if "{finding_id}" not in value:
            raise ValueError("must contain {finding_id} so every ticket links back to its record")
        try:
            value.format(engagement="E", finding_id="HK-1")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{engagement}} and {{finding_id}} may be used ({exc})") from exc
        return value

    @model_validator(mode="after")
    def _required_core(self) -> TicketPayload:
        missing = [f for f in REQUIRED_PAYLOAD if f not in self.required]
        if missing:
            raise ValueError(f"required must include {', '.join(missing)} (every ticket carries them, docs/policy.md)")
        return self

    def priority_for(self, system: str, band: str) -> str:
        return self.priorities.get(system, {}).get(band) or DEFAULT_PRIORITIES[system][band]


class Ownership(_Strict):
    """Asset → named role on a named team; a finding without a resolved owner pauses."""

    owners_file: str | None = "owners.csv"
    unowned: Literal["pause"] = "pause"
    shared_queues: list[str] = Field(default_factory=lambda: ["security", "secops", "unassigned", "triage"])
    """Team or assignee names that are shared queues, never an owner (ownership drift is flagged)."""


class Reconciliation(_Strict):
    cadence: Literal["weekly", "monthly"] = "weekly"

    @property
    def days(self) -> int:
        return 7 if self.cadence == "weekly" else 31


class ClosureVerification(_Strict):
    """Evidence kinds that may close a finding; attestation always needs a different approver."""

    accepted: list[Literal["rescan", "retest", "commit", "attestation"]] = Field(
        default_factory=lambda: list(VERIFICATION_KINDS), min_length=1
    )


class Policy(_Strict):
    """The six fields of the handoff policy."""

    canonical_record: CanonicalRecord = CanonicalRecord()
    routing: Routing
    ticket_payload: TicketPayload = TicketPayload()
    ownership: Ownership = Ownership()
    reconciliation: Reconciliation = Reconciliation()
    closure_verification: ClosureVerification = ClosureVerification()

    def band_rule(self, band: str) -> BandRule:
        return self.routing.bands[band]  # type: ignore[index]

    def band_for_priority(self, system: str, priority: str | None) -> str | None:
        """Map a ticket's priority back to a band (for drift); unknown priorities give None."""
        if not priority:
            return None
        wanted = priority.strip().casefold()
        for table in (self.ticket_payload.priorities.get(system, {}), DEFAULT_PRIORITIES.get(system, {})):
            for band, shown in table.items():
                if shown.casefold() == wanted:
                    return band
        return _PRIORITY_WORDS.get(wanted.split(" - ")[-1].removeprefix("severity:").removeprefix("p"))

    def document(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json")
        # A band naming no escalation owner stores as it did before the field existed: same bytes, same
        # SHA-256, so re-loading an unchanged policy file does not make a new policy version.
        # Likewise a band naming no batch cadence (the disposition's default applies).
        for rule in doc["routing"]["bands"].values():
            for optional in ("escalation", "batch"):
                if rule.get(optional) is None:
                    rule.pop(optional, None)
        # The same for a policy naming no ticket scope.
        if doc["ticket_payload"].get("scope") is None:
            doc["ticket_payload"].pop("scope", None)
        return doc

    def sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.document()).encode()).hexdigest()


_PRIORITY_WORDS = {
    "highest": "critical",
    "blocker": "critical",
    "critical": "critical",
    "urgent": "critical",
    "high": "high",
    "major": "high",
    "medium": "medium",
    "moderate": "medium",
    "normal": "medium",
    "low": "low",
    "minor": "low",
    "lowest": "info",
    "trivial": "info",
    "planning": "info",
    "info": "info",
    "0": "critical",
    "1": "critical",
    "2": "high",
    "3": "medium",
    "4": "low",
    "5": "info",
}

assert set(DISPOSITIONS) == set(Disposition.__args__)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------- loading


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file; errors are one line with file:line and the key path."""
    from handoffkit.record.inputs import read_bytes

    p = Path(path)
    try:
        data = read_bytes(p, MAX_POLICY_BYTES)  # a regular file, capped: never a device or a pipe that never ends
    except InputError as exc:
        if isinstance(exc.__cause__, OSError):
            why = exc.__cause__.strerror or exc.__cause__
            raise ConfigError(f"{p}: cannot read the policy: {why}", reason=exc.reason) from exc
        raise ConfigError(str(exc), reason=exc.reason) from exc
    return parse_policy(_policy_text(data, str(p)), str(p))


MAX_POLICY_BYTES = 1024**2
"""A policy is a page of YAML; a megabyte is far more than any needs."""


def _policy_text(data: bytes, source: str) -> str:
    """The policy's text: UTF-8 (a BOM tolerated), with no NUL — a binary file is refused at its place."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{source}:{line} (byte {exc.start}): not UTF-8 text ({exc.reason}); expected a UTF-8 YAML policy",
            reason="policy is not UTF-8 text",
        ) from exc
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise ConfigError(
            f"{source}:{line}: a NUL character; expected a YAML text file, not a binary one",
            reason="policy holds a NUL character",
        )
    return text


def parse_policy(text: str, source: str) -> Policy:
    import yaml  # here, not at the top: commands reading a stored policy (reconcile…) never parse YAML

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{source}:{where}: not valid YAML: {problem}", reason="not valid YAML") from exc
    _refuse_duplicate_keys(root, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: expected a mapping with the keys {', '.join(Policy.model_fields)}")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, root, source)) from exc
    _check_escalations(policy, root, source)
    return policy


def _check_escalations(policy: Policy, root: yaml.Node | None, source: str) -> None:
    """An escalation owner is a person's team, never one of the shared queues the policy names."""
    queues = {q.casefold() for q in policy.ownership.shared_queues}
    for band, rule in policy.routing.bands.items():
        owner = rule.escalation_owner()
        if owner and owner["owner_team"].casefold() in queues:  # type: ignore[union-attr]
            loc = ["routing", "bands", band, "escalation"]
            raise ConfigError(
                f"{source}:{_line_of(root, loc)}: {'.'.join(loc)}: team {owner['owner_team']!r} is a shared queue "
                "(ownership.shared_queues); escalate to a named team and role"
            )


def _refuse_duplicate_keys(node: yaml.Node | None, source: str) -> None:
    """YAML's loader keeps the last of two equal keys silently; in a policy that hides a decision."""
    import yaml

    stack = [node] if node is not None else []
    visited: set[int] = set()  # an alias shares its node: each is walked once (no alias bomb)
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in current.value:
                name = str(key.value)
                if name in seen:
                    mark = key.start_mark
                    raise ConfigError(
                        f"{source}:{mark.line + 1}:{mark.column + 1}: key {name!r} appears twice in one mapping "
                        f"(first on line {seen[name]}); expected each key once",
                        reason="duplicate key",
                    )
                seen[name] = key.start_mark.line + 1
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def policy_from_document(document: dict[str, Any]) -> Policy:
    return Policy.model_validate(document)


def _explain(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    errors = exc.errors()
    # A misspelt key also makes the real key "missing"; the unknown key is the error worth naming.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [part for part in err["loc"] if part != "[key]"]
    line = _line_of(root, loc)
    path = ".".join(str(p) for p in loc) or "(top level)"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        message = f"unknown key; expected one of {', '.join(allowed)}"
        if hint:
            message += f" (did you mean {hint[0]!r}?)"
    elif err["type"] == "literal_error":
        options = [
            o.strip(" '")
            for o in str(err.get("ctx", {}).get("expected", "")).replace(" or ", ",").split(",")
            if o.strip(" '")
        ]
        hint = difflib.get_close_matches(str(err.get("input")), options, n=1)
        message = f"{err.get('input')!r} is not allowed; expected one of {', '.join(options)}"
        if hint:
            message += f" (did you mean {hint[0]!r}?)"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}:{line}: {path}: {message}{more}"


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int:
    """The line of the deepest YAML node the error path reaches (keys point at the key itself)."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _allowed_keys(loc: list[Any]) -> list[str]:
    model: Any = Policy
    for part in loc:
        if get_origin(model) is dict:  # e.g. routing.bands.<band>: the key selects the dict's value model
            model = get_args(model)[1]
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        # an optional block (``scope: TicketScope | None``): its keys are the model's
        if get_origin(annotation) in (Union, UnionType):
            annotation = next((a for a in get_args(annotation) if a is not type(None)), annotation)
        model = (
            annotation
            if get_origin(annotation) is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel))
            else None
        )
    return list(getattr(model, "model_fields", {}))
