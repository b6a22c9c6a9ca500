"""The data-quality gate: Great Expectations 1.x suites run before anything touches the store.

``check_findings`` validates a normalised scan batch (and, for the evidence pack, the record itself):
fingerprint present and unique, severity in the allowed set, CVE and CWE ids well formed, asset and
title not empty. A failing batch is refused with a readable list of what failed and where (the
record's ``source_ref``); the validation result (GX's own JSON) is returned either way so it can be
kept with the evidence.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd

from handoffkit.errors import DataQualityError, located
from handoffkit.record.model import SEVERITIES

CVE_LIST = r"^(?:CVE-\d{4}-\d{4,}(?: CVE-\d{4}-\d{4,})*)?$"
CWE_LIST = r"^(?:CWE-\d+(?: CWE-\d+)*)?$"
GATE_COLUMNS = ("fingerprint", "title", "asset_ref", "severity", "cves", "cwes", "source_ref")


@dataclass
class QualityResult:
    success: bool
    failures: list[str]
    result: dict[str, Any]
    """Great Expectations' validation result, as JSON."""

    def stored(self) -> dict[str, Any]:
        """The result as the record keeps it: GX's JSON with every value and row reference it quotes from
        the batch left out (counts and percentages stay) — a refused file's content is never stored."""
        results = [
            {
                **r,
                "result": {k: v for k, v in (r.get("result") or {}).items() if isinstance(v, int | float | None)},
                "exception_info": {"raised_exception": bool((r.get("exception_info") or {}).get("raised_exception"))},
            }
            for r in self.result.get("results", [])
        ]
        return {**self.result, "results": results}

    def summary(self) -> dict[str, Any]:
        stats = self.result.get("statistics", {})
        return {
            "success": self.success,
            "evaluated": stats.get("evaluated_expectations"),
            "failed": stats.get("unsuccessful_expectations"),
            "failures": self.failures,
        }


def _expectations() -> list[Any]:
    from handoffkit.ingest._gx import gx

    e = gx.expectations
    return [
        e.ExpectColumnValuesToNotBeNull(column="fingerprint"),
        e.ExpectColumnValuesToBeUnique(column="fingerprint"),
        e.ExpectColumnValuesToBeInSet(column="severity", value_set=list(SEVERITIES)),
        e.ExpectColumnValuesToMatchRegex(column="cves", regex=CVE_LIST),
        e.ExpectColumnValuesToMatchRegex(column="cwes", regex=CWE_LIST),
        e.ExpectColumnValueLengthsToBeBetween(column="asset_ref", min_value=1),
        e.ExpectColumnValueLengthsToBeBetween(column="title", min_value=1),
        e.ExpectColumnValuesToNotBeNull(column="asset_ref"),
    ]


@lru_cache(maxsize=1)
def _validation():
    """One ephemeral GX context and validation definition per process (GX setup is not free)."""
    from handoffkit.ingest._gx import gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(
        globally=False, metric_calculations=False
    )
    batch = (
        ctx.data_sources.add_pandas("handoffkit")
        .add_dataframe_asset("findings")
        .add_batch_definition_whole_dataframe("batch")
    )
    suite = gx.ExpectationSuite(name="handoffkit_findings")
    for expectation in _expectations():
        suite.add_expectation(expectation)
    suite = ctx.suites.add(suite)
    return ctx.validation_definitions.add(gx.ValidationDefinition(name="findings_gate", data=batch, suite=suite))


def prepare() -> None:
    """Import Great Expectations and build the suite now, not at the first check."""
    _validation()


def check_findings(frame: pd.DataFrame) -> QualityResult:
    """Run the findings suite on a frame with :data:`GATE_COLUMNS`."""
    return result_of(validate(frame))


def validate(frame: pd.DataFrame) -> dict[str, Any]:
    """Great Expectations' validation result for the frame, as plain JSON."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _validation().run(
            batch_parameters={"dataframe": frame[list(GATE_COLUMNS)].reset_index(drop=True)},
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": ["source_ref"],
                "partial_unexpected_count": 5,
                "return_unexpected_index_query": False,
            },
        )
    return json.loads(json.dumps(result.to_json_dict(), default=str))


def result_of(doc: dict[str, Any]) -> QualityResult:
    """The gate's verdict read from a validation result (:func:`validate`, here or in the gate process)."""
    failures = [_describe(r) for r in doc["results"] if not r["success"]]
    return QualityResult(bool(doc["success"]), failures, doc)


def _describe(r: dict[str, Any]) -> str:
    cfg = r["expectation_config"]
    kwargs = cfg.get("kwargs", {})
    res = r.get("result", {})
    where = [str(i.get("source_ref")) for i in (res.get("unexpected_index_list") or [])[:5] if isinstance(i, dict)]
    values = [repr(v) for v in (res.get("partial_unexpected_list") or [])[:3]]
    what = cfg["type"].removeprefix("expect_column_").replace("_", " ")
    count = res.get("unexpected_count")
    text = f"{kwargs.get('column')}: {what} — {count} row(s) fail"
    if values:
        text += f" (e.g. {', '.join(values)})"
    if where:
        text += f" at {', '.join(where)}"
    return text


def gate(
    frame: pd.DataFrame, source: str, check: Callable[[pd.DataFrame], QualityResult] = check_findings
) -> QualityResult:
    """Validate (with ``check``: here, or :func:`handoffkit.ingest.gate_server.check_findings` in the
    long-lived gate process) and raise :class:`DataQualityError` (carrying the result) when the batch fails."""
    result = check(frame)
    if not result.success:
        exc = DataQualityError(located(source, None, "refused by the data-quality gate: " + "; ".join(result.failures)))
        exc.result = result  # type: ignore[attr-defined]
        raise exc
    return result
