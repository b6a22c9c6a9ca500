"""Format detection and the one entry point, :func:`parse_file`.

Detection looks at the content, never the file name: the bytes are loaded once as JSON, XML or
CSV (chosen by the first non-blank character: ``{``/``[`` → JSON, ``<`` → XML, anything else →
CSV; a file of one JSON object per line — JSON Lines — loads as the list of those objects) with
the safe readers of :mod:`handoffkit.record.inputs`, and each parser of that container is asked
``sniff(doc)``, in the order of :data:`handoffkit.ingest.registry.PARSERS`; the first that recognises
the document parses it.

Hostile input is refused by those readers. Added here:

- the place (line:column) of a refused XML declaration, a JSON NaN/Infinity or the point where
  JSON nesting runs away, so every refusal names where in the file it is (computed only on the
  error path);
- Burp's internal DTD: Burp writes ``<!DOCTYPE issues [ <!ELEMENT …> <!ATTLIST …> ]>`` into
  every export, Qualys ``<!DOCTYPE ASSET_DATA_REPORT SYSTEM "https://…qualys.com/asset_data_report.dtd">``.
  A DOCTYPE named by a parser's ``DOCTYPE`` with an internal subset only, or with a system id its
  ``DTD_SYSTEM_ID`` pattern matches (never fetched: expat does not read external DTDs), is re-parsed
  with the DTD allowed but entities and external references still forbidden — so billion-laughs and
  XXE stay refused, and any other external DTD is refused;
- a field of an unexpected type deep inside an item becomes an ``InputError`` naming the file and
  format, never a traceback;
- the cyclic garbage collector is paused while a document loads (see :func:`_gc_paused`).
"""

from __future__ import annotations

import codecs
import gc
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException, DTDForbidden

from handoffkit.errors import InputError, located
from handoffkit.ingest.registry import FORMATS, PARSERS, Parser
from handoffkit.record.inputs import decode_text, load_json, parse_xml, read_csv
from handoffkit.record.model import ParseResult

_ALLOWED_DOCTYPES: dict[str, re.Pattern[str] | None] = {
    m.DOCTYPE: getattr(m, "DTD_SYSTEM_ID", None) for m in PARSERS.values() if hasattr(m, "DOCTYPE")
}
"""DOCTYPE name → the external DTD system ids a parser's exports name (None: an internal subset only)."""
_JSON_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')
_DEPTH_SHOWN = 500
"""Nesting depth reported as the place where a too-deep JSON document runs away."""


def parse_file(data: bytes, source: str, fmt: str = "auto", *, fallback_encoding: str | None = None) -> ParseResult:
    """Parse one scanner output.

    Args:
        data: the file's bytes.
        source: the file's name, used in every message.
        fmt: ``"auto"`` to detect from the content, or one of :data:`FORMATS` to force it.
        fallback_encoding: for CSV only, an 8-bit encoding (``cp1252``) to try when the bytes are
            not UTF-8 / UTF-16.

    Returns:
        The parser's :class:`~handoffkit.record.model.ParseResult`.

    Raises:
        InputError: hostile or malformed content (with file and place), an unknown format (with
            the supported ones), or content that is not the forced ``fmt``.
    """
    if fmt != "auto" and fmt not in PARSERS:
        raise InputError(
            located(source, None, f"unknown format {fmt!r}; expected auto or one of {', '.join(FORMATS)}"),
            reason="unknown format requested",
        )
    container = _container(data, source)
    if fmt == "auto":
        candidates = [p for p in PARSERS.values() if container in p.CONTAINERS]
    elif container in PARSERS[fmt].CONTAINERS:
        candidates = [PARSERS[fmt]]
    else:
        raise InputError(
            located(
                source,
                None,
                f"content looks like {container.upper()}, but format {fmt!r} "
                f"reads {' or '.join(c.upper() for c in PARSERS[fmt].CONTAINERS)}",
            ),
            reason="not the format requested",
        )
    with _gc_paused():
        doc = _load(container, data, source, fallback_encoding)
    for parser in candidates:
        if parser.sniff(doc):
            result = _parse(parser, doc, source)
            if fallback_encoding and getattr(doc, "encoding", None) == fallback_encoding:
                result.warnings.append(f"not UTF-8: read as {fallback_encoding}, as requested")
            return result
    if fmt != "auto":
        raise InputError(
            located(source, None, f"not a {fmt} file ({_describe(doc)}); check the format, or use auto to detect it"),
            reason="not the format requested",
        )
    raise InputError(
        located(source, None, f"unknown scan format ({_describe(doc)}); supported formats: {', '.join(FORMATS)}"),
        reason="unknown scan format",
    )


def _parse(parser: Parser, doc: Any, source: str) -> ParseResult:
    try:
        return parser.parse(doc, source)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        # Parsers check the containers they walk and name the item; a field of an unexpected type deep
        # inside one item is still the file's fault, and must not surface as a traceback.
        raise InputError(
            located(
                source,
                None,
                f"malformed {parser.FORMAT} file: a field has an unexpected type or shape "
                f"({type(exc).__name__}: {exc})",
            ),
            reason="a field has an unexpected type or shape",
        ) from exc


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading builds millions of acyclic containers; the cyclic collector re-scanning the growing
    document while it is built doubles the load time of a large SARIF file, and finds nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _container(data: bytes, source: str) -> str:
    head = data[:1024]
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if head.startswith(bom):
            start = head.decode(codec, errors="ignore").lstrip()
            break
    else:
        start = head.decode("utf-8", errors="ignore").lstrip()
    if not start:
        raise InputError(
            located(source, None, f"empty file; expected a scanner output ({', '.join(FORMATS)})"), reason="empty file"
        )
    return {"{": "json", "[": "json", "<": "xml"}.get(start[0], "csv")


