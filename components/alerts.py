"""The platform's alert rules, as plain data: GPUs, nodes and capacity, Karpenter, model replicas, Prometheus
itself and log shipping. Each alert has a severity, a summary and a runbook hint. Every rule here has a
promtool unit test (tests/contract/test_alert_rules.py): series that must fire it and series that must not.

Model SLO alerts (latency, error ratio, queue backlog, down) live with each model (components/model_service/alerts.py).
"""

from __future__ import annotations

from collections.abc import Sequence


def alert(name: str, expr: str, duration: str, severity: str, summary: str, runbook: str, **labels: str) -> dict:
    """One alerting rule: a severity label (and `labels`, e.g. the model it is about), a summary and a runbook hint."""
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "runbook": runbook},
    }


# XIDs that mean the GPU hardware (not an application) failed: double-bit ECC, row remapping, NVLink, fallen off
# the bus. DCGM_FI_DEV_XID_ERRORS keeps the last code until the exporter restarts, so application XIDs (13, 31,
# 43) would page forever.
HARDWARE_XIDS = "48|63|64|74|79|92|94|95|119|120"
GPU_TEMPERATURE_CELSIUS = 85
GPU_MEMORY_FULL_RATIO = 0.98  # vLLM reserves ~90% of GPU memory by design; only a truly full GPU is news
GPU_IDLE_PERCENT = 5
PENDING_GPU_MINUTES = 15


def _per_node(expr: str) -> str:
    """DCGM names the node `Hostname`; a `node` label lets a NotReady node inhibit its GPUs' alerts."""
    return f'label_replace({expr}, "node", "$1", "Hostname", "(.*)")'


def gpu_rules() -> dict:
    return {
        "name": "ml-platform.gpu",
        "rules": [
            alert(
                "GpuXidError",
                _per_node(f'max by (Hostname, gpu, err_code) (DCGM_FI_DEV_XID_ERRORS{{err_code=~"{HARDWARE_XIDS}"}})') + " > 0",
                "0m",
                "critical",
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID error {{ $value }}",
                "XID 48/63/64/74/79 mean hardware faults: cordon the node and let Karpenter or the node group replace it",
            ),
            alert(
                "GpuOverheating",
                _per_node("max by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP)") + f" > {GPU_TEMPERATURE_CELSIUS}",
                "5m",
                "warning",
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} runs at {{ $value }} C",
                "Sustained heat throttles the GPU; replace the node if it persists",
            ),
            alert(
                "GpuMemoryNearlyFull",
                _per_node("max by (Hostname, gpu) (DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE))")
                + f" > {GPU_MEMORY_FULL_RATIO}",
                "15m",
                "warning",
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has almost no free memory",
                "Lower the model's --gpu-memory-utilization or max-model-len, or give it a bigger GPU",
            ),
            alert(
                "GpuAllocatedButIdle",
                f'avg by (namespace, pod) (avg_over_time(DCGM_FI_DEV_GPU_UTIL{{pod!=""}}[1h])) < {GPU_IDLE_PERCENT}',
                "2h",
                "warning",
                # On a time-sliced GPU the exporter shows the whole GPU on one of its pods: idle means every sharer is.
                "{{ $labels.namespace }}/{{ $labels.pod }} holds a GPU it has barely used for hours (time-sliced: all its pods)",
                "Money burning: lower replicas.min, let the model scale to zero in dev, or share the GPU (time-slicing)",
            ),
        ],
    }


