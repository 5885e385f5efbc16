"""The Pulumi program: read the stack's config, wire the components, export the outputs.

Holds no resource logic of its own; every resource lives in a component under components/.
"""

from __future__ import annotations

import datetime

import pulumi
import pulumi_aws as aws

from ml_platform.components import pushgateway
from ml_platform.components.cluster_addons import ClusterAddons, ClusterAddonsArgs
from ml_platform.components.eks_cluster import AccessGrant, EksCluster, EksClusterArgs
from ml_platform.components.gpu import GpuSupport, GpuSupportArgs
from ml_platform.components.karpenter import Karpenter, KarpenterArgs
from ml_platform.components.kms import KmsKey, KmsKeyArgs
from ml_platform.components.logging import Logging, LoggingArgs, log_group_prefix
from ml_platform.components.model_service import ModelService, ModelServiceArgs, capture, monitor_job
from ml_platform.components.model_store import ModelStore, ModelStoreArgs
from ml_platform.components.monitoring import Monitoring, MonitoringArgs, alertmanager_config
from ml_platform.components.network import Network, NetworkArgs
from ml_platform.components.node_pool import NodePool, NodePoolArgs
from ml_platform.components.preview_namespace import PreviewNamespace, PreviewNamespaceArgs
from ml_platform.components.registry import ContainerRegistry, ContainerRegistryArgs, PullThroughCache
from ml_platform.components.registry_scanning import RegistryScanning, RegistryScanningArgs
from ml_platform.components.resources import PROMETHEUS_CPU, SMALL, STANDARD, sized
from ml_platform.components.running_images import RunningImages, RunningImagesArgs
from ml_platform.components.scheduling import POOL_LABEL
from ml_platform.components.serving_platform import ServingPlatform, ServingPlatformArgs
from ml_platform.infra import aliases, config, images, models, pools, registry_server, versions
from ml_platform.infra.naming import availability_zones, registry_host, stack_tags
from ml_platform.infra.naming import cluster_name as cluster_name
from ml_platform.infra.naming import model_store_bucket as model_store_bucket
from ml_platform.infra.placement import Placement, Weights, base_weights, existing_placement
from ml_platform.infra.stack_config import check_pins as check_pins
from ml_platform.infra.stack_config import check_scheduling as check_scheduling
from ml_platform.infra.stack_config import load_config, refuse_placeholders, warn_moved_charts
from ml_platform.infra.stack_images import stack_images


def installed_charts(cfg: config.StackConfig) -> set[str]:
    """The charts this stack installs (keys of versions.CHARTS)."""
    installed = {"kube-prometheus-stack", "prometheus-operator-crds", "aws-for-fluent-bit", "metrics-server"}
    if any(isinstance(pool, config.KarpenterPoolConfig) for pool in cfg.nodePools.values()):
        installed.add("karpenter")
    if any(pool.gpu is not None for pool in cfg.nodePools.values()):
        installed |= {"nvidia-device-plugin", "dcgm-exporter"}
    if cfg.models:
        installed.add("keda")
    if any(model.exposure.type == "alb" for model in cfg.models.values()):
        installed.add("aws-load-balancer-controller")
    if any(model.drift is not None for model in cfg.models.values()) or models.reports_running_images(cfg):
        installed.add("prometheus-pushgateway")
    return installed


def model_capacity(
    cfg: config.StackConfig,
    model: config.ModelConfig,
    managed: dict[str, NodePool],
    karpenter: Karpenter | None,
    gpu_support: GpuSupport | None,
) -> list[pulumi.Resource]:
    """What gives a model nodes: the pools the scheduling contract lets it run on (models.candidate_pools: the
    managed groups among them, and Karpenter with its NodePools if any is Karpenter's), plus the device plugin
    for a GPU model (a GPU node advertises no GPU without it). Waiting for no other pool keeps the model off a
    critical path it does not need."""
    candidates = models.candidate_pools(cfg, model)
    capacity: list[pulumi.Resource] = [managed[name] for name in candidates if name in managed]
    if karpenter is not None and any(name not in managed for name in candidates):
        capacity.append(karpenter)
    if model.gpus and gpu_support is not None:
        capacity.append(gpu_support)
    return capacity


