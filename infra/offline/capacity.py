"""Capacity: the platform's own pods fit the managed pools they must run on, at the pools' minimum size.

For each managed node group of the plan: the DaemonSets that run on every node (and the GPU ones on GPU
nodes), plus every platform pod that must run there (pinned to the pool with `ml-platform/pool`, or
pinned nowhere and so, at minimum size, on the system pool: CoreDNS, the EBS CSI controller), packed
first-fit-decreasing onto `minSize` nodes of the pool's smallest instance type, each with its allocatable
capacity, with room left for one more replica of the largest pod whose rolling update starts the new pod
before stopping the old (Deployments' default maxSurge). Pods that spread one per node (Karpenter's
controller) need as many nodes as replicas. Requests
are read from the plan's chart values through `WORKLOADS` (which container reads which values key: checked
by rendering each pinned chart with `helm template`, 2026-11-29) and, for the EKS add-ons, from
`ADDON_PODS` (their published defaults).

Allocatable, as AL2023's nodeadm sets it (awslabs/amazon-eks-ami nodeadm/internal/kubelet/config.go) and
Karpenter 1.14.1 estimates it (pkg/providers/instancetype/types.go): capacity (memory: the instance's less a
7.5% VM overhead, Karpenter's first estimate) less kube-reserved (CPU: 6% of the first core, 1% of the
second, 0.5% of the third and fourth, 0.25% of each further one; memory: 11 MiB per pod the ENIs allow plus
255 MiB) less the 100Mi `memory.available` eviction threshold. Anything this module cannot size is a
problem, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_platform.components import quantity
from ml_platform.components.scheduling import GPU_PRESENT_LABEL, POOL_LABEL

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SYSTEM_POOL = "system"
VM_MEMORY_OVERHEAD = 0.075
EVICTION_MEMORY_MI = 100
# Memory per vCPU of the families the platform runs managed pools on (EC2 instance type pages).
GIB_PER_VCPU = {"m": 4, "c": 2, "r": 8, "g4dn": 4, "g5": 4, "g6": 4, "g6e": 8}
VCPUS = {"medium": 1, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48, "16xlarge": 64}
VCPUS |= {"24xlarge": 96, "32xlarge": 128, "48xlarge": 192}
# Pods the ENIs of a Nitro size allow (ENIs x (IPv4 per ENI - 1) + 2; nodeadm's instance-info.jsonl): what
# kube-reserved memory is computed from.
ENI_MAX_PODS = {"medium": 8, "large": 29, "xlarge": 58, "2xlarge": 58, "4xlarge": 234, "8xlarge": 234, "12xlarge": 234}
ENI_MAX_PODS |= {"16xlarge": 737, "24xlarge": 737, "32xlarge": 737, "48xlarge": 737}


@dataclass(frozen=True)
class Workload:
    """A chart's pod: where its requests, replicas and node selector are in the chart's values."""

    name: str
    containers: tuple[str, ...]
    """Values paths of the containers' `resources` that run together; a path may repeat (one key, two containers)."""
    init: tuple[str, ...] = ()
    """Values paths of its init containers' `resources`."""
    replicas: tuple[str, int] | int = 1
    """A values path and the chart's default, or a fixed count."""
    node_selector: str | None = "nodeSelector"
    """Values path of its nodeSelector; None for a DaemonSet on every node."""
    daemonset: bool = False
    one_per_node: bool = False
    surge: bool = True
    """Its rolling update starts a new pod before the old one stops (a Deployment with maxSurge)."""
    enabled: str | None = None
    """A values path that must not be false for the pod to exist."""


@dataclass(frozen=True)
class Pod:
    name: str
    cpu_m: int
    memory_mi: int
    pool: str | None = None
    """The pool it is pinned to; None: any untainted node."""
    daemonset: bool = False
    gpu_only: bool = False
    replicas: int = 1
    one_per_node: bool = False
    surge: bool = False


