"""People: actors of events, approvers, owners. One named individual each, told apart by what a reader sees.

Separation of duties (an exception's approver is not its requester, an attestation's approver is not the
attesting owner) compares people, not strings. Two spellings are one person when their *identity keys*
match (:func:`keys`):

1. NFKC (full-width letters, ligatures), then every default-ignorable code point removed (zero-width space
   and joiner, soft hyphen, word joiner, BOM, variation selectors, Hangul fillers …), then accents folded
   (NFD, non-spacing marks removed): the Unicode properties as ICU ships them, not a hand table;
2. an e-mail address reads as its local part (``dana.whitfield+x@…`` → ``dana whitfield``), and ``Last,
   First`` as ``First Last``;
3. the UTS #39 confusable skeleton (ICU's ``SpoofChecker.getSkeleton``: a Cyrillic ``а`` or ``і``, a digit
   ``1`` for ``l``, ``rn`` for ``m`` …) of the case-folded text, and — because ``I`` and ``l`` look alike
   only before case folding — of the text as written; spaces are left out of both.

Two spellings are the same person when either key matches. A name that is empty once invisible characters
are removed, or that mixes scripts within a word (``Dаna`` with a Cyrillic ``а``; a Japanese name mixing Han
and kana is one script set, UTS #39's single-script restriction), is refused as an actor or an approver.

An engagement may have a *people directory* (``params/people.csv``: ``id, name, email, aliases,
may_approve``), loaded by ``handoffkit init`` and kept in the activity log (``people_loaded``). Where it
exists, names, e-mails and aliases resolve to one person id (same person = same id), the actor and the
approver of a separation-of-duties decision must each resolve, and the approver must be allowed to approve.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import icu
from sqlalchemy import Connection, select

from handoffkit.errors import ConfigError, HandoffkitError, InputError, RefusedError
from handoffkit.record import schema

#: NFKC, default-ignorable code points removed, accents folded (ICU's transliterator, its Unicode data).
_FOLD = icu.Transliterator.createInstance(
    "NFKC; [:Default_Ignorable_Code_Point:] Remove; NFD; [:Nonspacing Mark:] Remove; NFC"
)
_INVISIBLE = icu.UnicodeSet("[:Default_Ignorable_Code_Point:]")
_EMAIL = re.compile(r"^([^@\s]+)@[^@\s]+\.[^@\s]+$")
_EMAIL_SEPARATORS = re.compile(r"[._-]+")
COLUMNS = ("id", "name", "email", "aliases", "may_approve")
PEOPLE_LOADED = "people_loaded"
_TRUE, _FALSE = ("yes", "true", "1", "y"), ("no", "false", "0", "n", "")


def _spoof_checker(level: Any = None) -> icu.SpoofChecker:
    checker = icu.SpoofChecker()
    if level is not None:
        checker.setRestrictionLevel(level)
        checker.setChecks(icu.USpoofChecks.RESTRICTION_LEVEL)
    return checker


_SKELETON = _spoof_checker()
_SINGLE_SCRIPT = _spoof_checker(icu.URestrictionLevel.SINGLE_SCRIPT_RESTRICTIVE)


def visible(name: str | None) -> str:
    """The name with default-ignorable code points removed and its whitespace collapsed (NFC)."""
    text = unicodedata.normalize("NFC", name or "")
    return " ".join("".join(ch for ch in text if not _INVISIBLE.contains(ch)).split())


@lru_cache(maxsize=4096)
def keys(name: str | None) -> tuple[str, str]:
    """The two identity keys of a spelling (see the module docstring); ``("", "")`` for an empty one."""
    text = " ".join(_FOLD.transliterate(name or "").split())
    email = _EMAIL.match(text)
    if email:
        text = " ".join(_EMAIL_SEPARATORS.split(email.group(1).split("+", 1)[0]))
    elif text.count(",") == 1:
        last, first = (part.strip() for part in text.split(","))
        text = f"{first} {last}" if first and last else text.replace(",", "")
    folded = _SKELETON.getSkeleton(0, text.casefold())
    as_written = _SKELETON.getSkeleton(0, text)
    return "".join(folded.casefold().split()), "".join(as_written.split())


def name_problem(name: str | None) -> str | None:
    """Why a name cannot stand for one person (empty once invisibles are removed; scripts mixed within a
    word), or None."""
    shown = visible(name)
    if not shown or not keys(name)[0]:
        return "is empty once invisible characters are removed" if (name or "").strip() else "is empty"
    for word in shown.split():
        if _SINGLE_SCRIPT.check(word):
            return f"mixes scripts within the word {word!r} (e.g. a Cyrillic or Greek letter among Latin ones)"
    return None


def require_actor(actor: str | None) -> str:
    """The actor as given (trimmed); an empty actor, or one that mixes scripts within a word, is refused
    before anything is written."""
    cleaned = " ".join((actor or "").split())
    if not cleaned:
        raise HandoffkitError(
            "an actor is required: pass --actor NAME (or set HANDOFFKIT_ACTOR) "
            "naming the one person responsible for this action"
        )
    problem = name_problem(cleaned)
    if problem:
        raise HandoffkitError(f"actor {cleaned!r} {problem}: pass --actor with the one person's name as written")
    return cleaned


# ------------------------------------------------------------------------------ the directory


@dataclass(frozen=True, slots=True)
class Person:
    """One row of the people directory."""

    id: str
    name: str
    email: str | None
    aliases: tuple[str, ...]
    may_approve: bool

    def spellings(self) -> tuple[str, ...]:
        return (self.name, *((self.email,) if self.email else ()), *self.aliases)


class Directory:
    """The people directory of an engagement: every spelling's keys → the one person they name."""

    def __init__(self, people: list[Person], source: str = "people directory") -> None:
        self.people = {p.id: p for p in people}
        self._by_key: dict[str, Person] = {}
        for person in people:
            for spelling in person.spellings():
                for key in keys(spelling):
                    other = self._by_key.setdefault(key, person)
                    if other.id != person.id:
                        raise ConfigError(
                            f"{source}: {spelling!r} of person {person.id!r} reads the same as a name of person "
                            f"{other.id!r}; the directory must tell people apart"
                        )

    def resolve(self, name: str | None) -> Person | None:
        """The person a spelling names, or None."""
        for key in keys(name):
            if key and key in self._by_key:
                return self._by_key[key]
        return None

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"id": p.id, "name": p.name, "email": p.email, "aliases": list(p.aliases), "may_approve": p.may_approve}
            for p in self.people.values()
        ]


