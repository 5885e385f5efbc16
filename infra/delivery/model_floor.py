"""The nodes the models' minimum replicas need, for `cost`'s idle floor: read from plan.json alone, as the scheduler
and the autoscalers will read the objects.

- A model's pods: the Deployments labelled `app.kubernetes.io/component: model-server`; their minimum is the
  KEDA ScaledObject's `minReplicaCount` or the HPA's `minReplicas` that scales them (default 1; 0: scaled to
  zero, nothing idle), else the Deployment's `replicas`. A pod requests its containers' and native sidecars' sum,
  or its largest ordinary init container if that is more (Kubernetes' effective request), and `nvidia.com/gpu`.
- Where it may run: a pool whose nodes carry the pod's nodeSelector labels, satisfy its required node affinity
  (In, NotIn, Exists, DoesNotExist over the pool's labels) and whose taints it tolerates; a managed node group's
  listed types, or the priced types a Karpenter NodePool's requirements allow (cost.karpenter_types). A node
  offers its allocatable CPU and memory (infra/offline/capacity.py: kube-reserved, eviction, less the DaemonSets)
  and its GPUs times the pool's time-slicing replicas.
- Placement: each model on the cheapest node type (per node-hour, spot where the pool is spot-only) of any pool
  that fits one replica; then all replicas placed there are packed first-fit-decreasing, a managed pool's
  `minSize` nodes first (the floor already pays for them), new nodes after, within a managed pool's `maxSize`
  and a NodePool's cpu, memory and GPU limits.

What cannot be placed or sized is a problem line, never a silent zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_platform.components import instance_types, quantity
from ml_platform.components.scheduling import POOL_LABEL
from ml_platform.infra.delivery.prices import NoPrice, RegionPrices
from ml_platform.infra.offline import capacity

MODEL_COMPONENT = "model-server"
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class ModelPod:
    model: str
    replicas: int
    cpu_m: int
    memory_mi: int
    gpus: int
    node_selector: Mapping[str, str]
    terms: tuple[tuple[Mapping[str, Any], ...], ...]
    """Required node affinity: ORed terms of ANDed match expressions (empty: any node)."""
    tolerations: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class PoolShape:
    name: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]
    types: tuple[str, ...]
    spot: bool
    managed: bool
    min_nodes: int = 0
    max_nodes: int | None = None
    limits: Mapping[str, float] = field(default_factory=dict)
    """A NodePool's limits: cpu (cores), memory (MiB), gpu (physical GPUs)."""
    slices: int = 1
    disk_gib: int = 0
    """A managed node's root volume (gp3), from its launch template; Karpenter's are the EC2NodeClass's (not read)."""


@dataclass
class FloorNodes:
    """New nodes the models' minimum replicas need in one pool, of one type (beyond a managed pool's minSize)."""

    pool: str
    instance_type: str
    hourly: float
    disk_gib: int = 0
    nodes: int = 0
    models: dict[str, int] = field(default_factory=dict)
    on_minimum: dict[str, int] = field(default_factory=dict)
    """Replicas placed on the managed pool's minSize nodes (already in the floor)."""


def _requests(containers: Iterable[Mapping[str, Any]]) -> tuple[int, int, int]:
    cpu = memory = gpus = 0
    for container in containers:
        resources = container.get("resources") or {}
        requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        cpu += int(quantity.parse(str(requests.get("cpu", "0"))) * 1000)
        memory += quantity.mebibytes(str(requests["memory"])) if "memory" in requests else 0
        gpus += int(requests.get(GPU, 0))
    return cpu, memory, gpus


