"""From the stack's `models` config to ModelSpecs, with placement from the scheduling contract."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ml_platform.components import instance_types, pushgateway, quantity, scheduling
from ml_platform.components.model_service import ModelSpec, capture, pods
from ml_platform.components.model_service.capture import CaptureSpec
from ml_platform.components.model_service.metric_drift import MetricDriftSpec
from ml_platform.components.model_service.monitor_job import MonitorSpec
from ml_platform.components.model_service.spec import weights_location
from ml_platform.components.model_store import COMPILE_CACHE_PREFIX
from ml_platform.components.monitoring import NAMESPACE as MONITORING_NAMESPACE
from ml_platform.components.monitoring import PROMETHEUS_URL
from ml_platform.components.resources import SMALL, STANDARD
from ml_platform.components.running_images import RunningImagesSpec
from ml_platform.components.scheduling import POOL_LABEL
from ml_platform.infra import coldstart, config, pools
from ml_platform.infra.config.model_monitoring import duration_seconds, schedule_period_seconds
from ml_platform.infra.model_registry.artifacts import STORE_PREFIX
from ml_platform.infra.offline import capacity

# Models never run on the system pool: the capacity check reserves it for the platform's own pods, and a CPU
# model there would take the room a controller's rolling update needs (no autoscaler grows managed pools).
MODEL_EXCLUDED_POOLS = ("system",)
DEFAULT_TARGETS = {"vllm": 5.0, "triton": 50.0}  # waiting requests per replica; queue time in ms
DEFAULT_CPU_TARGET = 70.0  # percent of the CPU request


def image_reference(image: config.ImageRef, registry: str, prefix: str) -> str:
    """Full image reference; a digest wins over a tag (what runs is exactly what was pushed)."""
    repository = image.repository
    if not image.upstream:
        repository = f"{registry}/{prefix}/{repository}" if prefix else f"{registry}/{repository}"
    return f"{repository}@{image.digest}" if image.digest else f"{repository}:{image.tag}"


# vLLM takes this share of a GPU's memory unless told otherwise (its --gpu-memory-utilization default).
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9


def gpu_memory_utilization(args: list[str]) -> float | str | None:
    """The value of vLLM's --gpu-memory-utilization in a model's args (either spelling; the last one given wins,
    as with argparse, which vLLM uses), None when absent, or the text as given when it is not a number."""
    found: float | str | None = None
    for index, arg in enumerate(args):
        if arg.startswith("--gpu-memory-utilization="):
            value = arg.split("=", 1)[1]
        elif arg == "--gpu-memory-utilization" and index + 1 < len(args):
            value = args[index + 1]
        else:
            continue
        try:
            found = float(value)
        except ValueError:
            found = value
    return found
    return None


def placement_problems(cfg: config.StackConfig) -> list[tuple[str, str]]:
    """GPU models that no pool can take, and vLLM models that would not fit the GPU share they may land on,
    with why (the scheduling contract)."""
    contract_pools = pools.scheduling_pools(cfg)
    whole = max((p.max_gpus_per_pod for p in contract_pools), default=0)
    problems = []
    for name, model in sorted(cfg.models.items()):
        targets = scheduling.gpu_placement(model.gpus, contract_pools, MODEL_EXCLUDED_POOLS)[2]
        if not model.gpus and not targets:
            problems.append(
                (
                    f"models.{name}",
                    "no node pool can run this CPU model: models stay off the system pool (the platform's own pods need it); "
                    "add a CPU pool, e.g. a Karpenter pool with instanceCategories",
                )
            )
        if model.gpus and not targets:
            problems.append(
                (
                    f"models.{name}.gpus",
                    f"no node pool can run a pod with {model.gpus} GPUs (tensor parallelism needs them on one node); "
                    f"the most one pod can get is {whole}",
                )
            )
        shares = {pool: pools.time_slices(cfg.nodePools[pool]) for pool in targets if pools.time_slices(cfg.nodePools[pool]) > 1}
        if model.runtime == "vllm" and shares:
            # vLLM reserves its share of the GPU's memory at start; the next pod on a time-sliced GPU finds less
            # free memory than it asks for and exits ("Free memory on device ... is less than desired").
            pool, slices = max(shares.items(), key=lambda item: item[1])
            most = round(1 / slices, 4)
            utilization = gpu_memory_utilization(list(model.args))
            if isinstance(utilization, str):
                problems.append((f"models.{name}.args", f"--gpu-memory-utilization '{utilization}' is not a number (0 < x <= 1)"))
            elif utilization is not None and not 0 < utilization <= 1:
                problems.append(
                    (f"models.{name}.args", f"--gpu-memory-utilization '{utilization:g}' is not a share of a GPU's memory (0 < x <= 1)")
                )
            elif utilization is None or utilization > most:
                asked = f"{utilization:g}" if utilization is not None else f"{VLLM_DEFAULT_GPU_MEMORY_UTILIZATION:g} (vLLM's default)"
                problems.append(
                    (
                        f"models.{name}.args",
                        f"it may land on pool {pool}, which shares each GPU {slices} ways, and vLLM reserves {asked} of a GPU's "
                        f"memory at start: set --gpu-memory-utilization to at most {most:g}",
                    )
                )
    problems += fit_problems(cfg, contract_pools)
    problems += disk_problems(cfg, contract_pools)
    problems += fast_pull_problems(cfg)
    return problems


# nodeadm turns FastImagePull on only on nodes with at least 4 vCPUs and 7 GiB of memory
# (amazon-eks-ami nodeadm/internal/containerd/config.go); smaller nodes pull as before, silently.
FAST_PULL_MIN_VCPUS = 4
FAST_PULL_MIN_GIB = 7


def fast_pull_problems(cfg: config.StackConfig) -> list[tuple[str, str]]:
    """Managed pools with fastImagePull whose instance types are too small for nodeadm to turn it on: the pool
    would pull as before while the estimate counts the faster pull. Types this program cannot size are passed."""
    problems = []
    for name, pool in sorted(cfg.nodePools.items()):
        if not pool.fastImagePull or not isinstance(pool, config.ManagedPoolConfig):
            continue
        small = []
        for instance_type in pool.instanceTypes:
            sized = capacity.vcpus_and_gib(instance_type)
            if sized is not None and (sized[0] < FAST_PULL_MIN_VCPUS or sized[1] < FAST_PULL_MIN_GIB):
                small.append(f"{instance_type} ({sized[0]} vCPUs, {sized[1]:g} GiB)")
        if small:
            problems.append(
                (
                    f"nodePools.{name}.fastImagePull",
                    f"nodeadm turns FastImagePull on only with {FAST_PULL_MIN_VCPUS} vCPUs and {FAST_PULL_MIN_GIB} GiB or more, "
                    f"which {', '.join(small)} lack(s): use larger types, or remove fastImagePull",
                )
            )
    return problems


# What a node's root volume holds besides a model's pod: the kubelet keeps nodefs.available above 10% (its hard
# eviction threshold), EKS's AL2023 kubelet config reserves 1 GiB of ephemeral storage for the system, and images
# share the volume (imagefs is nodefs on EKS AMIs): the model's own (unpacked, about twice its compressed size) and
# the DaemonSets' (DAEMONSET_IMAGES_GIB).
EVICTION_SHARE = 0.10
RESERVED_GIB = 1
DAEMONSET_IMAGES_GIB = 10


def candidate_pools(cfg: config.StackConfig, model: config.ModelConfig, contract_pools: list[scheduling.Pool] | None = None) -> list[str]:
    """The pools that can run a model (the scheduling contract's placement; `contract_pools`: the stack's, when
    the caller has them already)."""
    contract_pools = contract_pools if contract_pools is not None else pools.scheduling_pools(cfg)
    return list(scheduling.gpu_placement(model.gpus, contract_pools, MODEL_EXCLUDED_POOLS)[2])


def cold_start(name: str, model: config.ModelConfig, cfg: config.StackConfig) -> coldstart.ColdStart:
    """The model's cold-start estimate as configured, on the pools that can run it (local NVMe and FastImagePull
    count only where every one of them has it), with the total each option that applies to it would give turned
    the other way: localStorage (where the pools' families have NVMe), fastImagePull, source.loadFormat (vLLM,
    weights in the store) and compileCache (vLLM, compiling)."""
    candidates = [cfg.nodePools[pool_name] for pool_name in candidate_pools(cfg, model)]
    nvme_capable = bool(candidates) and all(pool.nvme_capable for pool in candidates)
    options = coldstart.Options(
        local_nvme=bool(candidates) and all(pool.local_nvme for pool in candidates),
        fast_pull=bool(candidates) and all(pool.fastImagePull for pool in candidates),
        stream=model.source.loadFormat == "runai_streamer",
        compile_cache=model.compileCache != "none",
    )
    # Each option that applies to this model: (its Options field, its config key, the value that turns it on, off).
    toggles = []
    if nvme_capable:
        toggles.append(("local_nvme", "localStorage", "raid0", "none"))
    if candidates:
        toggles.append(("fast_pull", "fastImagePull", "true", "false"))
    if model.runtime == "vllm" and model.source.s3Prefix is not None:
        toggles.append(("stream", "source.loadFormat", "runai_streamer", "auto"))
    if model.runtime == "vllm" and coldstart.ENFORCE_EAGER not in model.args:
        toggles.append(("compile_cache", "compileCache", "modelStore", "none"))
    alternatives = {}
    for field, key, on, off in toggles:
        now = getattr(options, field)
        alternatives[f"{key} {off if now else on}"] = replace(options, **{field: not now})
    if sum(not getattr(options, field) for field, *_ in toggles) > 1:
        alternatives["every option above that speeds it"] = replace(options, **{field: True for field, *_ in toggles})
    return coldstart.compare(name, model, options, alternatives)


def start_warnings(cfg: config.StackConfig) -> list[str]:
    """What the plan says about each model's start: weights of no stated size (the default sizes the pod's
    storage, and a larger copy gets the pod evicted), and a startupSeconds below the server's estimated start
    (the probe would kill a cold replica before it serves)."""
    warnings = []
    for name, model in sorted(cfg.models.items()):
        if model.source.sizeGiB is None:
            weights = coldstart.weights_gib(model)
            warnings.append(
                f"models.{name}.source.sizeGiB is not set: {weights:g} GiB is assumed, which sizes the pod's storage; weights "
                "larger than that get the pod evicted while they land: set the real size"
            )
        start = cold_start(name, model, cfg)
        need = max(start.server_seconds, start.cold_cache_server_seconds)
        if model.startupSeconds is not None and model.startupSeconds < need:
            warnings.append(
                f"models.{name}.startupSeconds {model.startupSeconds} is below the server's estimated start of {need:.0f} s "
                "(`python -m infra coldstart`): a cold replica may be killed before it serves"
            )
    if cfg.preview is not None and cfg.preview.mode == "namespace":
        judged = [name for name, m in sorted(cfg.models.items()) if m.capture or m.drift or m.metricDrift]
        if judged:
            warnings.append(
                f"{', '.join(judged)}: capture, drift and metricDrift are off in a namespace preview (its traffic is a test's, "
                "and would land among the base stack's records and hours); a full preview runs them"
            )
    return warnings


def disk_problems(cfg: config.StackConfig, contract_pools: list[scheduling.Pool]) -> list[tuple[str, str]]:
    """Models whose pod's storage (the ephemeral-storage request made from `source.sizeGiB`) cannot fit the root
    volume of any pool that can run them, beside the images: such a pod would stay pending, or be evicted when
    its weights land."""
    problems = []
    for name, model in sorted(cfg.models.items()):
        weights = coldstart.weights_gib(model)
        image = coldstart.image_gib(model) * 2  # unpacked
        asked = pods.storage_request_gib(
            weights, bool(model.gpus), weights_location(model.source.loadFormat, model.source.s3Prefix is not None)
        )
        room = {}
        for pool_name in candidate_pools(cfg, model, contract_pools):
            pool = cfg.nodePools[pool_name]
            disk = pools.root_disk_gib(pool)
            if pool.local_nvme_min_gb:
                disk = pool.local_nvme_min_gb * 1e9 / 2**30  # containerd and the kubelet live on the NVMe array
            room[pool_name] = disk * (1 - EVICTION_SHARE) - RESERVED_GIB - DAEMONSET_IMAGES_GIB - image
        if room and max(room.values()) < asked:
            best = max(room, key=room.__getitem__)
            problems.append(
                (
                    f"models.{name}.source.sizeGiB",
                    f"the pod needs {asked} GiB of node storage for {weights:g} GiB of weights, and the largest node storage of "
                    f"the pools that can run it ({best}) leaves {room[best]:.0f} GiB beside the images: raise that pool's diskSizeGiB "
                    "or use families with more local NVMe",
                )
            )
    return problems


def fit_problems(cfg: config.StackConfig, contract_pools: list[scheduling.Pool]) -> list[tuple[str, str]]:
    """Models whose pod fits no node of any pool that can take it: its CPU and memory against the allocatable
    capacity (after kube-reserved, the eviction threshold and the DaemonSets) of the pool's instance types, within
    the pool's limits. Types this program cannot size are passed over; a model is refused only when some type
    was sized and none fits."""
    size = SMALL if cfg.environment == "dev" else STANDARD
    problems = []
    for name, model in sorted(cfg.models.items()):
        cpu_m = int(quantity.parse(model.resources.cpu) * 1000)
        memory_mi = quantity.mebibytes(model.resources.memory)
        if model.compileCache != "none":  # the save sidecar runs beside the server, and its requests add up
            cpu_m += int(quantity.parse(pods.SIDECAR_REQUESTS["cpu"]) * 1000)
            memory_mi += quantity.mebibytes(pods.SIDECAR_REQUESTS["memory"])
        if model.capture is not None:  # so do the capture proxy's
            cpu_m += int(quantity.parse(capture.REQUESTS["cpu"]) * 1000)
            memory_mi += quantity.mebibytes(capture.REQUESTS["memory"])
        largest: tuple[int, int, str] | None = None
        fits = sized = False
        for pool_name in scheduling.gpu_placement(model.gpus, contract_pools, MODEL_EXCLUDED_POOLS)[2]:
            pool = cfg.nodePools[pool_name]
            overhead = capacity.node_overhead(size, pool.gpu is not None)
            for instance_type in pools.candidate_types(pool):
                offered = capacity.allocatable(instance_type)
                if offered is None:
                    continue
                sized = True
                cpu, memory = offered[0] - overhead[0], offered[1] - overhead[1]
                if isinstance(pool, config.KarpenterPoolConfig) and (
                    offered[0] > pool.limits.cpu * 1000 or offered[1] > pool.limits.memoryGiB * 1024
                ):
                    continue  # Karpenter launches no node that would break the pool's limits
                gpu = instance_types.gpu_info(instance_type)
                if model.gpus and (gpu is None or gpu.count * pools.time_slices(pool) < model.gpus):
                    continue  # a node with too few GPUs (the pool's limits may leave only small ones)
                if largest is None or (cpu, memory) > largest[:2]:
                    largest = (cpu, memory, instance_type)
                fits = fits or (cpu >= cpu_m and memory >= memory_mi)
        if largest is None and sized and model.gpus:
            problems.append(
                (
                    f"models.{name}.gpus",
                    f"no node the pools may launch within their limits has {model.gpus} GPUs for one pod; raise the pool's limits.gpus",
                )
            )
        if largest is not None and not fits:
            problems.append(
                (
                    f"models.{name}.resources",
                    f"{model.resources.cpu} CPU and {model.resources.memory}"
                    + (" (and the compile cache's sidecar)" if model.compileCache != "none" else "")
                    + (" (and the capture proxy)" if model.capture is not None else "")
                    + " fit no node of the pools that can run this model: the "
                    f"largest ({largest[2]}) leaves pods {largest[0]}m CPU and {largest[1]}Mi after kube-reserved, eviction and "
                    "the DaemonSets (and within the pools' limits); request less or add a pool with larger types",
                )
            )
    return problems


def scale_query(name: str, query: str | None, shared_namespace: str | None) -> str | None:
    """A custom model's load query as deployed. It is written against the model's own namespace
    (`namespace="<name>"`, a config rule); in a namespace shared with other models (a namespace preview) that
    selector becomes the shared namespace and the model's own Service, so a preview scales on its own load,
    never on the base stack's model of the same name. The controller contract checks the result."""
    if query is None or shared_namespace is None:
        return query
    return query.replace(f'namespace="{name}"', f'namespace="{shared_namespace}", service="{name}"')


