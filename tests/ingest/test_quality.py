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


@pytest.mark.slow
def test_the_gate_loads_neither_altair_nor_scipy_stats_and_both_still_work_when_used() -> None:
    code = (
        "import sys; from handoffkit.ingest import quality; import pandas as pd; "
        "row = dict(fingerprint='fp', title='t', asset_ref='a', severity='high', cves='', cwes='', source_ref='r'); "
        "assert quality.gate(pd.DataFrame([row]), 'f.json').success; "
        "assert 'altair' not in sys.modules and 'scipy.stats' not in sys.modules, 'loaded at import'; "
        # The expectation that imported both at module level still reaches the real modules when it runs.
        "from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl; "
        "assert abs(kl.stats.entropy([0.5, 0.5], [0.5, 0.5])) < 1e-12; "
        "import altair; assert kl.alt.Chart is altair.Chart and type(altair).__name__ == 'module'; "
        "assert type(sys.modules['scipy.stats']).__name__ == 'module'"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr


def test_a_stand_in_used_while_still_in_place_hands_over_to_the_real_module() -> None:
    # A module read during Great Expectations' own import must not recurse into its stand-in.
    from handoffkit.ingest import _gx

    name = "json"  # any importable module that the test can stand in for and put back
    real = sys.modules.pop(name)
    try:
        sys.modules[name] = stand_in = _gx._OnFirstUse(name)
        assert stand_in.dumps([1]) == "[1]"
        assert sys.modules[name] is not stand_in
    finally:
        sys.modules[name] = real