def build(cfg: config.StackConfig) -> None:
    tags = stack_tags(cfg)
    release, charts = versions.resolve(cfg.cluster.version, cfg.pins.addons, cfg.pins.amiRelease, cfg.pins.charts)
    warn_moved_charts(cfg)
    support = versions.support_warning(cfg.cluster.version, datetime.date.today())
    if support:
        pulumi.log.warn(support)
    identity = aws.get_caller_identity()
    partition = aws.get_partition().partition
    name = cluster_name(cfg.stack)
    protect = cfg.protectStatefulResources
    ecr_host = registry_host(identity.account_id, cfg.region)
    charts, chart_images, direct_pulls = images.with_image_sources(charts, installed_charts(cfg), cfg, ecr_host)
    for warning in direct_pulls:
        pulumi.log.warn(warning)
    # An existing VPC is looked up and judged before any resource is registered: a wrong subnet stops the run
    # with nothing created.
    given = existing_placement(cfg) if cfg.network.existing else None
    zones = given.zones if given else availability_zones(cfg)
    if given is None:
        # With availabilityZones unset the zones are the region's first azCount, known only now (an existing
        # VPC's pool zones are judged with its subnets, in existing_placement).
        outside = [
            (path, f"'{zone}' is not one of the VPC's zones ({', '.join(zones)}): the pool could never launch a node")
            for path, zone in pools.zones_outside(cfg, zones)
        ]
        if outside:
            raise pulumi.RunError(config.ConfigError(outside).render())
    # dev runs the platform on one small system node; staging and prod get the standard sizes.
    size = SMALL if cfg.environment == "dev" else STANDARD
    platform_resources = sized(size)
    system_replicas = min(2, cfg.nodePools["system"].minSize)  # spread one per node: no more than the pool always has

    # One key for data at rest outside the cluster: images, model weights, persistent volumes, flow logs.
    data_key = KmsKey(
        "data",
        KmsKeyArgs(
            description=f"{name}: images, model artifacts, volumes and logs",
            alias=f"{name}-data",
            account_id=identity.account_id,
            partition=partition,
            region=cfg.region,
            service_principals=(f"logs.{cfg.region}.amazonaws.com",),
            protect=protect,
            tags=tags,
        ),
        opts=aliases.options("data"),
    )

    if given is not None:
        network = given
    else:
        created = Network(
            "network",
            NetworkArgs(
                cluster_name=name,
                cidr=cfg.network.cidr,
                availability_zones=zones,
                nat_per_az=cfg.network.natGateways == "perAz",
                flow_logs=cfg.network.flowLogs,
                flow_log_retention_days=cfg.network.flowLogRetentionDays,
                flow_log_kms_key_arn=data_key.arn,
                interface_endpoints=tuple(cfg.network.interfaceEndpoints),
                region=cfg.region,
                account_id=identity.account_id,
                protect=protect,
                tags=tags,
            ),
            opts=aliases.options("network"),
        )
        network = Placement(
            created.vpc_id, created.private_subnet_ids, created.public_subnet_ids, zones, (cfg.network.cidr,), created.egress
        )

    cluster = EksCluster(
        "eks",
        EksClusterArgs(
            cluster_name=name,
            kubernetes_version=release.kubernetes,
            addon_versions=release.addons,
            subnet_ids=network.private_subnet_ids,
            region=cfg.region,
            account_id=identity.account_id,
            partition=partition,
            public_access_cidrs=tuple(cfg.cluster.publicAccessCidrs),
            private_access_cidrs=tuple(cfg.cluster.privateAccessCidrs),
            access_grants=[AccessGrant(a.principalArn, a.access, tuple(a.namespaces)) for a in cfg.cluster.admins],
            log_retention_days=cfg.cluster.logRetentionDays,
            protect=protect,
            tags=tags,
        ),
        opts=aliases.options("eks"),
    )

    managed: dict[str, NodePool] = {}
    for pool_name, pool in sorted(cfg.nodePools.items()):
        if not isinstance(pool, config.ManagedPoolConfig):
            continue
        labels, taints = pools.labels_and_taints(pool_name, pool)
        managed[pool_name] = NodePool(
            pool_name,
            NodePoolArgs(
                cluster_name=cluster.name,
                node_role_arn=cluster.node_role.arn,
                subnet_ids=network.private_subnet_ids,
                instance_types=tuple(pool.instanceTypes),
                architecture=pool.architecture,
                gpu=pool.gpu is not None,
                release_version=release.ami_release,
                min_size=pool.minSize,
                max_size=pool.maxSize,
                desired_size=pool.desiredSize,
                capacity_type=pool.capacityType,
                disk_size_gib=pool.diskSizeGiB,
                local_nvme=pool.local_nvme,
                fast_image_pull=pool.fastImagePull,
                labels=labels,
                taints=taints,
                max_unavailable=pool.maxUnavailable,
                protect=protect,
                tags=tags,
            ),
            # Nodes join only once networking and Pod Identity are there.
            opts=aliases.options(pool_name, depends_on=cluster.bootstrap_addons),
        )
    # The platform's controllers run on the system pool: they wait for its nodes, not for the other pools'.
    system_group = [managed["system"]]

    addons = ClusterAddons(
        "addons",
        ClusterAddonsArgs(
            cluster_name=cluster.name,
            addon_versions=release.addons,
            kubernetes_provider=cluster.provider,
            volume_kms_key_arn=data_key.arn,
            metrics_server_chart=charts["metrics-server"],
            # Replicas are spread one per node: no more than the system pool always has.
            metrics_server_replicas=system_replicas,
            node_selector={POOL_LABEL: "system"},
            resources=platform_resources,
            partition=partition,
            retain_volumes=protect,
            tags=tags,
        ),
        # CoreDNS and the EBS CSI controller are Deployments: they need nodes (the system pool's suffice) to
        # become healthy, not every pool's.
        opts=aliases.options("addons", depends_on=system_group),
    )

    system_nodes = {POOL_LABEL: "system"}
    observability = cfg.monitoring
    storage_gib = observability.storageGiB or (None if cfg.environment == "dev" else 100)
    routing = alertmanager_config(
        [r.model_dump(exclude_none=True) for r in observability.receivers],
        [r.model_dump() for r in observability.routes],
        observability.defaultReceiver,
    )
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            kubernetes_provider=cluster.provider,
            chart=charts["kube-prometheus-stack"],
            crd_chart=charts["prometheus-operator-crds"],
            retention=cfg.prometheus_retention,
            # Persistent gp3 storage outside dev, so metrics survive a Prometheus restart.
            storage_gib=storage_gib,
            memory=observability.prometheusMemory,
            cpu=PROMETHEUS_CPU[size],
            resources=platform_resources,
            node_selector=system_nodes,
            # Receivers hold webhook URLs and routing keys: kept secret whenever the stack's config is.
            alertmanager=pulumi.Output.secret(routing) if pulumi.runtime.is_config_secret(f"{config.PROJECT}:monitoring") else routing,
            model_namespaces=sorted(cfg.models),
            pushgateway=charts["prometheus-pushgateway"] if "prometheus-pushgateway" in installed_charts(cfg) else None,
            pushgateway_storage_gib=None if storage_gib is None else pushgateway.STORAGE_GIB,
            amp_remote_write=observability.ampRemoteWrite,
            cluster=cluster.name,
            region=cfg.region,
            tags=tags,
        ),
        # The chart's pods need nodes, and Prometheus's volume (outside dev) the EBS CSI driver and the gp3
        # StorageClass: nothing else (not CoreDNS or metrics-server, which would lengthen a first deploy).
        opts=aliases.options("monitoring", depends_on=[*system_group, *(addons.storage if storage_gib else [])]),
    )

    Logging(
        "logging",
        LoggingArgs(
            cluster_name=name,
            cluster=cluster.name,
            kubernetes_provider=cluster.provider,
            chart=charts["aws-for-fluent-bit"],
            region=cfg.region,
            account_id=identity.account_id,
            # The platform's namespaces, each model's and the listed ones are shipped, each to its declared group.
            namespaces=sorted({*config.PLATFORM_NAMESPACES, *cfg.models, *observability.logNamespaces}),
            # Namespace previews (never of prod) declare their own group in the base stack's cluster.
            namespace_patterns=[] if cfg.environment == "prod" else ["pr-*"],
            retention_days=observability.logRetentionDays,
            kms_key_arn=data_key.arn if cfg.environment == "prod" else None,
            partition=partition,
            protect=protect,
            resources=platform_resources,
            tags=tags,
        ),
        # Fluent Bit's ServiceMonitor needs the Prometheus operator's CRD (only that: not Prometheus itself).
        opts=aliases.options("logging", depends_on=[monitoring.crds]),
    )

    node_roles = [cluster.node_role]
    karpenter: Karpenter | None = None
    karpenter_pools = {name: pool for name, pool in sorted(cfg.nodePools.items()) if isinstance(pool, config.KarpenterPoolConfig)}
    if karpenter_pools:
        karpenter = Karpenter(
            "karpenter",
            KarpenterArgs(
                cluster_name=name,
                cluster=cluster.name,
                cluster_security_group_id=cluster.cluster_security_group_id,
                kubernetes_provider=cluster.provider,
                chart=charts["karpenter"],
                ami_alias=release.ami_alias,
                region=cfg.region,
                account_id=identity.account_id,
                partition=partition,
                pools=[pools.karpenter_pool(pool_name, pool, zones) for pool_name, pool in karpenter_pools.items()],
                # An existing VPC's subnets by ID; a created one's by the discovery tag the Network component sets.
                subnet_ids=given.private_subnet_ids if given else None,
                # The chart keeps replicas on separate nodes: no more than the system pool always has.
                controller_replicas=system_replicas,
                controller_node_selector=system_nodes,
                resources=platform_resources,
                protect=protect,
                tags=tags,
            ),
            # The controller runs on the managed system pool and needs the NAT routes to reach AWS, also while
            # a destroy has it terminate its nodes; its ServiceMonitor needs the Prometheus operator's CRD.
            opts=aliases.options("karpenter", depends_on=[*system_group, *network.egress, monitoring.crds]),
        )
        node_roles.append(karpenter.node_role)

    gpu_support: GpuSupport | None = None
    if any(pool.gpu is not None for pool in cfg.nodePools.values()):
        gpu_support = GpuSupport(
            "nvidia",
            GpuSupportArgs(
                kubernetes_provider=cluster.provider,
                device_plugin_chart=charts["nvidia-device-plugin"],
                dcgm_exporter_chart=charts["dcgm-exporter"],
                sharing_configs=pools.sharing_configs(cfg),
                service_monitor=True,
                resources=platform_resources,
            ),
            # The exporter's ServiceMonitor needs the Prometheus operator's CRD.
            opts=aliases.options("nvidia", depends_on=[monitoring.crds]),
        )

    registry = ContainerRegistry(
        "registry",
        ContainerRegistryArgs(
            repositories=tuple(cfg.registries.repositories),
            # ECR names are unique per account and region: stacks sharing an account get their own prefix.
            name_prefix=cfg.registry_prefix,
            kms_key_arn=data_key.arn,
            puller_role_arns=[role.arn for role in node_roles],
            puller_role_names=[role.name for role in node_roles],
            account_id=identity.account_id,
            region=cfg.region,
            partition=partition,
            untagged_expiry_days=cfg.registries.untaggedExpiryDays,
            keep_tagged_count=cfg.registries.keepTaggedCount,
            pull_through_caches=[
                PullThroughCache(
                    key=rule.key,
                    prefix=cfg.cache_prefix(rule),
                    upstream_url=config.PULL_THROUGH_UPSTREAMS[rule.upstream][0],
                    credential_arn=rule.credentialArn,
                )
                for rule in cfg.registries.pullThroughCache
            ],
            force_delete=cfg.ephemeral,
            protect=protect,
            tags=tags,
        ),
        opts=aliases.options("registry"),
    )
    scanning = cfg.vulnerabilities.registryScanning
    if scanning is not None:
        RegistryScanning(
            "registry-scanning",
            RegistryScanningArgs(
                repository_filters=tuple(scanning.repositoryFilters),
                rescan_duration=scanning.rescanDuration,
                pull_date_rescan_duration=scanning.pullDateRescanDuration,
                pull_date_rescan_mode=scanning.pullDateRescanMode,
                region=cfg.region,
            ),
        )

    bucket_name = model_store_bucket(cfg.stack, identity.account_id)
    store = ModelStore(
        "models",
        ModelStoreArgs(
            bucket_name=bucket_name,
            kms_key_arn=data_key.arn,
            noncurrent_version_expiry_days=cfg.modelStore.noncurrentVersionExpiryDays,
            compile_cache_expiry_days=cfg.modelStore.compileCacheExpiryDays,
            abort_incomplete_upload_days=cfg.modelStore.abortIncompleteUploadDays,
            # Captured records, and the monitor job's reports about them (an HTML report is a few MB an hour), go after
            # capture.retentionDays.
            expiring_prefixes={
                prefix: model.capture.retentionDays
                for name, model in cfg.models.items()
                if model.capture is not None
                for prefix in (capture.model_prefix(name), monitor_job.model_report_prefix(name))
            },
            force_destroy=cfg.ephemeral,
            protect=protect,
            tags=tags,
        ),
        opts=aliases.options("models"),
    )

    weights = Weights(bucket_name, store.bucket_arn, data_key.arn)
    if cfg.preview is not None and cfg.models:
        weights = base_weights(cfg.preview, pulumi.StackReference(cfg.preview.baseStack), identity.account_id, partition)

    serving = None
    if cfg.models or registry_server.needs_alb_controller(cfg):
        serving = ServingPlatform(
            "serving",
            ServingPlatformArgs(
                kubernetes_provider=cluster.provider,
                kubeconfig=cluster.kubeconfig,
                cluster_name=name,
                cluster=cluster.name,
                region=cfg.region,
                vpc_id=network.vpc_id,
                keda_chart=charts["keda"],
                alb_chart=charts["aws-load-balancer-controller"],
                alb_controller=any(model.exposure.type == "alb" for model in cfg.models.values())
                or registry_server.needs_alb_controller(cfg),
                node_selector=system_nodes,
                alb_replicas=system_replicas,
                resources=platform_resources,
                tags=tags,
            ),
            # The controllers resolve AWS endpoints and Prometheus through CoreDNS (dnsPolicy ClusterFirst): they
            # wait for it, and a destroy removes them (and the load balancers they delete) before it.
            opts=aliases.options("serving", depends_on=[*system_group, addons.coredns]),
        )
    registry_output = registry_server.declare(
        cfg,
        registry_server.Platform(
            kubernetes_provider=cluster.provider,
            cluster_name=cluster.name,
            cluster_security_group_id=cluster.cluster_security_group_id,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            vpc_cidrs=network.cidrs,
            bucket_name=bucket_name,
            bucket_arn=store.bucket_arn,
            kms_key_arn=data_key.arn,
            account_id=identity.account_id,
            ecr_host=ecr_host,
            node_selector=system_nodes,
            monitoring_crds=monitoring.crds,
            alb_controller=serving.alb_controller if serving is not None else None,
            tags=tags,
            depends_on=[*system_group, addons.coredns],
        ),
    )
    model_services: list[pulumi.Resource] = []
    if cfg.models:
        for model_name, model in sorted(cfg.models.items()):
            service = ModelService(
                f"model-{model_name}",
                ModelServiceArgs(
                    spec=models.model_spec(
                        model_name, model, cfg, ecr_host, weights.bucket_name, vpc_cidrs=network.cidrs, alb_subnets=network.alb_subnets
                    ),
                    cluster_name=cluster.name,
                    kubernetes_provider=cluster.provider,
                    bucket_arn=weights.bucket_arn,
                    s3_prefix=model.source.s3Prefix,
                    kms_key_arn=weights.key_arn,
                    region=cfg.region,
                    crd_releases={"keda": serving.keda, "monitoring": monitoring.crds},
                    alb_controller=serving.alb_controller,
                    capacity=model_capacity(cfg, model, managed, karpenter, gpu_support),
                    tags=tags,
                ),
                opts=aliases.options(f"model-{model_name}"),
            )
            model_services.append(service)
    running_images = models.running_images_spec(cfg, ecr_host, identity.account_id, partition)
    if running_images is not None:
        RunningImages(
            "running-images",
            RunningImagesArgs(
                spec=running_images,
                kubernetes_provider=cluster.provider,
                cluster_name=cluster.name,
                monitoring_crds=monitoring.crds,
                # Its RoleBindings live in the model namespaces, which the model services create.
                model_namespaces=model_services,
                tags=tags,
            ),
            # Its pods run on the system pool.
            opts=aliases.options("running-images", depends_on=system_group),
        )

    pulumi.export("environment", cfg.environment)
    pulumi.export("region", cfg.region)
    pulumi.export("clusterName", cluster.name)
    pulumi.export("clusterEndpoint", cluster.endpoint)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
    pulumi.export("nodeRoleArn", cluster.node_role.arn)
    pulumi.export("vpcId", network.vpc_id)
    pulumi.export("privateSubnetIds", network.private_subnet_ids)
    pulumi.export("registryUrls", registry.repository_urls)
    pulumi.export("modelStoreBucket", store.bucket_name)
    pulumi.export("dataKeyArn", data_key.arn)
    if registry_output is not None:
        pulumi.export("modelRegistry", registry_output)
    pinned = versions.versions_output(release, charts)
    # The images this stack runs, as resolved from its config (tags or digests), to reproduce it exactly.
    pinned["images"] = {"charts": chart_images, **stack_images(cfg, ecr_host)}
    pulumi.export("versions", pinned)
    if cfg.preview is not None:
        export_preview(cfg.preview)


