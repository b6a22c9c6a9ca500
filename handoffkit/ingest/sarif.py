"""SARIF 2.1.0 logs (CodeQL, Semgrep, Snyk Code, Checkov, ESLint, Trivy … in SARIF form).

One record per ``runs[i].results[j]``, every run. Rules are looked up by ``ruleIndex`` /
``rule.index`` (in the driver, or in ``tool.extensions[k]`` when ``rule.toolComponent`` says so)
and by ``ruleId`` (driver rules first, then extension rules); the lookup tables are built once
per run so per-result work stays a few dict lookups plus the evidence bytes.

Severity: a ``security-severity`` score (result properties, else rule properties) through the
CVSS bands (9.0+ critical, 7.0+ high, 4.0+ medium, >0 low, 0 info); otherwise the result
``level`` (else the rule's ``defaultConfiguration.level``; else ``warning``, or ``none`` for a
result whose ``kind`` is not ``fail`` — the SARIF defaults): error → high, warning → medium,
note → low, none → info.

Asset: the run's ``versionControlProvenance[0].repositoryUri``; else the ``originalUriBaseIds``
URI of the result's ``uriBaseId``; else :func:`~handoffkit.ingest.common.code_asset` of the
artifact path (its top-level directory). Location: ``uri:startLine``.

Fingerprint: tool name, rule id, asset, artifact URI and the tool's own ``fingerprints`` (else
``partialFingerprints``) when present — they survive line shifts; without them, the start line
and column stand in. Excluded: message text, level, tool version, run ids and times.

Suppressed results (a suppression whose status is absent or ``accepted``) are kept with
``suppressed=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoffkit.errors import InputError, located
from handoffkit.ingest.common import (
    JSON_MEDIA_TYPE,
    UNKNOWN_ASSET,
    as_float,
    code_asset,
    cwes,
    expect_dict,
    expect_list,
    first_sentence,
    json_raw,
    latest,
    take_cves,
    text,
)
from handoffkit.record.model import NormalisedFinding, ParseResult, band_for_score, fingerprint

FORMAT = "sarif"
CONTAINERS = ("json",)

LEVELS = {"error": "high", "warning": "medium", "note": "low", "none": "info"}


def sniff(doc: Any) -> bool:
    """A JSON object with a ``runs`` array and a 2.x version or a SARIF ``$schema``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        return False
    return str(doc.get("version", "")).startswith("2.") or "sarif" in str(doc.get("$schema", "")).lower()


@dataclass(slots=True, frozen=True)
class _Rule:
    id: str | None
    title: str | None
    cwes: tuple[str, ...]
    score: float | None
    level: str | None
    help_uri: str | None


@dataclass(slots=True)
class _Run:
    """What every result of one run shares, computed once."""

    index: int
    tool: str
    version: str | None
    repository: str | None
    bases: dict[str, str]
    artifacts: list[dict[str, Any]]
    components: list[list[_Rule]]
    by_id: dict[str, _Rule]


def parse(doc: dict[str, Any], source: str) -> ParseResult:
    """Parse a SARIF log; see the module docstring for the mapping."""
    runs = expect_list(doc.get("runs"), source, "runs", "the runs")
    contexts = [_run_context(expect_dict(run, source, f"runs[{i}]", "a run"), i, source) for i, run in enumerate(runs)]
    tools = list(dict.fromkeys(c.tool for c in contexts))
    versions = list(dict.fromkeys(c.version for c in contexts))
    result = ParseResult(
        format=FORMAT, tool=", ".join(tools) or "SARIF", tool_version=versions[0] if len(versions) == 1 else None
    )
    for run, ctx in zip(runs, contexts, strict=True):
        _parse_run(run, ctx, source, result)
    invocations = [i for run in runs for i in run.get("invocations") or [] if isinstance(i, dict)]
    result.scanned_at = latest(i.get("endTimeUtc") for i in invocations) or latest(
        i.get("startTimeUtc") for i in invocations
    )
    return result


def _run_context(run: dict[str, Any], index: int, source: str) -> _Run:
    tool = run.get("tool") or {}
    driver = tool.get("driver") or {}
    extensions = [e for e in tool.get("extensions") or [] if isinstance(e, dict)]
    components = [[_rule(r) for r in c.get("rules") or [] if isinstance(r, dict)] for c in [driver, *extensions]]
    by_id: dict[str, _Rule] = {}
    for rules in reversed(components):  # driver last, so its rules win an id clash
        by_id.update((r.id, r) for r in rules if r.id)
    artifacts = expect_list(run.get("artifacts"), source, f"runs[{index}].artifacts", "the artifacts")
    provenance = run.get("versionControlProvenance")
    first_vcs = provenance[0] if isinstance(provenance, list) and provenance else {}
    bases = {
        key: text(value.get("uri"))
        for key, value in (run.get("originalUriBaseIds") or {}).items()
        if isinstance(value, dict) and text(value.get("uri"))
    }
    return _Run(
        index=index,
        tool=text(driver.get("name")) or "SARIF",
        version=text(driver.get("semanticVersion")) or text(driver.get("version")),
        repository=text(first_vcs.get("repositoryUri")) if isinstance(first_vcs, dict) else None,
        bases=bases,
        artifacts=[a if isinstance(a, dict) else {} for a in artifacts],
        components=components,
        by_id=by_id,
    )


