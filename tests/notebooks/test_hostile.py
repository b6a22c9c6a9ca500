"""The hostile engagement's pages, read by html5lib: the canary is text wherever it appears, never markup."""

from __future__ import annotations

import html5lib
import pytest

from handoffkit.report import pack
from handoffkit.report.pages import check_offline

from .hostile import CANARY

pytestmark = [pytest.mark.slow]

#: Where each page shows record strings (titles, assets, actors, reasons, owners, ticket titles).
SHOWS_CANARY = {"ticket_mapping", "severity_calibration", "closure_verification", "activity_log"}


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@pytest.mark.parametrize("name", list(pack.TITLES))
def test_the_canary_never_becomes_markup(hostile_pack, name: str) -> None:
    html = (hostile_pack.out / f"{name}.html").read_text(encoding="utf-8")
    assert check_offline(html) == []
    elements = list(html5lib.parse(html, namespaceHTMLElements=False).iter())
    assert not [e for e in elements if local(e.tag) in ("script", "iframe", "object", "embed")]
    assert not [e for e in elements if any(a.startswith("on") for a in e.attrib)]
    assert not [e for e in elements if local(e.tag) == "img"]
    text = "".join("".join(e.itertext()) for e in elements if local(e.tag) == "body")
    if name in SHOWS_CANARY:
        assert CANARY in text, f"{name} shows no record string: the test would prove nothing"


def test_the_canary_is_in_the_exported_csv_as_data(hostile_pack) -> None:
    csv_text = (hostile_pack.out / "activity_log.csv").read_text(encoding="utf-8")
    assert CANARY in csv_text
