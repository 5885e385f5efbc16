"""Requests and memory limits of the platform's own containers, in two sizes: `small` (dev: one system node)
and `standard` (staging and prod). Every container of every chart the platform installs gets one (the chart
values key each goes to is in the component that installs it), because a pod without requests is evicted
first under pressure, and an evicted device plugin stops its node advertising GPUs.

CPU is requested, never limited by the platform (a CPU limit throttles a controller at the moment it is
busiest; Helm merges these maps into the charts' defaults, so KEDA's and dcgm-exporter's own CPU limits stay);
memory is requested and limited. Figures start from each chart's own defaults where it has them (metrics-server 100m /
200Mi, KEDA 100m / 100Mi, dcgm-exporter 100m / 128Mi, aws-for-fluent-bit 50m / 50Mi, Karpenter's documented
controller size) and from the components' usage at a few hundred pods elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

SMALL = "small"
STANDARD = "standard"


@dataclass(frozen=True)
class Resources:
    """One container's CPU request, memory request and memory limit (Kubernetes quantities)."""

    cpu: str
    memory: str
    memory_limit: str

    def spec(self) -> dict:
        """As a container's `resources`."""
        return {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": {"memory": self.memory_limit}}


def _sizes(small: Resources, standard: Resources) -> dict[str, Resources]:
    return {SMALL: small, STANDARD: standard}


R = Resources
PLATFORM: dict[str, dict[str, Resources]] = {
    "karpenter": _sizes(R("200m", "512Mi", "1Gi"), R("500m", "512Mi", "1Gi")),
    "keda-operator": _sizes(R("50m", "128Mi", "512Mi"), R("100m", "128Mi", "1000Mi")),
    "keda-metrics-apiserver": _sizes(R("50m", "100Mi", "512Mi"), R("100m", "128Mi", "1000Mi")),
    "keda-webhooks": _sizes(R("20m", "64Mi", "256Mi"), R("50m", "100Mi", "512Mi")),
    "aws-load-balancer-controller": _sizes(R("50m", "128Mi", "256Mi"), R("100m", "256Mi", "512Mi")),
    "metrics-server": _sizes(R("50m", "96Mi", "192Mi"), R("100m", "200Mi", "400Mi")),
    "fluent-bit": _sizes(R("50m", "64Mi", "250Mi"), R("100m", "128Mi", "512Mi")),
    "nvidia-device-plugin": _sizes(R("20m", "64Mi", "128Mi"), R("20m", "64Mi", "128Mi")),
    # The plugin's init and sidecar containers, which the chart gives no resources key (a LimitRange sets them).
    "nvidia-device-plugin-helpers": _sizes(R("10m", "32Mi", "64Mi"), R("10m", "32Mi", "64Mi")),
    "dcgm-exporter": _sizes(R("50m", "128Mi", "512Mi"), R("100m", "256Mi", "512Mi")),
    "prometheus-operator": _sizes(R("50m", "128Mi", "256Mi"), R("100m", "256Mi", "512Mi")),
    "prometheus-config-reloader": _sizes(R("10m", "32Mi", "64Mi"), R("10m", "32Mi", "64Mi")),
    "prometheus-admission-jobs": _sizes(R("10m", "32Mi", "64Mi"), R("10m", "32Mi", "64Mi")),
    "alertmanager": _sizes(R("20m", "64Mi", "128Mi"), R("50m", "128Mi", "256Mi")),
    "grafana": _sizes(R("50m", "192Mi", "384Mi"), R("100m", "256Mi", "512Mi")),
    "grafana-sidecar": _sizes(R("10m", "64Mi", "128Mi"), R("10m", "64Mi", "128Mi")),
    "kube-state-metrics": _sizes(R("20m", "64Mi", "128Mi"), R("50m", "128Mi", "256Mi")),
    "node-exporter": _sizes(R("20m", "32Mi", "64Mi"), R("50m", "48Mi", "96Mi")),
    "pushgateway": _sizes(R("10m", "32Mi", "64Mi"), R("20m", "64Mi", "128Mi")),
}
# Prometheus' CPU; its memory is the stack's `monitoring.prometheusMemory`.
PROMETHEUS_CPU = {SMALL: "250m", STANDARD: "500m"}


def sized(size: str) -> dict[str, dict]:
    """Every platform container's `resources` for a size (`small` or `standard`); KeyError for another."""
    return {name: sizes[size].spec() for name, sizes in PLATFORM.items()}