def _rule(rule: dict[str, Any]) -> _Rule:
    props = rule.get("properties") or {}
    short = (rule.get("shortDescription") or {}).get("text")
    relationships = [
        r.get("target", {}).get("id")
        for r in rule.get("relationships") or []
        if isinstance(r, dict) and str(r.get("target", {}).get("toolComponent", {}).get("name", "")).upper() == "CWE"
    ]
    return _Rule(
        id=text(rule.get("id")),
        title=first_sentence(short) or text(rule.get("name")) or text(rule.get("id")),
        cwes=cwes(props.get("tags"), props.get("cwe"), relationships),
        score=as_float(props.get("security-severity")),
        level=text((rule.get("defaultConfiguration") or {}).get("level")),
        help_uri=text(rule.get("helpUri")),
    )


def _parse_run(run: dict[str, Any], ctx: _Run, source: str, result: ParseResult) -> None:
    covered = result.tool_scopes.setdefault(ctx.tool, set())  # runs of several tools: each its own scope
    if ctx.repository:
        covered.add(ctx.repository)
    for artifact in ctx.artifacts:
        covered.add(_asset(ctx, artifact.get("location") or {}))
    results = expect_list(run.get("results"), source, f"runs[{ctx.index}].results", "the results")
    for j, res in enumerate(results):
        place = f"runs[{ctx.index}].results[{j}]"
        record = _record(expect_dict(res, source, place, "a result"), ctx, source, place, result)
        result.records.append(record)
        covered.add(record.asset_ref)
    result.scope_assets |= covered


def _record(res: dict[str, Any], ctx: _Run, source: str, place: str, result: ParseResult) -> NormalisedFinding:
    rule = _lookup(res, ctx)
    rule_id = text(res.get("ruleId")) or text((res.get("rule") or {}).get("id")) or (rule.id if rule else None)
    severity, raw_severity = _severity(res, rule, source, place)
    artifact, line, column = _location(res, ctx)
    uri = text(artifact.get("uri"))
    asset = _asset(ctx, artifact)
    tool_fps = res.get("fingerprints") or res.get("partialFingerprints")
    if isinstance(tool_fps, dict) and tool_fps:
        identity: tuple[Any, ...] = tuple(f"{k}={v}" for k, v in sorted(tool_fps.items()))
    else:
        identity = (line, column)
    message = res.get("message") or {}
    return NormalisedFinding(
        fingerprint=fingerprint(FORMAT, ctx.tool, rule_id, asset, uri, *identity),
        title=(rule.title if rule else None) or first_sentence(message.get("text")) or rule_id or "(untitled)",
        asset_ref=asset,
        tool=ctx.tool,
        tool_version=ctx.version,
        severity=severity,
        raw_severity=raw_severity,
        kind="code",
        rule_ref=rule_id,
        location=f"{uri}:{line}" if uri and line else uri,
        cves=take_cves(result, rule_id) if rule_id and rule_id.upper().startswith("CVE-") else (),
        cwes=rule.cwes if rule else (),
        description=text(message.get("text")) or text(message.get("markdown")),
        references=(rule.help_uri,) if rule and rule.help_uri else (),
        suppressed=_suppressed(res),
        raw=json_raw(res),
        raw_media_type=JSON_MEDIA_TYPE,
        source_ref=place,
    )


def _lookup(res: dict[str, Any], ctx: _Run) -> _Rule | None:
    ref = res.get("rule") if isinstance(res.get("rule"), dict) else {}
    index = res.get("ruleIndex", ref.get("index"))
    component = ref.get("toolComponent") or {}
    rules = ctx.components[0]
    extension = component.get("index")
    if isinstance(extension, int) and 0 <= extension < len(ctx.components) - 1:
        rules = ctx.components[extension + 1]  # toolComponent.index counts tool.extensions; 0 is the driver
    if isinstance(index, int) and 0 <= index < len(rules):
        return rules[index]
    rule_id = res.get("ruleId") or ref.get("id")
    return ctx.by_id.get(rule_id) if isinstance(rule_id, str) else None


def _severity(res: dict[str, Any], rule: _Rule | None, source: str, place: str) -> tuple[str, str]:
    score = as_float((res.get("properties") or {}).get("security-severity"))
    if score is None and rule:
        score = rule.score
    if score is not None:
        return band_for_score(score) or "info", f"security-severity {score:g}"
    default = "warning" if res.get("kind", "fail") == "fail" else "none"
    level = text(res.get("level")) or (rule.level if rule else None) or default
    try:
        return LEVELS[level], level
    except KeyError:
        raise InputError(
            located(source, place, f"unknown SARIF level {level!r}; expected one of {', '.join(LEVELS)}")
        ) from None


def _location(res: dict[str, Any], ctx: _Run) -> tuple[dict[str, Any], Any, Any]:
    """The primary location's artifactLocation (resolved through ``artifacts[index]``) and region."""
    locations = res.get("locations") or [{}]
    physical = (locations[0] or {}).get("physicalLocation") or {}
    artifact = physical.get("artifactLocation") or {}
    index = artifact.get("index")
    if "uri" not in artifact and isinstance(index, int) and 0 <= index < len(ctx.artifacts):
        artifact = {**artifact, **(ctx.artifacts[index].get("location") or {})}
    region = physical.get("region") or {}
    return artifact, region.get("startLine"), region.get("startColumn")


def _asset(ctx: _Run, artifact: dict[str, Any]) -> str:
    if ctx.repository:
        return ctx.repository
    base = ctx.bases.get(text(artifact.get("uriBaseId")) or "")
    if base:
        return base
    uri = text(artifact.get("uri"))
    return code_asset(uri) if uri else UNKNOWN_ASSET


def _suppressed(res: dict[str, Any]) -> bool:
    return any(isinstance(s, dict) and s.get("status", "accepted") == "accepted" for s in res.get("suppressions") or [])
