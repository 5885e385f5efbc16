"""The model's Deployment: the runtime presets (vLLM, Triton, custom image), probes sized to the startup budget,
the weight loader, shared memory, hardening and placement."""

from __future__ import annotations

import math

from ml_platform.components import quantity
from ml_platform.components.model_service import capture
from ml_platform.components.model_service.spec import (
    CACHE_DIR,
    COLD_START_ANNOTATION,
    DRAIN_SECONDS,
    HOME_DIR,
    HUB_TOKEN_DIR,
    MODELS_DIR,
    TRITON_GRPC_PORT,
    TRITON_METRICS_PORT,
    WEIGHTS_READY_MARKER,
    ModelSpec,
    labels,
    meta,
)
from ml_platform.components.pod_defaults import container_security, pod_security, pull_policy
from ml_platform.components.scheduling import node_affinity


def _probe(path: str, port: int, period: int, failures: int, timeout: int = 5) -> dict:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": timeout}


def runtime(spec: ModelSpec) -> tuple[list[str] | None, list[str], list[dict], dict[str, str], str, str]:
    """(command, args, ports, env, liveness path, readiness path) of the runtime preset."""
    weights = {"models": MODELS_DIR, "cache": spec.hub_id, "none": spec.model_uri}[spec.weights_at]
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
            env["HF_HUB_OFFLINE"] = "1"  # weights are local or in the store: never reach for a hub
        if spec.load_format == "runai_streamer":
            args += ["--load-format", "runai_streamer"]
            env.update(streamer_env(spec))
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


def streamer_env(spec: ModelSpec) -> dict[str, str]:
    """Environment of vLLM's Run:ai Model Streamer. Its credentials come from boto3's default chain, which reads the
    Pod Identity agent's variables (botocore >= 1.34.41; run-ai/runai-model-streamer docs/src/usage.md, "S3
    authentication"); the region of the store is given, not discovered. Its CPU buffer defaults to the size of
    the whole safetensors file (RUNAI_STREAMER_MEMORY_LIMIT -1, docs/src/usage.md "CPU Memory Capping"), which
    would take a large model's container past its memory limit. The limit is per streamer, and with tensor
    parallelism each GPU's worker process streams its own share: a quarter of the container's limit
    (STREAMER_SHARE_OF_MEMORY) split between the workers caps them all, and each share must exceed the largest
    tensor (a config check keeps it at least STREAMER_MIN_MIB)."""
    limit = streamer_buffer_mib(spec.memory, spec.gpus) * 2**20
    return {
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "RUNAI_STREAMER_MEMORY_LIMIT": str(limit),
        # 16 threads: the measured point infra/coldstart.py's rate comes from (the default for S3 is 8).
        "RUNAI_STREAMER_CONCURRENCY": "16",
    }


STREAMER_SHARE_OF_MEMORY = 4
STREAMER_MIN_MIB = 4096  # above a 70B model's largest tensor, its 128k x 8192 bf16 embeddings (2 GiB)


def streamer_buffer_mib(memory: str, gpus: int) -> int:
    """Each streaming worker's CPU buffer in MiB: a quarter of the container's memory, split between its GPUs."""
    return quantity.mebibytes(memory) // STREAMER_SHARE_OF_MEMORY // max(gpus, 1)


HOME_GIB = 1
TMP_GIB = 4
CACHE_GIB = {"gpu": 8, "cpu": 2}  # compile, CUDA and kernel caches
WEIGHTS_HEADROOM = 1.1


def volume_sizes(weights_gib: float, gpu: bool, weights_at: str) -> tuple[int, int]:
    """(the weights volume's size limit, the cache volume's) in GiB, from the weights' size with 10% headroom and
    where they land (ModelSpec.weights_at): a copy from the store goes to /models, a hub model's download into the
    cache (HF_HOME), streamed weights nowhere. (0, 0) when the weights are unsized. A volume past its limit gets
    the pod evicted, loudly, rather than filling the node's disk."""
    if not weights_gib:
        return 0, 0
    weights = math.ceil(weights_gib * WEIGHTS_HEADROOM)
    cache = CACHE_GIB["gpu" if gpu else "cpu"]
    return {"models": (weights, cache), "cache": (1, weights + cache), "none": (1, cache)}[weights_at]