def capacity_rules() -> dict:
    return {
        "name": "ml-platform.capacity",
        "rules": [
            alert(
                "NodeNotReady",
                'kube_node_status_condition{condition="Ready", status="true"} == 0',
                "10m",
                "critical",
                "Node {{ $labels.node }} is not Ready",
                "kubectl describe node; a Karpenter node that stays NotReady is replaced by node repair or expiry",
            ),
            alert(
                "GpuPodsPending",
                'sum by (namespace, pod) (kube_pod_status_phase{phase="Pending"} == 1)'
                ' and on (namespace, pod) sum by (namespace, pod) (kube_pod_container_resource_requests{resource="nvidia_com_gpu"}) > 0',
                f"{PENDING_GPU_MINUTES}m",
                "warning",
                "GPU pod {{ $labels.namespace }}/{{ $labels.pod }} has been pending for 15 minutes",
                "kubectl describe pod: no capacity (pool limits, spot, quotas) or tolerations/selectors that match no pool",
            ),
            alert(
                "KarpenterCannotLaunch",
                # Running out of one offering's capacity is routine (Karpenter tries the next); anything else is not.
                'sum by (error) (increase(karpenter_cloudprovider_errors_total{method="Create", error!="InsufficientCapacityError"}[15m]))'
                " > 0",
                "0m",
                "warning",
                "Karpenter failed to launch nodes ({{ $labels.error }})",
                "kubectl -n kube-system logs deploy/karpenter; check EC2 quotas, spot capacity and the NodePool limits",
            ),
            alert(
                "ModelAtMaxReplicas",
                "kube_horizontalpodautoscaler_status_current_replicas >= kube_horizontalpodautoscaler_spec_max_replicas"
                " and kube_horizontalpodautoscaler_spec_max_replicas > 0",
                "15m",
                "warning",
                "{{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }} has run at its maximum replicas for 15 minutes",
                "Raise the model's replicas.max (and the GPU pool's limits) or its autoscaling target",
            ),
        ],
    }


def model_pod_rules(model_namespaces: Sequence[str]) -> dict:
    namespaces = "|".join(sorted(model_namespaces)) or "^$"
    return {
        "name": "ml-platform.model-pods",
        "rules": [
            alert(
                "ModelPodCrashLooping",
                "max by (namespace, pod, container) "
                f'(kube_pod_container_status_waiting_reason{{reason="CrashLoopBackOff", namespace=~"{namespaces}"}}) == 1',
                "5m",
                "critical",
                "Model pod {{ $labels.namespace }}/{{ $labels.pod }} is crash-looping",
                "kubectl logs --previous: a bad image, weights missing from the model store, or out of GPU memory",
            ),
        ],
    }


def platform_health_rules() -> dict:
    return {
        "name": "ml-platform.platform",
        "rules": [
            alert(
                "PrometheusStorageAlmostFull",
                'min by (persistentvolumeclaim) (kubelet_volume_stats_available_bytes{persistentvolumeclaim=~"prometheus-.*"}'
                ' / kubelet_volume_stats_capacity_bytes{persistentvolumeclaim=~"prometheus-.*"}) < 0.1',
                "15m",
                "warning",
                "Prometheus volume {{ $labels.persistentvolumeclaim }} has less than 10% free",
                "Raise monitoring.storageGiB (the gp3 volume can grow in place) or shorten monitoring.retention",
            ),
            alert(
                "LogShippingFailing",
                # Any loss counts: dropped logs do not come back.
                "sum by (pod) (increase(fluentbit_output_retries_failed_total[15m])"
                " + increase(fluentbit_output_dropped_records_total[15m])) > 0",
                "0m",
                "warning",
                "Fluent Bit {{ $labels.pod }} is dropping logs it failed to send to CloudWatch",
                "kubectl -n logging logs {{ $labels.pod }}: usually IAM (the Pod Identity role) or CloudWatch throttling",
            ),
        ],
    }


def platform_rule_groups(model_namespaces: Sequence[str]) -> list[dict]:
    return [gpu_rules(), capacity_rules(), model_pod_rules(model_namespaces), platform_health_rules()]


def inhibit_rules() -> list[dict]:
    """One fault pages once: a down model silences its own symptoms, a NotReady node its GPU alerts, and a
    critical alert the warnings of the same name."""
    return [
        {
            "source_matchers": ['alertname="ModelServerDown"'],
            "target_matchers": ['alertname=~"ModelLatencyHigh|ModelErrorRatioHigh|ModelQueueBacklog|ModelAtMaxReplicas"'],
            "equal": ["namespace"],
        },
        {
            "source_matchers": ['alertname="NodeNotReady"'],
            "target_matchers": ['alertname=~"Gpu.*"'],
            "equal": ["node"],
        },
        {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["alertname", "namespace"]},
    ]
