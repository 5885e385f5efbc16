"""What watches the model: its ServiceMonitor and its SLO alerts."""

from __future__ import annotations

import math

from ml_platform.components.alerts import alert as platform_alert
from ml_platform.components.model_service import capture, metric_drift, monitor_job
from ml_platform.components.model_service.autoscaling import load_expression
from ml_platform.components.model_service.spec import ModelSpec, meta


def service_monitor(spec: ModelSpec) -> dict:
    """Scrapes the server's metrics port (never through the capture proxy: scrapes are not traffic) and the proxy's."""
    port = "metrics" if spec.runtime == "triton" else ("server" if spec.capture is not None else "http")
    endpoints = [{"port": port, "path": spec.metrics_path if spec.runtime == "custom" else "/metrics", "interval": "15s"}]
    if spec.capture is not None:
        endpoints.append({"port": capture.METRICS_PORT_NAME, "path": "/metrics", "interval": "30s"})
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta(spec),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
            "endpoints": endpoints,
        },
    }


def slo_rules(spec: ModelSpec) -> list[dict]:
    """The model's alerts: down, its autoscaler's load metric missing (GPU models), and latency, error ratio and
    queue backlog (what its runtime can measure)."""
    ns = spec.selector

    def alert(name: str, expr: str, duration: str, severity: str, summary: str, runbook: str) -> dict:
        # `namespace` on every model alert: Alertmanager groups by it, and ModelServerDown inhibits the model's symptoms
        # by it (an aggregated expression such as sum(...) would otherwise drop it).
        return platform_alert(name, expr, duration, severity, summary, runbook, model=spec.name, namespace=spec.namespace)

    rules = [
        alert(
            "ModelServerDown",
            # Counts pending and still-loading replicas as down (they have no ready endpoint), but only after the
            # startup budget, so a scale-up from zero does not page.
            f'kube_deployment_status_replicas_available{{{ns}, deployment="{spec.name}"}} == 0'
            f' and on() kube_deployment_spec_replicas{{{ns}, deployment="{spec.name}"}} > 0',
            f"{math.ceil(spec.startup_seconds / 60) + 5}m",
            "critical",
            f"No replica of {spec.name} is available",
            f"kubectl -n {spec.namespace} get pods; pending pods mean no node capacity, crash loops a bad image or weights",
        )
    ]
    if spec.gpus:
        rules.append(
            alert(
                "ModelLoadMetricMissing",
                # Ready replicas but no load series: the autoscaler holds the model at its current size (see fallback).
                f"absent({load_expression(spec)[0]})"
                f' and on() kube_deployment_status_replicas_available{{namespace="{spec.namespace}", deployment="{spec.name}"}} > 0',
                "10m",
                "warning",
                f"Autoscaling of {spec.name} is frozen: its load metric is missing",
                "Prometheus is not scraping the model (its ServiceMonitor, the NetworkPolicy, a relabelling change) or has just restarted",
            )
        )
    if spec.runtime == "vllm":
        rules += [
            alert(
                "ModelLatencyHigh",
                f"histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{{{ns}}}[5m])))"
                f" > {spec.p99_latency_seconds:g}",
                "10m",
                "warning",
                f"p99 latency of {spec.name} above {spec.p99_latency_seconds:g}s",
                "Check queue depth and GPU utilisation; raise replicas.max or the GPU pool's limits",
            ),
            alert(
                "ModelErrorRatioHigh",
                f'sum(rate(vllm:request_success_total{{{ns}, finished_reason=~"error|abort"}}[5m]))'
                f" / clamp_min(sum(rate(vllm:request_success_total{{{ns}}}[5m])), 1e-9) > {spec.error_ratio:g}",
                "10m",
                "critical",
                f"More than {spec.error_ratio:.1%} of {spec.name}'s requests end in an error or abort",
                f"kubectl -n {spec.namespace} logs deploy/{spec.name}; look for OOM, CUDA errors and client timeouts",
            ),
            alert(
                "ModelQueueBacklog",
                f"sum(vllm:num_requests_waiting{{{ns}}}) > {spec.queue_backlog}",
                "10m",
                "warning",
                f"{spec.name} has a sustained queue of waiting requests",
                "The autoscaler is at its limit or new replicas cannot start: check replicas.max and pending pods",
            ),
        ]
    elif spec.runtime == "triton":
        rules += [
            alert(
                "ModelLatencyHigh",
                f"sum(rate(nv_inference_request_duration_us{{{ns}}}[5m])) / 1e6"
                f" / clamp_min(sum(rate(nv_inference_request_success{{{ns}}}[5m])), 1e-9) > {spec.p99_latency_seconds:g}",
                "10m",
                "warning",
                f"Mean latency of {spec.name} above {spec.p99_latency_seconds:g}s (Triton reports no percentiles)",
                "Check queue time and GPU utilisation; raise replicas.max or the GPU pool's limits",
            ),
            alert(
                "ModelErrorRatioHigh",
                f"sum(rate(nv_inference_request_failure{{{ns}}}[5m])) / clamp_min(sum(rate(nv_inference_request_failure{{{ns}}}[5m]))"
                f" + sum(rate(nv_inference_request_success{{{ns}}}[5m])), 1e-9) > {spec.error_ratio:g}",
                "10m",
                "critical",
                f"More than {spec.error_ratio:.0%} of {spec.name}'s inferences fail",
                f"kubectl -n {spec.namespace} logs deploy/{spec.name}; the failure reason label says which backend fails",
            ),
            alert(
                "ModelQueueBacklog",
                f"sum(nv_inference_pending_request_count{{{ns}}}) > {spec.queue_backlog}",
                "10m",
                "warning",
                f"{spec.name} has a sustained queue of pending requests",
                "The autoscaler is at its limit or new replicas cannot start: check replicas.max and pending pods",
            ),
        ]
    return rules


def monitoring_rule_groups(spec: ModelSpec) -> list[dict]:
    """Whether the model is still right: metric drift (vLLM), whether its capture proxy records, and what its
    monitor job finds (drift, too few samples, quality) and whether it runs."""
    groups = [metric_drift.rule_group(spec)] if spec.metric_drift is not None else []
    groups += [capture.rule_group(spec)] if spec.capture is not None else []
    return groups + ([monitor_job.rule_group(spec)] if spec.monitor is not None else [])


def prometheus_rule(spec: ModelSpec) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta(spec),
        "spec": {"groups": [{"name": f"{spec.name}.slo", "rules": slo_rules(spec)}, *monitoring_rule_groups(spec)]},
    }
