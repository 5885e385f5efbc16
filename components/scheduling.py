"""The scheduling contract: which node pools can run a workload, and proof that every GPU pool has a
device plugin that will run on it. Pure functions over plain data, with Kubernetes' own matching rules.

Why it exists: GPU pods stay Pending when their tolerations and selectors miss a pool's taints and labels,
and a device plugin whose tolerations miss the GPU taint sits at 0 pods, so the node never advertises
`nvidia.com/gpu` (ai-on-eks #112, k8s-device-plugin #1934). The platform checks both before deploying.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
POOL_LABEL = "ml-platform/pool"
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
# How a GPU pool shares its GPUs: `none`, `time-slicing` or `mig`. Pods that need more than one GPU
# select `none`: a time-sliced node refuses them, and MIG slices are no use for tensor parallelism.
GPU_SHARING_LABEL = "ml-platform/gpu-sharing"
# Effects that keep a pod off a node; PreferNoSchedule only discourages.
_REPELLING = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Pool:
    """What a node pool offers a pod: its nodes' labels and taints, and GPUs per node."""

    name: str
    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, str]]
    gpus_per_node: int = 0
    """Schedulable `nvidia.com/gpu` per node (physical GPUs, times the replicas under time-slicing)."""
    gpu: bool = False
    """Whether the nodes have NVIDIA GPUs (also MIG `mixed` pools, which advertise no nvidia.com/gpu)."""

    @property
    def max_gpus_per_pod(self) -> int:
        """Shared GPUs serve one `nvidia.com/gpu` per pod; whole GPUs up to a node's worth."""
        return self.gpus_per_node if self.labels.get(GPU_SHARING_LABEL, "none") == "none" else min(1, self.gpus_per_node)


@dataclass(frozen=True)
class Workload:
    """What a pod asks for: GPUs, where it may go, and which taints it tolerates."""

    gpus: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, str]] = ()
    excluded_pools: Sequence[str] = ()
    """Pools it keeps off (a required node affinity `ml-platform/pool NotIn [...]`)."""


def node_labels(pool: str, gpu: bool, sharing: str | None, extra: Mapping[str, str]) -> dict[str, str]:
    """Labels every node of a pool carries: its pool name; on GPU pools, GPU presence, the sharing mode,
    and for sharing pools the device-plugin config they select (named after the pool); then the extras."""
    labels = {POOL_LABEL: pool}
    if gpu:
        labels[GPU_PRESENT_LABEL] = "true"
        labels[GPU_SHARING_LABEL] = sharing or "none"
        if sharing is not None:
            labels[DEVICE_PLUGIN_CONFIG_LABEL] = pool
    return {**labels, **extra}


def node_taints(gpu: bool, extra: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Taints in Kubernetes spelling: GPU pools repel every pod that does not tolerate nvidia.com/gpu."""
    return ([dict(GPU_TAINT)] if gpu else []) + [dict(taint) for taint in extra]


def tolerates(tolerations: Sequence[Mapping[str, str]], taint: Mapping[str, str]) -> bool:
    """Kubernetes' rule: some toleration matches the taint's key (or is a key-less Exists), its effect (or
    has none), and its value (Equal, the default operator) or any value (Exists)."""
    for toleration in tolerations:
        operator = toleration.get("operator", "Equal")
        key = toleration.get("key", "")
        if toleration.get("effect") and toleration["effect"] != taint["effect"]:
            continue
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint["key"]:
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def admits(pool: Pool, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, str]]) -> bool:
    """Whether a pod with this selector and these tolerations may land on the pool's nodes."""
    if any(pool.labels.get(key) != value for key, value in node_selector.items()):
        return False
    return all(tolerates(tolerations, taint) for taint in pool.taints if taint["effect"] in _REPELLING)


def pools_for(workload: Workload, pools: Sequence[Pool]) -> list[str]:
    """Names of the pools that can run the workload: it may land there and one pod there may have the GPUs it asks for."""
    return [
        pool.name
        for pool in pools
        if pool.name not in workload.excluded_pools
        and admits(pool, workload.node_selector, workload.tolerations)
        and pool.max_gpus_per_pod >= workload.gpus
    ]


def node_affinity(excluded_pools: Sequence[str]) -> dict:
    """A pod's affinity keeping it off the named pools (empty when none)."""
    if not excluded_pools:
        return {}
    term = {"matchExpressions": [{"key": POOL_LABEL, "operator": "NotIn", "values": sorted(excluded_pools)}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def gpu_placement(
    gpus: int, pools: Sequence[Pool], excluded_pools: Sequence[str] = ()
) -> tuple[dict[str, str], list[dict[str, str]], list[str]]:
    """The node selector and tolerations a workload asking for `gpus` GPUs should carry, and the pools that
    can then take it (never one of `excluded_pools`). GPU workloads tolerate the GPU taint and select GPU
    nodes; CPU workloads neither."""
    if gpus == 0:
        return {}, [], pools_for(Workload(excluded_pools=excluded_pools), pools)
    selector = {GPU_PRESENT_LABEL: "true"}
    if gpus > 1:
        selector[GPU_SHARING_LABEL] = "none"
    tolerations = [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}]
    return selector, tolerations, pools_for(Workload(gpus, selector, tolerations, excluded_pools), pools)


def device_plugin_gaps(
    pools: Sequence[Pool], plugin_node_selector: Mapping[str, str], plugin_tolerations: Sequence[Mapping[str, str]]
) -> list[tuple[str, str]]:
    """Every GPU pool on which the device plugin would not run, as (pool, reason); empty when all are covered."""
    gaps = []
    for pool in pools:
        if not pool.gpu:
            continue
        missing = {k: v for k, v in plugin_node_selector.items() if pool.labels.get(k) != v}
        if missing:
            gaps.append((pool.name, f"the device plugin selects {missing}, which its nodes do not carry"))
        untolerated = [t for t in pool.taints if t["effect"] in _REPELLING and not tolerates(plugin_tolerations, t)]
        if untolerated:
            taints = ", ".join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in untolerated)
            gaps.append((pool.name, f"the device plugin does not tolerate {taints}; it would sit at 0 pods there"))
    return gaps
