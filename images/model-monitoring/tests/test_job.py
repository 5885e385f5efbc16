"""The monitor job end to end: captures and reference in moto's S3, results read back from a real Pushgateway."""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from model_monitoring import pushgateway as pg
from model_monitoring.config import parse_config
from model_monitoring.job import main
from model_monitoring.job import run as run_job
from monitor_fixtures import (
    capture_record,
    feature_rows,
    iso,
    monitor_config,
    pg_groups,
    put_capture,
    put_csv,
    put_jsonl,
    value,
    write_config,
)
from prometheus_client import CollectorRegistry, Gauge

pytest_plugins = ["monitor_fixtures"]  # its fixtures: s3, bucket, aws_env, pushgateway

NOW = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
DRIFT = ("model-drift", "fraud", "fraud", "3")
FEEDBACK = ("model-feedback", "fraud", "fraud", "3")
SRC = Path(__file__).resolve().parent.parent / "src"


def seed_reference(s3, bucket, n=2000, seed=7):
    rows = feature_rows(np.random.default_rng(seed), n)
    put_jsonl(s3, bucket, "reference/fraud/part-1.jsonl.gz", rows[: n // 2])
    put_csv(s3, bucket, "reference/fraud/part-2.csv", rows[n // 2 :])


def seed_captures(s3, bucket, rows, end, span=timedelta(minutes=50), per_request=2, per_object=100):
    """Captured requests holding `rows` (per_request each), evenly spread over (end - span, end]."""
    requests = [rows[i : i + per_request] for i in range(0, len(rows), per_request)]
    step = span / len(requests)
    records = [capture_record(end - span + step * (i + 1), {"instances": inst}, {"predictions": [0]}) for i, inst in enumerate(requests)]
    for i in range(0, len(records), per_object):
        put_capture(s3, bucket, "capture/fraud/3/", records[i : i + per_object])
    return records


def run(tmp_path, cfg, now=NOW) -> int:
    return main(["run", "--config", write_config(tmp_path, cfg), "--now", iso(now)])


def test_clear_shift_fires(tmp_path, s3, bucket, pushgateway):
    seed_reference(s3, bucket)
    seed_captures(s3, bucket, feature_rows(np.random.default_rng(1), 1000, shifted=True), NOW)
    before = time.time()
    assert run(tmp_path, monitor_config(bucket, pushgateway)) == 0
    group = pg_groups(pushgateway)[DRIFT]
    assert value(group, "model_drift_detected") == 1
    assert value(group, "model_drift_share") == 1.0
    for feature in ("amount", "score", "channel"):
        assert value(group, "model_drift_score", feature=feature, method="psi") > 0.1
    assert value(group, "model_drift_samples") == 1000
    assert value(group, "model_drift_reference_samples") == 2000
    assert value(group, "model_drift_min_samples") == 200
    assert value(group, "model_drift_insufficient_samples") == 0
    assert before <= value(group, "model_drift_last_success_timestamp_seconds") <= time.time()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="drift/fraud/3/")["Contents"]]
    assert sorted(keys) == ["drift/fraud/3/2026-11-30T073000Z/report.html", "drift/fraud/3/2026-11-30T073000Z/report.json"]


def test_no_shift_stays_quiet_and_older_records_are_outside_the_window(tmp_path, s3, bucket, pushgateway):
    seed_reference(s3, bucket)
    cfg = monitor_config(bucket, pushgateway)
    start = NOW - timedelta(seconds=cfg["windowSeconds"])
    rng = np.random.default_rng(2)
    seed_captures(s3, bucket, feature_rows(rng, 1000), NOW)
    # Shifted traffic just before the window (in a partition the job reads): it must not count.
    seed_captures(s3, bucket, feature_rows(rng, 1000, shifted=True), start, span=timedelta(minutes=20))
    assert run(tmp_path, cfg) == 0
    group = pg_groups(pushgateway)[DRIFT]
    assert value(group, "model_drift_detected") == 0
    assert value(group, "model_drift_share") == 0.0
    assert value(group, "model_drift_samples") == 1000
    assert all(v < 0.1 for _, v in group["model_drift_score"])


def test_too_few_samples_publishes_insufficient_and_no_score(tmp_path, s3, bucket, pushgateway):
    seed_reference(s3, bucket)
    rng = np.random.default_rng(3)
    seed_captures(s3, bucket, feature_rows(rng, 1000, shifted=True), NOW - timedelta(hours=2))
    assert run(tmp_path, monitor_config(bucket, pushgateway), now=NOW - timedelta(hours=2)) == 0
    assert "model_drift_score" in pg_groups(pushgateway)[DRIFT]
    # An hour later only a trickle: the previous run's score must not linger as if it were current.
    seed_captures(s3, bucket, feature_rows(rng, 150, shifted=True), NOW, span=timedelta(minutes=25))
    assert run(tmp_path, monitor_config(bucket, pushgateway, windowSeconds=1800)) == 0
    group = pg_groups(pushgateway)[DRIFT]
    assert value(group, "model_drift_insufficient_samples") == 1
    assert value(group, "model_drift_samples") == 150
    assert value(group, "model_drift_min_samples") == 200
    assert value(group, "model_drift_last_success_timestamp_seconds") > 0
    for absent in ("model_drift_score", "model_drift_share", "model_drift_detected"):
        assert absent not in group


def test_stale_versions_go_other_models_stay(tmp_path, s3, bucket, pushgateway):
    seed_reference(s3, bucket, n=100)
    others = [
        ("model-drift", "fraud", "fraud", "2"),
        ("model-drift", "fraud", "fraud", "1"),
        ("model-drift", "pr-7", "fraud", "2"),
        ("model-drift", "churn", "churn", "2"),
        ("model-feedback", "churn", "churn", "1"),
        ("model-feedback", "fraud", "fraud", "2"),
    ]
    for job, ns, model, version in others:
        reg = CollectorRegistry()
        Gauge("model_drift_share", "share", registry=reg).set(0.9)
        pg.push(pushgateway, job, pg.grouping_key(ns, model, version), reg)
    assert run(tmp_path, monitor_config(bucket, pushgateway)) == 0
    # Old fraud versions of model-drift are gone, and so is fraud's model-feedback: feedback is not configured.
    assert set(pg_groups(pushgateway)) == {
        DRIFT,
        ("model-drift", "pr-7", "fraud", "2"),
        ("model-drift", "churn", "churn", "2"),
        ("model-feedback", "churn", "churn", "1"),
    }


def test_failed_check_pushes_last_failure_keeps_last_success_and_runs_the_other(tmp_path, s3, bucket, pushgateway):
    seed_reference(s3, bucket, n=300)
    cfg = monitor_config(bucket, pushgateway, feedback=True, minSamples=1)
    put_jsonl(s3, bucket, "feedback/fraud/labels.jsonl", [{"requestId": "nobody", "label": 1}])
    assert run(tmp_path, cfg, now=NOW - timedelta(hours=1)) == 0
    first = pg_groups(pushgateway)
    last_success = value(first[DRIFT], "model_drift_last_success_timestamp_seconds")
    assert value(first[DRIFT], "model_drift_insufficient_samples") == 1  # nothing captured

    cfg["drift"]["referencePrefix"] = "reference/missing/"
    before = time.time()
    assert run(tmp_path, cfg) == 1
    groups = pg_groups(pushgateway)
    drift = groups[DRIFT]
    assert before <= value(drift, "model_drift_last_failure_timestamp_seconds") <= time.time()
    assert value(drift, "model_drift_last_success_timestamp_seconds") == last_success
    assert value(drift, "model_drift_insufficient_samples") == 1  # the last success's series stay
    # The feedback check still ran, and succeeded.
    assert value(groups[FEEDBACK], "model_feedback_last_success_timestamp_seconds") >= before
    assert "model_feedback_last_failure_timestamp_seconds" not in groups[FEEDBACK]

    # Fixed: the next success clears the failure.
    cfg["drift"]["referencePrefix"] = "reference/fraud/"
    assert run(tmp_path, cfg) == 0
    assert "model_drift_last_failure_timestamp_seconds" not in pg_groups(pushgateway)[DRIFT]


def test_unreachable_capture_bucket_fails_both_checks(tmp_path, s3, bucket, pushgateway):
    cfg = monitor_config("no-such-bucket-" + bucket, pushgateway, feedback=True)
    assert run(tmp_path, cfg) == 1
    groups = pg_groups(pushgateway)
    assert set(groups[DRIFT]) == {"model_drift_last_failure_timestamp_seconds"}
    assert set(groups[FEEDBACK]) == {"model_feedback_last_failure_timestamp_seconds"}


@pytest.mark.parametrize(
    "change, field, allowed",
    [
        ({"drift_method": "population_stability"}, "drift.method", "psi"),
        ({"windowSeconds": "1d"}, "windowSeconds", "integer"),
        ({"feedback_metric": "auc"}, "feedback.metric", "accuracy, mae, rmse"),
        ({"feedback_windowSeconds": 600}, "feedback.windowSeconds", "an integer >= 3600"),
        ({"feedback_labelField": "requestId"}, "feedback.labelField", "allowed: any other field name"),
    ],
)
def test_bad_config_exits_2_naming_the_field(tmp_path, capsys, change, field, allowed):
    cfg = monitor_config("b", "http://127.0.0.1:9", feedback=True, **change)
    assert run(tmp_path, cfg) == 2
    err = capsys.readouterr().err
    assert f"bad configuration: {field}: " in err and allowed in err
    assert "Traceback" not in err


def test_late_labels_join_within_the_feedback_window_and_drift_keeps_its_own(tmp_path, s3, moto_s3, bucket, pushgateway):
    """Fraud chargebacks arrive days later: predictions captured 3 days ago, labels written today. A 7-day
    feedback.windowSeconds joins them; without it (the 1-day drift window) nothing joins. Either way drift judges only
    its own day, and every capture object is read once."""
    seed_reference(s3, bucket)
    rng = np.random.default_rng(5)
    # 3 days ago: shifted traffic (it would be drift, were it in the drift window), 500 requests, all predicting 0.
    old = seed_captures(s3, bucket, feature_rows(rng, 1000, shifted=True), NOW - timedelta(days=3))
    # The last hour: unshifted traffic, 500 requests, unlabelled.
    seed_captures(s3, bucket, feature_rows(rng, 1000), NOW)
    # Labels written today for the old requests: every 4th is fraud (1), so accuracy 0.75.
    labels = [{"requestId": r["requestId"], "label": int(i % 4 == 0)} for i, r in enumerate(old)]
    put_jsonl(s3, bucket, "feedback/fraud/2026-11-30.jsonl", labels)
    cfg = monitor_config(bucket, pushgateway, feedback=True, windowSeconds=86400, feedback_windowSeconds=7 * 86400)

    gets = Counter()
    client = moto_s3.new_client()
    client.meta.events.register("before-parameter-build.s3.GetObject", lambda params, **_: gets.update([params["Key"]]))
    assert run_job(parse_config(cfg), NOW, s3=client) == 0
    groups = pg_groups(pushgateway)
    feedback = groups[FEEDBACK]
    assert value(feedback, "model_quality", metric="accuracy") == 0.75
    assert value(feedback, "model_feedback_joined_samples") == 500
    assert value(feedback, "model_feedback_labels") == 500
    assert value(feedback, "model_feedback_insufficient_samples") == 0
    summary = json.loads(s3.get_object(Bucket=bucket, Key="feedback/reports/fraud/3/2026-11-30T073000Z/report.json")["Body"].read())
    assert summary["window"] == {"start": (NOW - timedelta(days=7)).isoformat(), "end": NOW.isoformat(), "seconds": 604800}
    assert summary["capturedRecords"] == 1000 and summary["labelObjectsRead"] == 1 and summary["labelRowsRead"] == 500
    # Drift saw only the last day: the 1000 unshifted rows, not the shifted ones of 3 days ago.
    drift = groups[DRIFT]
    assert value(drift, "model_drift_samples") == 1000
    assert value(drift, "model_drift_detected") == 0
    # One read of the captures for both checks: each object once.
    capture_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="capture/fraud/3/")["Contents"]]
    assert len(capture_keys) == 10
    assert {k: n for k, n in gets.items() if k.startswith("capture/")} == dict.fromkeys(capture_keys, 1)

    # The same without feedback.windowSeconds: the feedback window is the drift window, the labels find nothing.
    del cfg["feedback"]["windowSeconds"]
    gets.clear()
    assert run_job(parse_config(cfg), NOW, s3=client) == 0
    groups = pg_groups(pushgateway)
    feedback = groups[FEEDBACK]
    assert "model_quality" not in feedback
    assert value(feedback, "model_feedback_insufficient_samples") == 1
    assert value(feedback, "model_feedback_joined_samples") == 0
    assert value(feedback, "model_feedback_labels") == 500
    assert value(groups[DRIFT], "model_drift_samples") == 1000
    assert value(groups[DRIFT], "model_drift_detected") == 0
    # The 3-day-old partitions are no longer read at all.
    assert sorted(k for k in gets if k.startswith("capture/")) == sorted(k for k in capture_keys if "dt=2026-11-30/" in k)


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "none.json")]) == 2
    assert "cannot read config file" in capsys.readouterr().err
    cfg = write_config(tmp_path, monitor_config("b", "http://127.0.0.1:9"))
    assert main(["run", "--config", cfg, "--now", "2026-11-30T07:00:00"]) == 2
    assert "--now" in capsys.readouterr().err
    assert main(["check", "--config", cfg]) == 2


