"""The model registry server a stack declares (`modelRegistry.mode` sagemaker or selfHosted), from its config:
SageMaker's managed MLflow, or MLflow on the cluster with its Aurora database. A stack that uses another stack's
server (a preview: its base's; a reproduction: serverOfStack) declares none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from ml_platform.components.mlflow_server import MlflowServer, MlflowServerArgs, ServerSpec
from ml_platform.components.registry_database import RegistryDatabase, RegistryDatabaseArgs
from ml_platform.components.sagemaker_mlflow import ARTIFACT_PREFIX, SageMakerMlflow, SageMakerMlflowArgs
from ml_platform.infra import config, models
from ml_platform.infra.model_registry import lockfile


@dataclass
class Platform:
    """What the registry server runs on and writes to (the program's resources)."""

    kubernetes_provider: pulumi.ProviderResource
    cluster_name: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    vpc_cidrs: Sequence[str]
    bucket_name: str
    """The model store's name (known before deploy: model_store_bucket)."""
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    account_id: str
    ecr_host: str
    node_selector: Mapping[str, str]
    monitoring_crds: pulumi.Resource | None
    alb_controller: pulumi.Resource | None
    tags: Mapping[str, str]
    depends_on: Sequence[pulumi.Resource] = ()
    """What the server's pods need first: nodes to run on, CoreDNS to resolve the database and S3."""


def declares_server(cfg: config.StackConfig) -> bool:
    """Whether this stack runs its own registry server (sagemaker or selfHosted, and not another stack's)."""
    registry = cfg.modelRegistry
    return registry is not None and registry.mode in ("sagemaker", "selfHosted") and lockfile.server_stack(cfg) == cfg.stack


def needs_alb_controller(cfg: config.StackConfig) -> bool:
    """A self-hosted server behind an internal ALB needs the AWS Load Balancer Controller."""
    return declares_server(cfg) and cfg.modelRegistry.mode == "selfHosted" and cfg.modelRegistry.selfHosted.ingress is not None


def server_spec(
    cfg: config.StackConfig, bucket_name: str, ecr_host: str, node_selector: Mapping[str, str], vpc_cidrs: Sequence[str]
) -> ServerSpec:
    """The self-hosted server in Kubernetes' terms, from the stack's config."""
    settings = cfg.modelRegistry.selfHosted
    ingress = settings.ingress
    return ServerSpec(
        image=models.image_reference(settings.image, ecr_host, cfg.image_registry_prefix),
        mlflow_version=settings.mlflowVersion,
        artifacts_destination=f"s3://{bucket_name}/{ARTIFACT_PREFIX}",
        region=cfg.region,
        replicas=settings.replicas,
        workers=settings.workers,
        cpu=settings.resources.cpu,
        memory=settings.resources.memory,
        password_generation=settings.database.passwordGeneration,
        node_selector=node_selector,
        allowed_namespaces=tuple(settings.allowedNamespaces),
        ingress_host=ingress.host if ingress else None,
        certificate_arn=ingress.certificateArn if ingress else None,
        vpc_cidrs=tuple(vpc_cidrs),
        database_pauses=settings.database.minCapacity == 0,
    )


def declare(cfg: config.StackConfig, platform: Platform) -> dict | None:
    """The stack's registry server, or None when it declares none. Returns the `modelRegistry` stack output (and
    exports `modelRegistryAdminPassword`, a secret, for selfHosted)."""
    if not declares_server(cfg):
        return None
    registry = cfg.modelRegistry
    production = cfg.environment == "prod"
    if registry.mode == "sagemaker":
        settings = registry.sagemaker
        server = SageMakerMlflow(
            "model-registry",
            SageMakerMlflowArgs(
                stack=cfg.stack,
                bucket_name=platform.bucket_name,
                bucket_arn=platform.bucket_arn,
                kms_key_arn=platform.kms_key_arn,
                region=cfg.region,
                account_id=platform.account_id,
                mlflow_version=settings.mlflowVersion,
                size=settings.size,
                weekly_maintenance_window_start=settings.weeklyMaintenanceWindowStart,
                protect=cfg.protectStatefulResources,
                tags=platform.tags,
            ),
        )
        return {"mode": "sagemaker", "trackingServerArn": server.arn, "url": server.url}

    settings = registry.selfHosted
    db = settings.database
    database = RegistryDatabase(
        "model-registry-db",
        RegistryDatabaseArgs(
            stack=cfg.stack,
            vpc_id=platform.vpc_id,
            subnet_ids=platform.private_subnet_ids,
            client_security_group_id=platform.cluster_security_group_id,
            kms_key_arn=platform.kms_key_arn,
            engine_version=db.engineVersion,
            min_capacity=db.minCapacity,
            max_capacity=db.maxCapacity,
            instances=db.instances,
            seconds_until_auto_pause=db.secondsUntilAutoPause,
            backup_retention_days=db.backupRetentionDays,
            password_generation=db.passwordGeneration,
            production=production,
            protect=cfg.protectStatefulResources,
            tags=platform.tags,
        ),
    )
    server = MlflowServer(
        "model-registry",
        MlflowServerArgs(
            spec=server_spec(cfg, platform.bucket_name, platform.ecr_host, platform.node_selector, platform.vpc_cidrs),
            stack=cfg.stack,
            database=database,
            kubernetes_provider=platform.kubernetes_provider,
            cluster_name=platform.cluster_name,
            bucket_arn=platform.bucket_arn,
            kms_key_arn=platform.kms_key_arn,
            default_permission=settings.defaultPermission,
            monitoring_crds=platform.monitoring_crds,
            alb_controller=platform.alb_controller,
            production=production,
            tags=platform.tags,
        ),
        opts=pulumi.ResourceOptions(depends_on=list(platform.depends_on)),
    )
    # A secret inside an output would mask the whole output: the admin's first password is one of its own.
    pulumi.export("modelRegistryAdminPassword", server.admin_password)
    return {"mode": "selfHosted", "url": server.url, "adminUsername": "admin", "databaseEndpoint": database.endpoint}
