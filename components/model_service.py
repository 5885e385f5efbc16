"""ModelService: one served model. Its namespace, service account and AWS identity (Pod Identity, reading
only its own S3 prefix), a Deployment from a runtime preset (vLLM, Triton, custom image), a Service, an
optional ALB Ingress, autoscaling (KEDA on the runtime's queue metric for GPU models, an HPA on CPU for CPU
models), a PodDisruptionBudget, a NetworkPolicy, a ServiceMonitor and the model's SLO alerts.

The Kubernetes objects are built by plain functions (`manifests`), so the tests validate and snapshot
exactly what the component applies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import quantity
from components.pod_identity import pod_identity_role
from components.scheduling import node_affinity

TYPE = "mlplatform:k8s:ModelService"

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
    vpc_cidr: str = "10.0.0.0/16"
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


def s3_read_policy(bucket_arn: str, prefix: str, kms_key_arn: str, region: str) -> dict:
    """Read only this model's prefix of the model store, and decrypt with the store's key through S3."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadModelObjects", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/{prefix}*"},
            {
                "Sid": "ListModelPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            {
                "Sid": "DecryptThroughS3",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            },
        ],
    }


def labels(spec: ModelSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/component": "model-server", "app.kubernetes.io/part-of": "ml-platform"}


def _meta(spec: ModelSpec, name: str | None = None, **extra) -> dict:
    return {"name": name or spec.name, "namespace": spec.namespace, "labels": labels(spec), **extra}


def _container_security() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _probe(path: str, port: int, period: int, failures: int, timeout: int = 5) -> dict:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": timeout}


def _runtime(spec: ModelSpec) -> tuple[list[str] | None, list[str], list[dict], dict[str, str], str, str]:
    """(command, args, ports, env, liveness path, readiness path) of the runtime preset."""
    weights = MODELS_DIR if spec.model_uri else spec.hub_id
    env = {"HOME": HOME_DIR, "USER": "app", "LOGNAME": "app", "TMPDIR": "/tmp"}
    http = [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}]
    if spec.runtime == "vllm":
        args = [
            str(weights),
            "--host",
            "0.0.0.0",
            "--port",
            str(spec.port),
            "--served-model-name",
            spec.name,
            "--tensor-parallel-size",
            str(max(spec.gpus, 1)),
            *spec.args,
        ]
        env.update(
            HF_HOME=f"{CACHE_DIR}/huggingface",
            # Compile caches (FlashInfer, CUDA) default to ~/.cache and ~/.nv, which sit on the small home volume.
            XDG_CACHE_HOME=f"{CACHE_DIR}/xdg",
            CUDA_CACHE_PATH=f"{CACHE_DIR}/nv",
            VLLM_CACHE_ROOT=f"{CACHE_DIR}/vllm",
            VLLM_CONFIG_ROOT=f"{CACHE_DIR}/vllm-config",
            TRITON_CACHE_DIR=f"{CACHE_DIR}/triton",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
        )
        if spec.model_uri:
            env["HF_HUB_OFFLINE"] = "1"  # weights are local: never reach for a hub
        if spec.hub_token_secret:
            env["HF_TOKEN_PATH"] = f"{HUB_TOKEN_DIR}/token"
        return None, args, http, env, spec.health_path, spec.health_path
    if spec.runtime == "triton":
        args = [
            f"--model-repository={MODELS_DIR}",
            f"--http-port={spec.port}",
            f"--grpc-port={TRITON_GRPC_PORT}",
            f"--metrics-port={TRITON_METRICS_PORT}",
            "--allow-metrics=true",
            *spec.args,
        ]
        ports = [
            *http,
            {"name": "grpc", "containerPort": TRITON_GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": TRITON_METRICS_PORT, "protocol": "TCP"},
        ]
        return ["tritonserver"], args, ports, env, "/v2/health/live", "/v2/health/ready"
    if spec.model_uri:
        env["MODEL_DIR"] = MODELS_DIR
    return None, list(spec.args), http, env, spec.health_path, spec.health_path


# /dev/shm per runtime, before the cap below. vLLM: its Kubernetes guide mounts 2Gi (docs/deployment/k8s.md,
# v0.31.0); one process (tensor parallel 1) uses little, while each tensor-parallel worker exchanges tensors
# through it (PyTorch and NCCL). Triton: the Python backend gives each model instance a segment there, CPU or
# GPU (python_backend README; its quick start runs with --shm-size=1g). Custom images keep the runtime's 64 MiB.
SHM_MIB = {"vllm": 1024, "triton": 1024}
SHM_MIB_PER_TENSOR_PARALLEL_GPU = 2048
SHM_SHARE_OF_MEMORY = 4  # at most a quarter of the container's memory limit


def shared_memory_mib(spec: ModelSpec) -> int:
    """Size of the model's memory-backed /dev/shm in MiB (0: none mounted).

    A memory-backed emptyDir is charged to the memory limit of the container that writes it, and the kubelet
    caps the tmpfs at the pod's memory limit anyway (Kubernetes "Volumes: emptyDir"; SizeMemoryBackedVolumes,
    GA in 1.32): a 16Gi /dev/shm in a 12Gi container promises memory the container does not have. So: the
    runtime's need (1 GiB; 2 GiB per GPU for tensor-parallel vLLM), never more than a quarter of
    `resources.memory`, leaving the rest to the server's own process."""
    base = SHM_MIB.get(spec.runtime, 0)
    if spec.runtime == "vllm" and spec.gpus > 1:
        base = SHM_MIB_PER_TENSOR_PARALLEL_GPU * spec.gpus
    return min(base, quantity.mebibytes(spec.memory) // SHM_SHARE_OF_MEMORY)


def deployment(spec: ModelSpec) -> dict:
    command, args, ports, env, live_path, ready_path = _runtime(spec)
    gpu = {"nvidia.com/gpu": str(spec.gpus)} if spec.gpus else {}
    resources = {"requests": {"cpu": spec.cpu, "memory": spec.memory, **gpu}, "limits": {"cpu": spec.cpu, "memory": spec.memory, **gpu}}
    mounts = [
        {"name": "models", "mountPath": MODELS_DIR},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "home", "mountPath": HOME_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes = [
        {"name": "models", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
        {"name": "home", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
    ]
    shm = shared_memory_mib(spec)
    if shm:
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        size = f"{shm // 1024}Gi" if shm % 1024 == 0 else f"{shm}Mi"
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}})
    if spec.hub_token_secret:
        mounts.append({"name": "hub-token", "mountPath": HUB_TOKEN_DIR, "readOnly": True})
        volumes.append({"name": "hub-token", "secret": {"secretName": spec.hub_token_secret, "items": [{"key": "token", "path": "token"}]}})

    server: dict = {
        "name": "server",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent" if spec.pull_by_digest else "Always",
        "args": args,
        "ports": ports,
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": _container_security(),
        # The startup budget covers image pull, weight loading and warm-up; liveness only starts after it.
        "startupProbe": _probe(live_path, spec.port, 10, math.ceil(spec.startup_seconds / 10)),
        "readinessProbe": _probe(ready_path, spec.port, 10, 3),
        "livenessProbe": _probe(live_path, spec.port, 20, 3, timeout=10),
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
    }
    if command:
        server["command"] = command

    init = []
    if spec.model_uri:
        init.append(
            {
                "name": "load-weights",
                "image": spec.loader_image,
                "imagePullPolicy": "IfNotPresent" if "@sha256:" in spec.loader_image else "Always",
                "args": ["s3", "sync", spec.model_uri, MODELS_DIR, "--only-show-errors", "--no-progress"],
                "env": [{"name": "AWS_REGION", "value": spec.region}, {"name": "HOME", "value": "/tmp"}],
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
                "volumeMounts": [{"name": "models", "mountPath": MODELS_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
                "securityContext": _container_security(),
            }
        )

    pod_annotations = {}
    if spec.gpus:
        # Karpenter consolidation must never take a GPU node from under a model mid-request.
        pod_annotations["karpenter.sh/do-not-disrupt"] = "true"
    pod_spec: dict = {
        "serviceAccountName": spec.name,
        # No `<SERVICE>_PORT=tcp://...` variables: a Service named like a runtime's settings prefix (a model
        # `vllm` gives VLLM_PORT) would be read as the server's own configuration and stop it (vllm #15613).
        "enableServiceLinks": False,
        # The server never calls the Kubernetes API; Pod Identity mounts its own token for AWS.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": DRAIN_SECONDS + (120 if spec.gpus else 45),
        "initContainers": init,
        "containers": [server],
        "volumes": volumes,
        "nodeSelector": dict(spec.node_selector),
        "tolerations": [dict(t) for t in spec.tolerations],
        **({"affinity": node_affinity(spec.excluded_pools)} if spec.excluded_pools else {}),
    }
    if spec.spread_zones:
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                # Spread when capacity allows; never leave a replica pending because one zone has no GPUs.
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec),
        "spec": {
            # No `replicas`: the autoscaler owns it, and a `pulumi up` must not reset it.
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels(spec), "annotations": pod_annotations}, "spec": pod_spec},
        },
    }


