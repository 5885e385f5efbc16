"""Grafana dashboards as plain data, provisioned as labelled ConfigMaps (never edited by hand in Grafana).

GPU panels use the DCGM exporter's default counters (the exporter's reference dashboard was the starting
point); serving panels use vLLM's and Triton's own metrics; platform panels use kube-state-metrics and
Karpenter's metrics.

GPU sharing: DCGM measures physical GPUs. On a time-sliced GPU the exporter labels the whole GPU's series with
one of the pods sharing it (the last the kubelet lists; dcgm-exporter 4.8.2
internal/pkg/transformation/kubernetes.go, `toDeviceToPod`), so per-pod and per-model GPU figures there are
the whole GPU's, and titles say so. Per-node panels take the `max` per physical GPU, which is its own value
however many series carry it.
"""

from __future__ import annotations

# Said on every per-pod GPU figure: what a time-sliced GPU's number means.
SHARED_GPU_NOTE = " (time-sliced: the whole GPU's, on one of its pods)"


def _panel(panel_id: int, title: str, targets: list[tuple[str, str]], unit: str, x: int, y: int, width: int = 12) -> dict:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)} for i, (expr, legend) in enumerate(targets)],
    }


def _dashboard(uid: str, title: str, panels: list[tuple[str, list[tuple[str, str]], str]], variables: list[dict] | None = None) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["ml-platform"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
                *(variables or []),
            ]
        },
        "panels": [
            _panel(index + 1, title, targets, unit, x=(index % 2) * 12, y=(index // 2) * 8)
            for index, (title, targets, unit) in enumerate(panels)
        ],
    }


def _query_variable(name: str, query: str) -> dict:
    return {
        "name": name,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name},
        "includeAll": True,
        "multi": True,
        "refresh": 2,
    }


def gpu() -> dict:
    node = 'Hostname=~"$node"'
    return _dashboard(
        "ml-platform-gpu",
        "ML platform / GPUs",
        [
            (
                "GPU utilisation per node",
                [(f"max by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL{{{node}}})", "{{Hostname}} gpu{{gpu}}")],
                "percent",
            ),
            (
                "GPU utilisation per pod" + SHARED_GPU_NOTE,
                [(f'avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{{{node}, pod!=""}})', "{{namespace}}/{{pod}}")],
                "percent",
            ),
            (
                # Time-slicing multiplies what a node advertises: requests against it show how full the sharing is.
                "GPUs (or slices) requested and advertised per node",
                [
                    ('sum by (node) (kube_pod_container_resource_requests{resource="nvidia_com_gpu"})', "{{node}} requested"),
                    ('sum by (node) (kube_node_status_allocatable{resource="nvidia_com_gpu"})', "{{node}} advertised"),
                ],
                "short",
            ),
            (
                "GPU memory used",
                [
                    (
                        f"DCGM_FI_DEV_FB_USED{{{node}}} / (DCGM_FI_DEV_FB_USED{{{node}}} + DCGM_FI_DEV_FB_FREE{{{node}}})",
                        "{{Hostname}} gpu{{gpu}}",
                    )
                ],
                "percentunit",
            ),
            ("GPU temperature", [(f"DCGM_FI_DEV_GPU_TEMP{{{node}}}", "{{Hostname}} gpu{{gpu}}")], "celsius"),
            ("GPU power", [(f"DCGM_FI_DEV_POWER_USAGE{{{node}}}", "{{Hostname}} gpu{{gpu}}")], "watt"),
            ("XID errors (last code)", [(f"DCGM_FI_DEV_XID_ERRORS{{{node}}} > 0", "{{Hostname}} gpu{{gpu}}")], "none"),
        ],
        [_query_variable("node", "label_values(DCGM_FI_DEV_GPU_UTIL, Hostname)")],
    )


