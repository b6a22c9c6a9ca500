"""What the record keeps of a refused input file: never a byte of it.

A refused file may be anything a person pointed the tool at — a shadow file, a ``.env`` with cloud keys —
and the activity log is append-only and hash-chained: what it is told it can never forget. So a
failure event and every stored error text carry the file's name, SHA-256 and size, the place (a line,
column or byte offset) and a fixed reason written in handoffkit's code
(:meth:`~handoffkit.errors.HandoffkitError.refusal`), and nothing quoted from the file; the full message,
which may quote it, goes only to the person at the terminal.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from handoffkit.errors import HandoffkitError, InputError, located


def refusal(exc: HandoffkitError, path: str | Path, data: bytes | None) -> dict[str, Any]:
    """The stored form of ``exc`` refusing the file at ``path`` (``data``: its bytes, when they were read)."""
    return {
        "file": str(path),
        "sha256": hashlib.sha256(data).hexdigest() if data is not None else None,
        "size": len(data) if data is not None else None,
        **exc.refusal(str(path)),
    }


def as_refusal(exc: Exception, source: str) -> HandoffkitError:
    """``exc`` as the refusal of the file ``source``: a handoffkit error as it is; a decode error or another
    ``ValueError`` a parser let through as an :class:`InputError` with a fixed reason (it fails that file
    alone, never the whole command)."""
    if isinstance(exc, HandoffkitError):
        return exc
    if isinstance(exc, UnicodeError):
        place = f"byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else None
        return InputError(
            located(source, place, f"not valid text in its encoding ({type(exc).__name__})"),
            reason="not valid text in its encoding",
        )
    return InputError(located(source, None, f"malformed file: {exc}"), reason="malformed file")