def service(spec: ModelSpec) -> dict:
    ports = [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}]
    if spec.runtime == "triton":
        ports += [
            {"name": "grpc", "port": TRITON_GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
            {"name": "metrics", "port": TRITON_METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec),
        "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": spec.name}, "ports": ports},
    }


def ingress(spec: ModelSpec) -> dict:
    annotations = {
        "alb.ingress.kubernetes.io/scheme": spec.alb_scheme,
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/healthcheck-path": _runtime(spec)[5],
        # Long generations: the default 60 s idle timeout would cut streaming responses.
        "alb.ingress.kubernetes.io/load-balancer-attributes": "idle_timeout.timeout_seconds=600",
    }
    if spec.certificate_arn:
        annotations.update(
            {
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
                "alb.ingress.kubernetes.io/certificate-arn": spec.certificate_arn,
                "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            }
        )
    else:
        annotations["alb.ingress.kubernetes.io/listen-ports"] = '[{"HTTP": 80}]'
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(spec, annotations=annotations),
        "spec": {
            "ingressClassName": "alb",
            "rules": [
                {
                    "http": {
                        "paths": [
                            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": spec.name, "port": {"name": "http"}}}}
                        ]
                    }
                }
            ],
        },
    }


def load_expression(spec: ModelSpec) -> tuple[str, str]:
    """(PromQL, KEDA metric type) of the model's load as its runtime reports it: waiting requests per replica
    for vLLM, average queue time in ms for Triton (a value, not a sum over replicas), the configured query
    for custom models. Empty when the series are missing."""
    selector = spec.selector
    if spec.runtime == "vllm":
        return f"sum(vllm:num_requests_waiting{{{selector}}})", "AverageValue"
    if spec.runtime == "triton":
        return (
            f"sum(rate(nv_inference_queue_duration_us{{{selector}}}[2m])) / 1000"
            # 1e-3, not 1: clamping to one request a second would understate queue time under light traffic.
            f" / clamp_min(sum(rate(nv_inference_request_success{{{selector}}}[2m])), 1e-3)",
            "Value",
        )
    return f"({spec.scale_query})", "AverageValue"