# chart -> its pods (kube-prometheus-stack with its subcharts). The charts' own CPU limits are not counted.
WORKLOADS: dict[str, tuple[Workload, ...]] = {
    "metrics-server": (Workload("metrics-server", ("resources",), replicas=("replicas", 1)),),
    "keda": (
        Workload("keda-operator", ("resources.operator",), replicas=("operator.replicaCount", 1)),
        Workload("keda-metrics-apiserver", ("resources.metricServer",), replicas=("metricsServer.replicaCount", 1)),
        Workload("keda-admission-webhooks", ("resources.webhooks",), replicas=("webhooks.replicaCount", 1)),
    ),
    "aws-load-balancer-controller": (Workload("aws-load-balancer-controller", ("resources",), replicas=("replicaCount", 2)),),
    # The chart requires one replica per node (podAntiAffinity on kubernetes.io/hostname) and rolls with
    # maxUnavailable 1, no surge.
    "karpenter": (Workload("karpenter", ("controller.resources",), replicas=("replicas", 2), one_per_node=True, surge=False),),
    "aws-for-fluent-bit": (Workload("fluent-bit", ("resources",), node_selector=None, daemonset=True),),
    # A Deployment with the Recreate strategy (its volume is ReadWriteOnce): no surge.
    "prometheus-pushgateway": (Workload("pushgateway", ("resources",), replicas=("replicaCount", 1), surge=False),),
    "nvidia-device-plugin": (Workload("nvidia-device-plugin", ("resources", "@helpers", "@helpers"), daemonset=True),),
    "dcgm-exporter": (Workload("dcgm-exporter", ("resources",), daemonset=True),),
    "kube-prometheus-stack": (
        Workload("prometheus-operator", ("prometheusOperator.resources",), node_selector="prometheusOperator.nodeSelector"),
        Workload(
            "prometheus",
            ("prometheus.prometheusSpec.resources", "prometheusOperator.prometheusConfigReloader.resources"),
            init=("prometheusOperator.prometheusConfigReloader.resources",),
            replicas=("prometheus.prometheusSpec.replicas", 1),
            node_selector="prometheus.prometheusSpec.nodeSelector",
            surge=False,  # a StatefulSet replaces its pod in place
        ),
        Workload(
            "alertmanager",
            ("alertmanager.alertmanagerSpec.resources", "prometheusOperator.prometheusConfigReloader.resources"),
            init=("prometheusOperator.prometheusConfigReloader.resources",),
            replicas=("alertmanager.alertmanagerSpec.replicas", 1),
            node_selector="alertmanager.alertmanagerSpec.nodeSelector",
            enabled="alertmanager.enabled",
            surge=False,
        ),
        Workload(
            "grafana",
            ("grafana.resources", "grafana.sidecar.resources", "grafana.sidecar.resources"),
            node_selector="grafana.nodeSelector",
            enabled="grafana.enabled",
        ),
        Workload("kube-state-metrics", ("kube-state-metrics.resources",), node_selector="kube-state-metrics.nodeSelector"),
        Workload("node-exporter", ("prometheus-node-exporter.resources",), node_selector=None, daemonset=True),
        # Hook Jobs at every install and upgrade, while everything else runs.
        Workload(
            "prometheus-admission-job",
            ("prometheusOperator.admissionWebhooks.patch.resources",),
            node_selector="prometheusOperator.admissionWebhooks.patch.nodeSelector",
            surge=False,
        ),
    ),
}

# Charts that run no pods of their own (CRDs only).
CHARTS_WITHOUT_PODS = ("prometheus-operator-crds", "karpenter-crd")

# EKS add-ons' pods and their published default requests. Sources: vpc-cni chart v1.22.4 values.yaml (25m
# each for aws-node and the network policy agent); aws-ebs-csi-driver chart values (controller 2 x 60m/232Mi
# with its sidecars, node 30m/104Mi); CoreDNS's deployment (100m/70Mi, 2 replicas; aws/containers-roadmap#2667);
# kube-proxy 100m; eks-pod-identity-agent none.
ADDON_PODS: dict[str, tuple[Pod, ...]] = {
    "vpc-cni": (Pod("aws-node", 50, 0, daemonset=True),),
    "kube-proxy": (Pod("kube-proxy", 100, 0, daemonset=True),),
    "eks-pod-identity-agent": (Pod("eks-pod-identity-agent", 0, 0, daemonset=True),),
    "coredns": (Pod("coredns", 100, 70, replicas=2, surge=True),),
    "aws-ebs-csi-driver": (Pod("ebs-csi-controller", 60, 232, replicas=2, surge=True), Pod("ebs-csi-node", 30, 104, daemonset=True)),
}


