"""Pushing to, and deleting groups from, a real Pushgateway (the Debian package's binary on a loopback port)."""

from model_monitoring import pushgateway as pg
from monitor_fixtures import pg_groups, value
from prometheus_client import CollectorRegistry, Gauge

pytest_plugins = ["monitor_fixtures"]  # its fixtures: s3, bucket, aws_env, pushgateway


def registry(**values) -> CollectorRegistry:
    reg = CollectorRegistry()
    for name, v in values.items():
        Gauge(name, name, registry=reg).set(v)
    return reg


def test_stale_versions_of_the_same_model_go_and_every_other_group_stays(pushgateway):
    groups = [
        ("model-drift", "fraud", "fraud", "1"),
        ("model-drift", "fraud", "fraud", "2"),
        ("model-drift", "fraud", "fraud", "3"),
        ("model-drift", "fraud", "fraud", "2/rc 1"),
        ("model-drift", "pr-7", "fraud", "2"),
        ("model-drift", "fraud", "fraud-lite", "1"),
        ("model-drift", "churn", "churn", "1"),
        ("model-feedback", "fraud", "fraud", "2"),
    ]
    for job, ns, model, version in groups:
        pg.push(pushgateway, job, pg.grouping_key(ns, model, version), registry(model_drift_samples=1))
    assert set(pg_groups(pushgateway)) == set(groups)

    deleted = pg.delete_stale_groups(pushgateway, "model-drift", "fraud", "fraud", "3")
    assert sorted(d["version"] for d in deleted) == ["1", "2", "2/rc 1"]
    assert set(pg_groups(pushgateway)) == {
        ("model-drift", "fraud", "fraud", "3"),
        ("model-drift", "pr-7", "fraud", "2"),
        ("model-drift", "fraud", "fraud-lite", "1"),
        ("model-drift", "churn", "churn", "1"),
        ("model-feedback", "fraud", "fraud", "2"),
    }

    pg.delete_model_groups(pushgateway, "model-feedback", "fraud", "fraud")
    assert ("model-feedback", "fraud", "fraud", "2") not in pg_groups(pushgateway)


def test_push_replaces_the_group_and_a_failure_keeps_the_rest(pushgateway):
    key = pg.grouping_key("fraud", "fraud", "3")
    gid = ("model-drift", "fraud", "fraud", "3")
    pg.push(
        pushgateway,
        "model-drift",
        key,
        registry(model_drift_share=0.4, model_drift_detected=0, model_drift_last_success_timestamp_seconds=100),
    )
    pg.push_failure(pushgateway, "model-drift", key, "model_drift_last_failure_timestamp_seconds", 200)
    group = pg_groups(pushgateway)[gid]
    assert value(group, "model_drift_share") == 0.4
    assert value(group, "model_drift_last_success_timestamp_seconds") == 100
    assert value(group, "model_drift_last_failure_timestamp_seconds") == 200
    # The next success PUTs: what it does not publish (the share, the failure) is gone.
    pg.push(pushgateway, "model-drift", key, registry(model_drift_insufficient_samples=1, model_drift_last_success_timestamp_seconds=300))
    group = pg_groups(pushgateway)[gid]
    assert set(group) == {"model_drift_insufficient_samples", "model_drift_last_success_timestamp_seconds"}