def load_query(spec: ModelSpec) -> tuple[str, str]:
    """(PromQL, KEDA metric type) the autoscaler reads: the load expression, or 0 when the Deployment has no
    replica at all, the one case where no series is the truth (a scale-to-zero model at rest).

    Whenever the model has replicas but its series are missing (a Prometheus restart, a scrape outage, a
    relabelling change) the result is empty, which the trigger treats as an error, never as "no load" that
    would drive the model to its minimum (kedacore/keda #3064)."""
    load, metric_type = load_expression(spec)
    at_rest = f'kube_deployment_spec_replicas{{namespace="{spec.namespace}", deployment="{spec.name}"}} == 0'
    return f"{load} or on() ({at_rest})", metric_type


# A prometheus trigger failing this many polls in a row hands over to the fallback (KEDA counts strictly more
# than failureThreshold, pkg/fallback/fallback.go at v2.20.2): about a minute at the 15 s polling interval.
FALLBACK_FAILURES = 3


def fallback(spec: ModelSpec) -> dict | None:
    """What KEDA does once the load query keeps failing (empty or unreachable): hold the current replicas,
    never fewer than the minimum (`currentReplicasIfHigher` with `replicas: min`). Without it the HPA already
    refuses to scale down on an invalid metric; the fallback makes the state explicit (the ScaledObject's
    `Fallback` condition, `kubectl get scaledobject`'s FALLBACK column) and lets KEDA keep a Value-type
    trigger's HPA at a defined size.

    None for models that scale to zero: a trigger in fallback counts as active, so a Prometheus outage at
    night would wake the model outside its active hours (pkg/scaling/executor/scale_scaledobjects.go at
    v2.20.2). Without a fallback KEDA keeps the current replicas on a failing trigger, and the cron trigger
    keeps working on its own (fallback is per metric)."""
    if spec.min_replicas == 0:
        return None
    return {"failureThreshold": FALLBACK_FAILURES, "replicas": spec.min_replicas, "behavior": "currentReplicasIfHigher"}


