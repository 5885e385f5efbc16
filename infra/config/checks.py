"""Rules that span sections (cross-field checks), collected with the field errors in one pass."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Sequence

from ml_platform.components.images import CHART_IMAGES
from ml_platform.infra import promql
from ml_platform.infra.config.base import _ECR_HOST, _K8S_NAMESPACE, PROJECT, RESERVED_NAMESPACES
from ml_platform.infra.config.model_monitoring import duration_seconds
from ml_platform.infra.config.model_registry import SECRET_AUTH_FIELDS
from ml_platform.infra.config.models import ALLOWED_UPSTREAM_IMAGES, ImageRef, ModelConfig
from ml_platform.infra.config.monitoring import SECRET_RECEIVER_FIELDS
from ml_platform.infra.config.pools import KarpenterPoolConfig, ManagedPoolConfig
from ml_platform.infra.config.preview import PreviewConfig
from ml_platform.infra.config.stack import StackConfig
from ml_platform.infra.offline.secrets import is_masked


def _plain_secrets(cfg: StackConfig, secret_keys: Collection[str]) -> list[tuple[str, str]]:
    """Secret fields given in plain text. Offline an encrypted value is its masked digest (`[secret:...]`), so a
    field that is not masked was written in plain text; under the engine values arrive decrypted, and only the
    key as a whole is known to be secret, so a key that holds no secret at all is what gives plain text away."""
    key = f"{PROJECT}:monitoring"
    offline = any(is_masked(getattr(r, f)) for r in cfg.monitoring.receivers for f in SECRET_RECEIVER_FIELDS)
    problems = []
    for index, receiver in enumerate(cfg.monitoring.receivers):
        for field in SECRET_RECEIVER_FIELDS:
            value = getattr(receiver, field)
            if value is None or is_masked(value) or (key in secret_keys and not offline):
                continue
            path = f"monitoring.receivers[{index}].{field}"
            fix = f"pulumi config set --secret --path '{PROJECT}:{path}' <value>"
            problems.append((path, f"a secret in plain text in the stack file; encrypt it: {fix}"))
    registry = cfg.modelRegistry
    registry_offline = registry is not None and any(is_masked(getattr(registry.auth, f)) for f in SECRET_AUTH_FIELDS)
    for field in SECRET_AUTH_FIELDS if registry is not None else ():
        value = getattr(registry.auth, field)
        if value is None or is_masked(value) or (f"{PROJECT}:modelRegistry" in secret_keys and not registry_offline):
            continue
        path = f"modelRegistry.auth.{field}"
        problems.append(
            (path, f"a secret in plain text in the stack file; encrypt it: pulumi config set --secret --path '{PROJECT}:{path}' <value>")
        )
    return problems


def _cross_checks(cfg: StackConfig) -> list[tuple[str, str]]:
    """Rules that span sections; each returns (path, message)."""
    problems: list[tuple[str, str]] = []
    prod = cfg.environment == "prod"

    if not re.fullmatch(r"[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?", cfg.stack):
        problems.append(
            (
                "stack",
                f"'{cfg.stack}' must be 1-30 lowercase letters, digits or '-', starting with a letter and not ending in '-': "
                "it names the cluster, the bucket and the registry server",
            )
        )

    if cfg.network.availabilityZones is not None:
        for index, zone in enumerate(cfg.network.availabilityZones):
            if not re.fullmatch(re.escape(cfg.region) + r"[a-z]", zone):
                problems.append((f"network.availabilityZones[{index}]", f"'{zone}' is not an availability zone of {cfg.region}"))

    if not cfg.network.existing:
        # An existing VPC's CIDRs are known only from a lookup: the program runs the same check then.
        problems += access_cidr_overlaps(cfg, [cfg.network.cidr])

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
        if model.source.registry is not None and cfg.modelRegistry is None:
            problems.append(
                (
                    f"models.{name}.source.registry",
                    "names a registered model, but the stack has no modelRegistry: set modelRegistry {mode: external, trackingUri}",
                )
            )
        exposure = model.exposure
        if cfg.network.existing and exposure.type == "alb" and exposure.scheme == "internet-facing" and not cfg.network.publicSubnetIds:
            problems.append(
                (
                    f"models.{name}.exposure.scheme",
                    "internet-facing needs public subnets: list them in network.publicSubnetIds (in an existing VPC the "
                    "load balancers use the given subnets), or use 'internal'",
                )
            )
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
    if cfg.environment != "dev" and cfg.monitoring.storageGiB is not None and cfg.monitoring.storageGiB < 50:
        problems.append(("monitoring.storageGiB", "staging and prod keep at least 50 GiB of metrics"))
    if prod and not cfg.monitoring.receivers:
        problems.append(("monitoring.receivers", "prod alerts must reach someone: add a receiver and defaultReceiver"))
    if cfg.pins.amiRelease is not None and not cfg.pins.amiRelease.startswith(f"{cfg.cluster.version}."):
        problems.append(("pins.amiRelease", f"'{cfg.pins.amiRelease}' is not a release of Kubernetes {cfg.cluster.version}"))
    if prod and cfg.models and cfg.serving.loaderImage.digest is None:
        problems.append(("serving.loaderImage.digest", "prod runs images by digest"))
    problems += _model_monitoring_problems(cfg)
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
        if cfg.network.existing:
            # NAT and flow logs are the network team's in a VPC the platform does not own; the zones are still
            # the platform's concern (the lookup checks that the subnets are in 3 different zones).
            if len(cfg.network.privateSubnetIds) < 3:
                count = len(cfg.network.privateSubnetIds)
                problems.append(
                    ("network.privateSubnetIds", f"prod spreads over at least 3 AZs: list a private subnet in each, got {count}")
                )
        else:
            if cfg.network.azCount < 3:
                problems.append(("network.azCount", f"prod spreads over at least 3 AZs, got {cfg.network.azCount}"))
            if cfg.network.natGateways != "perAz":
                problems.append(("network.natGateways", "prod needs one NAT gateway per AZ ('perAz')"))
            if not cfg.network.flowLogs:
                problems.append(("network.flowLogs", "prod must keep VPC flow logs (set true)"))
    if cfg.preview is not None:
        problems += _preview_checks(cfg, cfg.preview)
    problems += _self_hosted_registry_problems(cfg)
    return problems


def _self_hosted_registry_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """A self-hosted registry that prod would run soft, or whose image the stack's registry does not hold."""
    registry = cfg.modelRegistry
    if registry is None or registry.mode != "selfHosted" or registry.selfHosted.serverOfStack:
        return []
    settings, path = registry.selfHosted, "modelRegistry.selfHosted"
    problems = _platform_image_problems(cfg, f"{path}.image", settings.image)
    certificate_region = settings.ingress.certificateArn.split(":")[3] if settings.ingress is not None else cfg.region
    if certificate_region != cfg.region:
        problems.append(
            (f"{path}.ingress.certificateArn", f"the certificate is in {certificate_region}; the ALB needs one in {cfg.region}")
        )
    if cfg.environment != "dev" and settings.database.minCapacity == 0:
        problems.append(
            (f"{path}.database.minCapacity", "only dev may pause its registry database (0): resuming takes about 15 s on the first request")
        )
    if cfg.environment == "prod":
        if settings.replicas < 2:
            problems.append((f"{path}.replicas", f"prod runs at least 2 server replicas, got {settings.replicas}"))
        if settings.database.instances < 2:
            problems.append(
                (
                    f"{path}.database.instances",
                    "prod runs at least 2 database instances (a writer and a reader in another zone to fail over to)",
                )
            )
    return problems


