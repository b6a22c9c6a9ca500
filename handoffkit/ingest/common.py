"""Small helpers every parser shares: identifier normalisation, asset naming, raw evidence bytes.

Nothing here knows a scanner format; each function does one normalisation the record model asks
for (``CVE-YYYY-NNNN+`` upper case, ``CWE-<n>``, a URL origin as a web asset, a band from a
tool's own severity word) so that two parsers never disagree about it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, tostring

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError
from dateutil import parser as dateparser

from handoffkit.errors import InputError, located
from handoffkit.record._fastjson import compact_json
from handoffkit.record.model import SEVERITIES, ParseResult, fingerprint, severity_band

UNKNOWN_ASSET = "unknown"
"""Asset ref of an item that names no host, URL, repository or path (asset_ref is never empty)."""

MALFORMED_CVE = "malformed CVE id"
"""``ParseResult.skipped`` reason for a CVE-looking value that is not ``CVE-YYYY-NNNN+``."""

JSON_MEDIA_TYPE = "application/json"
XML_MEDIA_TYPE = "application/xml"

_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
_CWE = re.compile(r"CWE[-_ /#:]*0*(\d+)", re.IGNORECASE)
_SPLIT = re.compile(r"[\s,;]+")
_URL = re.compile(r"https?://[^\s<>\"'\])]+", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</p>|<br\s*/?>|</li>", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


# ------------------------------------------------------------------------------------ values


def instant(value: Any) -> datetime | None:
    """A scan instant as a scanner writes it (ISO 8601, RFC 2822, ``ctime``-like), in UTC; None when absent
    or unreadable. A time without a zone, or with a zone abbreviation other than UTC or GMT, is read as UTC.
    ``GMT-0400`` / ``UTC+05:30`` mean what people (and JavaScript's and Qualys's dates) mean by them, four
    hours behind and five and a half ahead: dateutil alone would read them the POSIX way, inverted."""
    raw = text(value)
    if raw is None:
        return None
    zoned = bool(_UTC_NAMED.search(raw) or _OFFSET.search(raw))
    try:
        parsed = dateparser.parse(_NAMED_OFFSET.sub("", raw), ignoretz=not zoned)
    except (ValueError, OverflowError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def latest(values: Iterable[Any]) -> datetime | None:
    """The latest of the readable instants among ``values`` (None when none is)."""
    found = [i for i in map(instant, values) if i is not None]
    return max(found, default=None)


_UTC_NAMED = re.compile(r"\b(?:UTC|GMT|Z)\b")
_NAMED_OFFSET = re.compile(r"\b(?:UTC|GMT)\s*(?=[+-]\d)")
_OFFSET = re.compile(r"(?:[+-]\d{2}:?\d{2}|Z)$")


def text(value: Any) -> str | None:
    """A stripped string, or None for absent/blank values (JSON numbers become their text)."""
    if value is None:
        return None
    s = value.strip() if isinstance(value, str) else str(value).strip()
    return s or None


def as_float(value: Any) -> float | None:
    """A score as float; None when absent, blank or not a number (scores are optional)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def cvss_base(vector: str | None) -> float | None:
    """The base score of a CVSS 4.0, 3.x or 2 vector, computed by the ``cvss`` package (for formats that
    carry a vector without its score); None when there is no vector or it does not parse."""
    raw = text(vector)
    if raw is None:
        return None
    try:
        if raw.startswith("CVSS:4.0/"):
            return float(CVSS4(raw).base_score)
        if raw.startswith("CVSS:3."):
            return float(CVSS3(raw).base_score)
        return float(CVSS2(raw.removeprefix("CVSS2#").removeprefix("(").removesuffix(")")).base_score)
    except (CVSSError, ValueError, KeyError, IndexError):
        return None


_SCORED_VECTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:\(([^)]*)\))?\s*$")