def compile_cache_key(image: str, model: config.ModelConfig) -> str:
    """12 hex digits of the image, the server's arguments and its GPU count: a model's compile cache lives under
    this key, so a restore fetches only the entries its own configuration can use (vLLM's own keys tell them apart
    within it, e.g. by GPU type), and entries of older images or flags stay behind until they expire."""
    text = "\n".join([image, str(model.gpus), *model.args])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def served_version(model: config.ModelConfig) -> str:
    """The version a model serves, as its captured records and drift reports name it: a registry model's locked
    version (from its resolved store prefix `registry/<model>/<version>/<content>/`), else `unversioned`."""
    prefix = model.source.s3Prefix
    if model.source.registry is not None and prefix is not None and prefix.startswith(STORE_PREFIX):
        return prefix.removeprefix(STORE_PREFIX).split("/")[1]
    return "unversioned"


def capture_spec(name: str, model: config.ModelConfig, cfg: config.StackConfig, registry: str, bucket: str) -> CaptureSpec | None:
    """The model's capture proxy, or None (no `capture`)."""
    if model.capture is None or cfg.serving.monitoringImage is None:
        return None
    return CaptureSpec(
        image=image_reference(cfg.serving.monitoringImage, registry, cfg.image_registry_prefix),
        bucket=bucket,
        version=served_version(model),
        sample_rate=model.capture.sampleRate,
        max_payload_bytes=model.capture.maxPayloadBytes,
        redact=tuple(model.capture.redact),
        retention_days=model.capture.retentionDays,
    )