def model_pods(resources: list[Mapping[str, Any]]) -> list[ModelPod]:
    """The models' Deployments as pods with their minimum replicas (see the module's docstring)."""
    minimum: dict[tuple[str, str], int] = {}
    for r in resources:
        if r["type"] == "kubernetes:keda.sh/v1alpha1:ScaledObject":
            spec, meta = r["inputs"]["spec"], r["inputs"]["metadata"]
            minimum[(meta.get("namespace", ""), spec["scaleTargetRef"]["name"])] = int(spec.get("minReplicaCount", 0))
        elif r["type"] == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler":
            spec, meta = r["inputs"]["spec"], r["inputs"]["metadata"]
            minimum[(meta.get("namespace", ""), spec["scaleTargetRef"]["name"])] = int(spec.get("minReplicas", 1))
    found = []
    for r in resources:
        if r["type"] != capacity.DEPLOYMENT:
            continue
        meta = r["inputs"]["metadata"]
        if (meta.get("labels") or {}).get("app.kubernetes.io/component") != MODEL_COMPONENT:
            continue
        pod = r["inputs"]["spec"]["template"]["spec"]
        inits = pod.get("initContainers") or []
        sidecars = [c for c in inits if c.get("restartPolicy") == "Always"]
        ordinary = [c for c in inits if c.get("restartPolicy") != "Always"]
        cpu, memory, gpus = _requests([*pod["containers"], *sidecars])
        for init in ordinary:
            init_cpu, init_memory, _ = _requests([init])
            cpu, memory = max(cpu, init_cpu), max(memory, init_memory)
        required = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
        terms = tuple(tuple(term.get("matchExpressions") or []) for term in required.get("nodeSelectorTerms") or [])
        name = meta.get("namespace") or meta["name"]
        replicas = minimum.get((meta.get("namespace", ""), meta["name"]), int(r["inputs"]["spec"].get("replicas", 1)))
        found.append(ModelPod(name, replicas, cpu, memory, gpus, pod.get("nodeSelector") or {}, terms, tuple(pod.get("tolerations") or [])))
    return sorted(found, key=lambda p: p.model)


def _expression(labels: Mapping[str, str], expression: Mapping[str, Any]) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # Gt, Lt over pool labels: not used by the platform; judged as not matching


