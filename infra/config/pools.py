"""`nodePools`: managed node groups and Karpenter pools, their GPUs and how they share them."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from ml_platform.components import instance_types
from ml_platform.infra.config.base import _LABEL_VALUE, GPU_TAINT_KEY, PLATFORM_LABELS, _check_label_key, _fail, _Model


class Taint(_Model):
    key: str
    value: Annotated[str, Field(max_length=63)] = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class TimeSlicing(_Model):
    replicas: Annotated[int, Field(ge=2, le=16)]
    """How many pods share each GPU (the device plugin advertises replicas x GPUs)."""


class Mig(_Model):
    strategy: Literal["single", "mixed"]
    """How the device plugin exposes MIG devices: all alike as nvidia.com/gpu, or per profile as nvidia.com/mig-<profile>."""


class GpuSharing(_Model):
    timeSlicing: TimeSlicing | None = None
    """Time-slice each GPU between pods (cheap dev pools)."""
    mig: Mig | None = None
    """Expose Multi-Instance GPU partitions (A100/H100-class GPUs)."""

    @model_validator(mode="after")
    def _one_mode(self) -> GpuSharing:
        if self.timeSlicing is not None and self.mig is not None:
            raise _fail("choose one sharing mode: timeSlicing or mig, not both")
        if self.timeSlicing is None and self.mig is None:
            raise _fail("set timeSlicing or mig (or remove gpuSharing)")
        return self


class _PoolBase(_Model):
    diskSizeGiB: Annotated[int, Field(ge=20, le=16384)] | None = None
    """Root volume size (default 50 GiB for CPU pools, 200 GiB for GPU pools, which pull multi-GB images)."""
    labels: dict[str, str] = {}
    """Extra Kubernetes node labels."""
    taints: list[Taint] = []
    """Extra taints; GPU pools always get nvidia.com/gpu=true:NoSchedule."""
    gpuSharing: GpuSharing | None = None
    """Share each GPU between pods (time-slicing or MIG); GPU pools only."""
    fastImagePull: bool = False
    """nodeadm's FastImagePull feature gate (containerd's SOCI parallel pull and unpack of one large image;
    experimental upstream, needs 4 vCPUs and 7 GiB of memory per node): off unless set."""
    localStorage: Literal["raid0", "none"] | None = None
    """`raid0`: the nodes' local NVMe instance store, striped, holds the container runtime, the kubelet's pod storage
    and pod logs (images, weights and caches land on NVMe instead of the gp3 root volume). Default: raid0 for GPU
    pools whose every family has NVMe (components/instance_types.LOCAL_NVME_MIN_GB), else none."""

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            _check_label_key(key)
            if not _LABEL_VALUE.match(label):
                raise _fail(f"label '{key}' has value '{label}', which is not a Kubernetes label value (1-63 characters)")
            if key in PLATFORM_LABELS:
                raise _fail(f"label '{key}' is set by the platform; remove it")
        return value

    @field_validator("taints")
    @classmethod
    def _taints(cls, value: list[Taint]) -> list[Taint]:
        for taint in value:
            _check_label_key(taint.key)
            if taint.key == GPU_TAINT_KEY:
                raise _fail(f"taint {GPU_TAINT_KEY} is managed by the platform on GPU pools; remove it")
        return value

    @model_validator(mode="after")
    def _sharing(self) -> _PoolBase:
        if self.gpuSharing is None:
            return self
        gpu = self.gpu
        if gpu is None:
            raise _fail("gpuSharing applies to GPU pools only; this pool has no GPUs")
        if self.gpuSharing.mig is not None and not gpu.mig:
            raise _fail(f"MIG needs A100/H100/H200-class GPUs; this pool's {gpu.model} cannot be partitioned (use timeSlicing)")
        return self

    @property
    def gpu(self) -> instance_types.GpuInfo | None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def families(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def nvme_capable(self) -> bool:
        """Whether every family of the pool has a local NVMe instance store (localStorage raid0 is possible)."""
        return bool(self.families) and all(instance_types.local_nvme_gb(f) for f in self.families)

    @property
    def local_nvme(self) -> bool:
        """Whether the nodes' container storage goes on local NVMe (localStorage, or its default)."""
        if self.localStorage is not None:
            return self.localStorage == "raid0"
        return self.gpu is not None and self.nvme_capable

    @property
    def local_nvme_min_gb(self) -> int | None:
        """The smallest local NVMe of the pool's families, in GB (None when not on NVMe)."""
        sizes = [instance_types.local_nvme_gb(f) for f in self.families]
        return min(s for s in sizes if s) if self.local_nvme and any(sizes) else None

    @model_validator(mode="after")
    def _local_storage(self) -> _PoolBase:
        if self.localStorage == "raid0":
            if not self.families:
                # Categories (c, m, r) admit families without an instance store: raid0 would be a no-op on them,
                # and the estimate and the storage check would count NVMe the node does not have.
                raise _fail("localStorage raid0 needs instanceFamilies that all have local NVMe (g5, g6e, p4d, ...), not categories")
            missing = sorted(f for f in self.families if not instance_types.local_nvme_gb(f))
            if missing:
                raise _fail(
                    f"localStorage raid0 needs local NVMe, which {', '.join(missing)} lacks; use none, or families with an instance store"
                )
        return self


