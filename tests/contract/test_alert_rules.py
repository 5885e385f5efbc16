"""Every alert rule the plans declare passes `promtool check rules`, and every alert has a `promtool test rules`
unit test: input series that must fire it (with its labels) and series that must not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ml_platform.components import alerts


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: .ci/run installs Debian's prometheus package (apt-get install prometheus)")
    return path


def rule_groups(plan) -> list[dict]:
    return [
        group
        for r in plan.resources
        if r["type"] == "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
        for group in r["inputs"]["spec"]["groups"]
    ]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_rule_group_passes_promtool_check(plans, stack, tmp_path):
    groups = rule_groups(plans[stack])
    assert len(groups) >= 5
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rejects_a_broken_rule(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x[5m])", "for": "1m"}]}]}))
    assert subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True).returncode != 0


# alert -> (series that fire it, when to look, labels it fires with, series that must leave it quiet)
CASES: dict[str, tuple[list[tuple[str, str]], str, dict, list[tuple[str, str]]]] = {
    "GpuXidError": (
        [('DCGM_FI_DEV_XID_ERRORS{Hostname="n1", gpu="0", err_code="79"}', "0 79 79")],
        "2m",
        {"Hostname": "n1", "gpu": "0", "err_code": "79", "node": "n1"},
        # an application XID (a CUDA program faulting) is not a hardware page
        [('DCGM_FI_DEV_XID_ERRORS{Hostname="n1", gpu="0", err_code="13"}', "0 13 13")],
    ),
    "GpuOverheating": (
        [('DCGM_FI_DEV_GPU_TEMP{Hostname="n1", gpu="0"}', "90x10")],
        "10m",
        {"Hostname": "n1", "gpu": "0", "node": "n1"},
        [('DCGM_FI_DEV_GPU_TEMP{Hostname="n1", gpu="0"}', "80x10")],
    ),
    "GpuMemoryNearlyFull": (
        [('DCGM_FI_DEV_FB_USED{Hostname="n1", gpu="0"}', "23950x20"), ('DCGM_FI_DEV_FB_FREE{Hostname="n1", gpu="0"}', "50x20")],
        "20m",
        {"Hostname": "n1", "gpu": "0", "node": "n1"},
        # vLLM's normal 90% reservation stays quiet
        [('DCGM_FI_DEV_FB_USED{Hostname="n1", gpu="0"}', "21600x20"), ('DCGM_FI_DEV_FB_FREE{Hostname="n1", gpu="0"}', "2400x20")],
    ),
    "GpuAllocatedButIdle": (
        [('DCGM_FI_DEV_GPU_UTIL{Hostname="n1", gpu="0", namespace="chat", pod="chat-1"}', "1x200")],
        "190m",
        {"namespace": "chat", "pod": "chat-1"},
        [('DCGM_FI_DEV_GPU_UTIL{Hostname="n1", gpu="0", namespace="chat", pod="chat-1"}', "60x200")],
    ),
    "NodeNotReady": (
        [('kube_node_status_condition{condition="Ready", status="true", node="n1"}', "0x20")],
        "15m",
        {"condition": "Ready", "status": "true", "node": "n1"},
        [('kube_node_status_condition{condition="Ready", status="true", node="n1"}', "1x20")],
    ),
    "GpuPodsPending": (
        [
            ('kube_pod_status_phase{namespace="chat", pod="chat-1", phase="Pending"}', "1x30"),
            ('kube_pod_container_resource_requests{namespace="chat", pod="chat-1", container="server", resource="nvidia_com_gpu"}', "1x30"),
        ],
        "20m",
        {"namespace": "chat", "pod": "chat-1"},
        # a pending CPU pod is not a GPU capacity problem
        [
            ('kube_pod_status_phase{namespace="fraud", pod="fraud-1", phase="Pending"}', "1x30"),
            ('kube_pod_container_resource_requests{namespace="fraud", pod="fraud-1", container="server", resource="cpu"}', "1x30"),
        ],
    ),
    "KarpenterCannotLaunch": (
        [('karpenter_cloudprovider_errors_total{controller="nodeclaim", method="Create", error="UnauthorizedOperation"}', "0 1 2 3")],
        "3m",
        {"error": "UnauthorizedOperation"},
        # running out of one offering is routine
        [('karpenter_cloudprovider_errors_total{controller="nodeclaim", method="Create", error="InsufficientCapacityError"}', "0 1 2 3")],
    ),
    "ModelAtMaxReplicas": (
        [
            ('kube_horizontalpodautoscaler_status_current_replicas{namespace="chat", horizontalpodautoscaler="keda-hpa-chat"}', "4x20"),
            ('kube_horizontalpodautoscaler_spec_max_replicas{namespace="chat", horizontalpodautoscaler="keda-hpa-chat"}', "4x20"),
        ],
        "20m",
        {"namespace": "chat", "horizontalpodautoscaler": "keda-hpa-chat"},
        [
            ('kube_horizontalpodautoscaler_status_current_replicas{namespace="chat", horizontalpodautoscaler="keda-hpa-chat"}', "2x20"),
            ('kube_horizontalpodautoscaler_spec_max_replicas{namespace="chat", horizontalpodautoscaler="keda-hpa-chat"}', "4x20"),
        ],
    ),
    "ModelPodCrashLooping": (
        [
            (
                'kube_pod_container_status_waiting_reason{namespace="chat", pod="chat-1", container="server", reason="CrashLoopBackOff"}',
                "1x10",
            )
        ],
        "8m",
        {"namespace": "chat", "pod": "chat-1", "container": "server"},
        # not a model namespace
        [('kube_pod_container_status_waiting_reason{namespace="apps", pod="web-1", container="web", reason="CrashLoopBackOff"}', "1x10")],
    ),
    "PrometheusStorageAlmostFull": (
        [
            ('kubelet_volume_stats_available_bytes{persistentvolumeclaim="prometheus-kps-db-0"}', "5x20"),
            ('kubelet_volume_stats_capacity_bytes{persistentvolumeclaim="prometheus-kps-db-0"}', "100x20"),
        ],
        "20m",
        {"persistentvolumeclaim": "prometheus-kps-db-0"},
        [
            ('kubelet_volume_stats_available_bytes{persistentvolumeclaim="prometheus-kps-db-0"}', "50x20"),
            ('kubelet_volume_stats_capacity_bytes{persistentvolumeclaim="prometheus-kps-db-0"}', "100x20"),
        ],
    ),
    "LogShippingFailing": (
        # one burst of failures is enough: lost logs do not come back
        [
            ('fluentbit_output_retries_failed_total{pod="fluent-bit-1", name="cloudwatch_logs.0"}', "0 0 0 0 0 3 3 3 3 3"),
            ('fluentbit_output_dropped_records_total{pod="fluent-bit-1", name="cloudwatch_logs.0"}', "0x10"),
        ],
        "8m",
        {"pod": "fluent-bit-1"},
        [
            ('fluentbit_output_retries_failed_total{pod="fluent-bit-1", name="cloudwatch_logs.0"}', "0x20"),
            ('fluentbit_output_dropped_records_total{pod="fluent-bit-1", name="cloudwatch_logs.0"}', "0x20"),
        ],
    ),
}

# Per-model alerts of dev's `chat` (vLLM, startup 600 s) and staging's `ranker` (Triton).
MODEL_CASES: dict[tuple[str, str, str], tuple[list[tuple[str, str]], str, list[tuple[str, str]]]] = {
    ("dev", "chat", "ModelServerDown"): (
        [
            ('kube_deployment_status_replicas_available{namespace="chat", deployment="chat"}', "0x30"),
            ('kube_deployment_spec_replicas{namespace="chat", deployment="chat"}', "1x30"),
        ],
        "20m",
        # scaled to zero outside working hours: nothing is down
        [
            ('kube_deployment_status_replicas_available{namespace="chat", deployment="chat"}', "0x30"),
            ('kube_deployment_spec_replicas{namespace="chat", deployment="chat"}', "0x30"),
        ],
    ),
    ("dev", "chat", "ModelLoadMetricMissing"): (
        [('kube_deployment_status_replicas_available{namespace="chat", deployment="chat"}', "1x30")],
        "20m",
        # the metric is there, or the model is at rest (no replica, so no series is the truth)
        [
            ('kube_deployment_status_replicas_available{namespace="chat", deployment="chat"}', "1x30"),
            ('vllm:num_requests_waiting{namespace="chat", pod="chat-1"}', "0x30"),
        ],
    ),
    ("dev", "chat", "ModelLatencyHigh"): (
        [
            ('vllm:e2e_request_latency_seconds_bucket{namespace="chat", le="1"}', "0+0x30"),
            ('vllm:e2e_request_latency_seconds_bucket{namespace="chat", le="20"}', "0+10x30"),
            ('vllm:e2e_request_latency_seconds_bucket{namespace="chat", le="+Inf"}', "0+10x30"),
        ],
        "20m",
        [
            ('vllm:e2e_request_latency_seconds_bucket{namespace="chat", le="1"}', "0+10x30"),
            ('vllm:e2e_request_latency_seconds_bucket{namespace="chat", le="20"}', "0+10x30"),
            ('vllm:e2e_request_latency_seconds_bucket{namespace="chat", le="+Inf"}', "0+10x30"),
        ],
    ),
    ("dev", "chat", "ModelErrorRatioHigh"): (
        [
            ('vllm:request_success_total{namespace="chat", finished_reason="stop"}', "0+100x30"),
            ('vllm:request_success_total{namespace="chat", finished_reason="error"}', "0+10x30"),
        ],
        "20m",
        [
            ('vllm:request_success_total{namespace="chat", finished_reason="stop"}', "0+100x30"),
            ('vllm:request_success_total{namespace="chat", finished_reason="length"}', "0+10x30"),
        ],
    ),
    ("dev", "chat", "ModelQueueBacklog"): (
        [('vllm:num_requests_waiting{namespace="chat", pod="chat-1"}', "30x30")],
        "20m",
        [('vllm:num_requests_waiting{namespace="chat", pod="chat-1"}', "3x30")],
    ),
    ("staging", "ranker", "ModelLatencyHigh"): (
        [
            ('nv_inference_request_duration_us{namespace="ranker"}', "0+1200000000x30"),
            ('nv_inference_request_success{namespace="ranker"}', "0+60x30"),
        ],
        "20m",
        [
            ('nv_inference_request_duration_us{namespace="ranker"}', "0+6000000x30"),
            ('nv_inference_request_success{namespace="ranker"}', "0+60x30"),
        ],
    ),
    ("staging", "ranker", "ModelErrorRatioHigh"): (
        [
            ('nv_inference_request_failure{namespace="ranker", reason="BACKEND"}', "0+10x30"),
            ('nv_inference_request_success{namespace="ranker"}', "0+100x30"),
        ],
        "20m",
        [
            ('nv_inference_request_failure{namespace="ranker", reason="BACKEND"}', "0x30"),
            ('nv_inference_request_success{namespace="ranker"}', "0+100x30"),
        ],
    ),
    ("staging", "ranker", "ModelLoadMetricMissing"): (
        [
            ('kube_deployment_status_replicas_available{namespace="ranker", deployment="ranker"}', "2x30"),
            ('nv_inference_request_success{namespace="ranker"}', "0+60x30"),
        ],
        "20m",
        [
            ('kube_deployment_status_replicas_available{namespace="ranker", deployment="ranker"}', "0x30"),
        ],
    ),
    ("staging", "ranker", "ModelQueueBacklog"): (
        [('nv_inference_pending_request_count{namespace="ranker", model="ranker"}', "50x30")],
        "20m",
        [('nv_inference_pending_request_count{namespace="ranker", model="ranker"}', "2x30")],
    ),
}


def without_annotations(groups: list[dict]) -> list[dict]:
    """Rules as promtool's unit tests compare them: by labels (annotation templates are checked by `check rules`)."""
    return [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]} for g in groups]


