"""From the stack's node pool config to what the components and the scheduling contract take.

Every pool, managed or Karpenter, gets its labels and taints from one place (components.scheduling), so
what the scheduling contract reasons about is exactly what the nodes will carry.
"""

from __future__ import annotations

from ml_platform.components import gpu, instance_types, scheduling
from ml_platform.components.karpenter import KarpenterPool
from ml_platform.components.node_pool import CPU_DISK_GIB, GPU_DISK_GIB
from ml_platform.infra import config

GPU_BUDGET = [{"nodes": "1"}]  # one GPU node disrupted at a time: capacity for serving never drops by more
CPU_BUDGET = [{"nodes": "10%"}]


def sharing_mode(pool: config.ManagedPoolConfig | config.KarpenterPoolConfig) -> str | None:
    """`time-slicing`, `mig`, or None for a pool that does not share its GPUs."""
    if pool.gpuSharing is None:
        return None
    return "time-slicing" if pool.gpuSharing.timeSlicing is not None else "mig"


def sharing_configs(cfg: config.StackConfig) -> dict[str, dict]:
    """Device-plugin configs by name for every pool that shares its GPUs."""
    configs = {}
    for name, pool in sorted(cfg.nodePools.items()):
        sharing = pool.gpuSharing
        if sharing is not None:
            configs[name] = gpu.sharing_config(
                time_slicing_replicas=sharing.timeSlicing.replicas if sharing.timeSlicing else None,
                mig_strategy=sharing.mig.strategy if sharing.mig else None,
            )
    return configs


def labels_and_taints(name: str, pool: config.ManagedPoolConfig | config.KarpenterPoolConfig) -> tuple[dict, list]:
    is_gpu = pool.gpu is not None
    labels = scheduling.node_labels(name, is_gpu, sharing_mode(pool), pool.labels)
    taints = scheduling.node_taints(is_gpu, [t.model_dump() for t in pool.taints])
    return labels, taints


def time_slices(pool: config.ManagedPoolConfig | config.KarpenterPoolConfig) -> int:
    """How many pods share each GPU of the pool: the time-slicing replicas, else 1."""
    sharing = pool.gpuSharing
    return sharing.timeSlicing.replicas if sharing is not None and sharing.timeSlicing is not None else 1


def gpus_per_node(pool: config.ManagedPoolConfig | config.KarpenterPoolConfig) -> int:
    """Physical GPUs of the pool's largest node: a time-sliced Karpenter pool launches 1-GPU instances only
    (its NodePool requires `karpenter.k8s.aws/instance-gpu-count` 1; see karpenter_pool)."""
    if pool.gpu is None:
        return 0
    if isinstance(pool, config.KarpenterPoolConfig) and time_slices(pool) > 1:
        return 1
    return pool.gpu.count


def schedulable_gpus(pool: config.ManagedPoolConfig | config.KarpenterPoolConfig) -> int:
    """`nvidia.com/gpu` one node of the pool advertises: GPUs, times the replicas under time-slicing; MIG
    `mixed` exposes per-profile resources instead, `single` at least one per GPU."""
    sharing = pool.gpuSharing
    if sharing is not None and sharing.mig is not None and sharing.mig.strategy == "mixed":
        return 0
    return gpus_per_node(pool) * time_slices(pool)


def scheduling_pools(cfg: config.StackConfig) -> list[scheduling.Pool]:
    """Every pool as the scheduling contract sees it."""
    pools = []
    for name, pool in sorted(cfg.nodePools.items()):
        labels, taints = labels_and_taints(name, pool)
        pools.append(
            scheduling.Pool(name=name, labels=labels, taints=taints, gpus_per_node=schedulable_gpus(pool), gpu=pool.gpu is not None)
        )
    return pools


def candidate_types(pool: config.ManagedPoolConfig | config.KarpenterPoolConfig) -> list[str]:
    """The instance types a pool may run: a managed pool's list; for a Karpenter pool, every type of its families
    (or categories from minGeneration) and architecture that fits its limits, 1-GPU types when time-sliced."""
    if isinstance(pool, config.ManagedPoolConfig):
        return list(pool.instanceTypes)
    arch = "x86_64" if pool.architecture == "amd64" else "arm64"
    chosen = []
    for name in sorted(instance_types.known_instance_types()):
        family = instance_types.family_of(name)
        generation = "".join(ch for ch in family[1:3] if ch.isdigit())
        in_category = family[:1] in pool.instanceCategories and family[1:2].isdigit() and int(generation or 0) >= (pool.minGeneration or 0)
        if family not in pool.instanceFamilies and not in_category:
            continue
        if instance_types.architecture(name) != arch or instance_types.is_unsupported_accelerator(name):
            continue
        gpu = instance_types.gpu_info(name)
        if time_slices(pool) > 1 and (gpu is None or gpu.count != 1):
            continue
        if pool.limits.gpus is not None and gpu is not None and gpu.count > pool.limits.gpus:
            continue
        chosen.append(name)
    return chosen