def _tolerated(taint: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists" and (not toleration.get("key") or toleration["key"] == taint["key"]):
            return True
        if toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def may_run(pod: ModelPod, pool: PoolShape) -> bool:
    """Whether the scheduler may place `pod` on a node of `pool`: labels, required affinity, taints."""
    if any(pool.labels.get(key) != value for key, value in pod.node_selector.items()):
        return False
    if pod.terms and not any(all(_expression(pool.labels, e) for e in term) for term in pod.terms):
        return False
    hard = [t for t in pool.taints if t.get("effect") in ("NoSchedule", "NoExecute")]
    return all(_tolerated(taint, pod.tolerations) for taint in hard)


def _offer(instance_type: str, pool: PoolShape, environment: str) -> tuple[int, int, int] | None:
    """(CPU m, memory Mi, GPU slots) one node of the type offers a model's pods, or None when not sized here."""
    offered = capacity.allocatable(instance_type)
    if offered is None:
        return None
    gpu = instance_types.gpu_info(instance_type)
    size = "small" if environment == "dev" else "standard"
    overhead = capacity.node_overhead(size, gpu is not None)
    return offered[0] - overhead[0], offered[1] - overhead[1], (gpu.count * pool.slices if gpu else 0)


def place(pods: list[ModelPod], pools: list[PoolShape], table: RegionPrices, environment: str) -> tuple[list[FloorNodes], list[str]]:
    """The new nodes each pool needs for the models' minimum replicas, and the problems (a model no pool can take,
    or whose pool's maximum or limits its replicas exceed)."""
    problems: list[str] = []
    chosen: dict[tuple[str, str], list[ModelPod]] = {}
    for pod in pods:
        if pod.replicas == 0:
            continue
        options = []
        for pool in pools:
            if not may_run(pod, pool):
                continue
            for instance_type in pool.types:
                offer = _offer(instance_type, pool, environment)
                if offer is None or offer[0] < pod.cpu_m or offer[1] < pod.memory_mi or offer[2] < pod.gpus:
                    continue
                if _limit_problems(pool, instance_type, 1):
                    continue  # Karpenter launches no node that alone would break the pool's limits
                try:
                    options.append((table.hourly(instance_type, pool.spot), pool.name, instance_type))
                except NoPrice:
                    continue
        if not options:
            problems.append(
                f"model {pod.model}: no priced node type of a pool it may run on fits one replica "
                f"({pod.cpu_m}m CPU, {pod.memory_mi}Mi, {pod.gpus} GPU); its {pod.replicas} minimum replica(s) are not in the floor"
            )
            continue
        _, pool_name, instance_type = min(options)
        chosen.setdefault((pool_name, instance_type), []).append(pod)

    results = []
    by_name = {pool.name: pool for pool in pools}
    for (pool_name, instance_type), placed in sorted(chosen.items()):
        pool = by_name[pool_name]
        cpu, memory, slots = _offer(instance_type, pool, environment)  # type: ignore[misc]
        result = FloorNodes(pool_name, instance_type, table.hourly(instance_type, pool.spot), pool.disk_gib)
        existing = pool.min_nodes if pool.managed else 0
        nodes = [[cpu, memory, slots, True] for _ in range(existing)]
        replicas = sorted(
            ((p, i) for p in placed for i in range(p.replicas)), key=lambda item: (item[0].gpus, item[0].memory_mi), reverse=True
        )
        for pod, _ in replicas:
            node = next((n for n in nodes if n[0] >= pod.cpu_m and n[1] >= pod.memory_mi and n[2] >= pod.gpus), None)
            if node is None:
                node = [cpu, memory, slots, False]
                nodes.append(node)
            node[0] -= pod.cpu_m
            node[1] -= pod.memory_mi
            node[2] -= pod.gpus
            target = result.on_minimum if node[3] else result.models
            target[pod.model] = target.get(pod.model, 0) + 1
        result.nodes = sum(1 for n in nodes if not n[3])
        problems += _limit_problems(pool, instance_type, result.nodes)
        results.append(result)
    return results, problems


def _limit_problems(pool: PoolShape, instance_type: str, nodes: int) -> list[str]:
    if pool.managed:
        if pool.max_nodes is not None and pool.min_nodes + nodes > pool.max_nodes:
            return [
                f"pool {pool.name}: the models' minimum replicas need {pool.min_nodes + nodes} nodes, over its maxSize {pool.max_nodes}"
            ]
        return []
    vcpus, gib = capacity.vcpus_and_gib(instance_type) or (0, 0.0)
    gpu = instance_types.gpu_info(instance_type)
    need = {"cpu": vcpus * nodes, "memory": gib * 1024 * nodes, "gpu": (gpu.count if gpu else 0) * nodes}
    return [
        f"pool {pool.name}: the models' minimum replicas need {need[key]:g} {key} on {nodes} x {instance_type}, over its limit {limit:g}"
        for key, limit in pool.limits.items()
        if need[key] > limit
    ]


def pool_shapes(resources: list[Mapping[str, Any]], karpenter_types, slices: Mapping[str, int], table: RegionPrices) -> list[PoolShape]:
    """Every pool of the plan as the scheduler sees it (`karpenter_types(spec)`: the priced types a NodePool allows)."""
    shapes = []
    by_urn = {r["urn"]: r for r in resources}
    for group in (r for r in resources if r["type"] == "aws:eks/nodeGroup:NodeGroup"):
        inputs = group["inputs"]
        template = next((by_urn[u] for u in group["propertyDependencies"].get("launchTemplate", []) if u in by_urn), None)
        labels = inputs.get("labels") or {}
        name = labels.get(POOL_LABEL, group["name"])
        taints = tuple({"key": t["key"], "value": t.get("value", ""), "effect": _effect(t["effect"])} for t in inputs.get("taints") or [])
        shapes.append(
            PoolShape(
                name,
                labels,
                taints,
                tuple(inputs["instanceTypes"]),
                inputs.get("capacityType") == "SPOT",
                True,
                int(inputs["scalingConfig"]["minSize"]),
                int(inputs["scalingConfig"]["maxSize"]),
                slices=slices.get(name, 1),
                disk_gib=int(template["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"]) if template else 0,
            )
        )
    for pool in (r for r in resources if r["type"] == "kubernetes:karpenter.sh/v1:NodePool"):
        spec = pool["inputs"]["spec"]
        name = pool["inputs"]["metadata"]["name"]
        template = spec["template"]
        limits = spec.get("limits") or {}
        shape_limits = {"cpu": float(quantity.parse(str(limits["cpu"])))} if "cpu" in limits else {}
        if "memory" in limits:
            shape_limits["memory"] = float(quantity.mebibytes(str(limits["memory"])))
        if GPU in limits:
            shape_limits["gpu"] = float(limits[GPU]) / slices.get(name, 1)
        capacity_types = next((r["values"] for r in template["spec"]["requirements"] if r["key"] == "karpenter.sh/capacity-type"), [])
        shapes.append(
            PoolShape(
                name,
                (template.get("metadata") or {}).get("labels") or {},
                tuple(template["spec"].get("taints") or []),
                tuple(karpenter_types(spec)),
                capacity_types == ["spot"],
                False,
                limits=shape_limits,
                slices=slices.get(name, 1),
            )
        )
    return shapes


def _effect(effect: str) -> str:
    """EKS node group taint effects (NO_SCHEDULE) in Kubernetes' spelling (NoSchedule)."""
    return "".join(part.capitalize() for part in effect.lower().split("_"))
