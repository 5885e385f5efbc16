"""From the stack's `models` config to ModelSpecs, with placement from the scheduling contract."""

from __future__ import annotations

from components import scheduling
from components.model_service import ModelSpec
from components.monitoring import NAMESPACE as MONITORING_NAMESPACE
from components.monitoring import PROMETHEUS_URL
from infra import config, pools

DEFAULT_TARGETS = {"vllm": 5.0, "triton": 50.0}  # waiting requests per replica; queue time in ms
DEFAULT_CPU_TARGET = 70.0  # percent of the CPU request


def image_reference(image: config.ImageRef, registry: str, prefix: str) -> str:
    """Full image reference; a digest wins over a tag (what runs is exactly what was pushed)."""
    repository = image.repository
    if not image.upstream:
        repository = f"{registry}/{prefix}/{repository}" if prefix else f"{registry}/{repository}"
    return f"{repository}@{image.digest}" if image.digest else f"{repository}:{image.tag}"


def placement_problems(cfg: config.StackConfig) -> list[tuple[str, str]]:
    """GPU models that no pool can take, with why (the scheduling contract)."""
    contract_pools = pools.scheduling_pools(cfg)
    whole = max((p.max_gpus_per_pod for p in contract_pools), default=0)
    problems = []
    for name, model in sorted(cfg.models.items()):
        if model.gpus and not scheduling.gpu_placement(model.gpus, contract_pools)[2]:
            problems.append(
                (
                    f"models.{name}.gpus",
                    f"no node pool can run a pod with {model.gpus} GPUs (tensor parallelism needs them on one node); "
                    f"the most one pod can get is {whole}",
                )
            )
    return problems


def model_spec(
    name: str, model: config.ModelConfig, cfg: config.StackConfig, registry: str, bucket: str, shared_namespace: str | None = None
) -> ModelSpec:
    selector, tolerations, _ = scheduling.gpu_placement(model.gpus, pools.scheduling_pools(cfg))
    prefix = cfg.image_registry_prefix
    loader = cfg.serving.loaderImage
    hours = model.autoscaling.activeHours
    default_target = DEFAULT_TARGETS.get(model.runtime, 1.0) if model.gpus else DEFAULT_CPU_TARGET
    return ModelSpec(
        name=name,
        runtime=model.runtime,
        image=image_reference(model.image, registry, prefix),
        loader_image=image_reference(loader, registry, prefix),
        cpu=model.resources.cpu,
        memory=model.resources.memory,
        port=model.serving_port,
        health_path=model.healthPath or "/health",
        metrics_path=model.metricsPath,
        startup_seconds=model.startupSeconds or (900 if model.gpus else 120),
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
        scale_query=model.autoscaling.query,
        active_hours=hours.model_dump() if hours else None,
        node_selector=selector,
        tolerations=tolerations,
        spread_zones=cfg.environment != "dev",
        args=tuple(model.args),
        alb=model.exposure.type == "alb",
        alb_scheme=model.exposure.scheme,
        certificate_arn=model.exposure.certificateArn,
        vpc_cidr=cfg.network.cidr,
        allowed_namespaces=tuple(model.allowedNamespaces),
        p99_latency_seconds=model.slo.p99LatencySeconds,
        error_ratio=model.slo.errorRatio,
        queue_backlog=model.slo.queueBacklog,
        pull_by_digest=model.image.digest is not None,
        shared_namespace=shared_namespace,
    )
