"""Drift with the installed Evidently on synthetic data (fixed seed) read from moto's S3."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from model_monitoring.config import STATTESTS, DriftConfig
from model_monitoring.drift import DriftError, FeatureCollector, check_method_fits, drift_registry, feature_types, run_drift
from monitor_fixtures import feature_rows, put_csv, put_jsonl

pytest_plugins = ["monitor_fixtures"]  # its fixtures: s3, bucket, aws_env, pushgateway

NOW = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)


def test_stattest_table_matches_the_installed_evidently():
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    installed = {name: frozenset(t.value for t in by_type) for name, by_type in _registered_stat_tests.items()}
    assert installed == STATTESTS


def drift_config(**changes):
    base = dict(
        reference_prefix="reference/fraud/",
        method="psi",
        threshold=0.1,
        drift_share=0.5,
        records_path="$.instances[*]",
        report_prefix="drift/fraud/3/",
    )
    return DriftConfig(**{**base, **changes})


def collect(rows, per_request=2):
    collector = FeatureCollector("$.instances[*]")
    for i in range(0, len(rows), per_request):
        collector.add({"request": {"instances": rows[i : i + per_request]}})
    return collector


@pytest.fixture
def reference(s3, bucket):
    rng = np.random.default_rng(7)
    rows = feature_rows(rng, 2000)
    # Reference in two formats at once: the features are the union of their columns.
    put_jsonl(s3, bucket, "reference/fraud/part-1.jsonl.gz", rows[:1200])
    put_csv(s3, bucket, "reference/fraud/part-2.csv", rows[1200:])
    return rows


@pytest.mark.parametrize("method, threshold", [("psi", 0.1), ("wasserstein", 0.1), ("jensenshannon", 0.1)])
def test_shift_is_detected_and_no_shift_is_not(s3, bucket, reference, method, threshold):
    rng = np.random.default_rng(11)
    if method == "wasserstein":  # numerical only: the categorical feature would not fit
        reference_cols = ["amount", "score"]
        put_jsonl(s3, bucket, "reference/num/ref.jsonl", [{k: r[k] for k in reference_cols} for r in reference])
        cfg = drift_config(reference_prefix="reference/num/", method=method, threshold=threshold)
    else:
        cfg = drift_config(method=method, threshold=threshold)
    shifted = run_drift(cfg, s3, bucket, collect(feature_rows(rng, 1000, shifted=True)), 200, NOW)
    assert not shifted.insufficient and shifted.samples == 1000 and shifted.reference_samples == 2000
    assert shifted.detected is True and shifted.share == 1.0
    assert all(shifted.drifted.values())
    same = run_drift(cfg, s3, bucket, collect(feature_rows(rng, 1000)), 200, NOW)
    assert same.detected is False and same.share == 0.0
    assert not any(same.drifted.values())
    # psi, wasserstein and jensenshannon are distances: drift means a larger score.
    for feature in same.scores:
        assert shifted.scores[feature] > threshold > same.scores[feature]
    # Evidently's own JSON and HTML under reportPrefix/<UTC stamp>/.
    assert same.report_keys == ["drift/fraud/3/2026-11-30T073000Z/report.json", "drift/fraud/3/2026-11-30T073000Z/report.html"]
    report = json.loads(s3.get_object(Bucket=bucket, Key=same.report_keys[0])["Body"].read())
    assert any(m["config"]["type"].endswith("DriftedColumnsCount") for m in report["metrics"])
    assert b"<html" in s3.get_object(Bucket=bucket, Key=same.report_keys[1])["Body"].read()[:2000].lower()


def test_ks_p_value_detects_shift(s3, bucket):
    rng = np.random.default_rng(3)
    put_jsonl(s3, bucket, "reference/ks/ref.jsonl", [{"amount": r["amount"]} for r in feature_rows(rng, 800)])
    cfg = drift_config(reference_prefix="reference/ks/", method="ks", threshold=0.05, drift_share=1.0)
    shifted = run_drift(cfg, s3, bucket, collect(feature_rows(rng, 400, shifted=True)), 100, NOW)
    assert shifted.detected and shifted.scores["amount"] < 0.05  # a p-value: drift means a small score


def test_too_few_samples_is_its_own_state(s3, bucket, reference):
    rng = np.random.default_rng(5)
    result = run_drift(drift_config(), s3, bucket, collect(feature_rows(rng, 150, shifted=True)), 200, NOW)
    assert result.insufficient and result.samples == 150 and result.reference_samples == 2000
    assert result.scores is None and result.share is None and result.detected is None
    assert result.report_keys == []
    names = {m.name for m in drift_registry(result, 1.0).collect()}
    assert names == {
        "model_drift_samples",
        "model_drift_reference_samples",
        "model_drift_min_samples",
        "model_drift_insufficient_samples",
        "model_drift_last_success_timestamp_seconds",
    }


def test_method_that_does_not_fit_a_feature_fails_with_its_name(s3, bucket, reference):
    rng = np.random.default_rng(5)
    with pytest.raises(
        DriftError,
        match=r"'ks' tests numerical features only, but these are not: channel; "
        r"methods that fit every feature: .*psi",
    ):
        run_drift(drift_config(method="ks"), s3, bucket, collect(feature_rows(rng, 300)), 200, NOW)
    with pytest.raises(DriftError, match="chisquare"):
        check_method_fits("chisquare", {"amount": "num"})


def test_missing_reference_and_absent_features_fail(s3, bucket, reference):
    with pytest.raises(DriftError, match=r"no reference rows under s3://.*/reference/none/"):
        run_drift(drift_config(reference_prefix="reference/none/"), s3, bucket, collect([]), 1, NOW)
    rows = [{"amount": 1.0, "score": 2.0, "other": "x"}] * 300
    with pytest.raises(DriftError, match=r"absent from every captured record .*: channel"):
        run_drift(drift_config(), s3, bucket, collect(rows), 200, NOW)


def test_feature_types_and_collector():
    import pandas as pd

    frame = pd.DataFrame([{"n": 1, "f": 0.5, "b": True, "s": "a"}, {"n": 2, "f": None, "b": False, "s": "b"}])
    assert feature_types(frame) == {"n": "num", "f": "num", "b": "cat", "s": "cat"}
    collector = FeatureCollector("$.instances[*]")
    collector.add({"request": {"instances": [{"a": 1}, [1, 2], {"a": 2}]}})
    collector.add({"request": {"inputs": [{"a": 3}]}})
    collector.add({"request": None})
    assert collector.rows == [{"a": 1}, {"a": 2}] and collector.non_object == 1
    assert collector.requests == 3 and collector.requests_without_rows == 2