def _load(container: str, data: bytes, source: str, fallback_encoding: str | None) -> Any:
    if container == "json":
        return _load_json(data, source)
    if container == "xml":
        return _load_xml(data, source)
    return read_csv(data, source, fallback_encoding=fallback_encoding)


def _describe(doc: Any) -> str:
    """What the document looks like, for the unknown-format message."""
    if isinstance(doc, Element):
        return f"XML root <{doc.tag}>"
    if isinstance(doc, dict):
        return f"JSON object with keys {', '.join(list(doc)[:8]) or '(none)'}"
    if isinstance(doc, list):
        return f"JSON array of {len(doc)} items"
    if hasattr(doc, "headers"):
        return f"CSV with columns {', '.join(doc.headers[:8])}"
    return f"JSON {type(doc).__name__}"


# ------------------------------------------------------------------------------------------ JSON


def _load_json(data: bytes, source: str) -> Any:
    try:
        return load_json(data, source)
    except InputError as exc:
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError) and cause.msg == "Extra data" and _starts_object_lines(data):
            return _load_json_lines(data, source)
        if isinstance(cause, RecursionError):
            place, reason = _runaway_nesting(data), f"JSON nested deeper than {_DEPTH_SHOWN} levels here"
        elif isinstance(cause, ValueError) and "is not valid JSON" in str(cause):
            place, reason = _json_constant(data), str(cause)
        else:
            raise
        if place is None:
            raise
        raise InputError(located(source, place, f"{reason}; refused"), reason=exc.reason) from cause


def _starts_object_lines(data: bytes) -> bool:
    """Does the file look like JSON Lines (one object per line) rather than broken JSON?"""
    lines = (line.strip() for line in data.splitlines())
    first_two = list(itertools.islice((line for line in lines if line), 2))
    return len(first_two) == 2 and all(line.startswith(b"{") for line in first_two)


def _load_json_lines(data: bytes, source: str) -> list[Any]:
    """JSON Lines (Nuclei ``-jsonl``): every non-blank line one JSON object, read as strictly as a JSON
    document; a bad line is refused with its line number."""
    items: list[Any] = []
    for number, line in enumerate(decode_text(data, source).splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = load_json(line, source)
        except InputError as exc:
            cause = exc.__cause__
            column = cause.colno if isinstance(cause, json.JSONDecodeError) else 1
            reason = f"invalid JSON Lines: {cause.msg}" if isinstance(cause, json.JSONDecodeError) else str(exc)
            raise InputError(located(source, f"{number}:{column}", reason)) from exc
        if not isinstance(item, dict):
            raise InputError(located(source, f"{number}:1", "invalid JSON Lines: expected one JSON object per line"))
        items.append(item)
    return items


def _json_constant(data: bytes) -> str | None:
    """line:col of the first NaN / Infinity outside a string."""
    text = data.decode("utf-8", errors="replace")
    for match in _JSON_CONSTANT.finditer(text):
        if match.group(1):
            return _line_col(text, match.start(1))
    return None


def _runaway_nesting(data: bytes) -> str | None:
    """line:col where the nesting depth first exceeds ``_DEPTH_SHOWN`` (strings skipped)."""
    text = data.decode("utf-8", errors="replace")
    depth, in_string, escaped = 0, False, False
    for pos, ch in enumerate(text):
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > _DEPTH_SHOWN:
                return _line_col(text, pos)
        elif ch in "]}":
            depth -= 1
    return None


def _line_col(content: str | bytes, pos: int) -> str:
    newline = "\n" if isinstance(content, str) else b"\n"
    line = content.count(newline, 0, pos) + 1  # type: ignore[arg-type]
    return f"{line}:{pos - (content.rfind(newline, 0, pos) + 1) + 1}"  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- XML


def _load_xml(data: bytes, source: str) -> Element:
    try:
        return parse_xml(data, source)
    except InputError as exc:
        cause = exc.__cause__
        if not isinstance(cause, DefusedXmlException):
            raise
        if not (isinstance(cause, DTDForbidden) and _doctype_allowed(cause)):
            raise _hostile(source, data, cause) from cause
    try:  # an allowed DTD: declarations only, entities and external references still refused, nothing fetched
        return DefusedET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise _hostile(source, data, exc) from exc
    except ParseError as exc:
        line, col = exc.position
        raise InputError(
            located(source, f"{line}:{col + 1}", f"malformed XML: {str(exc).split(':')[0]}"), reason="malformed XML"
        ) from exc


def _doctype_allowed(doctype: DTDForbidden) -> bool:
    """A DOCTYPE a parser names, with an internal subset only or the vendor's own DTD address. Expat never
    reads an external DTD, so naming one fetches nothing; entities stay forbidden either way."""
    if doctype.name not in _ALLOWED_DOCTYPES or doctype.pubid is not None:
        return False
    system_ids = _ALLOWED_DOCTYPES[doctype.name]
    return doctype.sysid is None or (system_ids is not None and system_ids.fullmatch(doctype.sysid) is not None)


_DECLARATION = {"DTDForbidden": b"<!DOCTYPE", "EntitiesForbidden": b"<!ENTITY", "ExternalReferenceForbidden": b"SYSTEM"}


def _hostile(source: str, data: bytes, exc: DefusedXmlException) -> InputError:
    """The refusal, placed at the offending declaration (line:col) when it can be found."""
    pos = data.find(_DECLARATION.get(type(exc).__name__, b"<!"))
    place = _line_col(data, pos) if pos >= 0 else None
    return InputError(
        located(
            source,
            place,
            f"refused hostile XML: {exc} (DTDs, entity declarations and external references are not accepted)",
        ),
        reason="hostile XML (a DTD, entity or external reference)",
    )
