"""GpuSupport: the NVIDIA device plugin (so GPU nodes advertise nvidia.com/gpu), GPU sharing configs
selected per pool, and the DCGM exporter for GPU metrics. Both run only on GPU nodes and tolerate the
GPU taint; AL2023 NVIDIA AMIs ship the driver but no device plugin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import yaml

from ml_platform.components.helm import Chart, release
from ml_platform.components.options import inherited_depends_on
from ml_platform.components.resources import STANDARD, sized
from ml_platform.components.scheduling import GPU_PRESENT_LABEL, GPU_TAINT

TYPE = "mlplatform:k8s:GpuSupport"

NAMESPACE = "nvidia"
DEFAULT_CONFIG = "default"

# Where both DaemonSets run: GPU nodes only (labelled by the platform and by AL2023's nodeadm), tainted or not.
GPU_NODE_SELECTOR = {GPU_PRESENT_LABEL: "true"}
GPU_TOLERATIONS = [
    {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]},
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
]


def sharing_config(time_slicing_replicas: int | None = None, mig_strategy: str | None = None) -> dict:
    """One device-plugin config file (`version: v1`): plain, time-sliced, or MIG."""
    config: dict = {"version": "v1", "flags": {"migStrategy": mig_strategy or "none"}}
    if time_slicing_replicas is not None:
        config["sharing"] = {
            "timeSlicing": {
                "renameByDefault": False,
                # A pod asking for 2 slices would not get 2 GPUs' worth: refuse rather than mislead.
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": time_slicing_replicas}],
            }
        }
    return config


def device_plugin_values(configs: Mapping[str, dict], resources: Mapping[str, dict] | None = None) -> dict:
    """Device-plugin chart values: GPU nodes only, tolerating the GPU taint (the NFD worker too, in case
    GPU feature discovery is switched on: k8s-device-plugin #1934), and the named sharing configs that
    nodes pick through the `nvidia.com/device-plugin.config` label."""
    return {
        "nodeSelector": GPU_NODE_SELECTOR,
        "tolerations": GPU_TOLERATIONS,
        "gfd": {"enabled": False},
        # The plugin's own container (and the MPS daemon's); its init and sidecar containers have no values key
        # and take the namespace's LimitRange defaults (limit_range).
        "resources": (resources or sized(STANDARD))["nvidia-device-plugin"],
        "nfd": {"worker": {"tolerations": GPU_TOLERATIONS}},
        "config": {
            "map": {name: _yaml(config) for name, config in sorted({DEFAULT_CONFIG: sharing_config(), **configs}.items())},
            "default": DEFAULT_CONFIG,
        },
    }


def dcgm_exporter_values(service_monitor: bool, resources: Mapping[str, dict] | None = None) -> dict:
    """DCGM exporter chart values: GPU nodes only (its defaults tolerate no GPU taint and select every node)."""
    return {
        "nodeSelector": GPU_NODE_SELECTOR,
        "tolerations": GPU_TOLERATIONS,
        "resources": (resources or sized(STANDARD))["dcgm-exporter"],
        # The chart renders a ServiceMonitor by default, whose CRD exists only with the monitoring stack.
        # The exporter labels each GPU's series with the pod and namespace using it; drop the scrape target's own
        # pod/namespace labels, or Prometheus would overwrite those with the exporter's (honorLabels is false).
        "serviceMonitor": {
            "enabled": service_monitor,
            "interval": "15s",
            "relabelings": [{"action": "labeldrop", "regex": "pod|namespace|container"}],
        },
    }


def limit_range(resources: Mapping[str, dict] | None = None) -> dict:
    """Defaults for containers in the GPU namespace that set no resources: the device plugin chart's init and
    sidecar containers have no values key for them (nvidia-device-plugin 0.20.0 templates/daemonset-device-plugin.yml),
    and an evicted device plugin takes its node's GPUs away."""
    spec = (resources or sized(STANDARD))["nvidia-device-plugin-helpers"]
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "container-defaults", "namespace": NAMESPACE},
        "spec": {"limits": [{"type": "Container", "defaultRequest": dict(spec["requests"]), "default": dict(spec["limits"])}]},
    }


def _yaml(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=True)


@dataclass
class GpuSupportArgs:
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    device_plugin_chart: Chart
    """Pinned NVIDIA device plugin chart."""
    dcgm_exporter_chart: Chart
    """Pinned DCGM exporter chart."""
    sharing_configs: Mapping[str, dict] = field(default_factory=dict)
    """Device-plugin configs by name (one per pool that shares GPUs)."""
    service_monitor: bool = False
    """Render the DCGM exporter's ServiceMonitor (needs the Prometheus operator's CRDs)."""
    resources: Mapping[str, dict] = field(default_factory=lambda: sized(STANDARD))
    """Platform container resources by name (components.resources); this component uses `nvidia-device-plugin`,
    `nvidia-device-plugin-helpers` and `dcgm-exporter`."""


class GpuSupport(pulumi.ComponentResource):
    """The NVIDIA device plugin (so GPU nodes advertise nvidia.com/gpu), GPU sharing configs selected per pool, and
    the DCGM exporter for GPU metrics. Both run only on GPU nodes and tolerate the GPU taint; AL2023 NVIDIA AMIs
    ship the driver but no device plugin.

    Arguments: GpuSupportArgs, documented field by field."""

    def __init__(self, name: str, args: GpuSupportArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": NAMESPACE, "labels": {"ml-platform/component": "gpu"}},
            opts=pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider),
        )
        in_namespace = pulumi.ResourceOptions(
            parent=self,
            provider=args.kubernetes_provider,
            # A component's depends_on does not reach its children.
            depends_on=[namespace, *inherited_depends_on(opts)],
        )
        defaults = limit_range(args.resources)
        # Before the pods, which get the defaults only when they are admitted.
        limits = k8s.core.v1.LimitRange(
            f"{name}-limit-range",
            metadata=defaults["metadata"],
            spec=defaults["spec"],
            opts=pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider, depends_on=[namespace]),
        )
        in_namespace = pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(depends_on=[limits]))
        for release_name, chart, values in (
            ("nvidia-device-plugin", args.device_plugin_chart, device_plugin_values(args.sharing_configs, args.resources)),
            ("dcgm-exporter", args.dcgm_exporter_chart, dcgm_exporter_values(args.service_monitor, args.resources)),
        ):
            release(f"{name}-{release_name}", chart, release_name, NAMESPACE, values, in_namespace)
        self.register_outputs({})