def scaled_object(spec: ModelSpec) -> dict:
    query, metric_type = load_query(spec)
    triggers: list[dict] = [
        {
            "type": "prometheus",
            "metricType": metric_type,
            # An empty result is an error, not zero load (KEDA's default is "true"); see load_query.
            "metadata": {
                "serverAddress": spec.prometheus_url,
                "query": query,
                "threshold": f"{spec.target:g}",
                "ignoreNullValues": "false",
            },
        }
    ]
    if spec.active_hours is not None:
        triggers.append(
            {
                "type": "cron",
                "metadata": {
                    "timezone": spec.active_hours["timezone"],
                    "start": spec.active_hours["start"],
                    "end": spec.active_hours["end"],
                    "desiredReplicas": "1",
                },
            }
        )
    on_failure = fallback(spec)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(spec),
        "spec": {
            "scaleTargetRef": {"name": spec.name},
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                # Scale up at once; scale down slowly: a replica takes minutes to load its weights again.
                "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}
            },
            "triggers": triggers,
            **({"fallback": on_failure} if on_failure else {}),
        },
    }


def cpu_autoscaler(spec: ModelSpec) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": int(spec.target)}}}
            ],
        },
    }


def disruption_budget(spec: ModelSpec) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}}},
    }


def network_policy(spec: ModelSpec) -> dict:
    serving_ports = [{"protocol": "TCP", "port": spec.port}]
    if spec.runtime == "triton":
        serving_ports.append({"protocol": "TCP", "port": TRITON_GRPC_PORT})
    metrics_port = TRITON_METRICS_PORT if spec.runtime == "triton" else spec.port
    rules = [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": spec.monitoring_namespace}}}],
            "ports": [{"protocol": "TCP", "port": metrics_port}],
        }
    ]
    if spec.allowed_namespaces:
        rules.append(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(spec.allowed_namespaces)}
                            ]
                        }
                    }
                ],
                "ports": serving_ports,
            }
        )
    if spec.alb:
        # ALB targets are pod IPs (target type ip): the load balancer's nodes reach them from inside the VPC.
        rules.append({"from": [{"ipBlock": {"cidr": spec.vpc_cidr}}], "ports": serving_ports})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec),
        "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": spec.name}}, "policyTypes": ["Ingress"], "ingress": rules},
    }


def service_monitor(spec: ModelSpec) -> dict:
    port = "metrics" if spec.runtime == "triton" else "http"
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(spec),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
            "endpoints": [{"port": port, "path": spec.metrics_path if spec.runtime == "custom" else "/metrics", "interval": "15s"}],
        },
    }