def load_people(path: str | Path) -> tuple[Directory, bytes]:
    """Read ``people.csv`` (``id, name, email, aliases`` separated by ``;``, ``may_approve`` yes/no).

    Raises:
        ConfigError: a missing column, an empty or duplicate id, a name that cannot stand for one person,
            or two people the directory cannot tell apart; the message names the file and line.
    """
    from handoffkit.record.inputs import read_bytes, read_csv

    data = read_bytes(path)
    try:
        table = read_csv(data, str(path))
    except InputError as exc:
        raise ConfigError(str(exc)) from exc
    missing = [c for c in COLUMNS if c not in table.headers]
    if missing:
        raise ConfigError(f"{path}:1: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    people: list[Person] = []
    for row, line in zip(table.rows, table.lines, strict=True):
        people.append(_person(row, f"{path}:{line}", {p.id for p in people}))
    return Directory(people, str(path)), data


def _person(row: dict[str, Any], where: str, seen: set[str]) -> Person:
    clean = {c: (row.get(c) or "").strip() for c in COLUMNS}
    if not clean["id"] or clean["id"] in seen:
        raise ConfigError(f"{where}: id {clean['id']!r} is {'empty' if not clean['id'] else 'a duplicate'}")
    aliases = tuple(a.strip() for a in clean["aliases"].split(";") if a.strip())
    for column, value in (("name", clean["name"]), ("email", clean["email"]), *(("aliases", a) for a in aliases)):
        if column == "email" and not value:
            continue
        problem = name_problem(value)
        if problem:
            raise ConfigError(f"{where}: {column} {value!r} {problem}")
    approve = clean["may_approve"].casefold()
    if approve not in (*_TRUE, *_FALSE):
        raise ConfigError(f"{where}: may_approve {clean['may_approve']!r}: expected yes or no")
    return Person(clean["id"], clean["name"], clean["email"] or None, aliases, approve in _TRUE)


def directory(conn: Connection, engagement: str) -> Directory | None:
    """The engagement's people directory as last loaded (the latest ``people_loaded`` event), or None."""
    ev = schema.events.c
    payload = conn.execute(
        select(ev.payload)
        .where(ev.engagement == engagement, ev.type == PEOPLE_LOADED, ev.outcome == "success")
        .order_by(ev.seq.desc())
        .limit(1)
    ).scalar()
    if payload is None:
        return None
    rows = json.loads(payload)["data"]["rows"]
    return Directory(
        [Person(r["id"], r["name"], r["email"], tuple(r["aliases"]), r["may_approve"]) for r in rows],
        f"people directory of {engagement}",
    )


# ------------------------------------------------------------------------------ separation of duties


def same_person(a: str | None, b: str | None, people: Directory | None = None) -> bool:
    """Whether two spellings name one person: the same directory entry, or matching identity keys."""
    if people is not None:
        pa, pb = people.resolve(a), people.resolve(b)
        if pa is not None and pb is not None:
            return pa.id == pb.id
    ka, kb = keys(a), keys(b)
    return bool(ka[0]) and (ka[0] == kb[0] or ka[1] == kb[1])


def check_approval(actor: str, approver: str | None, people: Directory | None, *, acting_as: str) -> None:
    """Refuse an approval that separation of duties forbids: no approver, an approver that cannot stand
    for one person, the actor again under any spelling, or (with a directory) an actor or approver it
    does not know, or an approver not allowed to approve.

    Raises:
        RefusedError: naming the rule; the caller's mutation logs it as a ``denied`` event.
    """
    if not approver or not approver.strip():
        raise RefusedError(f"an approval needs --approver, a named person other than the {acting_as}")
    problem = name_problem(approver)
    if problem:
        raise RefusedError(f"approver {approver!r} {problem}")
    if same_person(actor, approver, people):
        raise RefusedError(
            f"approver {approver!r} and the {acting_as} {actor!r} are the same person; a different approver is required"
        )
    if people is None:
        return
    for role, name in ((acting_as, actor), ("approver", approver)):
        if people.resolve(name) is None:
            raise RefusedError(f"{role} {name!r} is not in the engagement's people directory")
    person = people.resolve(approver)
    if person is not None and not person.may_approve:
        raise RefusedError(f"approver {approver!r} ({person.id}) is not allowed to approve (may_approve: no)")