def model_serving() -> dict:
    ns = 'namespace=~"$model"'
    return _dashboard(
        "ml-platform-serving",
        "ML platform / Model serving",
        [
            (
                "Requests per second",
                [
                    (f"sum by (namespace) (rate(vllm:request_success_total{{{ns}}}[5m]))", "{{namespace}} (vLLM)"),
                    (f"sum by (namespace) (rate(nv_inference_request_success{{{ns}}}[5m]))", "{{namespace}} (Triton)"),
                ],
                "reqps",
            ),
            (
                "Error ratio",
                [
                    (
                        f'sum by (namespace) (rate(vllm:request_success_total{{{ns}, finished_reason=~"error|abort"}}[5m]))'
                        f" / sum by (namespace) (rate(vllm:request_success_total{{{ns}}}[5m]))",
                        "{{namespace}} (vLLM)",
                    ),
                    (
                        f"sum by (namespace) (rate(nv_inference_request_failure{{{ns}}}[5m])) / (sum by (namespace) "
                        f"(rate(nv_inference_request_failure{{{ns}}}[5m]))"
                        f" + sum by (namespace) (rate(nv_inference_request_success{{{ns}}}[5m])))",
                        "{{namespace}} (Triton)",
                    ),
                ],
                "percentunit",
            ),
            (
                "Latency p50 / p95 / p99 (vLLM)",
                [
                    (
                        f"histogram_quantile({q}, sum by (namespace, le) (rate(vllm:e2e_request_latency_seconds_bucket{{{ns}}}[5m])))",
                        f"{{{{namespace}}}} p{int(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                "s",
            ),
            (
                "Time to first token p95 (vLLM)",
                [
                    (
                        f"histogram_quantile(0.95, sum by (namespace, le) (rate(vllm:time_to_first_token_seconds_bucket{{{ns}}}[5m])))",
                        "{{namespace}}",
                    )
                ],
                "s",
            ),
            (
                "Queue: waiting requests (vLLM), queue time (Triton)",
                [
                    (f"sum by (namespace) (vllm:num_requests_waiting{{{ns}}})", "{{namespace}} waiting"),
                    (
                        f"sum by (namespace) (rate(nv_inference_queue_duration_us{{{ns}}}[5m])) / 1000"
                        f" / clamp_min(sum by (namespace) (rate(nv_inference_request_success{{{ns}}}[5m])), 1e-3)",
                        "{{namespace}} queue ms",
                    ),
                ],
                "short",
            ),
            (
                "Replicas against the autoscaler's limits",
                [
                    (f"kube_horizontalpodautoscaler_status_current_replicas{{{ns}}}", "{{namespace}} current"),
                    (f"kube_horizontalpodautoscaler_spec_max_replicas{{{ns}}}", "{{namespace}} max"),
                    (f"kube_horizontalpodautoscaler_spec_min_replicas{{{ns}}}", "{{namespace}} min"),
                ],
                "short",
            ),
            (
                "GPU utilisation per model" + SHARED_GPU_NOTE,
                [(f'avg by (namespace) (DCGM_FI_DEV_GPU_UTIL{{{ns}, pod!=""}})', "{{namespace}}")],
                "percent",
            ),
            # Is the model still right (components/model_service/metric_drift.py, monitor_job.py, capture.py)?
            (
                "Metric drift against the same hour a baseline ago (vLLM; 0 same, 1 disjoint)",
                [('max by (model, signal) (model:vllm_metric_drift:score{model=~"$model"})', "{{model}} {{signal}}")],
                "short",
            ),
            (
                "Data drift: share of drifted features (monitor job)",
                [
                    (f"max by (namespace, version) (model_drift_share{{{ns}}})", "{{namespace}} {{version}}"),
                    (
                        f"max by (namespace, version) (model_drift_insufficient_samples{{{ns}}})",
                        "{{namespace}} {{version}} too few samples",
                    ),
                ],
                "percentunit",
            ),
            (
                "Realised quality from feedback labels",
                [(f"max by (namespace, version, metric) (model_quality{{{ns}}})", "{{namespace}} {{version}} {{metric}}")],
                "short",
            ),
            (
                "Capture: sampled and dropped pairs per second",
                [
                    (f"sum by (namespace) (rate(capture_sampled_total{{{ns}}}[5m]))", "{{namespace}} sampled"),
                    (f"sum by (namespace, reason) (rate(capture_dropped_total{{{ns}}}[5m]))", "{{namespace}} dropped ({{reason}})"),
                ],
                "reqps",
            ),
            (
                "Monitor job: hours since its last success",
                [
                    (
                        f"(time() - max by (namespace, job) (model_drift_last_success_timestamp_seconds{{{ns}}}"
                        f" or model_feedback_last_success_timestamp_seconds{{{ns}}})) / 3600",
                        "{{namespace}} {{job}}",
                    )
                ],
                "h",
            ),
        ],
        [_query_variable("model", 'label_values(kube_namespace_labels{label_app_kubernetes_io_component="model-server"}, namespace)')],
    )


def platform() -> dict:
    return _dashboard(
        "ml-platform-platform",
        "ML platform / Cluster and capacity",
        [
            (
                "Nodes per pool",
                [('count by (label_ml_platform_pool) (kube_node_labels{label_ml_platform_pool!=""})', "{{label_ml_platform_pool}}")],
                "short",
            ),
            ("Pending pods", [('sum by (namespace) (kube_pod_status_phase{phase="Pending"})', "{{namespace}}")], "short"),
            (
                "Karpenter node launches",
                [("sum by (nodepool) (increase(karpenter_nodeclaims_created_total[1h]))", "{{nodepool}}")],
                "short",
            ),
            (
                "Karpenter launch failures",
                [('sum by (error) (increase(karpenter_cloudprovider_errors_total{method="Create"}[1h]))', "{{error}}")],
                "short",
            ),
            ("Nodes not ready", [('sum(kube_node_status_condition{condition="Ready", status="true"} == 0)', "not ready")], "short"),
            ("Log shipping retries failed", [("sum by (pod) (rate(fluentbit_output_retries_failed_total[5m]))", "{{pod}}")], "short"),
        ],
    )


def all_dashboards() -> dict[str, dict]:
    return {"gpu": gpu(), "model-serving": model_serving(), "platform": platform()}
