"""The stack's configuration: one frozen, typed object, checked whole before any resource is declared.

Lookup order for every setting: an explicit component Args value (set by `infra/program.py`), then this
stack config (`Pulumi.<stack>.yaml` over the project defaults in `Pulumi.yaml`), then the defaults
declared on the models below.

Pulumi hands structured config values to the program as JSON, so object keys (`network`, `cluster`,
...) keep their YAML types and a string where a number belongs is an error, never a coercion. Every
problem is collected and reported at once as `<key path>: <what is wrong>`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from components import instance_types
from components.images import CHART_IMAGES
from infra import promql, versions

PROJECT = "ml-platform"

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy `retentionInDays`).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

# ECR pull-through cache upstreams: config name -> (upstream registry URL, needs a Secrets Manager credential).
PULL_THROUGH_UPSTREAMS: dict[str, tuple[str, bool]] = {
    "ecr-public": ("public.ecr.aws", False),
    "quay": ("quay.io", False),
    "k8s": ("registry.k8s.io", False),
    "docker-hub": ("registry-1.docker.io", True),
    "github": ("ghcr.io", True),
    "gitlab": ("registry.gitlab.com", True),
}

# Interface endpoints that nodes in private subnets commonly need (service name suffix after the region).
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts", "logs", "ec2", "elasticloadbalancing", "ssm", "ssmmessages", "ec2messages")

# An ECR registry of an account (another stack's, e.g. staging's, when a stack reproduces it).
_ECR_HOST = re.compile(r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/")
_ECR_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]$")
_IAM_PRINCIPAL = re.compile(r"^arn:aws(?:-cn|-us-gov)?:iam::\d{12}:(?:role|user)/[\w+=,.@/-]{1,512}$")
_SECRET_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache/[\w/+=.@-]+$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
# Under kubernetes.io and k8s.io, the NodeRestriction admission plugin lets a kubelet set only these.
_KUBELET_LABEL_PREFIXES = ("kubelet.kubernetes.io", "node.kubernetes.io")
# Tags the platform sets itself; a stack's `tags` may not override them.
RESERVED_TAG_KEYS = ("Name", "managed-by")
# Tags the platform sets, and those Karpenter's EC2NodeClass refuses (it sets them on its nodes itself).
RESERVED_TAG_PREFIXES = ("ml-platform/", "kubernetes.io/cluster/", "eks:", "karpenter.sh/", "karpenter.k8s.aws/")
MAX_USER_TAGS = 40  # AWS allows 50 per resource; the platform and Kubernetes controllers add their own
_K8S_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

# Namespaces the platform's own components run in, and Kubernetes' own: a model's name is its namespace, and
# a model named like one of these would declare (and on removal delete) a namespace it does not own.
PLATFORM_NAMESPACES = ("kube-system", "nvidia", "monitoring", "keda", "logging")
RESERVED_NAMESPACES = (*PLATFORM_NAMESPACES, "default", "kube-public", "kube-node-lease")
GPU_TAINT_KEY = "nvidia.com/gpu"
# Node labels the platform sets on pools itself (pool name, GPU presence, device-plugin config).
PLATFORM_LABELS = ("ml-platform/pool", "ml-platform/gpu-sharing", "nvidia.com/gpu.present", "nvidia.com/device-plugin.config")


class ConfigError(Exception):
    """Every problem found in a stack's configuration, each as (key path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = sorted(set(problems))
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{len(self.problems)} problem(s) in the stack configuration:"]
        lines += [f"  {path}: {message}" for path, message in self.problems]
        return "\n".join(lines)


def _fail(message: str) -> PydanticCustomError:
    # A custom error type carries our own message verbatim to ConfigError.
    return PydanticCustomError("mlplatform", message)


class _Model(BaseModel):
    # strict: "3" is not an int; extra=forbid: a misspelt key is an error; frozen: config is read-only.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=False)


