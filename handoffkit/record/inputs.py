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
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from handoffkit.errors import InputError, located

DEFAULT_MAX_BYTES = int(os.environ.get("HANDOFFKIT_MAX_INPUT_BYTES", str(2 * 1024**3)))
"""Size cap for one input file (2 GiB unless ``HANDOFFKIT_MAX_INPUT_BYTES`` says otherwise)."""


def read_bytes(path: str | Path, max_bytes: int | None = None, *, follow_symlinks: bool = True) -> bytes:
    """Read a whole input file: a regular file (not a device, pipe or directory) no larger than the cap.

    The file is opened first and checked on its descriptor, non-blocking: a pipe cannot hang the read, and
    nothing swapped in between a check and the open is read. ``follow_symlinks=False`` refuses a symlink
    as the last part of the path (for paths already resolved inside a directory).
    """
    cap = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    p = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        with os.fdopen(os.open(p, flags), "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(
                    located(str(p), None, "not a regular file (a device, pipe or directory); expected a file"),
                    reason="not a regular file",
                )
            if info.st_size > cap:
                raise _over_cap(p, cap)
            data = fh.read(cap + 1)  # one byte past the cap: a file that grew since the check is refused too
    except OSError as exc:
        raise InputError(located(str(p), None, f"cannot read: {exc.strerror or exc}"), reason="cannot be read") from exc
    if len(data) > cap:
        raise _over_cap(p, cap)
    return data


def _over_cap(p: Path, cap: int) -> InputError:
    return InputError(
        located(str(p), None, f"file is over the {cap}-byte cap (raise HANDOFFKIT_MAX_INPUT_BYTES to accept it)"),
        reason="over the size cap",
    )


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
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            located(source, f"byte {exc.start}", f"not valid {encoding.upper()} text ({exc.reason})"),
            reason="not valid text in its encoding",
        ) from exc
    refuse_nul(text, source)
    return text


_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
r"""A ``\u0000`` escape that is not the tail of an escaped backslash (``\\u0000`` is the text ``\u0000``)."""


def refuse_nul(text: str, source: str) -> None:
    r"""Refuse text holding a NUL character, raw or as JSON's ``\u0000`` escape, naming where it is.

    No export has a reason to carry one; SQLite would store it and PostgreSQL refuses it mid-transaction,
    so it is refused here, before either backend sees it.
    """
    pos = text.find("\x00")
    if pos < 0 and "\\u0000" in text:
        match = _JSON_NUL.search(text)
        pos = match.end() - len("\\u0000") if match else -1
    if pos >= 0:
        raise InputError(
            located(source, _line_col(text, pos), "a NUL character; expected text without NUL (binary or corrupt?)"),
            reason="holds a NUL character",
        )


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
        raise InputError(
            located(source, f"{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}"), reason="invalid JSON"
        ) from exc
    except _DuplicateKey as exc:
        raise InputError(
            located(
                source,
                _where_duplicate(text, exc.key),
                f"duplicate key {exc.key!r} in one JSON object; "
                "expected each key once (which value is meant is ambiguous)",
            ),
            reason="duplicate key in a JSON object",
        ) from exc
    except RecursionError as exc:
        raise InputError(
            located(source, None, "JSON nested too deeply to be a real export; refused"),
            reason="JSON nested too deeply",
        ) from exc
    except ValueError as exc:  # NaN / Infinity
        raise InputError(located(source, None, f"invalid JSON: {exc}"), reason="invalid JSON") from exc


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
            ),
            reason="hostile XML (a DTD, entity or external reference)",
        ) from exc
    except ParseError as exc:
        line, col = exc.position
        raise InputError(
            located(source, f"{line}:{col + 1}", f"malformed XML: {_xml_reason(exc)}"), reason="malformed XML"
        ) from exc


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
    """The text and the encoding read; any byte that does not decode fails the file, naming its line."""
    if data.startswith(codecs.BOM_UTF8):
        body, codec, encoding = data[len(codecs.BOM_UTF8) :], "utf-8", "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        body, codec, encoding = data, "utf-16", "utf-16"
    else:
        body, codec, encoding = data, "utf-8", "utf-8"
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        if not (fallback and encoding == "utf-8"):
            line = body[: exc.start].decode(codec, errors="ignore").count("\n") + 1
            raise InputError(
                located(
                    source,
                    f"{line} (byte {exc.start + len(data) - len(body)})",
                    f"not {codec.upper()} text ({exc.reason}); expected UTF-8, UTF-8 with BOM or UTF-16 "
                    "with BOM (for a Windows-1252 export pass the cp1252 fallback explicitly)",
                ),
                reason="not valid text in its encoding",
            ) from exc
        text, encoding = data.decode(fallback), fallback
    refuse_nul(text, source)
    return text, encoding


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
        raise InputError(located(source, "1", "empty file; expected a header row"), reason="empty file") from None
    except csv.Error as exc:
        raise InputError(located(source, "1", f"malformed CSV header: {exc}"), reason="malformed CSV") from exc
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
                if len(record) != len(header):
                    # A short row is what a file cut mid-row leaves behind: refused, never padded.
                    raise InputError(
                        located(
                            source,
                            str(start),
                            f"row has {len(record)} cells, the header {len(header)}"
                            + (" (a truncated file?)" if len(record) < len(header) else ""),
                        ),
                        reason="a row's cell count differs from the header's",
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
            ),
            reason="malformed CSV",
        ) from exc
    return CsvTable(headers, rows, lines, encoding, delimiter, repeated, empty)