@dataclass
class PoolCapacity:
    """What one managed pool offers and what the platform asks of it at minimum size."""

    pool: str
    instance_type: str
    nodes: int
    cpu_m: int = 0
    memory_mi: int = 0
    pods: int = 0
    """Pods one node runs."""
    requested_cpu_m: int = 0
    requested_memory_mi: int = 0
    requested_pods: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        if not self.nodes:
            return f"{self.pool}: no node at minimum size"
        if not self.cpu_m:
            return f"{self.pool}: {self.nodes} x {self.instance_type}: capacity unknown"
        total_cpu, total_memory = self.cpu_m * self.nodes, self.memory_mi * self.nodes
        return (
            f"{self.pool}: {self.nodes} x {self.instance_type}: CPU {self.requested_cpu_m}m of {total_cpu}m "
            f"({self.requested_cpu_m / total_cpu:.0%}), memory {self.requested_memory_mi}Mi of {total_memory}Mi "
            f"({self.requested_memory_mi / total_memory:.0%}), pods {self.requested_pods} of {self.pods * self.nodes}"
        )


def _get(values: Mapping[str, Any], path: str, default: Any = None) -> Any:
    current: Any = values
    for key in path.split("."):
        if not isinstance(current, Mapping) or key not in current:
            return default
        current = current[key]
    return current


def _requests(spec: Any) -> tuple[int, int] | None:
    requests = (spec or {}).get("requests") if isinstance(spec, Mapping) else None
    if not requests or "cpu" not in requests or "memory" not in requests:
        return None
    return int(quantity.parse(str(requests["cpu"])) * 1000), quantity.mebibytes(str(requests["memory"]))


def _sized(instance_type: str) -> tuple[int, str] | None:
    """(GiB per vCPU, size) of a type this module can size: the GPU families above and the Nitro general,
    compute and memory families (m, c, r of generation 5 or later, whose sizes share one ENI table)."""
    family, _, size = instance_type.partition(".")
    general = family[0] in "mcr" and family[1:2].isdigit() and int(family[1]) >= 5
    per_vcpu = GIB_PER_VCPU.get(family) or (GIB_PER_VCPU[family[0]] if general else None)
    if per_vcpu is None or size not in VCPUS or size not in ENI_MAX_PODS:
        return None
    return per_vcpu, size


def vcpus_and_gib(instance_type: str) -> tuple[int, float] | None:
    """(vCPUs, memory in GiB) of a type this module can size (_sized), else None."""
    sized = _sized(instance_type)
    if sized is None:
        return None
    per_vcpu, size = sized
    return VCPUS[size], float(VCPUS[size] * per_vcpu)


def max_pods(instance_type: str) -> int | None:
    """Pods a managed node group's node of the type runs: its ENIs' addresses, capped by EKS at 110 below 30
    vCPUs and 250 above (EKS user guide, "Choosing an instance type", How maxPods is determined)."""
    sized = _sized(instance_type)
    if sized is None:
        return None
    size = sized[1]
    return min(ENI_MAX_PODS[size], 110 if VCPUS[size] < 30 else 250)


def allocatable(instance_type: str) -> tuple[int, int] | None:
    """(CPU in millicores, memory in MiB) a node of the type offers pods; None when the type is not sized here."""
    sized = _sized(instance_type)
    if sized is None:
        return None
    per_vcpu, size = sized
    vcpus = VCPUS[size]
    tiers = [(1, 60), (1, 10), (2, 5), (max(vcpus - 4, 0), 2.5)]
    reserved_cpu, left = 0.0, vcpus
    for cores, millicores in tiers:
        used = min(cores, left)
        reserved_cpu += used * millicores
        left -= used
    memory = vcpus * per_vcpu * 1024 * (1 - VM_MEMORY_OVERHEAD)
    reserved_memory = 11 * ENI_MAX_PODS[size] + 255 + EVICTION_MEMORY_MI
    return vcpus * 1000 - math.ceil(reserved_cpu), int(memory - reserved_memory)


def node_overhead(size: str, gpu: bool) -> tuple[int, int]:
    """(CPU in millicores, memory in MiB) the DaemonSets take on every node of a pool, from the platform's sizes
    (components/resources.py) and the EKS add-ons' defaults: what a model's pod cannot have."""
    from ml_platform.components.resources import PLATFORM  # the sizes table, not a chart's values

    names = ["fluent-bit", "node-exporter"] + (["nvidia-device-plugin", "dcgm-exporter"] if gpu else [])
    cpu = sum(int(quantity.parse(PLATFORM[n][size].cpu) * 1000) for n in names)
    memory = sum(quantity.mebibytes(PLATFORM[n][size].memory) for n in names)
    if gpu:  # the device plugin's init and sidecar, through the LimitRange
        helper = PLATFORM["nvidia-device-plugin-helpers"][size]
        cpu, memory = cpu + int(quantity.parse(helper.cpu) * 1000), memory + quantity.mebibytes(helper.memory)
    addons = [pod for pods in ADDON_PODS.values() for pod in pods if pod.daemonset]
    return cpu + sum(p.cpu_m for p in addons), memory + sum(p.memory_mi for p in addons)