def _model_monitoring_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Metric drift's baseline within Prometheus's retention; the monitoring image for capture and drift."""
    problems = []
    retention = duration_seconds(cfg.prometheus_retention)
    for name, model in sorted(cfg.models.items()):
        # The compared hour starts baseline + 1h ago; Prometheus deletes whole blocks past its retention.
        if model.metricDrift is not None and duration_seconds(model.metricDrift.baseline) + 3600 > retention:
            days = -(-(duration_seconds(model.metricDrift.baseline) + 3600) // 86400)
            problems.append(
                (
                    f"models.{name}.metricDrift.baseline",
                    f"{model.metricDrift.baseline} (and the hour before it) lies beyond Prometheus's retention "
                    f"{cfg.prometheus_retention}: raise monitoring.retention to at least {days}d or shorten the baseline",
                )
            )
    users = [name for name, model in sorted(cfg.models.items()) if model.capture is not None]
    image = cfg.serving.monitoringImage
    if users and image is None:
        problems.append(
            (
                "serving.monitoringImage",
                f"{', '.join(users)} capture(s) traffic: give the platform/model-monitoring image (README, 'Drift and feedback')",
            )
        )
    if users and image is not None:
        if image.upstream:
            problems.append(("serving.monitoringImage.repository", "a repository of the platform's registry (platform/model-monitoring)"))
        else:
            problems += _platform_image_problems(cfg, "serving.monitoringImage", image)
    return problems


def _platform_image_problems(cfg: StackConfig, path: str, image: ImageRef) -> list[tuple[str, str]]:
    """An image the platform builds itself (images/<name>, e.g. the registry's server or model monitoring): its
    repository is one of the stack's registries, and prod runs it by digest."""
    problems = []
    if image.repository not in cfg.registries.repositories:
        problems.append((f"{path}.repository", f"'{image.repository}' is not in registries.repositories"))
    if cfg.environment == "prod" and image.digest is None:
        problems.append((f"{path}.digest", "prod runs images by digest"))
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


def access_cidr_overlaps(cfg: StackConfig, vpc_cidrs: Sequence[str]) -> list[tuple[str, str]]:
    """(key path, message) for each of the cluster's endpoint access CIDRs that overlaps one of the VPC's CIDRs:
    those ranges are for networks outside the VPC. Run on config for a VPC the platform creates, and by the
    program on the looked-up CIDRs of an existing one (infra/existing_network.py)."""
    problems = []
    for field in ("privateAccessCidrs", "publicAccessCidrs"):
        for index, cidr in enumerate(getattr(cfg.cluster, field)):
            for vpc in vpc_cidrs:
                if ipaddress.ip_network(cidr, strict=False).overlaps(ipaddress.ip_network(vpc)):
                    problems.append(
                        (
                            f"cluster.{field}[{index}]",
                            f"{cidr} overlaps the VPC ({vpc}): these ranges are for networks outside it (CI runners, a "
                            "VPN); the VPC's own nodes reach the endpoint already, and an overlap opens it to every pod",
                        )
                    )
    return problems
