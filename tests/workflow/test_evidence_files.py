"""Where a retest's evidence file may come from (the refusals themselves, with canaries, are in
tests/record/test_refusals.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoffkit.errors import RefusedError
from handoffkit.workflow.evidence_files import ENV_DIR, EvidenceFiles


def test_the_directory_comes_from_the_argument_then_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    assert EvidenceFiles.configured().directory is None
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "env"))
    assert EvidenceFiles.configured().directory == tmp_path / "env"
    assert EvidenceFiles.configured(tmp_path / "arg").directory == tmp_path / "arg"


def test_a_relative_name_is_found_in_the_directory(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "retest.txt").write_text("fixed")
    monkeypatch.chdir(tmp_path)  # not in the working directory: in the evidence directory
    found = EvidenceFiles(Path("evidence")).read("retest.txt")
    assert found is not None and (found.name, found.content, found.media_type) == ("retest.txt", b"fixed", "text/plain")


def test_the_cap_is_inclusive(tmp_path: Path) -> None:
    (tmp_path / "at.bin").write_bytes(b"x" * 10)
    (tmp_path / "over.bin").write_bytes(b"x" * 11)
    files = EvidenceFiles(tmp_path, max_bytes=10)
    assert files.read("at.bin").content == b"x" * 10
    with pytest.raises(RefusedError, match=r"'over.bin' is over the 10-byte cap"):
        files.read("over.bin")


@pytest.mark.parametrize("text", ["retested: fixed", "no longer reproducible on 2026-03-02", "see ticket SEC-12"])
def test_a_value_naming_nothing_on_disk_is_text(tmp_path: Path, text: str) -> None:
    assert EvidenceFiles(tmp_path).read(text) is None
    assert EvidenceFiles(None).read(text) is None