def model_spec(
    name: str,
    model: config.ModelConfig,
    cfg: config.StackConfig,
    registry: str,
    bucket: str,
    shared_namespace: str | None = None,
    vpc_cidrs: Sequence[str] | None = None,
    alb_subnets: Mapping[str, Sequence[str]] | None = None,
) -> ModelSpec:
    """The ModelSpec of one model config. `vpc_cidrs`: the VPC's CIDRs (default: network.cidr of the VPC the
    platform creates; an existing VPC's are looked up by the program). `alb_subnets`: an existing VPC's ALB
    subnets by scheme, one per zone (None: the controller finds a created VPC's subnets by their tags)."""
    selector, tolerations, _ = scheduling.gpu_placement(model.gpus, pools.scheduling_pools(cfg), MODEL_EXCLUDED_POOLS)
    prefix = cfg.image_registry_prefix
    loader = cfg.serving.loaderImage
    hours = model.autoscaling.activeHours
    start = cold_start(name, model, cfg)
    image = image_reference(model.image, registry, prefix)
    default_target = DEFAULT_TARGETS.get(model.runtime, 1.0) if model.gpus else DEFAULT_CPU_TARGET
    return ModelSpec(
        name=name,
        runtime=model.runtime,
        image=image,
        loader_image=image_reference(loader, registry, prefix),
        cpu=model.resources.cpu,
        memory=model.resources.memory,
        port=model.serving_port,
        health_path=model.healthPath or "/health",
        metrics_path=model.metricsPath,
        startup_seconds=model.startupSeconds or start.probe_budget,
        rollout_seconds=start.rollout_budget,
        cold_start_seconds=round(start.worst_seconds),
        weights_gib=coldstart.weights_gib(model),
        min_replicas=model.replicas.min,
        max_replicas=model.replicas.max,
        target=model.autoscaling.target or default_target,
        prometheus_url=PROMETHEUS_URL,
        monitoring_namespace=MONITORING_NAMESPACE,
        region=cfg.region,
        model_uri=f"s3://{bucket}/{model.source.s3Prefix}" if model.source.s3Prefix else None,
        hub_id=model.source.hubId,
        hub_token_secret=model.source.hubTokenSecret,
        gpus=model.gpus,
        scale_query=scale_query(name, model.autoscaling.query, shared_namespace),
        active_hours=hours.model_dump() if hours else None,
        node_selector=selector,
        tolerations=tolerations,
        excluded_pools=MODEL_EXCLUDED_POOLS,
        spread_zones=cfg.environment != "dev",
        args=tuple(model.args),
        alb=model.exposure.type == "alb",
        alb_scheme=model.exposure.scheme,
        certificate_arn=model.exposure.certificateArn,
        vpc_cidrs=tuple(vpc_cidrs or (cfg.network.cidr,)),
        # An existing VPC's load balancers use the given subnets: public ones for internet-facing, else private.
        alb_subnet_ids=tuple((alb_subnets or {}).get(model.exposure.scheme, ())),
        allowed_namespaces=tuple(model.allowedNamespaces),
        p99_latency_seconds=model.slo.p99LatencySeconds,
        error_ratio=model.slo.errorRatio,
        queue_backlog=model.slo.queueBacklog,
        pull_by_digest=model.image.digest is not None,
        load_format=model.source.loadFormat,
        wait_for_weights=model.source.registry is not None,
        compile_cache_uri=(
            f"s3://{bucket}/{COMPILE_CACHE_PREFIX}{shared_namespace or name}/{name}/{compile_cache_key(image, model)}/"
            if model.compileCache == "modelStore"
            else None
        ),
        transfer_client=cfg.serving.loaderTransferClient,
        shared_namespace=shared_namespace,
        # A namespace preview's traffic is a test's: it would land among the base model's records and hours.
        metric_drift=metric_drift_spec(model.metricDrift) if shared_namespace is None else None,
        capture=capture_spec(name, model, cfg, registry, bucket) if shared_namespace is None else None,
        monitor=monitor_spec(model, cfg, registry, bucket) if shared_namespace is None else None,
    )


