"""What a model's Kubernetes objects are made from (ModelSpec), the labels and metadata every one carries, and
the paths and identities its pods use."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ml_platform.components.model_service.capture import METRICS_PORT as CAPTURE_METRICS_PORT
from ml_platform.components.model_service.capture import PORT as CAPTURE_PORT
from ml_platform.components.model_service.capture import CaptureSpec
from ml_platform.components.model_service.metric_drift import MetricDriftSpec
from ml_platform.components.model_service.monitor_job import MonitorSpec

MODELS_DIR = "/models"
CACHE_DIR = "/cache"
HOME_DIR = "/home/app"
HUB_TOKEN_DIR = "/var/run/secrets/hub"
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
DRAIN_SECONDS = 15  # time for endpoints to drop the pod before it stops taking requests
COLD_START_ANNOTATION = "ml-platform/cold-start-seconds"
WEIGHTS_READY_MARKER = ".ml-platform-synced"
"""The object `models sync` writes last under a locked version's prefix: its weights are complete."""


RUNTIMES = ("vllm", "triton", "custom")
LOAD_FORMATS = ("auto", "runai_streamer")
TRANSFER_CLIENTS = ("crt", "classic", "auto")
ALB_SCHEMES = ("internal", "internet-facing")
# Namespaces a model's name (its namespace) must not take: Kubernetes' own and the platform's.
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "nvidia", "monitoring", "keda", "logging")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?\Z")