def run_unit_test(tmp_path: Path, groups: list[dict], tests: list[dict]) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": without_annotations(groups)}))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}))
    return subprocess.run([promtool(), "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True, text=True, timeout=300)


def unit_tests(alert: str, firing: list, at: str, labels: dict, quiet: list) -> list[dict]:
    def series(pairs):
        return [{"series": s, "values": v} for s, v in pairs]

    return [
        {
            "interval": "1m",
            "input_series": series(firing),
            "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": labels}]}],
        },
        {"interval": "1m", "input_series": series(quiet), "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}]},
    ]


def test_every_platform_alert_has_a_unit_test():
    declared = {r["alert"] for g in alerts.platform_rule_groups(["chat"]) for r in g["rules"]}
    assert declared == set(CASES)


def test_platform_alerts_fire_and_stay_quiet(tmp_path):
    groups = alerts.platform_rule_groups(["chat", "fraud"])
    severity = {r["alert"]: r["labels"]["severity"] for g in groups for r in g["rules"]}
    tests = []
    for alert, (firing, at, labels, quiet) in CASES.items():
        tests += unit_tests(alert, firing, at, {**labels, "alertname": alert, "severity": severity[alert]}, quiet)
    result = run_unit_test(tmp_path, groups, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_alerts_fire_and_stay_quiet(plans, tmp_path):
    tests, groups = [], {}
    for (stack, model, alert), (firing, at, quiet) in MODEL_CASES.items():
        rule = next(
            r
            for r in plans[stack].by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
            if r["inputs"]["metadata"]["name"] == model
        )
        for group in rule["inputs"]["spec"]["groups"]:
            groups[group["name"]] = group
        labels = next(r["labels"] for g in rule["inputs"]["spec"]["groups"] for r in g["rules"] if r["alert"] == alert)
        extra = {"namespace": model, "deployment": model} if alert == "ModelServerDown" else {}
        tests += unit_tests(alert, firing, at, {**labels, **extra, "alertname": alert}, quiet)
    result = run_unit_test(tmp_path, list(groups.values()), tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_the_unit_test(tmp_path):
    firing, at, labels, _ = CASES["NodeNotReady"]
    tests = unit_tests("NodeNotReady", firing, at, {**labels, "alertname": "NodeNotReady", "severity": "warning"}, [])
    assert run_unit_test(tmp_path, alerts.platform_rule_groups([]), tests).returncode != 0


REGISTRY = 'namespace="mlflow", deployment="mlflow"'
REGISTRY_REQUESTS = 'mlflow_http_request_total{namespace="mlflow", method="GET", status="%s"}'
REGISTRY_BUCKET = 'mlflow_http_request_duration_seconds_bucket{namespace="mlflow", method="GET", status="200", le="%s"}'
# alert -> (firing series, eval time, extra labels, quiet series). Quiet cases are the near misses: the server scaled to
# 0 by the migration Job, 3% errors, too little traffic to judge, a p95 under 2 s.
REGISTRY_CASES = {
    "ModelRegistryDown": (
        [(f"kube_deployment_status_replicas_available{{{REGISTRY}}}", "0x10"), (f"kube_deployment_spec_replicas{{{REGISTRY}}}", "2x10")],
        "8m",
        {"namespace": "mlflow", "deployment": "mlflow"},
        [(f"kube_deployment_status_replicas_available{{{REGISTRY}}}", "0x10"), (f"kube_deployment_spec_replicas{{{REGISTRY}}}", "0x10")],
    ),
    "ModelRegistryMetricsMissing": (
        [('up{namespace="mlflow", job="mlflow", instance="10.0.1.5:9100"}', "0x20")],
        "18m",
        {"namespace": "mlflow", "job": "mlflow", "instance": "10.0.1.5:9100"},
        [('up{namespace="mlflow", job="mlflow", instance="10.0.1.5:9100"}', "0x5 1x15")],
    ),
    "ModelRegistryErrors": (
        [(REGISTRY_REQUESTS % "200", "0+540x20"), (REGISTRY_REQUESTS % "500", "0+60x20")],
        "15m",
        {},
        [(REGISTRY_REQUESTS % "200", "0+582x20"), (REGISTRY_REQUESTS % "500", "0+18x20")],
    ),
    "ModelRegistrySlow": (
        [
            (REGISTRY_BUCKET % "1.0", "0+10x25"),
            (REGISTRY_BUCKET % "5.0", "0+100x25"),
            (REGISTRY_BUCKET % "+Inf", "0+100x25"),
            (REGISTRY_REQUESTS % "200", "0+100x25"),
        ],
        "22m",
        {},
        [
            (REGISTRY_BUCKET % "1.0", "0+99x25"),
            (REGISTRY_BUCKET % "5.0", "0+100x25"),
            (REGISTRY_BUCKET % "+Inf", "0+100x25"),
            (REGISTRY_REQUESTS % "200", "0+100x25"),
        ],
    ),
}


def test_registry_alerts_fire_and_stay_quiet(plans, tmp_path):
    (rule,) = [
        r
        for r in plans["prod"].by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
        if r["inputs"]["metadata"]["namespace"] == "mlflow"
    ]
    groups = rule["inputs"]["spec"]["groups"]
    declared = {r["alert"]: r["labels"] for g in groups for r in g["rules"]}
    assert set(declared) == set(REGISTRY_CASES)
    tests = []
    for alert, (firing, at, labels, quiet) in REGISTRY_CASES.items():
        tests += unit_tests(alert, firing, at, {**declared[alert], **labels, "alertname": alert}, quiet)
    result = run_unit_test(tmp_path, groups, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_registry_errors_stay_quiet_when_traffic_is_too_thin_to_judge(plans, tmp_path):
    (rule,) = [
        r
        for r in plans["prod"].by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
        if r["inputs"]["metadata"]["namespace"] == "mlflow"
    ]
    thin = [(REGISTRY_REQUESTS % "200", "0+1x20"), (REGISTRY_REQUESTS % "500", "0+1x20")]
    test = {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in thin],
        "alert_rule_test": [{"eval_time": "15m", "alertname": "ModelRegistryErrors", "exp_alerts": []}],
    }
    result = run_unit_test(tmp_path, rule["inputs"]["spec"]["groups"], [test])
    assert result.returncode == 0, result.stdout + result.stderr