class ManagedPoolConfig(_PoolBase):
    kind: Literal["managed"] = "managed"
    """An EKS managed node group of fixed instance types."""
    instanceTypes: Annotated[list[str], Field(min_length=1, max_length=20)]
    """EC2 instance types; all of one architecture, all CPU or all the same GPU kind."""
    capacityType: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    """On-demand or spot capacity."""
    minSize: Annotated[int, Field(ge=0, le=1000)] = 1
    """Fewest nodes; 0 lets a pool scale to zero."""
    maxSize: Annotated[int, Field(ge=1, le=1000)]
    """Most nodes."""
    desiredSize: Annotated[int, Field(ge=0, le=1000)] | None = None
    """Initial node count (default minSize). `pulumi up` never changes it afterwards (an autoscaler would own it; the
    platform installs none for managed groups, so it stays, and `cost` counts it as what runs)."""
    maxUnavailable: Annotated[int, Field(ge=1, le=100)] = 1
    """Nodes replaced at once during an update."""

    @field_validator("instanceTypes")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        problems = []
        for instance_type in value:
            if instance_type not in instance_types.known_instance_types():
                hint = instance_types.suggest_instance_type(instance_type)
                problems.append(f"'{instance_type}' is not a known EC2 instance type" + (f"; did you mean '{hint}'?" if hint else ""))
            elif instance_types.is_unsupported_accelerator(instance_type):
                problems.append(
                    f"'{instance_type}' is an accelerator the platform does not know as an NVIDIA GPU (components/instance_types.py); "
                    "use a g4dn/g5/g6/g6e/p4/p5 type"
                )
        if problems:
            raise _fail("; ".join(problems))
        if len({instance_types.architecture(t) for t in value}) > 1:
            raise _fail("mixes x86_64 and arm64 instance types; a node group runs one AMI architecture")
        gpus = {(info.model if (info := instance_types.gpu_info(t)) else None) for t in value}
        if len(gpus) > 1:
            raise _fail(f"mixes GPU kinds {sorted(str(g) for g in gpus)}; one pool, one kind of GPU (or none)")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> ManagedPoolConfig:
        if self.minSize > self.maxSize:
            raise _fail(f"minSize {self.minSize} is larger than maxSize {self.maxSize}")
        if self.desiredSize is not None and not self.minSize <= self.desiredSize <= self.maxSize:
            raise _fail(f"desiredSize {self.desiredSize} is outside minSize..maxSize ({self.minSize}..{self.maxSize})")
        return self

    @property
    def gpu(self) -> instance_types.GpuInfo | None:
        """GPUs of the pool's largest instance type."""
        infos = [info for t in self.instanceTypes if (info := instance_types.gpu_info(t))]
        return max(infos, key=lambda info: info.count) if infos else None

    @property
    def families(self) -> list[str]:
        return sorted({instance_types.family_of(t) for t in self.instanceTypes})

    @property
    def architecture(self) -> str:
        return instance_types.architecture(self.instanceTypes[0])


