"""What a model's Kubernetes objects are made from (ModelSpec), the labels and metadata every one carries, and
the paths and identities its pods use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

UID = 10001  # any non-root UID above 10000: no clash with host users (checkov CKV_K8S_40)
MODELS_DIR = "/models"
CACHE_DIR = "/cache"
HOME_DIR = "/home/app"
HUB_TOKEN_DIR = "/var/run/secrets/hub"
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
DRAIN_SECONDS = 15  # time for endpoints to drop the pod before it stops taking requests


@dataclass(frozen=True)
class ModelSpec:
    """Everything a model's Kubernetes objects are made from, in Kubernetes' terms."""

    name: str
    """Model name; also the app label, and its namespace unless it shares one."""
    runtime: str
    """vllm, triton or custom."""
    image: str
    """Full image reference (`repo:tag` or `repo@sha256:...`)."""
    loader_image: str
    """AWS CLI image of the init step copying weights from the model store."""
    cpu: str
    memory: str
    port: int
    health_path: str
    metrics_path: str
    startup_seconds: int
    min_replicas: int
    max_replicas: int
    target: float
    """Autoscaling target per replica (queue depth, queue ms, or CPU percent)."""
    prometheus_url: str
    monitoring_namespace: str
    region: str
    model_uri: str | None = None
    """s3://bucket/prefix/ of the weights or Triton's model repository; None for a hub model."""
    hub_id: str | None = None
    hub_token_secret: str | None = None
    gpus: int = 0
    scale_query: str | None = None
    """PromQL of a custom GPU model's load."""
    active_hours: Mapping[str, str] | None = None
    """{start, end, timezone} cron window when a scale-to-zero model keeps one replica."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, str]] = ()
    excluded_pools: Sequence[str] = ()
    """Pools the model's pods keep off (the system pool, whose capacity the platform's own pods need)."""
    spread_zones: bool = False
    args: Sequence[str] = ()
    alb: bool = False
    alb_scheme: str = "internal"
    certificate_arn: str | None = None
    vpc_cidrs: Sequence[str] = ("10.0.0.0/16",)
    """The VPC's IPv4 CIDRs: an ALB's nodes reach the pods (target type ip) from inside them."""
    alb_subnet_ids: Sequence[str] = ()
    """Subnets an ALB is placed in (the `alb.ingress.kubernetes.io/subnets` annotation); empty: the controller
    discovers them by their kubernetes.io/role/(internal-)elb tags, which the Network component sets."""
    allowed_namespaces: Sequence[str] = ()
    p99_latency_seconds: float = 10.0
    error_ratio: float = 0.01
    queue_backlog: int = 20
    pull_by_digest: bool = False
    shared_namespace: str | None = None
    """A namespace the model shares with others, made by the caller (a namespace preview); None: its own,
    named after the model."""

    @property
    def namespace(self) -> str:
        return self.shared_namespace or self.name

    @property
    def selector(self) -> str:
        """PromQL label matchers of the model's series: its namespace, and its Service when the namespace is shared."""
        matchers = f'namespace="{self.namespace}"'
        return matchers + (f', service="{self.name}"' if self.shared_namespace else "")


def labels(spec: ModelSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/component": "model-server", "app.kubernetes.io/part-of": "ml-platform"}


def meta(spec: ModelSpec, name: str | None = None, **extra) -> dict:
    return {"name": name or spec.name, "namespace": spec.namespace, "labels": labels(spec), **extra}
