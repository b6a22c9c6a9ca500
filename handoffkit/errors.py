"""The one exception root of handoffkit and its few subclasses.

Every message names what was wrong (file, place, key or value), what was expected, and, where it
helps, how to fix it. The CLI turns any :class:`HandoffkitError` into one line on stderr and a
non-zero exit.
"""

from __future__ import annotations


class HandoffkitError(Exception):
    """Root of every error handoffkit raises on purpose."""

    exit_code = 1


class ConfigError(HandoffkitError):
    """A policy, owners map or parameter file is malformed or inconsistent."""

    exit_code = 2


class InputError(HandoffkitError):
    """An input file (scan, ticket export, catalog) is malformed, hostile or of an unknown format."""

    exit_code = 3


class DataQualityError(InputError):
    """A normalised batch failed the data-quality gate; nothing was written."""


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


class RemoteError(HandoffkitError):
    """A ticket system's API failed or refused a request; the record holds no partial result."""

    exit_code = 8


def located(source: str, place: str | None, message: str) -> str:
    """Format ``source:place: message`` (the place is omitted when unknown)."""
    return f"{source}:{place}: {message}" if place else f"{source}: {message}"
