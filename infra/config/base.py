"""Constants, the base model and the error every config problem is reported with."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

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
_ECR_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
_POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]\Z")
_IAM_PRINCIPAL = re.compile(r"^arn:aws(?:-cn|-us-gov)?:iam::\d{12}:(?:role|user)/[\w+=,.@/-]{1,512}\Z")
_SECRET_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache/[\w/+=.@-]+\Z")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?\Z")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?\Z")
# Under kubernetes.io and k8s.io, the NodeRestriction admission plugin lets a kubelet set only these.
_KUBELET_LABEL_PREFIXES = ("kubelet.kubernetes.io", "node.kubernetes.io")
# Tags the platform sets itself; a stack's `tags` may not override them.
RESERVED_TAG_KEYS = ("Name", "managed-by")
# Tags the platform sets, and those Karpenter's EC2NodeClass refuses (it sets them on its nodes itself).
RESERVED_TAG_PREFIXES = ("ml-platform/", "kubernetes.io/cluster/", "eks:", "karpenter.sh/", "karpenter.k8s.aws/")
MAX_USER_TAGS = 40  # AWS allows 50 per resource; the platform and Kubernetes controllers add their own
_K8S_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")

# Namespaces the platform's own components run in, and Kubernetes' own: a model's name is its namespace, and
# a model named like one of these would declare (and on removal delete) a namespace it does not own.
PLATFORM_NAMESPACES = ("kube-system", "nvidia", "monitoring", "keda", "logging", "mlflow")
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


def _fail_all(items: list[tuple[str, str]]) -> PydanticCustomError:
    """Several problems of one object in one error: (key path below the object, "" for the object; message).
    ConfigError shows each at its own path (rendering._describe_all)."""
    joined = "; ".join(f"{sub}: {message}" if sub else message for sub, message in items)
    return PydanticCustomError("mlplatform_many", joined.replace("{", "{{").replace("}", "}}"), {"items": items})


class _Model(BaseModel):
    # strict: "3" is not an int; extra=forbid: a misspelt key is an error; frozen: config is read-only.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=False)


_CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)\Z")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)\Z")


def _check_cpu(value: str) -> str:
    """A CPU quantity (Kubernetes' grammar, resource.Quantity): cores or millicores, more than none."""
    if not _CPU.match(value) or float(value.removesuffix("m") or 0) == 0:
        raise _fail(f"'{value}' is not a CPU quantity: cores ('4', '0.5') or millicores ('500m'), more than 0")
    return value


def _check_memory(value: str) -> str:
    """A memory quantity with a unit: without one it counts bytes, and `m` is thousandths of a byte."""
    if not _MEMORY.match(value) or float(re.sub(r"[A-Za-z]+$", "", value)) == 0:
        raise _fail(
            f"'{value}' is not a memory quantity with a unit: Ki, Mi, Gi, Ti (binary) or k, M, G, T (decimal), e.g. '24Gi'"
            + ("; without one it would be bytes" if value.replace(".", "", 1).isdigit() else "")
        )
    return value


def _check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise _fail(f"{value} is not a CloudWatch Logs retention period; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return value


def _check_cidr(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        raise _fail(f"'{value}' is not an IPv4 CIDR block ({err})") from None


def _check_label_key(key: str) -> None:
    """A label or taint key EKS accepts on a node group (1-63 characters in all) and a kubelet may set."""
    prefix, _, name = key.rpartition("/")
    if len(key) > 63 or not _LABEL_NAME.match(name) or (prefix and not _LABEL_PREFIX.match(prefix)):
        raise _fail(f"'{key}' is not a Kubernetes label key EKS accepts (at most 63 characters, [prefix/]name)")
    if prefix.endswith(("kubernetes.io", "k8s.io")) and not prefix.endswith(_KUBELET_LABEL_PREFIXES):
        raise _fail(
            f"'{key}' uses a reserved prefix; under kubernetes.io only {' and '.join(_KUBELET_LABEL_PREFIXES)} are allowed on nodes"
        )


def check_cron(value: str, parser: str, consequence: str) -> str:
    """A five-field cron expression as robfig/cron v3's standard parser reads it (KEDA's cron scaler, and
    Kubernetes' CronJob controller): croniter (maintained) parses it, then what croniter takes and robfig/cron does
    not is refused (L, W, #; day-of-week 7), and so is an expression that never fires. `parser` names who reads
    it, `consequence` what a date that never comes would mean. Raises the config error otherwise."""
    fields = value.split()
    if len(fields) != 5 or not croniter.is_valid(value):
        raise _fail(f"'{value}' is not a five-field cron expression (minute hour day-of-month month day-of-week), e.g. '0 8 * * 1-5'")
    if re.search(r"[LW#]", re.sub(r"[A-Z]{3}", "", value.upper())):  # month and day names (JUL, WED) aside
        raise _fail(f"'{value}': {parser} (robfig/cron) has no L, W or #; use plain ranges and lists")
    if re.search(r"(?<![0-9])7(?![0-9])", fields[4]):
        raise _fail(f"'{value}': day-of-week is 0-6 in {parser} (robfig/cron); Sunday is 0")
    try:
        croniter(value, datetime(2026, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise _fail(f"'{value}' never fires (no such date), so {consequence}") from None
    return value


_STORE_PREFIX = re.compile(r"^[A-Za-z0-9!_.'()-]+(/[A-Za-z0-9!_.'()-]+)*/\Z")


def check_store_prefix(value: str) -> str:
    """A key prefix of the model store that IAM statements are written for (`<bucket>/<prefix>*`): S3's safe
    characters (letters, digits, ! _ . ' ( ) -) in non-empty segments, ending in `/`. No `*` or `?`: in an IAM
    resource they are wildcards, and a prefix `*/` would give a role every object of the store."""
    if "*" in value or "?" in value:
        raise _fail(f"'{value}' holds an IAM wildcard (* or ?): it would widen the role's access beyond the prefix; name it exactly")
    if not _STORE_PREFIX.match(value):
        raise _fail(f"'{value}' is not a key prefix: segments of letters, digits and ! _ . ' ( ) -, ending in '/', e.g. 'fraud-xgb/v7/'")
    return value