def monitor_spec(model: config.ModelConfig, cfg: config.StackConfig, registry: str, bucket: str) -> MonitorSpec | None:
    """The model's monitor job (drift, and feedback with it), or None."""
    drift, image = model.drift, cfg.serving.monitoringImage
    if drift is None or model.capture is None or image is None:
        return None
    feedback = model.feedback.model_dump() if model.feedback is not None else None
    if feedback is not None:
        feedback["window"] = duration_seconds(model.feedback.window) if model.feedback.window else None
    return MonitorSpec(
        image=image_reference(image, registry, cfg.image_registry_prefix),
        bucket=bucket,
        version=served_version(model),
        schedule=drift.schedule,
        period_seconds=schedule_period_seconds(drift.schedule),
        window_seconds=duration_seconds(drift.window),
        min_samples=drift.minSamples,
        pushgateway_url=pushgateway.url(MONITORING_NAMESPACE),
        reference_prefix=drift.reference.s3Prefix,
        method=drift.method,
        threshold=drift.threshold,
        drift_share=drift.driftShare,
        records_path=drift.recordsPath,
        feedback=feedback,
        excluded_pools=MODEL_EXCLUDED_POOLS,
    )


def metric_drift_spec(drift: config.MetricDrift | None) -> MetricDriftSpec | None:
    """The model's metric-drift comparison, or None."""
    if drift is None:
        return None
    return MetricDriftSpec(signals=tuple(drift.signals), baseline=drift.baseline, threshold=drift.threshold, min_requests=drift.minRequests)


