"""The data-quality gate: Great Expectations decides, and loading it does not build grammars nobody uses."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from handoffkit.errors import DataQualityError
from handoffkit.ingest import quality


def _batch(**overrides: str) -> pd.DataFrame:
    row = {"fingerprint": "fp", "title": "t", "asset_ref": "a", "severity": "high", "cves": "", "cwes": "CWE-79"}
    return pd.DataFrame([{**row, **overrides, "source_ref": "f.json:/runs/0/results/0"}])


def test_the_gate_passes_a_good_batch_and_refuses_a_bad_one_naming_the_place() -> None:
    assert quality.gate(_batch(), "f.json").success
    with pytest.raises(DataQualityError, match=r"severity: values to be in set .* at f.json:/runs/0/results/0"):
        quality.gate(_batch(severity="urgent"), "f.json")


@pytest.mark.slow
def test_loading_the_gate_does_not_import_the_iri_grammar() -> None:
    # jsonschema builds rfc3987_syntax's grammar on import when it is installed — the largest single cost of
    # importing Great Expectations (through Altair); no schema handoffkit checks uses the iri formats.
    code = (
        "import sys; from handoffkit.ingest import quality; quality._validation(); "
        "import great_expectations; assert 'rfc3987_syntax' not in sys.modules, 'grammar imported'"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