def _pinned_deployment(inputs: Mapping[str, Any], problems: list[str]) -> list[Pod]:
    """A Deployment the program declares itself (not from a chart) that is pinned to a pool by its nodeSelector,
    e.g. the self-hosted registry's server on the system pool: its containers plus native sidecars (init
    containers with restartPolicy Always, which run beside them). Model servers have their own contract."""
    template = (inputs.get("spec") or {}).get("template") or {}
    pod = template.get("spec") or {}
    pool = (pod.get("nodeSelector") or {}).get(POOL_LABEL)
    if pool is None or ((template.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component") == "model-server":
        return []
    name = (inputs.get("metadata") or {}).get("name", "?")
    running = [*pod.get("containers", []), *(c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always")]
    sizes = [_requests(c.get("resources")) for c in running]
    if None in sizes:
        problems.append(f"{name}: a container has no CPU and memory requests")
        return []
    strategy = (inputs["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    return [
        Pod(
            name,
            sum(c for c, _ in sizes),
            sum(m for _, m in sizes),
            pool=pool,
            replicas=int(inputs["spec"].get("replicas", 1)),
            surge=bool(strategy.get("maxSurge", 1)),
        )
    ]


def platform_pods(resources: Iterable[Mapping[str, Any]]) -> tuple[list[Pod], list[str]]:
    """The platform's pods from the plan's releases and add-ons, with what could not be read."""
    pods: list[Pod] = []
    problems: list[str] = []
    helpers = None
    for resource in resources:
        if resource["type"] == "kubernetes:core/v1:LimitRange":
            for limit in resource["inputs"]["spec"]["limits"]:
                helpers = {"requests": limit.get("defaultRequest", {})}
    for resource in resources:
        inputs = resource["inputs"]
        if resource["type"] == "aws:eks/addon:Addon":
            pods += ADDON_PODS.get(inputs["addonName"], ())
            continue
        if resource["type"] == DEPLOYMENT:
            pods += _pinned_deployment(inputs, problems)
            continue
        if resource["type"] != HELM_RELEASE:
            continue
        chart = str(inputs["chart"]).rsplit("/", 1)[-1]
        values = inputs.get("values") or {}
        if chart not in WORKLOADS and chart not in CHARTS_WITHOUT_PODS:
            # A chart whose pods this module does not know would pass unsized: say so instead.
            problems.append(f"{resource['name']} ({chart}): its pods are not in capacity.WORKLOADS, so they cannot be sized")
            continue
        for workload in WORKLOADS.get(chart, ()):
            if workload.enabled and _get(values, workload.enabled) is False:
                continue
            specs = [helpers if path == "@helpers" else _get(values, path) for path in workload.containers]
            main = [_requests(spec) for spec in specs]
            init = [_requests(_get(values, path)) for path in workload.init]
            if None in main or None in init:
                problems.append(f"{workload.name} ({chart}): a container has no CPU and memory requests in the chart values")
                continue
            cpu = max(sum(c for c, _ in main), *(c for c, _ in init), 0)
            memory = max(sum(m for _, m in main), *(m for _, m in init), 0)
            selector = _get(values, workload.node_selector, {}) if workload.node_selector else {}
            replicas = workload.replicas if isinstance(workload.replicas, int) else int(_get(values, *workload.replicas))
            pods.append(
                Pod(
                    workload.name,
                    cpu,
                    memory,
                    pool=selector.get(POOL_LABEL),
                    daemonset=workload.daemonset,
                    gpu_only=selector.get(GPU_PRESENT_LABEL) == "true",
                    replicas=replicas,
                    one_per_node=workload.one_per_node,
                    surge=workload.surge and not workload.daemonset,
                )
            )
    return pods, problems


def check(resources: Iterable[Mapping[str, Any]]) -> tuple[list[PoolCapacity], list[str]]:
    """Every managed pool's capacity at minimum size against the platform pods that must run there; the
    problems name the pool and what does not fit."""
    resources = list(resources)
    pods, problems = platform_pods(resources)
    results = []
    for group in sorted((r for r in resources if r["type"] == "aws:eks/nodeGroup:NodeGroup"), key=lambda r: r["name"]):
        inputs = group["inputs"]
        pool = (inputs.get("labels") or {}).get(POOL_LABEL, group["name"])
        gpu = (inputs.get("labels") or {}).get(GPU_PRESENT_LABEL) == "true"
        nodes = int(inputs["scalingConfig"]["minSize"])
        sizes = {t: allocatable(t) for t in inputs["instanceTypes"]}
        smallest = min(sizes, key=lambda t: sizes[t] or (0, 0))
        result = PoolCapacity(pool, smallest, nodes)
        results.append(result)
        if nodes == 0:
            continue  # nothing runs there at minimum size
        if sizes[smallest] is None:
            result.problems.append(f"nodePools.{pool}: cannot tell what a {smallest} node offers; size it in infra/offline/capacity.py")
            continue
        result.cpu_m, result.memory_mi = sizes[smallest]
        result.pods = max_pods(smallest) or 0
        here = [p for p in pods if (p.daemonset and (not p.gpu_only or gpu)) or (not p.daemonset and _runs_on(p, pool))]
        result.problems += _pack(result, [p for p in here if p.daemonset], [p for p in here if not p.daemonset])
    return results, problems + [p for r in results for p in r.problems]


def _runs_on(pod: Pod, pool: str) -> bool:
    """Pinned pods run on their pool; unpinned ones, at minimum size, on the system pool (the only untainted
    capacity that always exists)."""
    return pod.pool == pool or (pod.pool is None and pool == SYSTEM_POOL)


def _pack(result: PoolCapacity, per_node: list[Pod], pods: list[Pod]) -> list[str]:
    """Place the pods first-fit-decreasing on the pool's nodes beside the DaemonSets; what does not fit."""
    nodes, where = result.nodes, f"nodePools.{result.pool}"
    daemon_cpu, daemon_memory = sum(p.cpu_m for p in per_node), sum(p.memory_mi for p in per_node)
    placed = [p for p in pods for _ in range(p.replicas)]
    surging = max((p for p in placed if p.surge), key=lambda p: (p.memory_mi, p.cpu_m), default=None)
    if surging is not None:
        placed.append(Pod(f"a rolling update of {surging.name}", surging.cpu_m, surging.memory_mi))
    result.requested_cpu_m = daemon_cpu * nodes + sum(p.cpu_m for p in placed)
    result.requested_memory_mi = daemon_memory * nodes + sum(p.memory_mi for p in placed)
    result.requested_pods = len(per_node) * nodes + len(placed)
    problems = [
        f"{where}.minSize: {p.name} runs {p.replicas} replicas one per node, on {nodes} node(s)"
        for p in {p.name: p for p in pods if p.one_per_node}.values()
        if p.replicas > nodes
    ]
    if daemon_cpu > result.cpu_m or daemon_memory > result.memory_mi:
        return [*problems, f"{where}: the DaemonSets alone ({daemon_cpu}m, {daemon_memory}Mi) do not fit a {result.instance_type} node"]
    # Every pod also takes one of the node's pod slots (its ENIs' addresses): DaemonSets one on each node.
    free = [[result.cpu_m - daemon_cpu, result.memory_mi - daemon_memory, result.pods - len(per_node)] for _ in range(nodes)]
    for pod in sorted(placed, key=lambda p: (p.memory_mi, p.cpu_m), reverse=True):
        node = next((n for n in free if n[0] >= pod.cpu_m and n[1] >= pod.memory_mi and n[2] >= 1), None)
        if node is None:
            problems.append(
                f"{where}: the platform's pods do not fit {nodes} x {result.instance_type} at minSize (they request "
                f"{result.requested_cpu_m}m CPU, {result.requested_memory_mi}Mi and {result.requested_pods} pods, "
                f"room for a rolling update included; each node offers {result.cpu_m}m, {result.memory_mi}Mi and "
                f"{result.pods} pods after kube-reserved and eviction; no room left for {pod.name}): raise minSize, use a "
                "larger instance type, or size the platform down"
            )
            break
        node[0] -= pod.cpu_m
        node[1] -= pod.memory_mi
        node[2] -= 1
    return problems