class KarpenterLimits(_Model):
    cpu: Annotated[int, Field(ge=1)]
    """Most vCPUs the pool may run in total."""
    memoryGiB: Annotated[int, Field(ge=1)]
    """Most memory the pool may run in total, in GiB."""
    gpus: Annotated[int, Field(ge=1)] | None = None
    """Most physical GPUs the pool may run in total; required for GPU pools (a runaway GPU bill is the costliest
    mistake)."""


class DisruptionBudget(_Model):
    nodes: Annotated[str, Field(pattern=r"^((100|[0-9]{1,2})%|[0-9]+)$")]
    """How many nodes (or what percentage) Karpenter may disrupt at once."""
    schedule: str | None = None
    """Cron schedule when this budget applies (with duration)."""
    duration: Annotated[str, Field(pattern=r"^([0-9]+(m|h))+$")] | None = None
    """How long after each scheduled start the budget applies."""
    reasons: list[Literal["Underutilized", "Empty", "Drifted"]] | None = None
    """Disruption reasons the budget covers (default: all)."""

    @model_validator(mode="after")
    def _window(self) -> DisruptionBudget:
        if (self.schedule is None) != (self.duration is None):
            raise _fail("schedule and duration go together")
        return self


_DURATION = r"^(([0-9]+(s|m|h))+|Never)$"