def zones_outside(cfg: config.StackConfig, zones: list[str]) -> list[tuple[str, str]]:
    """(key path, zone) of each Karpenter pool zone that is not one of `zones` (the VPC's)."""
    return [
        (f"nodePools.{name}.zones[{index}]", zone)
        for name, pool in sorted(cfg.nodePools.items())
        for index, zone in enumerate(getattr(pool, "zones", None) or [])
        if zone not in zones
    ]


def root_disk_gib(pool: config.ManagedPoolConfig | config.KarpenterPoolConfig) -> int:
    """A pool's root volume size: diskSizeGiB, or the default for GPU or CPU pools."""
    return pool.diskSizeGiB or (GPU_DISK_GIB if pool.gpu is not None else CPU_DISK_GIB)


def karpenter_pool(name: str, pool: config.KarpenterPoolConfig, zones: list[str]) -> KarpenterPool:
    """The Karpenter NodePool of one pool config."""
    is_gpu = pool.gpu is not None
    requirements = []
    if pool.instanceFamilies:
        requirements.append({"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": sorted(pool.instanceFamilies)})
    if pool.instanceCategories:
        requirements.append({"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": sorted(pool.instanceCategories)})
    if pool.minGeneration is not None:
        requirements.append({"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": [str(pool.minGeneration - 1)]})
    requirements += [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": sorted(pool.capacityTypes)},
        {"key": "kubernetes.io/arch", "operator": "In", "values": [pool.architecture]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": sorted(pool.zones or zones)},
    ]
    limits = {"cpu": str(pool.limits.cpu), "memory": f"{pool.limits.memoryGiB}Gi"}
    sharing = pool.gpuSharing
    if sharing is not None and sharing.timeSlicing is not None:
        # Karpenter sizes a new node by the instance type's physical GPUs and knows nothing of time-slicing
        # (kubernetes-sigs/karpenter#729): slices pending together would buy a 4- or 8-GPU instance. One GPU
        # per node keeps a launch to what one slice needs.
        requirements.append({"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": ["1"]})
    if sharing is not None and sharing.mig is not None:
        # Whole nodes of the family's largest size only, so the node limit below is a GPU limit (p5 also comes
        # with a single H100, p5.4xlarge).
        requirements.append({"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": [str(gpus_per_node(pool))]})
    if pool.limits.gpus is not None:
        # Karpenter counts a launching node's physical GPUs (its NodeClaim) but a registered node's advertised
        # nvidia.com/gpu, which sharing multiplies (pkg/controllers/state/statenode.go, Capacity, at v1.14.1).
        # Nodes count as 1 in both phases, so a shared pool's physical limit is a node limit.
        if sharing is None:
            limits[scheduling.GPU_RESOURCE] = str(pool.limits.gpus)
        elif sharing.timeSlicing is not None:
            limits["nodes"] = str(pool.limits.gpus)  # one GPU a node
            limits[scheduling.GPU_RESOURCE] = str(pool.limits.gpus * sharing.timeSlicing.replicas)
        else:
            # MIG: the devices per GPU depend on the partitioning, so only whole nodes are counted.
            limits["nodes"] = str(pool.limits.gpus // gpus_per_node(pool))
    labels, taints = labels_and_taints(name, pool)
    budgets = (
        [b.model_dump(exclude_none=True) for b in pool.disruptionBudgets]
        if pool.disruptionBudgets is not None
        else (GPU_BUDGET if is_gpu else CPU_BUDGET)
    )
    return KarpenterPool(
        name=name,
        requirements=requirements,
        labels=labels,
        taints=taints,
        limits=limits,
        consolidation_policy=pool.consolidationPolicy or ("WhenEmpty" if is_gpu else "WhenEmptyOrUnderutilized"),
        consolidate_after=pool.consolidateAfter,
        budgets=budgets,
        expire_after=pool.expireAfter or ("Never" if is_gpu else "720h"),
        termination_grace_period=pool.terminationGracePeriod,
        disk_size_gib=root_disk_gib(pool),
        local_nvme=pool.local_nvme,
        fast_image_pull=pool.fastImagePull,
        gpu=is_gpu,
        weight=pool.weight,
    )