@dataclass(frozen=True)
class ModelSpec:
    """Everything a model's Kubernetes objects are made from, in Kubernetes' terms. Checked when made: a value
    Kubernetes or the load balancer controller would refuse, or one that would make the model's objects take
    over something it does not own (a reserved namespace), raises ValueError naming the field and what is
    allowed (the platform's stack config reports the same mistakes at their config keys first)."""

    name: str
    """Model name, 1-40 lowercase letters, digits and '-': the app label, and its namespace unless it shares one
    (never one of RESERVED_NAMESPACES)."""
    runtime: str
    """One of RUNTIMES: vllm, triton or custom (the preset of args, probes, ports and metrics)."""
    image: str
    """Full image reference (`repo:tag` or `repo@sha256:...`), never `:latest`."""
    loader_image: str
    """AWS CLI image of the init step copying weights from the model store."""
    cpu: str
    """CPU request per replica, a Kubernetes quantity (`2`, `500m`)."""
    memory: str
    """Memory request and limit per replica, a Kubernetes quantity (`4Gi`)."""
    port: int
    """The server's HTTP port, 1-65535."""
    health_path: str
    """HTTP path of the readiness and liveness probes."""
    metrics_path: str
    """HTTP path Prometheus scrapes."""
    startup_seconds: int
    """Longest time from the server container's start to ready (the startup probe's budget), seconds."""
    min_replicas: int
    """Fewest replicas, 0 (scale to zero, GPU models on KEDA) or more."""
    max_replicas: int
    """Most replicas, at least 1 and at least min_replicas."""
    target: float
    """Autoscaling target per replica (queue depth, queue ms, or CPU percent)."""
    prometheus_url: str
    """Prometheus's URL inside the cluster, which a GPU model's KEDA ScaledObject queries."""
    monitoring_namespace: str
    """Namespace of Prometheus, whose scrapes the model's NetworkPolicy lets in."""
    region: str
    """AWS region of the model store (the weight loader's S3 endpoint)."""
    model_uri: str | None = None
    """s3://bucket/prefix/ of the weights or Triton's model repository; None for a hub model."""
    hub_id: str | None = None
    """A Hugging Face Hub model id, loaded by the server itself, instead of model_uri."""
    hub_token_secret: str | None = None
    """Name of a Secret in the model's namespace holding the Hub token (key `token`), for gated models."""
    gpus: int = 0
    """GPUs per replica (`nvidia.com/gpu`); 0 for a CPU model."""
    scale_query: str | None = None
    """PromQL of a custom GPU model's load."""
    active_hours: Mapping[str, str] | None = None
    """{start, end, timezone} cron window when a scale-to-zero model keeps one replica."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Node labels the pods require (e.g. a GPU pool's)."""
    tolerations: Sequence[Mapping[str, str]] = ()
    """Taints the pods tolerate (e.g. the GPU taint)."""
    excluded_pools: Sequence[str] = ()
    """Pools the model's pods keep off (the system pool, whose capacity the platform's own pods need)."""
    spread_zones: bool = False
    """Spread replicas over zones (topologySpreadConstraints)."""
    args: Sequence[str] = ()
    """Extra server arguments, after the runtime preset's."""
    alb: bool = False
    """Expose through an ALB Ingress (the AWS Load Balancer Controller must run in the cluster)."""
    alb_scheme: str = "internal"
    """One of ALB_SCHEMES."""
    certificate_arn: str | None = None
    """ACM certificate of the ALB's HTTPS listener (required when internet-facing)."""
    vpc_cidrs: Sequence[str] = ()
    """The VPC's IPv4 CIDRs: an ALB's nodes reach the pods (target type ip) from inside them; required with alb."""
    alb_subnet_ids: Sequence[str] = ()
    """Subnets an ALB is placed in (the `alb.ingress.kubernetes.io/subnets` annotation); empty: the controller
    discovers them by their kubernetes.io/role/(internal-)elb tags, which the Network component sets."""
    allowed_namespaces: Sequence[str] = ()
    """Namespaces whose pods may call the model (its NetworkPolicy); none: only Prometheus and the ALB."""
    p99_latency_seconds: float = 10.0
    """SLO: the p99 latency above which the model's alert fires, seconds."""
    error_ratio: float = 0.01
    """SLO: the share of failed requests above which the model's alert fires."""
    queue_backlog: int = 20
    """Queued requests per replica above which the model's backlog alert fires."""
    pull_by_digest: bool = False
    """The image is pinned by digest (so the pull policy can be IfNotPresent safely)."""
    weights_gib: float = 0
    """Size of the weights in GiB: sizes the weights volume (10% headroom) and the pod's ephemeral-storage request,
    so the scheduler picks a node with room and the kubelet evicts nothing else for it; 0: unsized (no limit, no
    request)."""
    cold_start_seconds: int = 0
    """Estimated time from a pending pod on a new node to serving, seconds (infra/coldstart.py, with a cold
    compile cache), recorded on the Deployment as COLD_START_ANNOTATION for people and the offline plan's
    first-deploy estimate; 0: not estimated."""
    rollout_seconds: int = 0
    """Longest time a new replica takes from a pending pod (a new node, the image pull, the weights' copy) to
    ready, seconds: Pulumi waits for the Deployment this long and 20 minutes more. 0: startup_seconds."""
    load_format: str = "auto"
    """One of LOAD_FORMATS. `auto`: an init container copies model_uri to the node and the server reads it there;
    `runai_streamer` (vLLM): the server streams the safetensors from model_uri into GPU memory, no copy."""
    compile_cache_uri: str | None = None
    """s3://bucket/prefix/ where vLLM's torch.compile cache is restored from before the server starts and saved to
    while it runs (the model's identity may write there, and only there); None: every replica compiles anew."""
    wait_for_weights: bool = False
    """The weights are complete only once WEIGHTS_READY_MARKER is under model_uri (a registry version, which
    `models sync` copies while the stack may already be deploying): an init container waits for it."""
    transfer_client: str = "crt"
    """One of TRANSFER_CLIENTS: the AWS CLI's `preferred_transfer_client` for the weights' copy and the cache."""
    shared_namespace: str | None = None
    """A namespace the model shares with others, made by the caller (a namespace preview); None: its own,
    named after the model."""
    metric_drift: MetricDriftSpec | None = None
    """vLLM only: compare each hour's token lengths and finish reasons with the same hour a baseline ago
    (metric_drift.py); None: not compared."""
    capture: CaptureSpec | None = None
    """Sample the model's traffic into the model store through the capture proxy (capture.py); None: no proxy."""
    monitor: MonitorSpec | None = None
    """A CronJob judging the captured traffic: drift against reference data, quality against labels (monitor_job.py);
    needs capture."""

    def __post_init__(self) -> None:
        problems = []
        if not _DNS_LABEL.match(self.name):
            problems.append(f"name '{self.name}' must be 1-40 lowercase letters, digits and '-' (it names the namespace)")
        elif self.shared_namespace is None and self.name in RESERVED_NAMESPACES:
            problems.append(f"name '{self.name}' is a namespace Kubernetes or the platform owns; the model would take it over")
        if self.runtime not in RUNTIMES:
            problems.append(f"runtime '{self.runtime}' is not one of {', '.join(RUNTIMES)}")
        if self.image.endswith(":latest") or ("@" not in self.image and ":" not in self.image.rsplit("/", 1)[-1]):
            problems.append(f"image '{self.image}' needs a fixed tag or a digest (not latest)")
        if not 1 <= self.port <= 65535:
            problems.append(f"port {self.port} is not 1-65535")
        if self.gpus < 0:
            problems.append(f"gpus {self.gpus} is negative")
        if self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            problems.append(
                f"replicas {self.min_replicas}..{self.max_replicas}: need 0 <= min_replicas <= max_replicas and max_replicas >= 1"
            )
        if self.alb_scheme not in ALB_SCHEMES:
            problems.append(f"alb_scheme '{self.alb_scheme}' is not one of {', '.join(ALB_SCHEMES)}")
        if self.alb and self.alb_scheme == "internet-facing" and not self.certificate_arn:
            problems.append("an internet-facing ALB serves HTTPS only: give certificate_arn")
        if self.alb and not self.vpc_cidrs:
            problems.append("an ALB-exposed model needs vpc_cidrs (the VPC's CIDRs), or its network policy blocks the load balancer")
        if self.load_format not in LOAD_FORMATS:
            problems.append(f"load_format '{self.load_format}' is not one of {', '.join(LOAD_FORMATS)}")
        elif self.load_format == "runai_streamer" and (self.runtime != "vllm" or not self.model_uri):
            problems.append("load_format runai_streamer is vLLM's loader for weights in S3: runtime vllm with model_uri")
        if self.compile_cache_uri is not None and (self.runtime != "vllm" or not self.compile_cache_uri.startswith("s3://")):
            problems.append("compile_cache_uri is vLLM's compile cache in S3 (s3://bucket/prefix/): runtime vllm")
        if self.capture is not None and (self.runtime == "triton" or self.port in (CAPTURE_PORT, CAPTURE_METRICS_PORT)):
            problems.append(
                f"capture fronts the HTTP port {self.port} of a vllm or custom server, other than {CAPTURE_PORT} and {CAPTURE_METRICS_PORT}"
            )
        if self.monitor is not None and (self.capture is None or self.monitor.version != self.capture.version):
            problems.append("monitor judges what the capture proxy writes: set capture, with the same version")
        if self.metric_drift is not None and self.runtime != "vllm":
            problems.append(f"metric_drift compares vLLM's metrics; runtime is {self.runtime}")
        if self.transfer_client not in TRANSFER_CLIENTS:
            problems.append(f"transfer_client '{self.transfer_client}' is not one of {', '.join(TRANSFER_CLIENTS)}")
        if self.weights_gib < 0:
            problems.append(f"weights_gib {self.weights_gib} is negative")
        for cidr in self.vpc_cidrs:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                problems.append(f"vpc_cidrs: '{cidr}' is not a CIDR")
        if problems:
            raise ValueError(f"ModelSpec {self.name!r}: " + "; ".join(problems))

    @property
    def namespace(self) -> str:
        return self.shared_namespace or self.name

    @property
    def weights_at(self) -> str:
        """Where the weights land on the node (weights_location)."""
        return weights_location(self.load_format, self.model_uri is not None)

    @property
    def compile_cache_prefix(self) -> str | None:
        """The key prefix of compile_cache_uri in its bucket (what the model's identity may write)."""
        return self.compile_cache_uri.split("/", 3)[3] if self.compile_cache_uri else None

    @property
    def selector(self) -> str:
        """PromQL label matchers of the model's series: its namespace, and its Service when the namespace is shared."""
        matchers = f'namespace="{self.namespace}"'
        return matchers + (f', service="{self.name}"' if self.shared_namespace else "")


def weights_location(load_format: str, from_store: bool) -> str:
    """Where a model's weights land on its node: `models` (copied from the store to /models), `cache` (a hub
    download into HF_HOME) or `none` (streamed from the store into GPU memory, load_format runai_streamer)."""
    if load_format == "runai_streamer":
        return "none"
    return "models" if from_store else "cache"


def labels(spec: ModelSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/component": "model-server", "app.kubernetes.io/part-of": "ml-platform"}


def meta(spec: ModelSpec, name: str | None = None, **extra) -> dict:
    return {"name": name or spec.name, "namespace": spec.namespace, "labels": labels(spec), **extra}
