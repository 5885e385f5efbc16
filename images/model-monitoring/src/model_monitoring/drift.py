"""Data drift of a model's captured inputs against its reference data, measured by Evidently (0.7 API:
`evidently.Report` with `evidently.presets.DataDriftPreset`, which yields `DriftedColumnsCount` — count and share of
drifted columns — and one `ValueDrift` per column, whose score is the stattest's value and whose test FAILs when the
column drifted).

Features are the reference data's columns. A column is numerical when its reference values are numbers (JSON numbers
or CSV cells that parse as numbers; booleans excluded) and categorical otherwise; the same definition is given to
Evidently for both datasets, so a batch of captured traffic cannot flip a column's type (Evidently's own inference,
which treats an integer column with at most 10 distinct values as categorical, is per dataset).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge

from .config import STATTESTS, DriftConfig, parse_jsonpath
from .records import put_bytes, read_table_rows, report_stamp

log = logging.getLogger(__name__)

JOB = "model-drift"


class DriftError(Exception):
    """A drift check cannot produce a result (no reference data, a method that does not fit the features, ...)."""


@dataclass
class DriftResult:
    """One drift check. `samples` counts feature records (a captured request may hold several).

    With `insufficient` (samples < min_samples) the Evidently fields are None and no report is written.
    `scores` maps feature -> Evidently's drift score for `method` (a p-value for ks, chisquare, z, ...: lower is
    more drift; a distance for psi, wasserstein, ...: higher is more drift); `drifted` maps feature -> whether that
    score crossed `threshold`; `share` is the drifted features' share (0..1); `detected` is share >= drift_share.
    """

    method: str
    threshold: float | None
    drift_share: float
    samples: int
    reference_samples: int
    min_samples: int
    insufficient: bool
    features: list[str] = field(default_factory=list)
    scores: dict[str, float] | None = None
    drifted: dict[str, bool] | None = None
    share: float | None = None
    detected: bool | None = None
    report_keys: list[str] = field(default_factory=list)


class FeatureCollector:
    """Collects feature records from captured records: each match of `recordsPath` in a record's `request`.

    Matches that are not JSON objects cannot be mapped onto named features; they are counted (`non_object`) and
    skipped.
    """

    def __init__(self, records_path: str):
        self._expr = parse_jsonpath(records_path)
        self.records_path = records_path
        self.rows: list[dict] = []
        self.requests = 0
        self.requests_without_rows = 0
        self.non_object = 0

    def add(self, record: dict) -> None:
        self.requests += 1
        request = record.get("request")
        found = 0
        for match in self._expr.find(request) if request is not None else ():
            if isinstance(match.value, dict):
                self.rows.append(match.value)
                found += 1
            else:
                self.non_object += 1
        if not found:
            self.requests_without_rows += 1


def load_reference(s3, bucket: str, prefix: str):
    """The reference rows under `prefix` (`.jsonl`, `.jsonl.gz`, `.csv`) as a pandas DataFrame, one column per
    feature. Raises DriftError when there are no such objects or no rows."""
    import pandas as pd

    rows = [row for _, row in read_table_rows(s3, bucket, prefix)]
    if not rows:
        raise DriftError(f"no reference rows under s3://{bucket}/{prefix} (.jsonl, .jsonl.gz or .csv objects)")
    return pd.DataFrame(rows)


def feature_types(reference) -> dict[str, str]:
    """feature -> "num" or "cat" (see the module's docstring)."""
    import pandas as pd

    return {
        c: "num" if pd.api.types.is_numeric_dtype(reference[c]) and not pd.api.types.is_bool_dtype(reference[c]) else "cat"
        for c in reference.columns
    }


def check_method_fits(method: str, types: dict[str, str]) -> None:
    """Raise DriftError when `method` cannot test some feature's type (e.g. ks on a categorical feature)."""
    allowed = STATTESTS[method]
    misfits = sorted(f for f, t in types.items() if t not in allowed)
    if misfits:
        kinds = " and ".join("numerical" if t == "num" else "categorical" for t in sorted(allowed))
        fitting = sorted(m for m, ts in STATTESTS.items() if set(types.values()) <= ts)
        raise DriftError(
            f"drift.method {method!r} tests {kinds} features only, but these are not: "
            f"{', '.join(misfits)}; methods that fit every feature: {', '.join(fitting) or 'none'}"
        )


def _align(frame, features: list[str], types: dict[str, str]):
    """`frame` restricted to `features`, numerical columns as floats and categorical ones as strings, in both
    datasets alike (a label 1 in JSON and "1" in CSV is one category)."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for f in features:
        col = frame[f] if f in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if types[f] == "num":
            out[f] = pd.to_numeric(col, errors="coerce").astype(float)
        else:
            out[f] = col.map(
                lambda v: (
                    v if v is None or isinstance(v, str) or (isinstance(v, float) and math.isnan(v)) else json.dumps(v, sort_keys=True)
                )
            ).astype(object)
    return out


def compute_drift(reference, current, types: dict[str, str], method: str, threshold: float | None, drift_share: float):
    """Run Evidently's DataDriftPreset on aligned DataFrames; returns (scores, drifted, share, snapshot).

    `scores`/`drifted` map each feature to Evidently's score and per-column verdict, `share` is Evidently's
    share of drifted columns, `snapshot` the evidently Snapshot (for its JSON and HTML).
    """
    # Imported here: Evidently takes seconds to import, and a config error or a too-small sample needs none of it.
    try:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError as e:
        import pandas as pd

        # Evidently 0.7.23 imports pandas.core.dtypes.common.infer_dtype_from_object, which pandas 3 removed.
        hint = (
            f"; Evidently 0.7.23 does not work with pandas {pd.__version__} (pin pandas<3)"
            if int(pd.__version__.split(".")[0]) >= 3
            else ""
        )
        raise DriftError(f"Evidently cannot be imported: {e}{hint}") from e

    features = list(types)
    definition = DataDefinition(
        numerical_columns=[f for f in features if types[f] == "num"], categorical_columns=[f for f in features if types[f] == "cat"]
    )
    report = Report([DataDriftPreset(columns=features, method=method, threshold=threshold, drift_share=drift_share)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition)
    )
    result = snapshot.dict()
    scores: dict[str, float] = {}
    metric_column: dict[str, str] = {}
    share = None
    for metric in result["metrics"]:
        kind = metric["config"]["type"]
        if kind.endswith(":ValueDrift"):
            scores[metric["config"]["column"]] = float(metric["value"])
            metric_column[metric["id"]] = metric["config"]["column"]
        elif kind.endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    drifted = {
        metric_column[t["metric_config"]["metric_id"]]: t["status"] == "FAIL"
        for t in result["tests"]
        if t["metric_config"]["metric_id"] in metric_column
    }
    missing = sorted(set(features) - set(scores) | set(features) - set(drifted))
    if share is None or missing:
        # Evidently's report layout is what this module reads; a change there must fail loudly, not publish zeros.
        raise DriftError(f"Evidently's report lacks the drifted-columns share or per-feature results for {missing}")
    return scores, drifted, share, snapshot


def run_drift(cfg: DriftConfig, s3, bucket: str, collector: FeatureCollector, min_samples: int, now: datetime) -> DriftResult:
    """The drift check for one window: load the reference, compare the collected feature records with it and write
    Evidently's report to `<reportPrefix><yyyy-mm-ddTHHMMSSZ>/report.json|report.html` (UTC `now`).

    Raises DriftError (no reference, method misfit, a feature absent from every captured record) and boto3/botocore
    errors (S3 access); the caller turns either into a failed check.
    """
    import pandas as pd

    reference = load_reference(s3, bucket, cfg.reference_prefix)
    types = feature_types(reference)
    features = list(types)
    check_method_fits(cfg.method, types)
    result = DriftResult(
        method=cfg.method,
        threshold=cfg.threshold,
        drift_share=cfg.drift_share,
        samples=len(collector.rows),
        reference_samples=len(reference),
        min_samples=min_samples,
        insufficient=len(collector.rows) < min_samples,
        features=features,
    )
    if collector.non_object:
        log.warning("%d matches of recordsPath %s were not JSON objects and were skipped", collector.non_object, collector.records_path)
    if result.insufficient:
        log.info("drift: %d feature records in the window, fewer than minSamples=%d: no drift computed", result.samples, min_samples)
        return result

    current = pd.DataFrame(collector.rows)
    absent = [f for f in features if f not in current.columns or current[f].isna().all()]
    if absent:
        raise DriftError(
            f"features of the reference absent from every captured record ({len(collector.rows)} "
            f"records from recordsPath {collector.records_path}): {', '.join(absent)}"
        )
    result.scores, result.drifted, result.share, snapshot = compute_drift(
        _align(reference, features, types), _align(current, features, types), types, cfg.method, cfg.threshold, cfg.drift_share
    )
    result.detected = result.share >= cfg.drift_share
    folder = f"{cfg.report_prefix}{report_stamp(now)}/"
    put_bytes(s3, bucket, folder + "report.json", snapshot.json().encode(), "application/json")
    put_bytes(s3, bucket, folder + "report.html", snapshot.get_html_str(as_iframe=False).encode(), "text/html")
    result.report_keys = [folder + "report.json", folder + "report.html"]
    log.info(
        "drift: share %.3f (drift share %.3f) detected=%s over %d samples; drifted features: %s; report s3://%s/%s",
        result.share,
        cfg.drift_share,
        result.detected,
        result.samples,
        ", ".join(f for f, d in result.drifted.items() if d) or "none",
        bucket,
        folder,
    )
    return result


def drift_registry(result: DriftResult, success_time: float) -> CollectorRegistry:
    """The metrics of a successful drift check (contract names), `success_time` in unix seconds.

    With too few samples: samples, reference samples, min samples, insufficient=1 and last success only — no score,
    share or detected series, so that no alert reads a number computed from nothing.
    """
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, registry=registry).set(value)

    gauge("model_drift_samples", "Feature records captured in the window.", result.samples)
    gauge("model_drift_reference_samples", "Rows of reference data.", result.reference_samples)
    gauge("model_drift_min_samples", "Feature records needed to compute drift (minSamples).", result.min_samples)
    gauge(
        "model_drift_insufficient_samples", "1 when the window held fewer than minSamples feature records.", 1 if result.insufficient else 0
    )
    if not result.insufficient:
        score = Gauge(
            "model_drift_score",
            "Evidently's per-feature drift score (p-value or distance, by method).",
            ["feature", "method"],
            registry=registry,
        )
        for feature, value in result.scores.items():
            score.labels(feature=feature, method=result.method).set(value)
        gauge("model_drift_share", "Share of features whose drift was detected (0..1).", result.share)
        gauge("model_drift_detected", "1 when the share of drifted features is at least driftShare.", 1 if result.detected else 0)
    gauge("model_drift_last_success_timestamp_seconds", "Unix time of the last successful drift check.", success_time)
    return registry
