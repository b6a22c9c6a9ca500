"""The one exception root of handoffkit and its few subclasses.

Every message names what was wrong (file, place, key or value), what was expected, and, where it
helps, how to fix it. The CLI turns any :class:`HandoffkitError` into one line on stderr and a
non-zero exit.
"""

from __future__ import annotations

import re
from typing import Any


class HandoffkitError(Exception):
    """Root of every error handoffkit raises on purpose.

    The message is for the person at the terminal and may quote the input. What the record keeps of a
    refusal is :meth:`refusal`: the class, a fixed ``reason`` (text written here, never bytes of the
    input) and the numeric place — a refused file may hold a secret, and the activity log can never
    forget what it was told.
    """

    exit_code = 1
    reason = "refused"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    def refusal(self, source: str | None = None) -> dict[str, Any]:
        """What may be stored of this error: ``{"kind", "reason", "place"}`` (see the class docstring).

        The place is read from a ``source:place: …`` message (:func:`located`) and kept only when it is a
        position — line, line:column, byte offset — never a key or a value taken from the input.
        """
        place = None
        text = str(self)
        if source and text.startswith(source + ":"):
            match = _PLACE.match(text, len(source) + 1)
            place = match.group(1) if match else None
        return {"kind": type(self).__name__, "reason": self.reason, "place": place}


class ConfigError(HandoffkitError):
    """A policy, owners map or parameter file is malformed or inconsistent."""

    exit_code = 2
    reason = "configuration refused"


class NoRecordError(ConfigError):
    """The database holds no handoffkit record yet (only ``init`` and ``demo`` create one)."""


class InputError(HandoffkitError):
    """An input file (scan, ticket export, catalog) is malformed, hostile or of an unknown format."""

    exit_code = 3
    reason = "input file refused"


class DataQualityError(InputError):
    """A normalised batch failed the data-quality gate; nothing was written."""

    reason = "refused by the data-quality gate"


class NotFoundError(HandoffkitError):
    """An engagement, finding, ticket or exception does not exist."""

    exit_code = 4


class RefusedError(HandoffkitError):
    """A domain rule refused the action; nothing changed and a ``denied`` event was logged."""

    exit_code = 5


class ConcurrentEditError(HandoffkitError):
    """Someone else changed the row since it was read; reload and retry."""

    exit_code = 6


class IntegrityError(HandoffkitError):
    """The activity log's hash chain (or an anchor) does not verify."""

    exit_code = 7


_PLACE = re.compile(r"(\d+(?::\d+)?(?: \(byte \d+\))?|byte \d+): ")


class RemoteError(HandoffkitError):
    """A ticket system's API failed or refused a request; the record holds no partial result."""

    exit_code = 8


def located(source: str, place: str | None, message: str) -> str:
    """Format ``source:place: message`` (the place is omitted when unknown)."""
    return f"{source}:{place}: {message}" if place else f"{source}: {message}"