def slo_rules(spec: ModelSpec) -> list[dict]:
    """The model's alerts: down, its autoscaler's load metric missing (GPU models), and latency, error ratio and
    queue backlog (what its runtime can measure)."""
    ns = spec.selector

    def alert(name: str, expr: str, duration: str, severity: str, summary: str, runbook: str) -> dict:
        return {
            "alert": name,
            "expr": expr,
            "for": duration,
            "labels": {"severity": severity, "model": spec.name},
            "annotations": {"summary": summary, "runbook": runbook},
        }

    rules = [
        alert(
            "ModelServerDown",
            # Counts pending and still-loading replicas as down (they have no ready endpoint), but only after the
            # startup budget, so a scale-up from zero does not page.
            f'kube_deployment_status_replicas_available{{{ns}, deployment="{spec.name}"}} == 0'
            f' and on() kube_deployment_spec_replicas{{{ns}, deployment="{spec.name}"}} > 0',
            f"{math.ceil(spec.startup_seconds / 60) + 5}m",
            "critical",
            f"No replica of {spec.name} is available",
            f"kubectl -n {spec.namespace} get pods; pending pods mean no node capacity, crash loops a bad image or weights",
        )
    ]
    if spec.gpus:
        rules.append(
            alert(
                "ModelLoadMetricMissing",
                # Ready replicas but no load series: the autoscaler holds the model at its current size (see fallback).
                f"absent({load_expression(spec)[0]})"
                f' and on() kube_deployment_status_replicas_available{{namespace="{spec.namespace}", deployment="{spec.name}"}} > 0',
                "10m",
                "warning",
                f"Autoscaling of {spec.name} is frozen: its load metric is missing",
                "Prometheus is not scraping the model (its ServiceMonitor, the NetworkPolicy, a relabelling change) or has just restarted",
            )
        )
    if spec.runtime == "vllm":
        rules += [
            alert(
                "ModelLatencyHigh",
                f"histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{{{ns}}}[5m])))"
                f" > {spec.p99_latency_seconds:g}",
                "10m",
                "warning",
                f"p99 latency of {spec.name} above {spec.p99_latency_seconds:g}s",
                "Check queue depth and GPU utilisation; raise replicas.max or the GPU pool's limits",
            ),
            alert(
                "ModelErrorRatioHigh",
                f'sum(rate(vllm:request_success_total{{{ns}, finished_reason=~"error|abort"}}[5m]))'
                f" / clamp_min(sum(rate(vllm:request_success_total{{{ns}}}[5m])), 1e-9) > {spec.error_ratio:g}",
                "10m",
                "critical",
                f"More than {spec.error_ratio:.1%} of {spec.name}'s requests end in an error or abort",
                f"kubectl -n {spec.namespace} logs deploy/{spec.name}; look for OOM, CUDA errors and client timeouts",
            ),
            alert(
                "ModelQueueBacklog",
                f"sum(vllm:num_requests_waiting{{{ns}}}) > {spec.queue_backlog}",
                "10m",
                "warning",
                f"{spec.name} has a sustained queue of waiting requests",
                "The autoscaler is at its limit or new replicas cannot start: check replicas.max and pending pods",
            ),
        ]
    elif spec.runtime == "triton":
        rules += [
            alert(
                "ModelLatencyHigh",
                f"sum(rate(nv_inference_request_duration_us{{{ns}}}[5m])) / 1e6"
                f" / clamp_min(sum(rate(nv_inference_request_success{{{ns}}}[5m])), 1e-9) > {spec.p99_latency_seconds:g}",
                "10m",
                "warning",
                f"Mean latency of {spec.name} above {spec.p99_latency_seconds:g}s (Triton reports no percentiles)",
                "Check queue time and GPU utilisation; raise replicas.max or the GPU pool's limits",
            ),
            alert(
                "ModelErrorRatioHigh",
                f"sum(rate(nv_inference_request_failure{{{ns}}}[5m])) / clamp_min(sum(rate(nv_inference_request_failure{{{ns}}}[5m]))"
                f" + sum(rate(nv_inference_request_success{{{ns}}}[5m])), 1e-9) > {spec.error_ratio:g}",
                "10m",
                "critical",
                f"More than {spec.error_ratio:.0%} of {spec.name}'s inferences fail",
                f"kubectl -n {spec.namespace} logs deploy/{spec.name}; the failure reason label says which backend fails",
            ),
            alert(
                "ModelQueueBacklog",
                f"sum(nv_inference_pending_request_count{{{ns}}}) > {spec.queue_backlog}",
                "10m",
                "warning",
                f"{spec.name} has a sustained queue of pending requests",
                "The autoscaler is at its limit or new replicas cannot start: check replicas.max and pending pods",
            ),
        ]
    return rules


def prometheus_rule(spec: ModelSpec) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta(spec),
        "spec": {"groups": [{"name": f"{spec.name}.slo", "rules": slo_rules(spec)}]},
    }


