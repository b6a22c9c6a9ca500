"""Safe readers for untrusted input files: scanner outputs, ticket exports, catalogs.

Every reader refuses hostile or broken input with an :class:`InputError` whose message names the
file, the place (line:column or byte offset) and what was expected:

- JSON: duplicate keys, NaN/Infinity and nesting deeper than the interpreter allows are refused;
- XML: parsed by defusedxml with DTDs, entities and external references forbidden (billion laughs,
  XXE and external DTDs never expand);
- CSV: UTF-8, UTF-8 with BOM and UTF-16 (with BOM) are read; cp1252 only when the caller asks for it
  explicitly (the returned table says so, so the caller can log it); the delimiter is detected; repeated
  headers (Jira's ``Labels``, ``Sprint``…) are merged into lists, never dropped.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from handoffkit.errors import InputError, located

DEFAULT_MAX_BYTES = int(os.environ.get("HANDOFFKIT_MAX_INPUT_BYTES", str(2 * 1024**3)))
"""Size cap for one input file (2 GiB unless ``HANDOFFKIT_MAX_INPUT_BYTES`` says otherwise)."""


def read_bytes(path: str | Path, max_bytes: int | None = None) -> bytes:
    """Read a whole input file, refusing one larger than the cap."""
    cap = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > cap:
            raise InputError(
                located(
                    str(p),
                    None,
                    f"file is {size} bytes, over the {cap}-byte cap (raise HANDOFFKIT_MAX_INPUT_BYTES to accept it)",
                )
            )
        return p.read_bytes()
    except OSError as exc:
        raise InputError(located(str(p), None, f"cannot read: {exc.strerror or exc}")) from exc


# --------------------------------------------------------------------------------------------- JSON


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def decode_text(data: bytes, source: str) -> str:
    """Decode JSON/XML-ish text: UTF-8 (BOM tolerated) or UTF-16/32 with a BOM."""
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
        (codecs.BOM_UTF8, "utf-8-sig"),
    ):
        if data.startswith(bom):
            encoding = codec
            break
    else:
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            located(source, f"byte {exc.start}", f"not valid {encoding.upper()} text ({exc.reason})")
        ) from exc


def _line_col(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"{line}:{col}"


def load_json(data: bytes | str, source: str) -> Any:
    """Parse JSON strictly; see the module docstring for what is refused."""
    text = decode_text(data, source) if isinstance(data, bytes) else data
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(located(source, f"{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}")) from exc
    except _DuplicateKey as exc:
        raise InputError(
            located(
                source,
                _where_duplicate(text, exc.key),
                f"duplicate key {exc.key!r} in one JSON object; "
                "expected each key once (which value is meant is ambiguous)",
            )
        ) from exc
    except RecursionError as exc:
        raise InputError(located(source, None, "JSON nested too deeply to be a real export; refused")) from exc
    except ValueError as exc:  # NaN / Infinity
        raise InputError(located(source, None, f"invalid JSON: {exc}")) from exc


def _where_duplicate(text: str, key: str) -> str | None:
    """Slow path, only on error: re-scan with the pure-Python decoder to find the object's start."""
    from json import decoder, scanner

    where: list[int] = []

    def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None, _w=None):
        end = s_and_end[1]
        pairs, new_end = decoder.JSONObject(s_and_end, strict, scan_once, None, list, memo)
        keys = [k for k, _ in pairs]
        if key in keys and keys.count(key) > 1 and not where:
            where.append(end - 1)
        return dict(pairs), new_end

    dec = json.JSONDecoder()
    dec.parse_object = parse_object
    dec.scan_once = scanner.py_make_scanner(dec)
    try:
        dec.decode(text)
    except (ValueError, RecursionError):
        return None
    return f"{_line_col(text, where[0])}" if where else None


# ---------------------------------------------------------------------------------------------- XML


def parse_xml(data: bytes, source: str) -> Element:
    """Parse XML with DTDs, entity declarations and external references forbidden."""
    try:
        return DefusedET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InputError(
            located(
                source,
                None,
                f"refused hostile XML: {exc} (DTDs, entity declarations and external references are not accepted)",
            )
        ) from exc
    except ParseError as exc:
        line, col = exc.position
        raise InputError(located(source, f"{line}:{col + 1}", f"malformed XML: {_xml_reason(exc)}")) from exc


def _xml_reason(exc: ParseError) -> str:
    text = str(exc)
    return text.split(":")[0] if ": line" in text else text


# ---------------------------------------------------------------------------------------------- CSV


@dataclass
class CsvTable:
    """A CSV file read into rows keyed by header; repeated headers hold a list of the non-empty values."""

    headers: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]
    """The line on which each row starts (1-based, the header being line 1)."""
    encoding: str
    delimiter: str
    repeated: list[str] = field(default_factory=list)
    empty_rows: int = 0


def _decode_csv(data: bytes, source: str, fallback: str | None) -> tuple[str, str]:
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if fallback:
            return data.decode(fallback), fallback
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            located(
                source,
                f"{line} (byte {exc.start})",
                "not UTF-8 text; expected UTF-8, UTF-8 with BOM or UTF-16 with BOM "
                "(for a Windows-1252 export pass the cp1252 fallback explicitly)",
            )
        ) from exc


def _sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: 0 for d in (",", ";", "\t", "|")}
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(data: bytes, source: str, *, fallback_encoding: str | None = None) -> CsvTable:
    """Read a CSV export; see the module docstring. Empty rows are counted, not returned."""
    text, encoding = _decode_csv(data, source, fallback_encoding)
    delimiter = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(located(source, "1", "empty file; expected a header row")) from None
    except csv.Error as exc:
        raise InputError(located(source, "1", f"malformed CSV header: {exc}")) from exc
    headers: list[str] = []
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        name = name.strip()
        if name not in positions:
            headers.append(name)
        positions.setdefault(name, []).append(i)
    repeated = [h for h in headers if len(positions[h]) > 1]
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    empty = 0
    start = 2
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                empty += 1
            else:
                if len(record) > len(header):
                    raise InputError(
                        located(source, str(start), f"row has {len(record)} cells, the header {len(header)}")
                    )
                row: dict[str, Any] = {}
                for name in headers:
                    idx = positions[name]
                    if len(idx) == 1:
                        row[name] = record[idx[0]] if idx[0] < len(record) else ""
                    else:
                        row[name] = [record[i] for i in idx if i < len(record) and record[i] != ""]
                rows.append(row)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(
            located(
                source,
                str(start),
                f"malformed CSV: {exc} (a quoted cell that never closes usually means a truncated file)",
            )
        ) from exc
    return CsvTable(headers, rows, lines, encoding, delimiter, repeated, empty)