class KarpenterPoolConfig(_PoolBase):
    kind: Literal["karpenter"]
    """A Karpenter NodePool: nodes launched on demand from instance families or categories."""
    instanceFamilies: list[str] = []
    """EC2 instance families (g5, g6e, m7i, ...); GPU pools must list their GPU families."""
    instanceCategories: list[Annotated[str, Field(pattern=r"^[a-z]$")]] = []
    """CPU instance categories (c, m, r, ...), used with minGeneration."""
    minGeneration: Annotated[int, Field(ge=1, le=20)] | None = None
    """Oldest instance generation allowed (e.g. 6 excludes m5)."""
    capacityTypes: Annotated[list[Literal["spot", "on-demand"]], Field(min_length=1)] = ["on-demand"]
    """Spot and/or on-demand; with both, Karpenter prefers spot."""
    architecture: Literal["amd64", "arm64"] = "amd64"
    """CPU architecture of the nodes."""
    zones: list[str] | None = None
    """Availability zones to launch in (default: every zone of the stack)."""
    limits: KarpenterLimits
    """Ceilings on what the pool may run in total."""
    weight: Annotated[int, Field(ge=1, le=100)] | None = None
    """Preference among pools that fit a pod: higher first (spot pool before its on-demand fallback)."""
    consolidationPolicy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] | None = None
    """When Karpenter may remove nodes (default: WhenEmpty for GPU pools, so a loaded model is never moved to
    pack nodes tighter; WhenEmptyOrUnderutilized for CPU pools)."""
    consolidateAfter: Annotated[str, Field(pattern=_DURATION)] = "5m"
    """How long a node must be consolidatable before Karpenter acts."""
    expireAfter: Annotated[str, Field(pattern=_DURATION)] | None = None
    """Node lifetime before replacement, or Never (default: Never for GPU pools, whose expiry would ignore the
    disruption budgets and could drain every GPU node at once; 720h for CPU pools). New AMIs roll in through
    drift either way, within the budgets."""
    terminationGracePeriod: Annotated[str, Field(pattern=r"^([0-9]+(s|m|h))+$")] = "1h"
    """Longest a node may take to drain before it is removed anyway (bounds do-not-disrupt pods on expiry)."""
    disruptionBudgets: list[DisruptionBudget] | None = None
    """Karpenter disruption budgets (default: one node at a time for GPU pools, 10% for CPU pools)."""

    @field_validator("instanceFamilies")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        problems = []
        for family in value:
            if family not in instance_types.known_families():
                hint = difflib.get_close_matches(family, sorted(instance_types.known_families()), n=1)
                problems.append(f"'{family}' is not a known EC2 instance family" + (f"; did you mean '{hint[0]}'?" if hint else ""))
            elif instance_types.is_unsupported_accelerator(family + ".x"):
                unknown = "is an accelerator family the platform does not know as an NVIDIA GPU (components/instance_types.py)"
                problems.append(f"'{family}' {unknown}")
        if problems:
            raise _fail("; ".join(problems))
        kinds = {instance_types.family_gpu(f) is not None for f in value}
        if len(kinds) > 1:
            cpu = sorted(f for f in value if instance_types.family_gpu(f) is None)
            raise _fail(f"mixes GPU and non-GPU families ({', '.join(cpu)} have no GPU); a GPU pool lists GPU families only")
        return value

    @model_validator(mode="after")
    def _shape(self) -> KarpenterPoolConfig:
        if not self.instanceFamilies and not self.instanceCategories:
            raise _fail("set instanceFamilies or instanceCategories")
        if self.gpu is not None and self.instanceCategories:
            raise _fail("a GPU pool names its GPU families in instanceFamilies; drop instanceCategories")
        if {"g", "p"} & set(self.instanceCategories):
            raise _fail("categories g and p are GPU categories; name the GPU families in instanceFamilies instead")
        arm = {instance_types.architecture(f + ".x") for f in self.instanceFamilies} - {
            "x86_64" if self.architecture == "amd64" else "arm64"
        }
        if arm:
            raise _fail(f"instanceFamilies include {arm.pop()} families but architecture is {self.architecture}")
        if self.gpu is not None and self.limits.gpus is None:
            raise _fail("a GPU pool needs limits.gpus, the most GPUs it may run")
        if self.gpu is None and self.limits.gpus is not None:
            raise _fail("limits.gpus applies to GPU pools only")
        sharing = self.gpuSharing
        if sharing is not None and sharing.timeSlicing is not None:
            # Karpenter sizes a node by physical GPUs (kubernetes-sigs/karpenter#729): pods pending together for
            # a slice each would buy a multi-GPU instance, which a GPU pool (consolidated only when empty) keeps.
            single = [f for f in self.instanceFamilies if 1 not in instance_types.family_gpu_counts(f)]
            if single:
                raise _fail(
                    f"a time-sliced Karpenter pool launches 1-GPU instances only (Karpenter sizes nodes by physical GPUs), "
                    f"and {', '.join(single)} has no 1-GPU size; use a family with one (g5, g6, g6e) or no sharing"
                )
        if sharing is not None and sharing.mig is not None and self.limits.gpus is not None:
            per_node = max(max(instance_types.family_gpu_counts(f)) for f in self.instanceFamilies)
            if self.limits.gpus % per_node:
                raise _fail(
                    f"limits.gpus {self.limits.gpus}: a MIG pool is limited in whole nodes of {per_node} GPUs "
                    f"(Karpenter counts MIG devices once a node registers); use a multiple of {per_node}"
                )
        return self

    @property
    def gpu(self) -> instance_types.GpuInfo | None:
        """GPUs of the pool's largest node (most GPUs over its families)."""
        infos = [info for f in self.instanceFamilies if (info := instance_types.family_gpu(f))]
        return max(infos, key=lambda info: info.count) if infos else None

    @property
    def families(self) -> list[str]:
        return list(self.instanceFamilies)

    @property
    def gpu_families(self) -> list[instance_types.GpuInfo]:
        return [info for f in self.instanceFamilies if (info := instance_types.family_gpu(f))]


def _pool_kind(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("kind", "managed")
    return getattr(value, "kind", "managed")


NodePoolConfig = Annotated[
    Annotated[ManagedPoolConfig, Tag("managed")] | Annotated[KarpenterPoolConfig, Tag("karpenter")],
    Discriminator(_pool_kind, custom_error_type="pool_kind", custom_error_message="unknown pool kind"),
]
POOL_MODELS: dict[str, type[BaseModel]] = {"managed": ManagedPoolConfig, "karpenter": KarpenterPoolConfig}