def build_namespace_preview(cfg: config.StackConfig, preview: config.PreviewConfig) -> None:
    """A namespace-mode preview: only the models, in namespace `pr-<number>` of the base stack's cluster, with
    the base's model store and data key (same account: the preview runs in its cluster). The base stack's
    platform (KEDA, Prometheus, the device plugin, the node pools) serves the preview's models too."""
    tags = stack_tags(cfg)
    base = pulumi.StackReference(preview.baseStack)
    identity = aws.get_caller_identity()
    partition = aws.get_partition().partition
    base_cluster = cluster_name(preview.base_stack_name)
    weights = base_weights(preview, base, identity.account_id, partition)
    # The base stack's network (a preview copies its network config): an existing VPC's CIDRs are looked up.
    placement = existing_placement(cfg) if cfg.network.existing else None
    ecr_host = registry_host(identity.account_id, cfg.region)

    space = PreviewNamespace(
        "preview",
        PreviewNamespaceArgs(
            kubeconfig=base.require_output("kubeconfig"),
            namespace=preview.namespace,
            log_group_name=f"{log_group_prefix(base_cluster)}/{preview.namespace}",
            log_retention_days=cfg.monitoring.logRetentionDays,
            expires_at=str(preview.expiresAt),
            labels={"ml-platform/preview-pr": str(preview.pr)},
            tags=tags,
        ),
    )
    for model_name, model in sorted(cfg.models.items()):
        ModelService(
            f"model-{model_name}",
            ModelServiceArgs(
                spec=models.model_spec(
                    model_name,
                    model,
                    cfg,
                    ecr_host,
                    weights.bucket_name,
                    shared_namespace=preview.namespace,
                    vpc_cidrs=placement.cidrs if placement else None,
                    alb_subnets=placement.alb_subnets if placement else None,
                ),
                cluster_name=base_cluster,
                kubernetes_provider=space.provider,
                bucket_arn=weights.bucket_arn,
                s3_prefix=model.source.s3Prefix,
                kms_key_arn=weights.key_arn,
                region=cfg.region,
                shared_namespace=space.namespace,
                tags=tags,
            ),
        )

    pulumi.export("environment", cfg.environment)
    pulumi.export("region", cfg.region)
    pulumi.export("clusterName", base_cluster)
    pulumi.export("namespace", preview.namespace)
    # The images it runs, for the vulnerability gate (infra/delivery/vulnerabilities.py), as a full stack exports them.
    pulumi.export("versions", {"images": stack_images(cfg, ecr_host, preview=True)})
    export_preview(preview)


def export_preview(preview: config.PreviewConfig) -> None:
    """What `preview-stack destroy` and the TTL sweep read back from a preview stack."""
    pulumi.export("preview", {"pr": preview.pr, "mode": preview.mode, "baseStack": preview.baseStack, "expiresAt": preview.expiresAt})


def main(real_engine: bool = False) -> None:
    """The program. `real_engine`: run by the Pulumi engine (infra/__main__.py) rather than the offline plan's
    mocks; then an update (not a preview) of a prod stack refuses the example values (refuse_placeholders)."""
    cfg = load_config()
    if real_engine and not pulumi.runtime.is_dry_run():
        refuse_placeholders(cfg)
    for warning in models.start_warnings(cfg):
        pulumi.log.warn(warning)
    if cfg.preview is not None and cfg.preview.mode == "namespace":
        build_namespace_preview(cfg, cfg.preview)
    else:
        build(cfg)
