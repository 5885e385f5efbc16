"""The nodes the models' minimum replicas need, for `cost`'s idle floor: read from plan.json alone, as the scheduler
and the autoscalers will read the objects.

- A model's pods: the Deployments labelled `app.kubernetes.io/component: model-server`; their minimum is the
  KEDA ScaledObject's `minReplicaCount` or the HPA's `minReplicas` that scales them (default 1; 0: scaled to
  zero, nothing idle), else the Deployment's `replicas`. A pod requests its containers' and native sidecars' sum,
  or its largest ordinary init container if that is more (Kubernetes' effective request), and `nvidia.com/gpu`.
- Where it may run: a pool whose nodes carry the pod's nodeSelector labels, satisfy its required node affinity
  (In, NotIn, Exists, DoesNotExist over the pool's labels) and whose taints it tolerates. A node offers its
  allocatable CPU and memory (infra/offline/capacity.py: kube-reserved, eviction, less the DaemonSets) and its GPUs
  times the pool's time-slicing replicas.
- Managed node groups do not grow: the platform installs no autoscaler for them (README, "GPU pools"), so their
  `desiredSize` nodes of the first listed type (what EKS launches first) are all they offer; the floor already pays
  for them, and replicas are packed onto them first (first-fit-decreasing, shared by every model).
- What is left goes where Karpenter would launch it, node by node and largest pending replica first (Karpenter
  sorts pending pods by size): the admitting NodePool of the highest `weight` (equal weights: in the plan's order)
  with room in its limits (cpu, memory, GPUs, nodes, summed over the pool), spot where the pool allows spot, of the
  types its requirements allow that the price table prices (cost.karpenter_types, architecture included), the one
  that takes the largest replica and places the most pending replicas per dollar (one larger node may hold
  several). A Karpenter node's root volume is its EC2NodeClass's.

What cannot be placed or sized is a problem line, never a silent zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_platform.components import instance_types, quantity
from ml_platform.components.node_pool import kubernetes_taint_effect
from ml_platform.components.scheduling import POOL_LABEL, admits
from ml_platform.infra.delivery.prices import HOURS_PER_MONTH as H
from ml_platform.infra.delivery.prices import VCPUS, NoPrice, RegionPrices
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
    storage_mi: int = 0
    """Ephemeral storage requested (the weights' emptyDir, the compile cache)."""


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
    """A NodePool's limits (nodepool_limits): cpu (cores), memory (GiB), gpu (physical GPUs), nodes."""
    slices: int = 1
    disk_gib: int = 0
    """A node's root volume (gp3): a managed group's launch template's, a NodePool's EC2NodeClass's."""
    weight: int = 0
    """A NodePool's `weight` (Karpenter tries higher weights first)."""
    spot_only: bool = False
    """A NodePool that launches spot only (its ceiling is priced at spot)."""


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


def _requests(containers: Iterable[Mapping[str, Any]]) -> tuple[int, int, int, int]:
    cpu = memory = gpus = storage = 0
    for container in containers:
        resources = container.get("resources") or {}
        requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        cpu += int(quantity.parse(str(requests.get("cpu", "0"))) * 1000)
        memory += quantity.mebibytes(str(requests["memory"])) if "memory" in requests else 0
        gpus += int(requests.get(GPU, 0))
        storage += quantity.mebibytes(str(requests["ephemeral-storage"])) if "ephemeral-storage" in requests else 0
    return cpu, memory, gpus, storage


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
        cpu, memory, gpus, storage = _requests([*pod["containers"], *sidecars])
        for init in ordinary:
            init_cpu, init_memory, _, init_storage = _requests([init])
            cpu, memory, storage = max(cpu, init_cpu), max(memory, init_memory), max(storage, init_storage)
        required = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
        terms = tuple(tuple(term.get("matchExpressions") or []) for term in required.get("nodeSelectorTerms") or [])
        name = meta.get("namespace") or meta["name"]
        replicas = minimum.get((meta.get("namespace", ""), meta["name"]), int(r["inputs"]["spec"].get("replicas", 1)))
        selector, tolerations = pod.get("nodeSelector") or {}, tuple(pod.get("tolerations") or [])
        found.append(ModelPod(name, replicas, cpu, memory, gpus, selector, terms, tolerations, storage))
    return sorted(found, key=lambda p: p.model)


def part_time(resources: list[Mapping[str, Any]]) -> list[str]:
    """Models a KEDA cron trigger keeps up on a schedule above their minimum (`activeHours`): said, not priced, as
    the floor counts what always runs. Returns one line per model."""
    lines = []
    for r in resources:
        if r["type"] != "kubernetes:keda.sh/v1alpha1:ScaledObject":
            continue
        for trigger in r["inputs"]["spec"].get("triggers") or []:
            if trigger.get("type") == "cron":
                meta, model = trigger.get("metadata") or {}, r["inputs"]["metadata"].get("namespace")
                lines.append(
                    f"model {model}: {meta.get('desiredReplicas')} replica(s) from '{meta.get('start')}' "
                    f"to '{meta.get('end')}' ({meta.get('timezone', 'UTC')}) above its minimum"
                )
    return lines


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


def may_run(pod: ModelPod, pool: PoolShape) -> bool:
    """Whether the scheduler may place `pod` on a node of `pool`: labels, required affinity, taints."""
    if pod.terms and not any(all(_expression(pool.labels, e) for e in term) for term in pod.terms):
        return False
    # Labels and repelling taints, as the scheduling contract judges a pool (it reads only labels and taints).
    return admits(pool, pod.node_selector, pod.tolerations)


def _offer(instance_type: str, pool: PoolShape, environment: str) -> tuple[int, int, int, int] | None:
    """(CPU m, memory Mi, GPU slots, ephemeral storage Mi) one node of the type offers a model's pods, or None when
    not sized here. Ephemeral storage: the root volume less the kubelet's 10% `nodefs.available` eviction threshold
    and 1 GiB for the system (unbounded when the volume is not known)."""
    offered = capacity.allocatable(instance_type)
    if offered is None:
        return None
    gpu = instance_types.gpu_info(instance_type)
    size = "small" if environment == "dev" else "standard"
    overhead = capacity.node_overhead(size, gpu is not None)
    storage = int(pool.disk_gib * 1024 * 0.9) - 1024 if pool.disk_gib else 1 << 40
    return offered[0] - overhead[0], offered[1] - overhead[1], (gpu.count * pool.slices if gpu else 0), storage


def _fits(pod: ModelPod, room: list[int]) -> bool:
    return room[0] >= pod.cpu_m and room[1] >= pod.memory_mi and room[2] >= pod.gpus and room[3] >= pod.storage_mi


def _take(pod: ModelPod, room: list[int]) -> None:
    room[0] -= pod.cpu_m
    room[1] -= pod.memory_mi
    room[2] -= pod.gpus
    room[3] -= pod.storage_mi


def _one_node(replicas: list[ModelPod], offer: tuple[int, int, int, int]) -> list[ModelPod]:
    """The replicas (largest first) that one node of the offer takes."""
    room, taken = [*offer], []
    for pod in replicas:
        if _fits(pod, room):
            _take(pod, room)
            taken.append(pod)
    return taken


def node_size(instance_type: str) -> dict[str, float]:
    """What one node of the type counts against a NodePool's limits (nodepool_limits' units): cpu (vCPUs), memory
    (GiB; 0 where this program cannot size the type: leaving it out only raises a bound), gpu, nodes (1)."""
    vcpus, gib = capacity.vcpus_and_gib(instance_type) or (VCPUS.get(instance_type, 0), 0.0)
    gpu = instance_types.gpu_info(instance_type)
    return {"cpu": float(vcpus), "memory": float(gib), "gpu": float(gpu.count if gpu else 0), "nodes": 1.0}


def nodepool_limits(limits: Mapping[str, Any], slices: int = 1) -> dict[str, float]:
    """A NodePool's `spec.limits` in node_size's units; its nvidia.com/gpu limit counts time-slicing replicas, so
    `slices` turns it into physical GPUs."""
    found = {"cpu": float(quantity.parse(str(limits["cpu"])))} if "cpu" in limits else {}
    if "memory" in limits:
        found["memory"] = quantity.mebibytes(str(limits["memory"])) / 1024
    if GPU in limits:
        found["gpu"] = float(limits[GPU]) / slices
    if "nodes" in limits:
        found["nodes"] = float(limits["nodes"])
    return found


def place(pods: list[ModelPod], pools: list[PoolShape], table: RegionPrices, environment: str) -> tuple[list[FloorNodes], list[str]]:
    """Where the models' minimum replicas run (see the module's docstring): per pool and type, the replicas on the
    managed pools' running nodes and the Karpenter nodes they need, and the problems (replicas nothing can take).
    Karpenter's nodes are chosen one at a time: in the heaviest NodePool that admits a waiting replica and has room
    in its limits for a node, the type that places the most of the waiting replicas per dollar; a replica whose
    pool's limits are spent goes on to the next NodePool that admits it, as Karpenter's does."""
    replicas = sorted((p for p in pods for _ in range(p.replicas)), key=lambda p: (p.gpus, p.memory_mi, p.cpu_m), reverse=True)
    results: dict[tuple[str, str], FloorNodes] = {}
    problems: list[str] = []
    pending: list[ModelPod] = []
    running = {}
    for pool in (p for p in pools if p.managed and p.min_nodes and p.types):
        offer = _offer(pool.types[0], pool, environment)
        if offer is not None:
            running[pool.name] = (pool, [[*offer] for _ in range(pool.min_nodes)])
    for pod in replicas:
        spot = next(((pool, room) for pool, rooms in running.values() if may_run(pod, pool) for room in rooms if _fits(pod, room)), None)
        if spot is None:
            pending.append(pod)
            continue
        pool, room = spot
        _take(pod, room)
        result = results.setdefault((pool.name, pool.types[0]), FloorNodes(pool.name, pool.types[0], 0.0, pool.disk_gib))
        result.on_minimum[pod.model] = result.on_minimum.get(pod.model, 0) + 1

    karpenter = sorted((p for p in pools if not p.managed), key=lambda p: -p.weight)
    used: dict[str, dict[str, float]] = {p.name: {"cpu": 0.0, "memory": 0.0, "gpu": 0.0, "nodes": 0.0} for p in karpenter}
    while pending:
        step = _next_node(pending, karpenter, used, table, environment)
        if step is None:
            break
        pool, instance_type, hourly, taken = step
        for key, value in node_size(instance_type).items():
            used[pool.name][key] += value
        result = results.setdefault((pool.name, instance_type), FloorNodes(pool.name, instance_type, hourly, pool.disk_gib))
        result.nodes += 1
        for pod in taken:
            result.models[pod.model] = result.models.get(pod.model, 0) + 1
        for pod in taken:  # one occurrence each: a model's replicas are the same pod, repeated
            pending.remove(pod)
    problems += [_unplaceable(pod, pools, table, environment) for pod in pending]
    return [r for _, r in sorted(results.items())], problems


def _next_node(
    pending: list[ModelPod], karpenter: list[PoolShape], used: dict[str, dict[str, float]], table: RegionPrices, environment: str
) -> tuple[PoolShape, str, float, list[ModelPod]] | None:
    """The next node Karpenter would launch for the pending replicas (sorted largest first), or None when no NodePool
    can take any: it is for the largest replica a NodePool can place (one it cannot place at all waits, as a pod
    Karpenter cannot schedule does, without holding up the others)."""
    for pool in karpenter:  # heaviest first
        admitted = [p for p in pending if may_run(p, pool)]
        seen: set[str] = set()
        for index, lead in enumerate(admitted):
            if lead.model in seen:
                continue  # its other replicas are the same pod
            seen.add(lead.model)
            ordered = [lead, *admitted[:index], *admitted[index + 1 :]]
            best = None
            for instance_type in pool.types:
                offer, hourly = _offer(instance_type, pool, environment), _hourly(table, instance_type, pool.spot)
                if offer is None or hourly is None:
                    continue
                size = node_size(instance_type)
                if any(used[pool.name][k] + size[k] > limit for k, limit in pool.limits.items()):
                    continue
                taken = _one_node(ordered, offer)
                if not taken or taken[0] is not lead:
                    continue  # the node is for the lead replica first
                monthly = hourly + pool.disk_gib * (table.gp3_per_gb_month or 0.0) / H
                key = (monthly / len(taken), monthly)
                if best is None or key < best[0]:
                    best = (key, instance_type, hourly, taken)
            if best is not None:
                return pool, best[1], best[2], best[3]
    return None


def _hourly(table: RegionPrices, instance_type: str, spot: bool) -> float | None:
    try:
        return table.hourly(instance_type, spot)
    except NoPrice:
        return None


def _unplaceable(pod: ModelPod, pools: list[PoolShape], table: RegionPrices, environment: str) -> str:
    """Why a replica is not in the floor, as precisely as the placement knows."""
    admitting = [p for p in pools if may_run(pod, p)]
    what = f"({pod.cpu_m}m CPU, {pod.memory_mi}Mi, {pod.gpus} GPU, {pod.storage_mi}Mi ephemeral)"
    if not admitting:
        why = "no pool admits it (labels, affinity, taints)"
    else:
        fits = [
            (p, t)
            for p in admitting
            for t in (p.types[:1] if p.managed else p.types)
            if (offer := _offer(t, p, environment)) is not None and _fits(pod, [*offer])
        ]
        priced = [(p, t) for p, t in fits if p.managed or _hourly(table, t, p.spot) is not None]
        unsized = sorted({t for p in admitting for t in p.types if capacity.allocatable(t) is None})
        if priced and all(p.managed for p, _ in priced):
            why = "the managed pools that admit it are full at their desiredSize (nothing grows a managed group)"
        elif priced:
            why = "the NodePools that admit it have spent their limits on the replicas before it"
        elif fits:
            why = "no type that fits it has a price in the tables"
        else:
            why = "no node type of the pools that admit it fits one replica"
        if unsized:
            why += f" (types this program cannot size: {', '.join(unsized)})"
    return f"model {pod.model}: {why} {what}; a replica is not in the floor"


def pool_shapes(resources: list[Mapping[str, Any]], karpenter_types, slices: Mapping[str, int]) -> list[PoolShape]:
    """Every pool of the plan as the scheduler sees it (`karpenter_types(spec)`: the priced types a NodePool allows;
    `slices`: time-slicing replicas per pool)."""
    shapes = []
    by_urn = {r["urn"]: r for r in resources}
    for group in (r for r in resources if r["type"] == "aws:eks/nodeGroup:NodeGroup"):
        inputs = group["inputs"]
        labels = inputs.get("labels") or {}
        name = labels.get(POOL_LABEL, group["name"])
        taints = tuple(
            {"key": t["key"], "value": t.get("value", ""), "effect": kubernetes_taint_effect(t["effect"])}
            for t in inputs.get("taints") or []
        )
        shapes.append(
            PoolShape(
                name,
                labels,
                taints,
                tuple(inputs["instanceTypes"]),
                inputs.get("capacityType") == "SPOT",
                True,
                # What runs: desiredSize (default minSize), which nothing resizes (no autoscaler for managed groups).
                int(inputs["scalingConfig"].get("desiredSize", inputs["scalingConfig"]["minSize"])),
                int(inputs["scalingConfig"]["maxSize"]),
                slices=slices.get(name, 1),
                disk_gib=launch_template_gib(group, by_urn),
            )
        )
    classes = {
        r["inputs"]["metadata"]["name"]: r["inputs"]["spec"]
        for r in resources
        if r["type"] == "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
    }
    for pool in (r for r in resources if r["type"] == "kubernetes:karpenter.sh/v1:NodePool"):
        spec = pool["inputs"]["spec"]
        name = pool["inputs"]["metadata"]["name"]
        template = spec["template"]
        capacity_types = next((r["values"] for r in template["spec"]["requirements"] if r["key"] == "karpenter.sh/capacity-type"), [])
        shapes.append(
            PoolShape(
                name,
                (template.get("metadata") or {}).get("labels") or {},
                tuple(template["spec"].get("taints") or []),
                tuple(karpenter_types(spec)),
                "spot" in capacity_types,  # Karpenter launches spot where the pool allows it (cheaper)
                False,
                limits=nodepool_limits(spec.get("limits") or {}, slices.get(name, 1)),
                slices=slices.get(name, 1),
                disk_gib=root_volume_gib(classes.get(((template["spec"].get("nodeClassRef") or {}).get("name")), {})),
                weight=int(spec.get("weight", 0)),
                spot_only=capacity_types == ["spot"],
            )
        )
    return shapes


def launch_template_gib(group: Mapping[str, Any], by_urn: Mapping[str, Mapping[str, Any]]) -> int:
    """The root volume of a managed node group's nodes (its launch template's first block device), in GiB; 0 without one."""
    template = next((by_urn[u] for u in group["propertyDependencies"].get("launchTemplate", []) if u in by_urn), None)
    return int(template["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"]) if template else 0


def root_volume_gib(node_class: Mapping[str, Any]) -> int:
    """The root volume of an EC2NodeClass's nodes (its blockDeviceMappings' rootVolume, else the first), in GiB."""
    mappings = node_class.get("blockDeviceMappings") or []
    root = next((m for m in mappings if m.get("rootVolume")), mappings[0] if mappings else None)
    size = ((root or {}).get("ebs") or {}).get("volumeSize")
    return quantity.mebibytes(str(size)) // 1024 if size else 0
