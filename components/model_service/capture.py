"""The capture proxy in a model's pod: a native sidecar (images/model-monitoring, `capture-proxy`) that takes the
Service's traffic on CAPTURE_PORT, forwards it to the server untouched (streaming included), and writes a sample
of request/response pairs to the model store under `capture/<model>/<version>/dt=<day>/hr=<hour>/`.

Everything that pointed at the server's port moves to the proxy's: the Service's `http` target port (so the ALB's
targets and health checks too: target type ip, traffic port), and the NetworkPolicy's serving port. The server's
own port stays open to Prometheus only, which scrapes it directly (scrapes are no traffic to sample), and the proxy's
metrics port beside it. The server's probes stay on the server (the kubelet probes each container); the pod is
ready only when the proxy is too.

A native sidecar (an init container with `restartPolicy: Always`) starts before the server and stops after it: no
request reaches a server whose proxy is not up, and the proxy keeps forwarding through the server's drain, then
flushes what it holds when it gets SIGTERM (Kubernetes stops sidecars after the main containers, in reverse order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ml_platform.components.alerts import alert
from ml_platform.components.pod_defaults import container_security, pull_policy

if TYPE_CHECKING:
    from ml_platform.components.model_service.spec import ModelSpec

STORE_PREFIX = "capture/"
"""Where every model's captured records are in its store (`capture/<model>/<version>/...`)."""
PORT = 8090
"""The proxy's traffic port (CAPTURE_PORT): the Service's `http` port targets it."""
METRICS_PORT = 9103
"""The proxy's /metrics and /healthz (CAPTURE_METRICS_PORT)."""
PORT_NAME = "capture"
METRICS_PORT_NAME = "capture-metrics"
REQUESTS = {"cpu": "100m", "memory": "128Mi"}
"""What the proxy adds to the pod's requests."""
CPU_LIMIT = "1"
QUEUE_BYTES = 64 * 2**20
"""Captured lines waiting for upload (CAPTURE_QUEUE_BYTES); beyond it, samples are dropped (queue_full)."""
INFLIGHT_BYTES = 64 * 2**20
"""Copies of requests and responses being proxied (CAPTURE_INFLIGHT_BYTES); beyond it, requests go unsampled."""
FLUSH_SECONDS = 60


