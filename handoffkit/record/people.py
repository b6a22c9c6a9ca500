"""People: actors of events, approvers, owners. One named individual each, compared normalised."""

from __future__ import annotations

import unicodedata

from handoffkit.errors import HandoffkitError


def normalise(name: str | None) -> str:
    """Case- and whitespace-insensitive identity: ``"  Ana  de Souza "`` == ``"ana de souza"``."""
    return " ".join(unicodedata.normalize("NFKC", name or "").casefold().split())


def require_actor(actor: str | None) -> str:
    """The actor as given (trimmed); an empty actor is refused before anything is written."""
    cleaned = " ".join((actor or "").split())
    if not cleaned:
        raise HandoffkitError(
            "an actor is required: pass --actor NAME (or set HANDOFFKIT_ACTOR) "
            "naming the one person responsible for this action"
        )
    return cleaned


def same_person(a: str | None, b: str | None) -> bool:
    return bool(normalise(a)) and normalise(a) == normalise(b)