def score_and_vector(value: Any) -> tuple[float | None, str | None]:
    """``"8.1 (AV:N/AC:H/…)"`` (Qualys) → ``(8.1, "AV:N/AC:H/…")``; a bare score → ``(score, None)``."""
    raw = text(value)
    match = _SCORED_VECTOR.match(raw) if raw else None
    if not match:
        return None, None
    return float(match.group(1)), text(match.group(2))


def values(*items: Any) -> list[str]:
    """Flatten strings, numbers and (nested) lists into tokens split on commas, semicolons, space."""
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, list | tuple):
            out.extend(values(*item))
        else:
            out.extend(t for t in _SPLIT.split(str(item)) if t)
    return out


def first_line(value: str | None, limit: int = 200) -> str | None:
    """The first non-blank line of a text, cut to ``limit`` characters (for titles)."""
    if not value:
        return None
    for line in value.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return None


def first_sentence(value: str | None, limit: int = 160) -> str | None:
    """The first sentence of a message (a title for tools whose rules have no short name)."""
    line = first_line(value, limit)
    if line is None:
        return None
    end = line.find(". ")
    return line[: end + 1] if end > 0 else line


def strip_html(value: str | None) -> str | None:
    """Plain text from the small HTML fragments ZAP and Burp write into descriptions."""
    if not value:
        return None
    plain = html.unescape(_TAG.sub("", _BLOCK_END.sub("\n", value)))
    return text(plain)


def urls_in(*texts: str | None) -> tuple[str, ...]:
    """Every http(s) URL in the texts, in order, each once."""
    found: dict[str, None] = {}
    for t in texts:
        if t:
            for url in _URL.findall(t):
                found[url.rstrip(".,;")] = None
    return tuple(found)


# ------------------------------------------------------------------------------- identifiers


def take_cves(result: ParseResult, *items: Any) -> tuple[str, ...]:
    """Valid CVE ids from the items, upper-cased and deduplicated.

    A token that starts with ``CVE`` but is not ``CVE-YYYY-NNNN+`` is dropped and counted in
    ``result.skipped``; other identifiers (GHSA, RHSA…) are simply not CVEs and are ignored.
    """
    found: dict[str, None] = {}
    for token in values(*items):
        upper = token.upper()
        if _CVE.fullmatch(upper):
            found[upper] = None
        elif upper.startswith("CVE"):
            result.skipped[MALFORMED_CVE] += 1
    return tuple(found)


def cwes(*items: Any) -> tuple[str, ...]:
    """``CWE-<n>`` ids from numbers (79), ``CWE-079``, ``external/cwe/cwe-079``, ``CWE #79: …``."""
    found: dict[str, None] = {}
    for item in items:
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, list | tuple):
            found.update(dict.fromkeys(cwes(*item)))
        elif isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
            if int(item) > 0:  # ZAP and DefectDojo write 0 or -1 for "no CWE"
                found[f"CWE-{int(item)}"] = None
        else:
            for number in _CWE.findall(str(item)):
                if int(number) > 0:
                    found[f"CWE-{int(number)}"] = None
    return tuple(found)


# -------------------------------------------------------------------------------------- assets