def storage_request_gib(weights_gib: float, gpu: bool, weights_at: str) -> int:
    """The ephemeral-storage the server asks for: its volumes' sizes together (0 when the weights are unsized)."""
    models, cache = volume_sizes(weights_gib, gpu, weights_at)
    return models + cache + HOME_GIB + TMP_GIB if models else 0


# The AWS CLI image (aws/aws-cli docker/Dockerfile: Amazon Linux 2, entrypoint aws) has a POSIX shell: the
# transfer client is set in the CLI's config file under HOME (/tmp here) before the copy, since no environment
# variable selects it (awscli/topics/s3-config.rst). crt's buffer pool grows with the target bandwidth it
# detects from the instance type (2 GiB below 25 Gb/s, 4, 8, up to 24 GiB at 200 Gb/s: awslabs/aws-c-s3
# s3_client.c); capping the target at 24 Gb/s (3 GB/s, beyond what one node's disks take) keeps it at 2 GiB
# inside the container's limit.
SYNC_SCRIPT = (
    'aws configure set default.s3.preferred_transfer_client "$0" && aws configure set default.s3.target_bandwidth 24Gb/s '
    f'&& exec aws s3 sync "$1" "$2" --only-show-errors --no-progress --exclude "{WEIGHTS_READY_MARKER}"'
)
# A registry version's files arrive while the stack may already be deploying (models sync beside a first
# pulumi up): the pod waits for the marker sync writes last, rather than start on half the weights. HeadObject
# needs only the s3:GetObject the model's role has on its prefix.
WAIT_SCRIPT = (
    'until aws s3api head-object --bucket "$0" --key "$1" >/dev/null 2>&1; do '
    'echo "waiting for s3://$0/$1, which models sync writes once the weights are whole" >&2; sleep "$2"; done'
)
WAIT_SECONDS = 15
# Restoring the compile cache may fail (a first replica finds nothing, S3 may refuse): the server then compiles
# anew, which costs minutes, never the model; the failure is said in the container's log. The cache is small,
# so the classic client moves it (crt would size its buffers for the whole node's bandwidth).
RESTORE_SCRIPT = (
    "aws configure set default.s3.preferred_transfer_client classic; "
    'aws s3 sync "$0" "$1" --only-show-errors --no-progress || echo "compile cache: restore from $0 failed; the server compiles anew" >&2'
)
# The save sidecar uploads what vLLM has written (its entries are written whole, then renamed: vllm
# compilation/compiler_interface.py) every SAVE_SECONDS and once more when the pod stops. An upload that fails is
# logged and retried at the next round; it never stops the pod.
SAVE_SECONDS = 120
SAVE_SCRIPT = (
    'dir="$0"; dest="$1"; every="$2"; '
    "aws configure set default.s3.preferred_transfer_client classic; "
    'save() { if [ -d "$dir" ]; then aws s3 sync "$dir" "$dest" --only-show-errors --no-progress '
    '|| echo "compile cache: upload to $dest failed; retrying in $every s" >&2; fi; }; '
    "trap 'save; exit 0' TERM; "
    'while true; do sleep "$every" & wait $!; save; done'
)
LOADER_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}}
SIDECAR_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
"""What the compile cache's save sidecar adds to the pod's requests (a sidecar runs beside the server)."""
COMPILE_CACHE_DIR = f"{CACHE_DIR}/vllm/torch_compile_cache"
"""VLLM_CACHE_ROOT's torch_compile_cache, which vLLM's docs say to copy whole (docs/design/torch_compile.md)."""


def _aws_container(spec: ModelSpec, name: str, script: str, args: list[str], mounts: list[dict], resources: dict) -> dict:
    return {
        "name": name,
        "image": spec.loader_image,
        "imagePullPolicy": pull_policy(spec.loader_image),
        "command": ["/bin/sh", "-c", script],
        "args": args,
        # Each container its own CLI config file: they share /tmp, and each sets its own transfer client.
        "env": [
            {"name": "AWS_REGION", "value": spec.region},
            {"name": "HOME", "value": "/tmp"},
            {"name": "AWS_CONFIG_FILE", "value": f"/tmp/{name}/aws-config"},
        ],
        "resources": resources,
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": container_security(),
    }


