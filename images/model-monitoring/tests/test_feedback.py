"""The feedback check end to end: captured predictions joined with labels, quality read back from the Pushgateway and
compared with values computed here, independently, with numpy."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from model_monitoring.feedback import normalize_key, quality
from model_monitoring.job import main
from monitor_fixtures import capture_record, iso, monitor_config, pg_groups, put_capture, put_csv, put_jsonl, value, write_config

pytest_plugins = ["monitor_fixtures"]  # its fixtures: s3, bucket, aws_env, pushgateway

NOW = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
FEEDBACK = ("model-feedback", "fraud", "fraud", "3")
PREFIX = "capture/fraud/3/"


def run(tmp_path, cfg) -> int:
    return main(["run", "--config", write_config(tmp_path, cfg), "--now", iso(NOW)])


def put_predictions(s3, bucket, ids, predictions, end, span=timedelta(minutes=50)):
    step = span / len(ids)
    records = [
        capture_record(
            end - span + step * (i + 1), {"instances": [{"amount": 1.0}]}, {"predictions": [p], "model": "fraud"}, request_id=rid
        )
        for i, (rid, p) in enumerate(zip(ids, predictions, strict=True))
    ]
    for i in range(0, len(records), 100):
        put_capture(s3, bucket, PREFIX, records[i : i + 100])


@pytest.mark.parametrize("metric", ["accuracy", "mae", "rmse"])
def test_quality_equals_an_independent_computation(tmp_path, s3, bucket, pushgateway, metric):
    rng = np.random.default_rng(42)
    n = 300
    ids = [f"req-{i:04d}" for i in range(n)]
    if metric == "accuracy":
        predictions = rng.integers(0, 2, n)
        truth = np.where(rng.random(n) < 0.3, 1 - predictions, predictions)
    else:
        predictions = np.round(rng.normal(50, 10, n), 3)
        truth = np.round(predictions + rng.normal(0, 5, n), 3)
    put_predictions(s3, bucket, ids, predictions.tolist(), NOW)
    labelled = np.sort(rng.choice(n, 240, replace=False))
    label_rows = [{"requestId": ids[i], "label": truth[i].item()} for i in labelled]
    put_csv(s3, bucket, "feedback/fraud/2026-11-30/part-1.csv", label_rows[:120])  # cells are strings
    put_jsonl(s3, bucket, "feedback/fraud/2026-11-30/part-2.jsonl.gz", label_rows[120:])
    # Labels of requests captured before the window, and of requests never captured: neither joins.
    old = [f"old-{i}" for i in range(40)]
    put_predictions(s3, bucket, old, predictions[:40].tolist(), NOW - timedelta(hours=1), span=timedelta(minutes=30))
    put_jsonl(
        s3,
        bucket,
        "feedback/fraud/2026-11-29/old.jsonl",
        [{"requestId": r, "label": truth[0].item()} for r in old] + [{"requestId": f"unknown-{i}", "label": 1} for i in range(20)],
    )

    p, t = predictions[labelled].astype(float), truth[labelled].astype(float)
    expected = {"accuracy": np.mean(p == t), "mae": np.mean(np.abs(p - t)), "rmse": np.sqrt(np.mean((p - t) ** 2))}
    cfg = monitor_config(bucket, pushgateway, drift=False, feedback=True, minSamples=100, feedback_metric=metric)
    assert run(tmp_path, cfg) == 0

    group = pg_groups(pushgateway)[FEEDBACK]
    assert value(group, "model_quality", metric=metric) == pytest.approx(expected[metric], rel=1e-12)
    assert value(group, "model_feedback_joined_samples") == 240
    assert value(group, "model_feedback_labels") == 300
    assert value(group, "model_feedback_min_samples") == 100
    assert value(group, "model_feedback_insufficient_samples") == 0
    assert value(group, "model_feedback_last_success_timestamp_seconds") > 0
    summary = json.loads(s3.get_object(Bucket=bucket, Key="feedback/reports/fraud/3/2026-11-30T073000Z/report.json")["Body"].read())
    assert summary["value"] == pytest.approx(expected[metric], rel=1e-12)
    assert summary["joinedSamples"] == 240 and summary["capturedPredictions"] == n


def test_jsonpath_join_key_retries_and_corrections(tmp_path, s3, bucket, pushgateway):
    def rec(minutes_ago, txn, prediction):
        return capture_record(NOW - timedelta(minutes=minutes_ago), {"meta": {"txn": txn}, "instances": []}, {"predictions": [prediction]})

    put_capture(
        s3, bucket, PREFIX, [rec(40, 1001, "fraud"), rec(39, 1002, "ok"), rec(38, 1003, "ok"), rec(37, 1004, "fraud"), rec(36, None, "ok")]
    )
    # 1002 was retried: the later answer counts.
    put_capture(s3, bucket, PREFIX, [rec(10, 1002, "fraud")])
    put_csv(
        s3,
        bucket,
        "feedback/fraud/a.csv",
        [{"txn": "1001", "label": "fraud"}, {"txn": "1002", "label": "ok"}, {"txn": "1003", "label": "ok"}, {"txn": "1004", "label": "ok"}],
    )
    # A correction arrives later (a newer object): 1004 was fraud after all.
    put_jsonl(s3, bucket, "feedback/fraud/b.jsonl", [{"txn": 1004, "label": "fraud"}, {"txn": 1005}])
    cfg = monitor_config(bucket, pushgateway, drift=False, feedback=True, minSamples=4, feedback_joinKey="$.meta.txn")
    assert run(tmp_path, cfg) == 0
    group = pg_groups(pushgateway)[FEEDBACK]
    # 1001 right, 1002 wrong (its retry said fraud), 1003 right, 1004 right after the correction.
    assert value(group, "model_quality", metric="accuracy") == 0.75
    assert value(group, "model_feedback_joined_samples") == 4
    assert value(group, "model_feedback_labels") == 4


def test_too_few_joined_samples_publishes_no_quality(tmp_path, s3, bucket, pushgateway):
    put_predictions(s3, bucket, ["a", "b", "c"], [1, 0, 1], NOW)
    put_jsonl(s3, bucket, "feedback/fraud/l.jsonl", [{"requestId": "a", "label": 1}, {"requestId": "b", "label": 1}])
    cfg = monitor_config(bucket, pushgateway, drift=False, feedback=True, minSamples=5)
    assert run(tmp_path, cfg) == 0
    group = pg_groups(pushgateway)[FEEDBACK]
    assert "model_quality" not in group
    assert value(group, "model_feedback_insufficient_samples") == 1
    assert value(group, "model_feedback_joined_samples") == 2
    assert value(group, "model_feedback_min_samples") == 5


def test_late_labels_need_feedback_window_seconds(tmp_path, s3, bucket, pushgateway):
    """Predictions captured 3 days ago, labels written today: joined with a 7-day feedback.windowSeconds, not with the
    default (the 1-day top-level window)."""
    ids = [f"chargeback-{i}" for i in range(6)]
    put_predictions(s3, bucket, ids, [1, 1, 0, 0, 1, 0], NOW - timedelta(days=3))
    put_jsonl(s3, bucket, "feedback/fraud/2026-11-30/late.jsonl", [{"requestId": r, "label": 1} for r in ids])
    week = 7 * 86400
    cfg = monitor_config(bucket, pushgateway, drift=False, feedback=True, windowSeconds=86400, minSamples=6, feedback_windowSeconds=week)
    assert run(tmp_path, cfg) == 0
    group = pg_groups(pushgateway)[FEEDBACK]
    assert value(group, "model_quality", metric="accuracy") == 0.5
    assert value(group, "model_feedback_joined_samples") == 6

    del cfg["feedback"]["windowSeconds"]
    assert run(tmp_path, cfg) == 0
    group = pg_groups(pushgateway)[FEEDBACK]
    assert "model_quality" not in group
    assert value(group, "model_feedback_insufficient_samples") == 1
    assert value(group, "model_feedback_joined_samples") == 0
    assert value(group, "model_feedback_labels") == 6


def test_feedback_window_shorter_than_the_drift_window(tmp_path, s3, bucket, pushgateway):
    """The captures are read for the longer window (drift's two days here); feedback joins only its last hour."""
    put_jsonl(s3, bucket, "reference/fraud/ref.jsonl", [{"amount": float(i)} for i in range(20)])
    put_predictions(s3, bucket, ["recent-1", "recent-2", "recent-3"], [1, 1, 1], NOW, span=timedelta(minutes=30))
    put_predictions(s3, bucket, ["older-1", "older-2", "older-3"], [1, 1, 1], NOW - timedelta(hours=5), span=timedelta(minutes=30))
    put_jsonl(s3, bucket, "feedback/fraud/l.jsonl", [{"requestId": r, "label": 1} for r in ("recent-1", "recent-2", "recent-3", "older-1")])
    cfg = monitor_config(bucket, pushgateway, feedback=True, windowSeconds=2 * 86400, minSamples=10, feedback_windowSeconds=3600)
    assert run(tmp_path, cfg) == 0
    groups = pg_groups(pushgateway)
    assert value(groups[("model-drift", "fraud", "fraud", "3")], "model_drift_samples") == 6
    assert value(groups[FEEDBACK], "model_feedback_joined_samples") == 3
    summary = json.loads(s3.get_object(Bucket=bucket, Key="feedback/reports/fraud/3/2026-11-30T073000Z/report.json")["Body"].read())
    assert summary["capturedRecords"] == 3 and summary["window"]["start"] == (NOW - timedelta(hours=1)).isoformat()


def test_quality_and_keys():
    assert quality("accuracy", [(1, "1"), ("fraud", "fraud"), (True, "true"), (0, 1)]) == 0.75
    assert quality("mae", [(1.0, 2.0), (3.0, 1.0)]) == 1.5
    assert quality("rmse", [(1.0, 2.0), (3.0, 1.0)]) == pytest.approx(np.sqrt(2.5))
    assert [normalize_key(v) for v in (123, 123.0, "123", "", None, 1.5)] == ["123", "123", "123", None, None, "1.5"]