def subprocess_env(moto_s3):
    """A child's environment: boto3 pointed at the moto server (conftest.py's `moto_s3.env`), the package's src."""
    path = os.pathsep.join(p for p in [str(SRC), os.environ.get("PYTHONPATH")] if p)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": path, **moto_s3.env}


def test_module_entry_point_as_a_subprocess(tmp_path, moto_s3, s3, bucket, pushgateway):
    seed_reference(s3, bucket)
    records = seed_captures(s3, bucket, feature_rows(np.random.default_rng(4), 1000, shifted=True), NOW)
    put_jsonl(s3, bucket, "feedback/fraud/labels.jsonl", [{"requestId": r["requestId"], "label": i % 2} for i, r in enumerate(records)])
    cfg = write_config(tmp_path, monitor_config(bucket, pushgateway, feedback=True))
    proc = subprocess.run(
        [sys.executable, "-m", "model_monitoring.job", "run", "--config", cfg, "--now", iso(NOW)],
        env=subprocess_env(moto_s3),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    groups = pg_groups(pushgateway)
    assert value(groups[DRIFT], "model_drift_detected") == 1
    # Every prediction is 0 and every other label is 1: accuracy 0.5 over the 500 requests.
    assert value(groups[FEEDBACK], "model_quality", metric="accuracy") == 0.5
    assert value(groups[FEEDBACK], "model_feedback_joined_samples") == 500

    bad = write_config(tmp_path, {**json.loads(Path(cfg).read_text()), "minSamples": 0})
    proc = subprocess.run(
        [sys.executable, "-m", "model_monitoring.job", "run", "--config", bad],
        env=subprocess_env(moto_s3),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "minSamples: 0: allowed: an integer >= 1" in proc.stderr and "Traceback" not in proc.stderr