def url_origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL (default ports dropped), or None if it is not a URL."""
    if not url or "://" not in url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def host_asset(host: str | None, port: Any = None) -> str:
    """A network asset: ``host:port`` (port 0 or absent → host alone); a URL host → its origin."""
    name = text(host)
    if not name:
        return UNKNOWN_ASSET
    origin = url_origin(name)
    if origin:
        return origin
    port_text = text(port)
    return f"{name}:{port_text}" if port_text and port_text != "0" else name


def code_asset(path: str | None) -> str:
    """The asset of a source path when the scan names no repository.

    A relative path's top-level directory (``frontend/src/a.ts`` → ``frontend``; a file at the
    root → ``.``, the scanned root); an absolute ``file://`` URI or path → its parent directory.
    """
    name = text(path)
    if not name:
        return UNKNOWN_ASSET
    if name.startswith("file://"):
        name = name[len("file://") :]
    name = name.replace("\\", "/")
    if name.startswith("/") or "://" in name:
        parent = name.rsplit("/", 1)[0]
        return parent or "/"
    name = name.removeprefix("./")
    return name.split("/", 1)[0] if "/" in name else "."


def package_asset(artifact: str | None, name: str | None, version: str | None = None) -> str:
    """A dependency inside what was scanned: ``<artifact> pkg:<name>@<version>`` (the owners map and rescan
    scope resolve it to the artifact, see :func:`handoffkit.record.owners.parents`)."""
    base = text(artifact) or UNKNOWN_ASSET
    if not text(name):
        return base
    return f"{base} pkg:{text(name)}@{text(version)}" if text(version) else f"{base} pkg:{text(name)}"


def versions_line(installed: Any, fixed: Any) -> str:
    """``Installed: 1.0; fixed in: 1.1, 2.0`` (``no fix yet`` when none) for a dependency's description."""
    fixes = ", ".join(values(fixed)) if isinstance(fixed, list | tuple) else text(fixed)
    return f"Installed: {text(installed) or '?'}; fixed in: {fixes or 'no fix yet'}"


def host_plugin_fingerprint(host: str, port: Any, protocol: str | None, plugin: str | None) -> str:
    """Nessus and Tenable CSV share this so the same plugin on the same host:port matches."""
    return fingerprint("nessus", host.lower(), text(port) or "0", (protocol or "").lower(), plugin)


# ------------------------------------------------------------------------------------ severity


def band(raw: str | None, source: str, place: str, mapping: Mapping[str, str] | None = None) -> str:
    """The severity band of a tool's own word (case-insensitive): ``mapping`` first, then the
    band names and their usual aliases. An unknown word is an error, never a silent default.
    """
    key = (raw or "").strip().lower()
    if mapping and key in mapping:
        return mapping[key]
    try:
        return severity_band(key)
    except ValueError:
        expected = sorted(set(mapping or {}) | set(SEVERITIES))
        raise InputError(
            located(source, place, f"unknown severity {raw!r}; expected one of {', '.join(expected)}"),
            reason="unknown severity",
        ) from None


# --------------------------------------------------------------------------------- raw evidence


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""One encoder for the items orjson cannot write alike: ``json.dumps`` with options builds one per call."""


def json_raw(item: Any) -> bytes:
    """The item's canonical JSON bytes (``json.dumps(item, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``, UTF-8) as stored evidence."""
    text = compact_json(item)
    return (text if text is not None else _CANONICAL.encode(item)).encode()


def xml_raw(elem: Element) -> bytes:
    """The element's own XML bytes as stored evidence."""
    return tostring(elem)


def children_text(elem: Element) -> dict[str, list[str]]:
    """Child tag → the stripped, non-empty texts of those children (repeated tags kept in order)."""
    out: dict[str, list[str]] = {}
    for child in elem:
        value = text(child.text)
        if value is not None:
            out.setdefault(child.tag, []).append(value)
    return out


def first(fields: Mapping[str, list[str]], *tags: str) -> str | None:
    """The first text among ``tags`` in a :func:`children_text` mapping."""
    for tag in tags:
        found = fields.get(tag)
        if found:
            return found[0]
    return None


# ------------------------------------------------------------------------------------ structure


def expect_dict(value: Any, source: str, place: str, what: str) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an InputError naming the place."""
    if not isinstance(value, dict):
        raise InputError(
            located(source, place, f"expected {what} (a JSON object), found {type(value).__name__}"),
            reason="unexpected JSON shape",
        )
    return value


def expect_list(value: Any, source: str, place: str, what: str) -> list[Any]:
    """``value`` when it is a JSON array (absent/null → empty), else an InputError."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(
            located(source, place, f"expected {what} (a JSON array), found {type(value).__name__}"),
            reason="unexpected JSON shape",
        )
    return value


def join_nonempty(parts: Iterable[str | None], sep: str = "\n\n") -> str | None:
    """Join the non-empty parts, or None when all are empty."""
    kept = [p for p in parts if p]
    return sep.join(kept) if kept else None
