"""Fixtures for the report-rendering tests (the ``browser`` and ``slow`` markers are registered in pyproject.toml)."""

from __future__ import annotations

import pytest

from .fixture_notebook import Rendered, render


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The fixture notebook executed and rendered once per session (each kernel start costs seconds)."""
    return render(tmp_path_factory.mktemp("report"))