def reports_running_images(cfg: config.StackConfig) -> bool:
    """Whether the stack runs the running-images report: vulnerabilities.runningImages.enabled, models to report on,
    and the monitoring image it runs from (serving.monitoringImage)."""
    return cfg.vulnerabilities.runningImages.enabled and bool(cfg.models) and cfg.serving.monitoringImage is not None


def running_images_spec(cfg: config.StackConfig, registry: str, account_id: str, partition: str) -> RunningImagesSpec | None:
    """The running-images report over every model's namespace (a model runs in the namespace of its name), or None
    (reports_running_images). It runs on the system pool, in the monitoring namespace beside the Pushgateway."""
    if not reports_running_images(cfg):
        return None
    settings = cfg.vulnerabilities.runningImages
    return RunningImagesSpec(
        image=image_reference(cfg.serving.monitoringImage, registry, cfg.image_registry_prefix),
        namespaces={name: name for name in sorted(cfg.models)},
        region=cfg.region,
        account_id=account_id,
        partition=partition,
        schedule=settings.schedule,
        period_seconds=schedule_period_seconds(settings.schedule),
        pushgateway_url=pushgateway.url(MONITORING_NAMESPACE),
        namespace=MONITORING_NAMESPACE,
        allow=tuple((entry.cve, entry.image, entry.expires.isoformat()) for entry in cfg.vulnerabilities.allow),
        node_selector={POOL_LABEL: "system"},
    )