def memory_limit_mib(max_payload_bytes: int) -> int:
    """The proxy's memory limit, MiB: its worst case as images/model-monitoring/capture.py's docstring gives it
    (interpreter ~70 MiB, ~0.75 MiB per concurrent request for 200 requests, the queue twice (lines, and the gzip
    body being uploaded), the in-flight copies, and 30 x max_payload_bytes while one record is built), with a
    quarter again as margin, rounded up to 64 MiB. An OOM-killed proxy takes the pod's traffic port down."""
    worst = 70 + 200 * 0.75 + 2 * QUEUE_BYTES / 2**20 + INFLIGHT_BYTES / 2**20 + 30 * max_payload_bytes / 2**20
    return int(-(-worst * 1.25 // 64) * 64)


@dataclass(frozen=True)
class CaptureSpec:
    """What the proxy samples and where it writes. Raises ValueError naming the field for a value the proxy refuses."""

    image: str
    """The model-monitoring image (`repo:tag` or `repo@sha256:...`)."""
    bucket: str
    """The model store's bucket name."""
    version: str
    """The served version (the lock's, for registry models), or `unversioned`: part of the prefix and each record."""
    sample_rate: float
    """Share of POST requests captured, 0 < rate <= 1."""
    max_payload_bytes: int = 1024 * 1024
    """Largest request or response captured, bytes; larger pairs are proxied whole and counted as dropped."""
    redact: tuple[str, ...] = ()
    """JSONPath expressions removed from requests and responses before they are written."""
    retention_days: int = 30
    """Days the store keeps captured objects (the store's lifecycle rule; informational here)."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.sample_rate <= 1:
            problems.append(f"sample_rate {self.sample_rate}: 0 < rate <= 1")
        if self.max_payload_bytes < 1024:
            problems.append(f"max_payload_bytes {self.max_payload_bytes}: at least 1024")
        if not self.version or "/" in self.version:
            problems.append(f"version '{self.version}': a non-empty path segment")
        if problems:
            raise ValueError("CaptureSpec: " + "; ".join(problems))


def model_prefix(model: str) -> str:
    """`capture/<model>/`: every version's records of the model (the store's lifecycle rule expires them)."""
    return f"{STORE_PREFIX}{model}/"


def prefix(model: str, version: str) -> str:
    """`capture/<model>/<version>/`: where the model's proxy writes, and all its identity may write."""
    return f"{model_prefix(model)}{version}/"


def sidecar(spec: ModelSpec) -> dict:
    """The proxy's container (a native sidecar: put it in initContainers, after the weights' copy)."""
    capture = spec.capture
    assert capture is not None
    env = {
        "CAPTURE_PORT": str(PORT),
        "CAPTURE_METRICS_PORT": str(METRICS_PORT),
        "CAPTURE_UPSTREAM": f"http://127.0.0.1:{spec.port}",
        "CAPTURE_SAMPLE_RATE": f"{capture.sample_rate:g}",
        "CAPTURE_MAX_PAYLOAD_BYTES": str(capture.max_payload_bytes),
        "CAPTURE_REDACT": json.dumps(list(capture.redact)),
        "CAPTURE_BUCKET": capture.bucket,
        "CAPTURE_PREFIX": prefix(spec.name, capture.version),
        "CAPTURE_MODEL": spec.name,
        "CAPTURE_MODEL_VERSION": capture.version,
        "CAPTURE_FLUSH_SECONDS": str(FLUSH_SECONDS),
        "CAPTURE_QUEUE_BYTES": str(QUEUE_BYTES),
        "CAPTURE_INFLIGHT_BYTES": str(INFLIGHT_BYTES),
        # Query strings carry keys and identifiers that no JSONPath redaction reaches: never written.
        "CAPTURE_STORE_QUERY": "false",
        "AWS_REGION": spec.region,
    }
    health = {"httpGet": {"path": "/healthz", "port": METRICS_PORT}, "timeoutSeconds": 2}
    return {
        "name": "capture-proxy",
        "image": capture.image,
        "imagePullPolicy": pull_policy(capture.image),
        "command": ["capture-proxy"],
        "restartPolicy": "Always",
        "ports": [
            {"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": [
            *({"name": k, "value": v} for k, v in sorted(env.items())),
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "resources": {
            "requests": dict(REQUESTS),
            "limits": {"cpu": CPU_LIMIT, "memory": f"{memory_limit_mib(capture.max_payload_bytes)}Mi"},
        },
        "securityContext": container_security(),
        # The server starts only once the proxy answers (a sidecar's startup probe gates the next container).
        "startupProbe": {**health, "periodSeconds": 1, "failureThreshold": 30},
        "readinessProbe": {**health, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**health, "periodSeconds": 20, "failureThreshold": 3},
    }


def rule_group(spec: ModelSpec) -> dict:
    """The proxy's alerts: uploads failing (nothing is being recorded), and records dropped for lack of room."""
    # The series are the proxy's own (capture_*); no container matcher, which would depend on how Prometheus's
    # endpoint discovery names a native sidecar's port.
    selector = spec.selector
    return {
        "name": f"{spec.name}.capture",
        "rules": [
            alert(
                "ModelCaptureUploadFailing",
                f"sum(increase(capture_upload_errors_total{{{selector}}}[15m])) > 0"
                f" and on() sum(increase(capture_uploaded_records_total{{{selector}}}[15m])) == 0",
                "15m",
                "warning",
                f"{spec.name}'s capture proxy has written nothing to the model store for 15 minutes, and its uploads fail",
                f"kubectl -n {spec.namespace} logs deploy/{spec.name} -c capture-proxy: AccessDenied means the model's Pod Identity "
                "role or the store's key; sampled requests are dropped until it recovers (serving is unaffected)",
                model=spec.name,
                namespace=spec.namespace,
            ),
            alert(
                "ModelCaptureDropping",
                f'sum(rate(capture_dropped_total{{{selector}, reason=~"queue_full|upload_failed"}}[30m]))'
                f" / clamp_min(sum(rate(capture_sampled_total{{{selector}}}[30m])), 1e-9) > 0.1",
                "30m",
                "warning",
                f"{spec.name}'s capture proxy drops more than 10% of what it samples (buffer full or uploads failing)",
                "Lower capture.sampleRate or maxPayloadBytes; drift and feedback judge what is captured",
                model=spec.name,
                namespace=spec.namespace,
            ),
        ],
    }
