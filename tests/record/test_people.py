"""Who is one person: identity keys (UTS #39 skeletons after invisibles and accents are removed), names
that cannot stand for one person, the people directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoffkit.errors import ConfigError, HandoffkitError, RefusedError
from handoffkit.record import people

DANA = "Dana Whitfield"

#: Spellings of one person that a reader takes for "Dana Whitfield" (the issue's list and more).
SPELLINGS = {
    "lower case": "dana whitfield",
    "upper case": "DANA WHITFIELD",
    "extra spaces": "  Dana   Whitfield ",
    "tab": "Dana\tWhitfield",
    "full-width letters": "Ｄａｎａ Ｗｈｉｔｆｉｅｌｄ",
    "ligature fi": "Dana Whit\ufb01eld",
    "Cyrillic a": "D\u0430na Whitfield",
    "Cyrillic i": "Dana Wh\u0456tfield",
    "Greek omicron-free: Cyrillic e": "Dana Whitfi\u0435ld",
    "zero-width space": "Dana Whit\u200bfield",
    "zero-width joiner": "Da\u200dna Whitfield",
    "zero-width non-joiner": "Dana\u200c Whitfield",
    "soft hyphen": "Dana Whit\u00adfield",
    "word joiner": "Dana\u2060Whitfield",
    "byte-order mark": "\ufeffDana Whitfield",
    "combining acute": "Da\u0301na Whitfield",
    "precomposed accent": "Dána Whitfíeld",
    "digit one for l": "Dana Whitfie1d",
    "capital I for l": "Dana WhitfieId",
    "no-break space": "Dana\u00a0Whitfield",
    "email": "dana.whitfield@acme.example",
    "email with a tag": "Dana.Whitfield+approvals@acme.example",
    "last, first": "Whitfield, Dana",
    "last, first, lower case": "whitfield,dana",
    "zero-width space for the space": "Dana\u200bWhitfield",
    "Hangul filler": "Dana\u3164 Whitfield",
    "variation selector": "Dana\ufe0f Whitfield",
}

#: Different people whose names are close: never one person.
DIFFERENT = [
    ("Dana Whitfield", "Diana Whitfield"),
    ("Dana Whitfield", "Dana Whitfield-Jones"),
    ("Dana Whitfield", "Dan Whitfield"),
    ("Ana Silva", "Anna Silva"),
    ("Ana Silva", "Ana Silvia"),
    ("Jon Smith", "John Smith"),
    ("Lee Park", "Lee Parks"),
    ("Chen Wei", "Chen Wen"),
    ("Priya Raman", "Priya Ramanathan"),
    ("Ben Okoro", "Ben Okafor"),
    ("Ian Park", "Lan Park"),
    ("Marie Dupont", "Mario Dupont"),
    ("dana.whitfield@acme.example", "dan.whitfield@acme.example"),
    ("Алёна Смирнова", "Алина Смирнова"),
    ("山田太郎", "山田次郎"),
]


@pytest.mark.parametrize("how", SPELLINGS)
def test_every_spelling_is_the_same_person(how: str) -> None:
    assert people.same_person(DANA, SPELLINGS[how]), people.keys(SPELLINGS[how])
    assert people.same_person(SPELLINGS[how], DANA)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_people_with_similar_names_stay_different(a: str, b: str) -> None:
    assert not people.same_person(a, b), (people.keys(a), people.keys(b))


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("\u200b\u200d", "empty once invisible characters are removed"),
        ("\u00ad \ufeff", "empty once invisible characters are removed"),
        ("\u0301", "empty once invisible characters are removed"),
        ("D\u0430na Whitfield", "mixes scripts within the word 'Dаna'"),
        ("Dana Wh\u0456tfield", "mixes scripts within the word"),
        ("\u0391na Silva", "mixes scripts within the word"),
        ("Dana-Whitfi\u0435ld", "mixes scripts within the word"),
    ],
)
def test_a_name_that_cannot_stand_for_one_person_is_refused_as_actor(name: str, why: str) -> None:
    assert why in people.name_problem(name)
    with pytest.raises(HandoffkitError, match=why):
        people.require_actor(name)


@pytest.mark.parametrize(
    "name",
    ["Dana Whitfield", "José Ortega", "Алёна Смирнова", "山田たろう", "O'Brien-Smith", "scheduler: Ops (Lee Park)"],
)
def test_names_in_one_script_per_word_are_actors(name: str) -> None:
    assert people.name_problem(name) is None
    assert people.require_actor(name) == name


def _directory(tmp_path: Path, text: str) -> people.Directory:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return people.load_people(path)[0]


PEOPLE_CSV = (
    "id,name,email,aliases,may_approve\n"
    "dw,Dana Whitfield,dwhitfield@acme.example,DW;Dana W.,yes\n"
    "as,Ana Silva,ana@acme.example,,no\n"
    "dw2,Diana Whitfield,diana@acme.example,,yes\n"
)


def test_the_directory_resolves_names_emails_aliases_and_last_first_to_one_person(tmp_path: Path) -> None:
    d = _directory(tmp_path, PEOPLE_CSV)
    for spelling in ("Dana Whitfield", "DWHITFIELD@acme.example", "Dana W.", "Whitfield, Dana", "D\u0430na Whitfield"):
        assert d.resolve(spelling).id == "dw", spelling
    assert d.resolve("Diana Whitfield").id == "dw2"
    assert d.resolve("Mallory") is None
    assert people.same_person("dwhitfield@acme.example", "Dana W.", d)
    assert not people.same_person("Diana Whitfield", "Dana Whitfield", d)


def test_with_a_directory_actor_and_approver_must_resolve_and_the_approver_may_approve(tmp_path: Path) -> None:
    d = _directory(tmp_path, PEOPLE_CSV)
    people.check_approval("Ana Silva", "Dana Whitfield", d, acting_as="requester")
    with pytest.raises(RefusedError, match="same person"):
        people.check_approval("Dana Whitfield", "dwhitfield@acme.example", d, acting_as="requester")
    with pytest.raises(RefusedError, match="approver 'Ana Silva' \\(as\\) is not allowed to approve"):
        people.check_approval("Dana Whitfield", "Ana Silva", d, acting_as="requester")
    with pytest.raises(RefusedError, match="approver 'Mallory Moriarty' is not in the engagement's people directory"):
        people.check_approval("Ana Silva", "Mallory Moriarty", d, acting_as="requester")
    with pytest.raises(RefusedError, match="requester 'Mallory Moriarty' is not in the engagement's people directory"):
        people.check_approval("Mallory Moriarty", "Dana Whitfield", d, acting_as="requester")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("id,name,email\n", "missing column(s) aliases, may_approve"),
        ("id,name,email,aliases,may_approve\n,Ana,,,yes\n", "people.csv:2: id '' is empty"),
        ("id,name,email,aliases,may_approve\na,Ana,,,yes\na,Ben,,,no\n", "people.csv:3: id 'a' is a duplicate"),
        ("id,name,email,aliases,may_approve\na,Ana,,,maybe\n", "may_approve 'maybe': expected yes or no"),
        ("id,name,email,aliases,may_approve\na,\u200b,,,yes\n", "people.csv:2: name '\\u200b' is empty once"),
        ("id,name,email,aliases,may_approve\na,D\u0430na,,,yes\n", "mixes scripts"),
        (
            "id,name,email,aliases,may_approve\na,Dana Whitfield,,,yes\nb,Whitfield; Dana,,DANA WHITFIELD,no\n",
            "'DANA WHITFIELD' of person 'b' reads the same as a name of person 'a'",
        ),
    ],
)
def test_a_directory_that_cannot_tell_people_apart_is_a_config_error(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _directory(tmp_path, text)
    assert says in str(caught.value) and "\n" not in str(caught.value)