def _check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise _fail(f"{value} is not a CloudWatch Logs retention period; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return value


def _check_cidr(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        raise _fail(f"'{value}' is not an IPv4 CIDR block ({err})") from None


class NetworkConfig(_Model):
    cidr: str = "10.0.0.0/16"
    """VPC IPv4 CIDR, private (RFC 1918), prefix /16 to /20."""
    azCount: Annotated[int, Field(ge=2, le=4)] = 2
    """How many availability zones to spread subnets over: 2 to 4 (EKS needs 2)."""
    availabilityZones: list[str] | None = None
    """Explicit AZ names (recommended in prod, so an AZ outage never moves subnets); else the first azCount available."""
    natGateways: Literal["single", "perAz"] = "single"
    """One shared NAT gateway (cheap) or one per AZ (no cross-AZ dependency)."""
    flowLogs: bool = False
    """VPC flow logs to CloudWatch Logs."""
    flowLogRetentionDays: int = 30
    """Retention of the flow log group; a CloudWatch retention period."""
    interfaceEndpoints: list[Literal[INTERFACE_ENDPOINTS]] = []  # type: ignore[valid-type]
    """Interface VPC endpoints to create (the S3 gateway endpoint is always there)."""

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = _check_cidr(value)
        if not network.is_private or not any(network.subnet_of(block) for block in _RFC1918):
            raise _fail(f"'{value}' is not a private range; use one inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
        if not 16 <= network.prefixlen <= 20:
            raise _fail(f"prefix /{network.prefixlen} is out of range; use /16 to /20 (room for pod IPs per AZ)")
        return value

    @field_validator("flowLogRetentionDays")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @model_validator(mode="after")
    def _zones(self) -> NetworkConfig:
        if self.availabilityZones is not None:
            if len(self.availabilityZones) != self.azCount:
                raise _fail(f"availabilityZones lists {len(self.availabilityZones)} zones but azCount is {self.azCount}")
            if len(set(self.availabilityZones)) != len(self.availabilityZones):
                raise _fail("availabilityZones has duplicates")
        return self


_RFC1918 = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class AdminAccess(_Model):
    principalArn: str
    """IAM role or user ARN given cluster access through an EKS access entry."""
    access: Literal["cluster-admin", "admin", "view"] = "cluster-admin"
    """Which EKS access policy to associate: AmazonEKSClusterAdminPolicy, AmazonEKSAdminPolicy, AmazonEKSViewPolicy."""
    namespaces: list[str] = []
    """Limit `admin`/`view` to these namespaces; empty means the whole cluster."""

    @field_validator("principalArn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not _IAM_PRINCIPAL.match(value):
            raise _fail(f"'{value}' is not an IAM role or user ARN (arn:aws:iam::<12-digit account>:role/<name>)")
        return value

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        for namespace in value:
            if not _K8S_NAMESPACE.match(namespace):
                raise _fail(f"'{namespace}' is not a Kubernetes namespace name")
        return value

    @model_validator(mode="after")
    def _scope(self) -> AdminAccess:
        if self.access == "cluster-admin" and self.namespaces:
            raise _fail("cluster-admin is cluster-wide; namespaces apply only to access 'admin' or 'view'")
        return self


class ClusterConfig(_Model):
    version: str = versions.DEFAULT_KUBERNETES_VERSION
    """Kubernetes version of the control plane; one of the versions pinned in infra/versions.py."""
    publicAccessCidrs: list[str] = []
    """CIDRs allowed to reach the public API endpoint; empty turns the public endpoint off (required in prod)."""
    privateAccessCidrs: list[str] = []
    """CIDRs outside the cluster (CI runners, VPN) allowed to the private endpoint on 443; prod deployers need one."""
    admins: list[AdminAccess] = []
    """Principals given access entries; nobody else (not even the creator) is admin. Include the role that runs
    `pulumi up`: it applies the in-cluster resources."""
    logRetentionDays: int = 90
    """Retention of the control-plane log group; a CloudWatch retention period."""

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value not in versions.EKS_RELEASES:
            raise _fail(f"'{value}' is not a pinned Kubernetes version; allowed: {', '.join(sorted(versions.EKS_RELEASES))}")
        return value

    @field_validator("publicAccessCidrs", "privateAccessCidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            if _check_cidr(cidr).prefixlen == 0:
                raise _fail(f"'{cidr}' opens the API to the whole internet; list office or VPN ranges instead")
        return value

    @field_validator("admins")
    @classmethod
    def _admins(cls, value: list[AdminAccess]) -> list[AdminAccess]:
        principals = [admin.principalArn for admin in value]
        repeated = sorted({p for p in principals if principals.count(p) > 1})
        if repeated:
            raise _fail(f"{', '.join(repeated)} listed more than once; EKS allows one access entry per principal")
        return value

    @field_validator("logRetentionDays")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)


class PullThroughCacheRule(_Model):
    upstream: Literal[tuple(PULL_THROUGH_UPSTREAMS)]  # type: ignore[valid-type]
    """Which public registry to cache."""
    prefix: str | None = None
    """ECR repository prefix for the cache, below the registries prefix (default: the upstream name)."""
    credentialArn: str | None = None
    """Secrets Manager secret `ecr-pullthroughcache/...` with upstream credentials (docker-hub, github, gitlab need one)."""

    @field_validator("prefix")
    @classmethod
    def _cache_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _ECR_NAME.match(value):
            raise _fail(f"'{value}' is not an ECR repository prefix (lowercase letters, digits, . _ - and / separators)")
        return value

    @field_validator("credentialArn")
    @classmethod
    def _credential(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_ARN.match(value):
            raise _fail(f"'{value}' is not a Secrets Manager ARN whose name starts with ecr-pullthroughcache/")
        return value

    @property
    def key(self) -> str:
        """The rule's prefix within the stack's registry namespace."""
        return self.prefix or self.upstream

    @model_validator(mode="after")
    def _needs_credential(self) -> PullThroughCacheRule:
        if PULL_THROUGH_UPSTREAMS[self.upstream][1] and self.credentialArn is None:
            raise _fail(f"upstream '{self.upstream}' requires credentialArn")
        return self


class RegistriesConfig(_Model):
    prefix: str | None = None
    """Namespace in front of every repository and cache prefix (default: the stack name; "" for none, when
    each stack has its own account)."""
    repositories: list[str] = []
    """ECR repository names to create, below the prefix."""
    untaggedExpiryDays: Annotated[int, Field(ge=1, le=365)] = 14
    """Untagged images are expired after this many days."""
    keepTaggedCount: Annotated[int, Field(ge=1, le=10000)] = 100
    """How many tagged images each repository keeps; older ones are expired."""
    pullThroughCache: list[PullThroughCacheRule] = []
    """Pull-through cache rules for public registries."""
    mirrors: dict[str, str] = {}
    """Chart images served from one of `repositories` instead of their upstream, by image key
    (components/images.py): for nvcr.io, which no pull-through cache serves, or to keep digest-pinned images
    in-account. Copy each image there at its chart's tag first."""

    @model_validator(mode="after")
    def _mirrors(self) -> RegistriesConfig:
        for key, repository in self.mirrors.items():
            if key not in CHART_IMAGES:
                raise _fail(f"mirrors: '{key}' is not a chart image; known: {', '.join(sorted(CHART_IMAGES))}")
            if repository not in self.repositories:
                raise _fail(f"mirrors.{key}: '{repository}' is not in repositories (the mirror is a repository of the platform)")
        return self

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value and not _ECR_NAME.match(value):
            raise _fail(f"'{value}' is not an ECR repository namespace (lowercase letters, digits, . _ - and / separators)")
        return value

    @field_validator("repositories")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not (2 <= len(name) <= 256 and _ECR_NAME.match(name)):
                raise _fail(f"'{name}' is not an ECR repository name (lowercase letters, digits, . _ - and / separators)")
        if len(set(value)) != len(value):
            raise _fail("repository names repeat")
        return value


class ModelStoreConfig(_Model):
    noncurrentVersionExpiryDays: Annotated[int, Field(ge=1, le=3650)] = 30
    """Superseded model artifact versions are deleted after this many days."""
    abortIncompleteUploadDays: Annotated[int, Field(ge=1, le=365)] = 7
    """Unfinished multipart uploads (large weights) are cleaned up after this many days."""


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
    """Initial node count (default minSize); the autoscaler owns it afterwards."""
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


_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$"
_DIGEST = r"^sha256:[0-9a-f]{64}$"
# Upstream images a model may run straight from (anything else comes from the platform's registry).
ALLOWED_UPSTREAM_IMAGES = ("docker.io/vllm/vllm-openai", "nvcr.io/nvidia/tritonserver", "public.ecr.aws/aws-cli/aws-cli")
RUNTIME_PORTS = {"vllm": 8000, "triton": 8000}


class ImageRef(_Model):
    repository: str
    """A repository of the platform's registry (`serving/vllm`) or an allowed upstream (`docker.io/vllm/vllm-openai`)."""
    tag: str | None = None
    """Image tag (never `latest`)."""
    digest: Annotated[str, Field(pattern=_DIGEST)] | None = None
    """Image digest `sha256:...`; required in prod, so what runs is exactly what was tested."""

    @model_validator(mode="after")
    def _pinned(self) -> ImageRef:
        if self.tag is None and self.digest is None:
            raise _fail("set tag or digest")
        if self.tag == "latest":
            raise _fail("'latest' floats; pin a version tag or a digest")
        return self

    @property
    def upstream(self) -> bool:
        return "." in self.repository.split("/", 1)[0]


class ModelSource(_Model):
    s3Prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]+/$")] | None = None
    """Prefix in the model store holding the weights (or Triton's model repository), ending in `/`."""
    hubId: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")] | None = None
    """Hugging Face model id, downloaded at start (not in prod: pods must not depend on an outside hub)."""
    hubTokenSecret: str | None = None
    """Kubernetes Secret (key `token`) in the model's namespace holding the hub token, mounted as a file."""

    @model_validator(mode="after")
    def _one(self) -> ModelSource:
        if (self.s3Prefix is None) == (self.hubId is None):
            raise _fail("set exactly one of s3Prefix or hubId")
        if self.hubTokenSecret is not None and self.hubId is None:
            raise _fail("hubTokenSecret goes with hubId")
        return self


class Replicas(_Model):
    min: Annotated[int, Field(ge=0, le=100)] = 1
    """Fewest replicas; 0 (dev only) needs autoscaling.activeHours."""
    max: Annotated[int, Field(ge=1, le=100)] = 1
    """Most replicas."""

    @model_validator(mode="after")
    def _order(self) -> Replicas:
        if self.min > self.max:
            raise _fail(f"min {self.min} is larger than max {self.max}")
        return self


class ActiveHours(_Model):
    start: str
    """Cron expression (minute hour day month weekday) when the model scales up from zero, e.g. `0 8 * * 1-5`."""
    end: str
    """Cron expression when it may go back to zero, e.g. `0 20 * * 1-5`."""
    timezone: str = "UTC"
    """IANA time zone of the two expressions."""


class Autoscaling(_Model):
    target: Annotated[float, Field(gt=0)] | None = None
    """Per-replica target: waiting requests (vLLM, default 5), queue time in ms (Triton, default 50), CPU percent (CPU
    models, default 70), or the value of `query` (custom GPU models)."""
    query: str | None = None
    """PromQL giving a custom GPU model's load (required for those; the runtime presets know their own)."""
    activeHours: ActiveHours | None = None
    """With replicas.min 0: when the model runs at least one replica. Queue metrics vanish with the last pod, so
    nothing else could wake a model at zero."""


class Exposure(_Model):
    type: Literal["cluster", "alb"] = "cluster"
    """Cluster-internal Service only, or also an ALB through the AWS Load Balancer Controller."""
    scheme: Literal["internal", "internet-facing"] = "internal"
    """ALB scheme."""
    certificateArn: str | None = None
    """ACM certificate for HTTPS; required for an internet-facing ALB."""

    @model_validator(mode="after")
    def _alb(self) -> Exposure:
        if self.type == "cluster" and (self.scheme != "internal" or self.certificateArn):
            raise _fail("scheme and certificateArn apply to type 'alb'")
        if self.scheme == "internet-facing" and not self.certificateArn:
            raise _fail("an internet-facing ALB needs certificateArn (HTTPS only)")
        return self


class Resources(_Model):
    cpu: Annotated[str, Field(pattern=_QUANTITY)]
    """CPU per replica (request and limit), e.g. `4` or `500m`."""
    memory: Annotated[str, Field(pattern=_QUANTITY)]
    """Memory per replica (request and limit), e.g. `24Gi`."""


class Slo(_Model):
    p99LatencySeconds: Annotated[float, Field(gt=0)] = 10.0
    """99th percentile request latency objective."""
    errorRatio: Annotated[float, Field(gt=0, lt=1)] = 0.01
    """Largest acceptable share of failed requests."""
    queueBacklog: Annotated[int, Field(ge=1)] = 20
    """Waiting requests (all replicas) that count as a backlog when sustained."""


class ModelConfig(_Model):
    runtime: Literal["vllm", "triton", "custom"]
    """Serving runtime preset."""
    image: ImageRef
    """Serving image."""
    source: ModelSource
    """Where the weights (or Triton's model repository) come from."""
    gpus: Annotated[int, Field(ge=0, le=16)] = 0
    """GPUs per replica (0 for CPU); vLLM's tensor parallelism follows it."""
    replicas: Replicas = Replicas()
    autoscaling: Autoscaling = Autoscaling()
    startupSeconds: Annotated[int, Field(ge=30, le=7200)] | None = None
    """Longest expected start (image pull, weights, load); default 900 for GPU models, 120 for CPU models."""
    exposure: Exposure = Exposure()
    resources: Resources
    port: Annotated[int, Field(ge=1024, le=65535)] | None = None
    """Serving port (custom runtime; presets use 8000)."""
    healthPath: str | None = None
    """Health endpoint (custom runtime)."""
    metricsPath: str = "/metrics"
    """Prometheus metrics path (custom runtime)."""
    args: list[str] = []
    """Extra arguments for the server."""
    allowedNamespaces: list[str] = []
    """Namespaces whose pods may call the model (the monitoring namespace always may scrape it)."""
    slo: Slo = Slo()

    @model_validator(mode="after")
    def _runtime(self) -> ModelConfig:
        if self.runtime == "triton" and self.source.s3Prefix is None:
            raise _fail("a triton model needs a model repository: source.s3Prefix")
        if self.runtime == "custom" and (self.port is None or self.healthPath is None):
            raise _fail("a custom model needs port and healthPath")
        if self.runtime != "custom" and (self.port is not None or self.healthPath is not None):
            raise _fail(f"port and healthPath are fixed by the {self.runtime} preset; remove them")
        if self.runtime == "custom" and self.gpus > 0 and self.autoscaling.query is None:
            raise _fail("a custom GPU model scales on a queue metric: set autoscaling.query")
        if self.replicas.min == 0 and self.autoscaling.activeHours is None:
            raise _fail("replicas.min 0 needs autoscaling.activeHours: with no pod left, nothing reports load to wake it")
        if self.replicas.min == 0 and self.gpus == 0:
            raise _fail("CPU models scale on CPU with an HPA, which cannot reach zero; use replicas.min 1")
        return self

    @property
    def serving_port(self) -> int:
        return self.port if self.port is not None else RUNTIME_PORTS[self.runtime]


def _check_label_key(key: str) -> None:
    """A label or taint key EKS accepts on a node group (1-63 characters in all) and a kubelet may set."""
    prefix, _, name = key.rpartition("/")
    if len(key) > 63 or not _LABEL_NAME.match(name) or (prefix and not _LABEL_PREFIX.match(prefix)):
        raise _fail(f"'{key}' is not a Kubernetes label key EKS accepts (at most 63 characters, [prefix/]name)")
    if prefix.endswith(("kubernetes.io", "k8s.io")) and not prefix.endswith(_KUBELET_LABEL_PREFIXES):
        raise _fail(
            f"'{key}' uses a reserved prefix; under kubernetes.io only {' and '.join(_KUBELET_LABEL_PREFIXES)} are allowed on nodes"
        )


class Receiver(_Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")]
    """Receiver name, used by routes."""
    slackWebhookUrl: str | None = None
    """Slack incoming-webhook URL (keep it a Pulumi secret: `pulumi config set --secret --path ...`)."""
    slackChannel: str | None = None
    """Slack channel, e.g. #ml-oncall."""
    pagerdutyRoutingKey: str | None = None
    """PagerDuty Events v2 routing key (a Pulumi secret)."""
    webhookUrl: str | None = None
    """Any Alertmanager webhook receiver URL (a Pulumi secret)."""

    @model_validator(mode="after")
    def _one(self) -> Receiver:
        kinds = [k for k in (self.slackWebhookUrl, self.pagerdutyRoutingKey, self.webhookUrl) if k is not None]
        if len(kinds) != 1:
            raise _fail("set exactly one of slackWebhookUrl, pagerdutyRoutingKey or webhookUrl")
        return self


class AlertRoute(_Model):
    receiver: str
    """Receiver of the alerts this route matches."""
    matchers: Annotated[list[Annotated[str, Field(pattern=r'^[a-zA-Z_][a-zA-Z0-9_]*(=|!=|=~|!~)"[^"]*"$')]], Field(min_length=1)]
    """Alertmanager matchers, e.g. `severity="critical"`."""


class MonitoringConfig(_Model):
    retention: Annotated[str, Field(pattern=r"^[0-9]+(h|d|w)$")] | None = None
    """How long Prometheus keeps samples (default 3d in dev, 15d elsewhere)."""
    storageGiB: Annotated[int, Field(ge=10, le=16384)] | None = None
    """Persistent gp3 volume for Prometheus (default none in dev, 100 elsewhere; required outside dev)."""
    prometheusMemory: Annotated[str, Field(pattern=_QUANTITY)] = "4Gi"
    """Memory limit of Prometheus."""
    receivers: list[Receiver] = []
    """Where alerts go."""
    routes: list[AlertRoute] = []
    """Which alerts go where (first match wins); unmatched alerts go to defaultReceiver."""
    defaultReceiver: str | None = None
    """Receiver of every alert no route takes (required once receivers exist)."""
    ampRemoteWrite: bool = False
    """Also write metrics to Amazon Managed Service for Prometheus (a workspace, SigV4, Pod Identity)."""
    logRetentionDays: int = 30
    """Retention of the container log groups; a CloudWatch retention period."""
    logNamespaces: list[str] = []
    """Namespaces besides the platform's and the models' whose container logs are shipped, each to a declared
    log group (a team's `apps`); logs of any other namespace stay on the nodes."""

    @field_validator("logRetentionDays")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @field_validator("logNamespaces")
    @classmethod
    def _log_namespaces(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not _K8S_NAMESPACE.match(n) or n == "unlabelled" or re.fullmatch(r"pr-[0-9]+", n)]
        if bad:
            raise _fail(
                f"{', '.join(repr(n) for n in bad)}: not a namespace name, or one whose group another owns "
                "('unlabelled' is the platform's; pr-<number> namespaces are previews', which declare their own)"
            )
        if len(set(value)) != len(value):
            raise _fail("a namespace is listed twice")
        return value

    @model_validator(mode="after")
    def _routing(self) -> MonitoringConfig:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise _fail("receiver names repeat")
        for receiver in [r.receiver for r in self.routes] + ([self.defaultReceiver] if self.defaultReceiver else []):
            if receiver not in names:
                raise _fail(f"receiver '{receiver}' is not defined in receivers")
        if self.receivers and self.defaultReceiver is None:
            raise _fail("set defaultReceiver: every alert must go somewhere")
        return self


class PinsConfig(_Model):
    addons: dict[str, Annotated[str, Field(pattern=r"^v[0-9][0-9A-Za-z.+-]*-eksbuild\.[0-9]+$")]] = {}
    """EKS add-on versions overriding infra/versions.py (written by `python -m infra reproduce`)."""
    amiRelease: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+-[0-9]{8}$")] | None = None
    """AL2023 AMI release (e.g. 1.36.3-20260903) overriding infra/versions.py."""
    charts: dict[str, Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([.-][0-9A-Za-z.-]+)?$")]] = {}
    """Chart versions by chart key overriding infra/versions.py."""
    images: dict[str, Annotated[str, Field(pattern=_DIGEST)]] = {}
    """Digests (`sha256:...`) of the charts' images by image key (components/images.py); prod gives one for every
    image whose chart takes a digest. They belong to the pinned chart versions: move them together."""

    @field_validator("addons")
    @classmethod
    def _addons(cls, value: dict[str, str]) -> dict[str, str]:
        known = set(versions.EKS_RELEASES[versions.DEFAULT_KUBERNETES_VERSION].addons)
        for name in value:
            if name not in known:
                raise _fail(f"'{name}' is not an add-on the platform installs; known: {', '.join(sorted(known))}")
        return value

    @field_validator("images")
    @classmethod
    def _images(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in CHART_IMAGES:
                raise _fail(f"'{name}' is not a chart image; known: {', '.join(sorted(CHART_IMAGES))}")
            if CHART_IMAGES[name].digest_key is None:
                raise _fail(f"the {CHART_IMAGES[name].chart} chart takes no digest for '{name}'; pin it through a mirror instead")
        return value

    @field_validator("charts")
    @classmethod
    def _charts(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in versions.CHARTS:
                raise _fail(f"'{name}' is not a chart the platform installs; known: {', '.join(sorted(versions.CHARTS))}")
        return value


class ServingConfig(_Model):
    loaderImage: ImageRef = ImageRef(repository=versions.LOADER_IMAGE[0], tag=versions.LOADER_IMAGE[1])
    """AWS CLI image of the init step that copies weights from the model store (needs a digest in prod)."""
    imageRegistryPrefix: str | None = None
    """Registry prefix the models' platform images are pulled from (default: this stack's `registries.prefix`).
    Preview stacks pull the images of the stack they preview (same account), whose registry holds them."""

    @field_validator("imageRegistryPrefix")
    @classmethod
    def _image_registry_prefix(cls, value: str | None) -> str | None:
        if value and not _ECR_NAME.match(value):
            raise _fail(f"'{value}' is not an ECR repository namespace (lowercase letters, digits, . _ - and / separators)")
        return value


_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class PreviewConfig(_Model):
    """A pull-request preview stack (written by `python -m infra preview-stack create`)."""

    mode: Literal["namespace", "full"] = "namespace"
    """namespace: only the models, in namespace `pr-<pr>` of the base stack's cluster; full: a whole platform."""
    baseStack: str = "dev"
    """The stack whose config the preview starts from and, in namespace mode, whose cluster it runs in
    (a StackReference name: `dev`, or `<org>/ml-platform/dev`)."""
    ttlHours: int = Field(default=72, ge=1, le=720)
    """How long a preview lives after its last create or update before the sweep removes it."""
    pr: int | None = Field(default=None, ge=1)
    """The pull request's number (set by preview-stack create)."""
    expiresAt: str | None = None
    """UTC time (`YYYY-MM-DDTHH:MM:SSZ`) after which the sweep removes the stack (set by preview-stack create)."""

    @field_validator("baseStack")
    @classmethod
    def _base_stack(cls, value: str) -> str:
        if not re.fullmatch(r"(?:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/)?[a-z][a-z0-9-]{0,29}", value):
            raise _fail(f"'{value}' is not a stack name (`dev`) or a fully qualified one (`<org>/ml-platform/dev`)")
        return value

    @field_validator("expiresAt")
    @classmethod
    def _expires_at(cls, value: str | None) -> str | None:
        if value is not None and not _ISO_UTC.match(value):
            raise _fail(f"'{value}' is not a UTC time like 2026-11-23T18:00:00Z")
        return value

    @property
    def base_stack_name(self) -> str:
        """The base stack's own name (the last part of a fully qualified reference)."""
        return self.baseStack.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        """Namespace of a namespace-mode preview in the base cluster."""
        return f"pr-{self.pr}"


class StackConfig(_Model):
    """The whole stack's configuration. Keys mirror the `ml-platform:*` Pulumi config keys."""

    stack: str
    """Pulumi stack name (not a config key; given by Pulumi)."""
    region: str
    """AWS region, from `aws:region`."""
    environment: Literal["dev", "staging", "prod"]
    """Which environment this stack is; prod turns on the hardening checks below."""
    protectStatefulResources: bool = False
    """Protect and retain the cluster, KMS keys, registries and model store (prod must)."""
    ephemeral: bool = False
    """A throwaway stack: registries and the model store may be deleted with their contents."""
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    registries: RegistriesConfig = RegistriesConfig()
    modelStore: ModelStoreConfig = ModelStoreConfig()
    nodePools: dict[str, NodePoolConfig]
    """Node pools by name; `system` (CPU, on-demand) is required and runs the platform's controllers."""
    tags: dict[str, str] = {}
    """Tags added to every AWS resource."""
    models: dict[str, ModelConfig] = {}
    """Models to serve, by name (also their namespace)."""
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    pins: PinsConfig = PinsConfig()
    preview: PreviewConfig | None = None
    """Set on pull-request preview stacks only."""

    @property
    def registry_prefix(self) -> str:
        """Namespace of the stack's ECR repositories and caches: the configured one, else the stack name."""
        return self.stack if self.registries.prefix is None else self.registries.prefix

    @property
    def image_registry_prefix(self) -> str:
        """Prefix of the repositories the models' platform images come from."""
        return self.registry_prefix if self.serving.imageRegistryPrefix is None else self.serving.imageRegistryPrefix

    def cache_prefix(self, rule: PullThroughCacheRule) -> str:
        """The ECR repository prefix of a pull-through cache rule, below the registry prefix."""
        return "/".join(part for part in (self.registry_prefix, rule.key) if part)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        regions = versions.eks_regions()
        if value not in regions:
            hint = difflib.get_close_matches(value, regions, n=1)
            raise _fail(f"'{value}' is not an AWS region with EKS" + (f"; did you mean '{hint[0]}'?" if hint else ""))
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_USER_TAGS:
            raise _fail(f"{len(value)} tags; at most {MAX_USER_TAGS} (AWS allows 50 per resource, the platform adds its own)")
        for key, tag in value.items():
            if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
                raise _fail(f"tag key '{key}' must be 1-128 characters and not start with 'aws:'")
            if key in RESERVED_TAG_KEYS or key.startswith(RESERVED_TAG_PREFIXES):
                raise _fail(f"tag key '{key}' is set by the platform, EKS or Karpenter and cannot be set here")
            if len(tag) > 256:
                raise _fail(f"tag '{key}' value is longer than 256 characters")
            if not all(ch.isalnum() or ch.isspace() or ch in "_.:/=+-@" for ch in key + tag):
                raise _fail(f"tag '{key}' uses characters AWS does not allow (letters, digits, spaces and _ . : / = + - @)")
        return value

    @field_validator("nodePools")
    @classmethod
    def _pool_names(cls, value: dict[str, NodePoolConfig]) -> dict[str, NodePoolConfig]:
        for name in value:
            if not _POOL_NAME.match(name):
                raise _fail(f"pool name '{name}' must be 2-20 lowercase letters, digits or '-', starting with a letter")
            if name == "default":
                raise _fail("pool name 'default' is taken by the device plugin's default config; choose another")
        return value


def _cross_checks(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules that span sections; each returns (path, message)."""
    problems: list[tuple[str, str]] = []
    prod = cfg.environment == "prod"

    if not re.fullmatch(r"[a-z][a-z0-9-]{0,29}", cfg.stack):
        problems.append(("stack", f"'{cfg.stack}' must be 1-30 lowercase letters, digits or '-': it names the cluster and the bucket"))

    if cfg.network.availabilityZones is not None:
        for index, zone in enumerate(cfg.network.availabilityZones):
            if not re.fullmatch(re.escape(cfg.region) + r"[a-z]", zone):
                problems.append((f"network.availabilityZones[{index}]", f"'{zone}' is not an availability zone of {cfg.region}"))

    if not any(admin.access == "cluster-admin" for admin in cfg.cluster.admins):
        problems.append(("cluster.admins", "needs at least one cluster-admin: the role that runs `pulumi up` applies in-cluster resources"))

    prefixes = [cfg.cache_prefix(rule) for rule in cfg.registries.pullThroughCache]
    for index, full in enumerate(prefixes):
        if not 2 <= len(full) <= 30:
            problems.append((f"registries.pullThroughCache[{index}].prefix", f"'{full}' must be 2-30 characters (ECR's limit)"))
    if len(set(prefixes)) != len(prefixes):
        problems.append(("registries.pullThroughCache", "two rules share a prefix"))

    system = cfg.nodePools.get("system")
    if system is None:
        problems.append(("nodePools.system", "required: the CPU on-demand pool that runs the platform's controllers"))
    elif not isinstance(system, ManagedPoolConfig):
        problems.append(("nodePools.system.kind", "the system pool must be 'managed': it runs Karpenter itself"))
    else:
        if system.gpu is not None:
            problems.append(("nodePools.system.instanceTypes", "the system pool must be CPU-only"))
        if system.capacityType != "ON_DEMAND":
            problems.append(("nodePools.system.capacityType", "the system pool must be ON_DEMAND (controllers must not vanish with spot)"))
        if system.minSize < 1:
            problems.append(("nodePools.system.minSize", "the system pool needs at least 1 node"))
        if prod and system.minSize < 2:
            problems.append(("nodePools.system.minSize", f"prod needs at least 2 system nodes, got {system.minSize}"))
        repelling = [t for t in system.taints if t.effect != "PreferNoSchedule"]
        if repelling:
            problems.append(
                (
                    "nodePools.system.taints",
                    f"the platform's controllers tolerate no {repelling[0].key}={repelling[0].value}:{repelling[0].effect}; "
                    "nothing would run on the system pool (models already keep off it)",
                )
            )

    for name, pool in cfg.nodePools.items():
        if isinstance(pool, KarpenterPoolConfig) and pool.zones is not None:
            for index, zone in enumerate(pool.zones):
                known = cfg.network.availabilityZones
                if (known is not None and zone not in known) or not re.fullmatch(re.escape(cfg.region) + r"[a-z]", zone):
                    where = f"one of {', '.join(known)}" if known is not None else f"a zone of {cfg.region}"
                    problems.append((f"nodePools.{name}.zones[{index}]", f"'{zone}' is not {where}"))

    for name, model in cfg.models.items():
        if not _K8S_NAMESPACE.match(name) or len(name) > 40:
            problems.append((f"models.{name}", "model names become namespaces: up to 40 lowercase letters, digits and '-'"))
        elif name in RESERVED_NAMESPACES:
            owned = f"'{name}' is a namespace the platform or Kubernetes owns, and a model's name is its namespace"
            problems.append((f"models.{name}", owned))
        problems += _autoscaling_problems(name, model)
        image = model.image
        if image.upstream and not image.repository.startswith(ALLOWED_UPSTREAM_IMAGES) and not _ECR_HOST.match(image.repository):
            problems.append(
                (
                    f"models.{name}.image.repository",
                    f"'{image.repository}' is neither a platform repository nor one of {', '.join(ALLOWED_UPSTREAM_IMAGES)}",
                )
            )
        if not image.upstream and image.repository not in cfg.registries.repositories:
            problems.append((f"models.{name}.image.repository", f"'{image.repository}' is not in registries.repositories"))
        for index, namespace in enumerate(model.allowedNamespaces):
            if not _K8S_NAMESPACE.match(namespace):
                problems.append((f"models.{name}.allowedNamespaces[{index}]", f"'{namespace}' is not a namespace name"))
        if prod:
            if image.digest is None:
                problems.append((f"models.{name}.image.digest", "prod runs images by digest"))
            if model.replicas.min == 0:
                problems.append((f"models.{name}.replicas.min", "prod does not scale to zero: a cold start takes minutes"))
            if model.source.hubId is not None:
                problems.append((f"models.{name}.source", "prod loads weights from the model store, not an outside hub"))
    if cfg.environment != "dev" and cfg.monitoring.storageGiB is not None and cfg.monitoring.storageGiB < 50:
        problems.append(("monitoring.storageGiB", "staging and prod keep at least 50 GiB of metrics"))
    if prod and not cfg.monitoring.receivers:
        problems.append(("monitoring.receivers", "prod alerts must reach someone: add a receiver and defaultReceiver"))
    if cfg.pins.amiRelease is not None and not cfg.pins.amiRelease.startswith(f"{cfg.cluster.version}."):
        problems.append(("pins.amiRelease", f"'{cfg.pins.amiRelease}' is not a release of Kubernetes {cfg.cluster.version}"))
    if prod and cfg.models and cfg.serving.loaderImage.digest is None:
        problems.append(("serving.loaderImage.digest", "prod runs images by digest"))
    # The karpenter chart ships its controller's digest; the monitoring stack's images take one each.
    digests = [k for k, image in sorted(CHART_IMAGES.items()) if image.digest_key and image.chart != "karpenter"]
    unpinned = [k for k in digests if k not in cfg.pins.images]
    if prod and unpinned:
        problems.append(
            (
                "pins.images",
                f"prod runs chart images by digest; missing: {', '.join(unpinned)} (the digest of each at its chart's tag, "
                "e.g. `crane digest quay.io/prometheus/prometheus:<tag>`)",
            )
        )

    if cfg.protectStatefulResources and cfg.ephemeral:
        problems.append(("ephemeral", "an ephemeral stack cannot also protect its stateful resources"))
    if prod:
        if not cfg.protectStatefulResources:
            problems.append(("protectStatefulResources", "prod must protect its stateful resources (set true)"))
        if cfg.ephemeral:
            problems.append(("ephemeral", "prod cannot be ephemeral"))
        if cfg.cluster.publicAccessCidrs:
            problems.append(("cluster.publicAccessCidrs", "prod has a private API endpoint only; remove the public CIDRs"))
        if cfg.network.azCount < 3:
            problems.append(("network.azCount", f"prod spreads over at least 3 AZs, got {cfg.network.azCount}"))
        if cfg.network.natGateways != "perAz":
            problems.append(("network.natGateways", "prod needs one NAT gateway per AZ ('perAz')"))
        if not cfg.network.flowLogs:
            problems.append(("network.flowLogs", "prod must keep VPC flow logs (set true)"))
    if cfg.preview is not None:
        problems += _preview_checks(cfg, cfg.preview)
    return problems


def _autoscaling_problems(name: str, model: ModelConfig) -> list[tuple[str, str]]:
    """Autoscaling settings that would be ignored, or would read missing metrics as load."""
    at = f"models.{name}.autoscaling"
    scaling = model.autoscaling
    problems = []
    if scaling.activeHours is not None and model.replicas.min > 0:
        problems.append((f"{at}.activeHours", "applies to models that scale to zero (replicas.min 0); with a minimum it would do nothing"))
    if scaling.query is not None and (model.runtime != "custom" or model.gpus == 0):
        what = "CPU models scale on CPU" if model.gpus == 0 else f"the {model.runtime} preset scales on its own queue metric"
        problems.append((f"{at}.query", f"applies to custom GPU models only: {what}"))
    elif scaling.query is not None:
        try:
            series = promql.series(scaling.query)
            invented = promql.functions(scaling.query) & promql.INVENTS_VALUES
        except ValueError as error:
            return [*problems, (f"{at}.query", str(error))]
        if invented:
            problems.append(
                (f"{at}.query", f"{', '.join(sorted(invented))}() turns missing series into a value, so a scrape outage would read as load")
            )
        if not any(matchers.get("namespace") == name for _, matchers in series):
            problems.append((f"{at}.query", f'must read the model\'s own series, selected with namespace="{name}"'))
    if model.gpus == 0 and scaling.target is not None and (scaling.target < 1 or scaling.target != int(scaling.target)):
        problems.append((f"{at}.target", f"a CPU model's target is a whole percent of its CPU request (1 or more), got {scaling.target:g}"))
    return problems


def _preview_checks(cfg: StackConfig, preview: PreviewConfig) -> list[tuple[str, str]]:
    """A preview is throwaway by construction: nothing protected, nothing kept, and never prod."""
    problems: list[tuple[str, str]] = []
    if cfg.environment == "prod":
        problems.append(("environment", "a preview stack cannot be prod"))
    if not cfg.ephemeral:
        problems.append(("ephemeral", "a preview stack is ephemeral (set true)"))
    if preview.pr is None:
        problems.append(("preview.pr", "required: the pull request's number (preview-stack create sets it)"))
    if preview.expiresAt is None:
        problems.append(("preview.expiresAt", "required: when the preview expires (preview-stack create sets it)"))
    if preview.base_stack_name == cfg.stack:
        problems.append(("preview.baseStack", f"'{preview.baseStack}' is this stack itself"))
    if preview.mode == "namespace":
        if not cfg.models:
            problems.append(("models", "a namespace preview deploys the models, and there are none"))
        for name, model in sorted(cfg.models.items()):
            if model.exposure.type == "alb":
                problems.append(
                    (f"models.{name}.exposure", "a namespace preview creates no load balancers: use {type: cluster}, or mode full")
                )
    else:
        for name, pool in sorted(cfg.nodePools.items()):
            if pool.gpu is not None and isinstance(pool, ManagedPoolConfig) and pool.minSize > 0:
                problems.append((f"nodePools.{name}.minSize", "a full preview keeps no idle GPU node: set 0"))
    return problems


# Top-level config keys, in the `ml-platform` namespace, and whether Pulumi hands them over as JSON objects.
OBJECT_KEYS = ("network", "cluster", "registries", "modelStore", "nodePools", "tags", "models", "serving", "monitoring", "pins", "preview")
SCALAR_KEYS = ("environment", "protectStatefulResources", "ephemeral")
BOOLEAN_KEYS = ("protectStatefulResources", "ephemeral")


def parse(raw: Mapping[str, str], stack: str) -> StackConfig:
    """Build the typed config from raw Pulumi config (`namespace:key` -> string, as the engine passes it).

    Raises ConfigError listing every problem.
    """
    problems: list[tuple[str, str]] = []
    data: dict[str, Any] = {"stack": stack}
    allowed = set(OBJECT_KEYS) | set(SCALAR_KEYS)

    region = raw.get("aws:region")
    if region is None:
        problems.append(("aws:region", "required: set it with `pulumi config set aws:region <region>`"))
    else:
        data["region"] = region

    for full_key, text in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        if key not in allowed:
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            problems.append((key, "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(sorted(allowed))}")))
        elif key in OBJECT_KEYS:
            try:
                data[key] = json.loads(text)
            except json.JSONDecodeError:
                problems.append((key, f"expected an object, got the string {text!r}"))
                continue
            if key == "preview" and data[key] == {}:
                del data[key]  # Pulumi.yaml's default: not a preview stack
        elif key in BOOLEAN_KEYS:
            if text not in ("true", "false"):
                problems.append((key, f"expected true or false, got {text!r}"))
            else:
                data[key] = text == "true"
        else:
            data[key] = text

    try:
        cfg = StackConfig.model_validate(data)
    except ValidationError as err:
        problems += [_describe(error) for error in err.errors()]
        # stack/region problems already reported through their own keys
        raise ConfigError(problems) from None
    problems += _cross_checks(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in _without_pool_tag(location):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into (key path, message) in the platform's words."""
    location = tuple(error["loc"])
    kind = error["type"]
    given = error.get("input")
    if kind == "extra_forbidden":
        parent_model = _model_at(location[:-1])
        allowed = sorted(parent_model.model_fields) if parent_model else []
        hint = difflib.get_close_matches(str(location[-1]), allowed, n=1)
        return _path(location), "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(allowed)}")
    if kind == "missing":
        return _path(location), "required key is missing"
    if kind == "literal_error":
        return _path(location), f"{given!r} is not allowed; expected {error['ctx']['expected']}"
    if kind in ("int_type", "bool_type", "string_type", "list_type", "dict_type", "model_type", "model_attributes_type", "float_type"):
        expected = {
            "int_type": "an integer",
            "bool_type": "true or false",
            "string_type": "a string",
            "list_type": "a list",
            "dict_type": "an object",
            "model_type": "an object",
            "model_attributes_type": "an object",
            "float_type": "a number",
        }[kind]
        return _path(location), f"expected {expected}, got {type(given).__name__} {given!r}"
    if kind == "mlplatform":
        return _path(location), error["msg"]
    if kind == "pool_kind":
        return _path((*location, "kind")), f"{given.get('kind')!r} is not allowed; expected 'managed' or 'karpenter'"
    return _path(location), f"{error['msg']} (got {given!r})"


def _without_pool_tag(location: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic puts the union tag in the location (nodePools.gpu.karpenter.limits); users never write it."""
    if len(location) > 2 and location[0] == "nodePools" and location[2] in POOL_MODELS:
        return location[:2] + location[3:]
    return location


def _model_at(location: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the fields at `location`, following dict and list nesting."""
    model: Any = StackConfig
    for index, part in enumerate(location):
        if index == 2 and location[0] == "nodePools" and part in POOL_MODELS:
            model = POOL_MODELS[part]
            continue
        annotation = (
            model.model_fields[part].annotation
            if isinstance(part, str) and hasattr(model, "model_fields") and part in model.model_fields
            else None
        )
        if annotation is None:
            # inside a dict or list: keep the model of the values / items
            continue
        model = _inner_model(annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None