def init_containers(spec: ModelSpec) -> list[dict]:
    """The containers before the server: the compile cache's restore, the weights' copy, and the cache's save
    sidecar (a native sidecar, `restartPolicy: Always`, which runs beside the server and stops after it)."""
    cache_mount = [{"name": "cache", "mountPath": CACHE_DIR}]
    init = []
    if spec.compile_cache_uri:
        small = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
        init.append(
            _aws_container(spec, "restore-compile-cache", RESTORE_SCRIPT, [spec.compile_cache_uri, COMPILE_CACHE_DIR], cache_mount, small)
        )
    if spec.wait_for_weights and spec.model_uri:
        bucket, _, prefix = spec.model_uri.removeprefix("s3://").partition("/")
        small = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}}
        marker = [bucket, prefix + WEIGHTS_READY_MARKER, str(WAIT_SECONDS)]
        init.append(_aws_container(spec, "wait-for-weights", WAIT_SCRIPT, marker, [], small))
    if spec.weights_at == "models":
        init.append(
            _aws_container(
                spec,
                "load-weights",
                SYNC_SCRIPT,
                [spec.transfer_client, str(spec.model_uri), MODELS_DIR],
                [{"name": "models", "mountPath": MODELS_DIR}],
                LOADER_RESOURCES,
            )
        )
    if spec.compile_cache_uri:
        sidecar = _aws_container(
            spec,
            "save-compile-cache",
            SAVE_SCRIPT,
            [COMPILE_CACHE_DIR, spec.compile_cache_uri, str(SAVE_SECONDS)],
            [{**cache_mount[0], "readOnly": True}],
            {"requests": dict(SIDECAR_REQUESTS), "limits": {"cpu": "1", "memory": "1Gi"}},
        )
        init.append({**sidecar, "restartPolicy": "Always"})
    if spec.capture is not None:
        # Last: it starts once the weights are in place, just before the server, and stops after it.
        init.append(capture.sidecar(spec))
    return init


def deployment(spec: ModelSpec) -> dict:
    command, args, ports, env, live_path, ready_path = runtime(spec)
    gpu = {"nvidia.com/gpu": str(spec.gpus)} if spec.gpus else {}
    resources = {"requests": {"cpu": spec.cpu, "memory": spec.memory, **gpu}, "limits": {"cpu": spec.cpu, "memory": spec.memory, **gpu}}
    mounts = [
        {"name": "models", "mountPath": MODELS_DIR},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "home", "mountPath": HOME_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    models_gib, cache_gib = volume_sizes(spec.weights_gib, bool(spec.gpus), spec.weights_at)
    volumes = [
        {"name": "models", "emptyDir": {"sizeLimit": f"{models_gib}Gi"} if models_gib else {}},
        {"name": "cache", "emptyDir": {"sizeLimit": f"{cache_gib}Gi"} if cache_gib else {}},
        {"name": "home", "emptyDir": {"sizeLimit": f"{HOME_GIB}Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{TMP_GIB}Gi"}},
    ]
    if models_gib:
        # emptyDirs live on the node's disk: request their sum, so the scheduler places the pod where it fits and
        # the kubelet's eviction under disk pressure picks pods that exceed what they asked for.
        resources["requests"]["ephemeral-storage"] = f"{storage_request_gib(spec.weights_gib, bool(spec.gpus), spec.weights_at)}Gi"
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
        "securityContext": container_security(),
        # The startup budget covers image pull, weight loading and warm-up; liveness only starts after it.
        "startupProbe": _probe(live_path, spec.port, 10, math.ceil(spec.startup_seconds / 10)),
        "readinessProbe": _probe(ready_path, spec.port, 10, 3),
        "livenessProbe": _probe(live_path, spec.port, 20, 3, timeout=10),
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
    }
    if command:
        server["command"] = command

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
        "securityContext": pod_security(),
        "terminationGracePeriodSeconds": DRAIN_SECONDS + (120 if spec.gpus else 45),
        "initContainers": init_containers(spec),
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
        "metadata": meta(
            spec, **({"annotations": {COLD_START_ANNOTATION: str(spec.cold_start_seconds)}} if spec.cold_start_seconds else {})
        ),
        "spec": {
            # No `replicas`: the autoscaler owns it, and a `pulumi up` must not reset it.
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels(spec), "annotations": pod_annotations}, "spec": pod_spec},
        },
    }