def namespace(name: str, extra_labels: Mapping[str, str], alb: bool = False) -> dict:
    """A namespace for model servers."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                **extra_labels,
                # Admission refuses any pod here that is not non-root, seccomp-confined and capability-free.
                "pod-security.kubernetes.io/enforce": "restricted",
                "ml-platform/monitoring": "true",
                # With an ALB, a rollout waits until the new pod is a healthy target before the old one goes.
                **({"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"} if alb else {}),
            },
        },
    }


def manifests(spec: ModelSpec) -> list[dict]:
    """Every Kubernetes object of the model, in apply order (its own namespace first, unless it shares one)."""
    objects = [] if spec.shared_namespace else [namespace(spec.name, labels(spec), spec.alb)]
    objects += [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(spec), "automountServiceAccountToken": False},
        deployment(spec),
        service(spec),
        network_policy(spec),
        service_monitor(spec),
        prometheus_rule(spec),
    ]
    if spec.alb:
        objects.append(ingress(spec))
    objects.append(scaled_object(spec) if spec.gpus else cpu_autoscaler(spec))
    if spec.max_replicas > 1:
        objects.append(disruption_budget(spec))
    return objects


# Which CRD-installing release a custom resource waits for, by API group.
CRD_GROUPS = {"keda.sh": "keda", "monitoring.coreos.com": "monitoring"}


@dataclass
class ModelServiceArgs:
    spec: ModelSpec
    """The model, in Kubernetes' terms."""
    cluster_name: pulumi.Input[str]
    """Cluster of the Pod Identity association."""
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    bucket_arn: pulumi.Input[str]
    """Model store bucket."""
    s3_prefix: str | None
    """The model's prefix in the store; None for a hub model (no AWS access at all)."""
    kms_key_arn: pulumi.Input[str]
    """Key of the model store."""
    region: str
    """Region of the model store (S3's KMS calls come from s3.<region>.amazonaws.com)."""
    crd_releases: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    """Releases installing the CRDs, by CRD_GROUPS value (`keda`, `monitoring`)."""
    alb_controller: pulumi.Resource | None = None
    """The load balancer controller's release, which the Ingress waits for (its webhooks must answer)."""
    shared_namespace: pulumi.Resource | None = None
    """The namespace resource of `spec.shared_namespace`, which everything here waits for."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""


class ModelService(pulumi.ComponentResource):
    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        spec = args.spec
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider)

        objects = manifests(spec)
        if spec.shared_namespace:
            if args.shared_namespace is None:
                raise ValueError(f"{name}: spec.shared_namespace is set but args.shared_namespace is not")
            namespace = args.shared_namespace
        else:
            namespace_object = objects.pop(0)
            namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=namespace_object["metadata"], opts=k8s_opts)
        in_namespace = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[namespace]))

        identity: list[pulumi.Resource] = []
        if args.s3_prefix is not None:
            identity = pod_identity_role(
                f"{name}-model-reader",
                args.cluster_name,
                spec.namespace,
                spec.name,
                pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
                    lambda values: json.dumps(s3_read_policy(values[0], str(args.s3_prefix), values[1], args.region))
                ),
                parent=self,
                tags=args.tags,
                association_depends_on=[namespace],
            )

        for manifest in objects:
            kind = manifest["kind"]
            resource_name = f"{name}-{kind.lower()}"
            group = manifest["apiVersion"].split("/")[0]
            if group in CRD_GROUPS:
                # Never applied before the release that installs its CRD (pulumi-kubernetes #3247).
                release = args.crd_releases.get(CRD_GROUPS[group])
                k8s.apiextensions.CustomResource(
                    resource_name,
                    api_version=manifest["apiVersion"],
                    kind=kind,
                    metadata=manifest["metadata"],
                    spec=manifest["spec"],
                    opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(depends_on=[release] if release else [])),
                )
            else:
                waits: list[pulumi.Resource] = []
                extra = pulumi.ResourceOptions()
                if kind == "Deployment":
                    waits = identity
                    # A GPU replica may need a new node, a multi-GB image and the weights before it is ready;
                    # the provider's default 10-minute wait would fail the update.
                    wait = f"{spec.startup_seconds // 60 + 20}m"
                    extra = pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=wait, update=wait))
                if kind == "Ingress" and args.alb_controller is not None:
                    waits = [args.alb_controller]
                options = pulumi.ResourceOptions.merge(
                    in_namespace, pulumi.ResourceOptions.merge(extra, pulumi.ResourceOptions(depends_on=waits))
                )
                _CORE_KINDS[kind](resource_name, **{k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}, opts=options)
        self.register_outputs({})


def _service_account(resource_name: str, metadata: dict, automountServiceAccountToken: bool, opts):
    return k8s.core.v1.ServiceAccount(
        resource_name, metadata=metadata, automount_service_account_token=automountServiceAccountToken, opts=opts
    )


_CORE_KINDS = {
    "ServiceAccount": _service_account,
    "Deployment": lambda n, metadata, spec, opts: k8s.apps.v1.Deployment(n, metadata=metadata, spec=spec, opts=opts),
    "Service": lambda n, metadata, spec, opts: k8s.core.v1.Service(n, metadata=metadata, spec=spec, opts=opts),
    "Ingress": lambda n, metadata, spec, opts: k8s.networking.v1.Ingress(n, metadata=metadata, spec=spec, opts=opts),
    "NetworkPolicy": lambda n, metadata, spec, opts: k8s.networking.v1.NetworkPolicy(n, metadata=metadata, spec=spec, opts=opts),
    "PodDisruptionBudget": lambda n, metadata, spec, opts: k8s.policy.v1.PodDisruptionBudget(n, metadata=metadata, spec=spec, opts=opts),
    "HorizontalPodAutoscaler": lambda n, metadata, spec, opts: k8s.autoscaling.v2.HorizontalPodAutoscaler(
        n, metadata=metadata, spec=spec, opts=opts
    ),
}
