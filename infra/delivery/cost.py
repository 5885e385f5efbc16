"""`python -m infra cost`: the monthly cost of a plan, as an idle floor and a ceiling, itemised. Computed from
plan.json alone, so two plans can be compared.

- The idle floor: every pool at its minimum (a managed pool's minSize nodes of its first listed type, which EKS
  launches first for on-demand groups) and the nodes the models' minimum replicas need beyond that
  (infra/delivery/model_floor.py), plus what runs regardless (control plane, NAT, endpoints, ALBs, volumes, keys).
- The ceiling: every pool at its limits, each at the most expensive type it may launch (a managed pool's maxSize
  of its dearest listed type; a Karpenter pool up to whichever of its cpu, GPU or node limits binds first, at the
  dearest price per vCPU or GPU of the types its requirements allow).
- Prices are the stack's region's (infra/delivery/prices.py, with dates and sources); a region without a table is
  refused rather than priced at another's rates, unless a price region is given explicitly. A figure the region's
  table lacks leaves that item "not priced", never zero in silence.
- Every resource type the program declares is priced here, listed as billed but not priced (NOT_PRICED), or known
  to cost nothing (FREE); tests/delivery/test_cost.py fails on a type in none of them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ml_platform.components import instance_types
from ml_platform.infra.delivery import model_floor, prices
from ml_platform.infra.delivery.prices import NoPrice, RegionPrices

H = prices.HOURS_PER_MONTH


@dataclass(frozen=True)
class Item:
    name: str
    floor: float
    ceiling: float
    note: str = ""


def _of_type(resources: Iterable[Mapping[str, Any]], token: str) -> list[Mapping[str, Any]]:
    return [r for r in resources if r["type"] == token]


def _requirement(spec: Mapping[str, Any], key: str) -> list[str]:
    return next((r["values"] for r in spec["template"]["spec"]["requirements"] if r["key"] == key), [])


def karpenter_types(spec: Mapping[str, Any], table: RegionPrices) -> list[str]:
    """Priced instance types (in `table`'s region) a Karpenter NodePool may launch."""
    families = _requirement(spec, "karpenter.k8s.aws/instance-family")
    categories = _requirement(spec, "karpenter.k8s.aws/instance-category")
    floor = int((_requirement(spec, "karpenter.k8s.aws/instance-generation") or ["0"])[0])
    gpu_counts = {int(count) for count in _requirement(spec, "karpenter.k8s.aws/instance-gpu-count")}
    chosen = []
    for name in prices.VCPUS:
        if not table.priced(name):
            continue
        family = name.split(".")[0]
        generation = int("".join(ch for ch in family if ch.isdigit()) or 0)
        if family in families or (family[0] in categories and generation > floor and family[1].isdigit()):
            gpu = instance_types.gpu_info(name)
            if not gpu_counts or (gpu is not None and gpu.count in gpu_counts):
                chosen.append(name)
    return chosen


def _time_slices(resources: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Time-slicing replicas per pool, from the device plugin's configs (a NodePool's GPU limit counts slices)."""
    found = {}
    for release in _of_type(resources, "kubernetes:helm.sh/v3:Release"):
        configs = ((release["inputs"].get("values") or {}).get("config") or {}).get("map") or {}
        for pool, text in configs.items():
            sharing = (yaml.safe_load(text) or {}).get("sharing", {}).get("timeSlicing")
            if sharing:
                found[pool] = int(sharing["resources"][0]["replicas"])
    return found


def _steady(table: RegionPrices, name: str, quantity: float, unit: float | None, per: str = "hour", note: str = "") -> Item:
    """An always-on item: `quantity` x `unit` per hour (or per month with per="month"); not priced when the region's
    table has no figure for the unit."""
    if unit is None:
        return Item(name, 0.0, 0.0, f"not priced in {table.region}: no sourced figure in infra/delivery/prices.py")
    monthly = quantity * unit * (H if per == "hour" else 1)
    return Item(name, monthly, monthly, note)


def estimate(
    resources: list[Mapping[str, Any]], log_gb_per_day: float = 5.0, region: str = "us-west-2", environment: str | None = None
) -> list[Item]:
    """The itemised monthly estimate of a plan's resources at `region`'s prices (see the module's docstring).
    `environment` sizes the DaemonSets a model's node also runs (dev's are smaller); None: read from the resources'
    environment tag. Raises prices.UnknownRegion for a region without a table."""
    table = prices.for_region(region)
    environment = environment or _environment(resources)
    items: list[Item] = []
    clusters = len(_of_type(resources, "aws:eks/cluster:Cluster"))
    items.append(_steady(table, "EKS control plane", clusters, table.eks_control_plane))
    nats = len(_of_type(resources, "aws:ec2/natGateway:NatGateway"))
    if not _of_type(resources, "aws:ec2/vpc:Vpc") and _of_type(resources, "aws:eks/cluster:Cluster"):
        # An existing VPC (network.vpcId): its NAT gateways and endpoints are its owner's, billed there.
        items.append(Item("network (existing VPC)", 0, 0, "not priced: its NAT gateways, endpoints and traffic are billed to its owner"))
    else:
        nat = None if table.nat_gateway is None or table.public_ipv4 is None else table.nat_gateway + table.public_ipv4
        items.append(_steady(table, f"NAT gateways ({nats})", nats, nat, note="plus per GB processed"))
    endpoint_azs = sum(
        len(r["inputs"].get("subnetIds", []))
        for r in _of_type(resources, "aws:ec2/vpcEndpoint:VpcEndpoint")
        if r["inputs"].get("vpcEndpointType") == "Interface"
    )
    if endpoint_azs:
        items.append(_steady(table, "interface endpoints", endpoint_azs, table.interface_endpoint_per_az, note="plus per GB"))

    items += _managed_pools(resources, table)
    items += _karpenter_pools(resources, table)
    items += _models_floor(resources, table, environment)

    albs = len(_of_type(resources, "kubernetes:networking.k8s.io/v1:Ingress"))
    if albs:
        items.append(_steady(table, f"load balancers ({albs} ALB{'' if albs == 1 else 's'})", albs, table.alb, note="plus LCUs"))
    volumes = 0
    for release in _of_type(resources, "kubernetes:helm.sh/v3:Release"):
        claim = (release["inputs"].get("values") or {}).get("prometheus", {}).get("prometheusSpec", {}).get("storageSpec")
        if isinstance(claim, dict):
            volumes += int(claim["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"].removesuffix("Gi"))
    if volumes:
        items.append(_steady(table, "Prometheus storage (gp3)", volumes, table.gp3_per_gb_month, per="month"))
    for release in _of_type(resources, "kubernetes:helm.sh/v3:Release"):
        volume = (release["inputs"].get("values") or {}).get("persistentVolume") or {}
        if release["inputs"]["chart"] == "prometheus-pushgateway" and volume.get("enabled"):
            size = int(volume["size"].removesuffix("Gi"))
            items.append(_steady(table, "Pushgateway storage (gp3)", size, table.gp3_per_gb_month, per="month"))
    captures = [d for d in _of_type(resources, "kubernetes:apps/v1:Deployment") if _has_capture_proxy(d)]
    if captures:
        stored = f"S3 ${table.s3_per_gb_month}/GB-month stored" if table.s3_per_gb_month is not None else "S3 storage"
        items.append(
            Item(
                f"captured traffic (S3, {len(captures)} model{'' if len(captures) == 1 else 's'})",
                0.0,
                0.0,
                f"not priced: grows with traffic x capture.sampleRate ({stored}, kept "
                "capture.retentionDays; one PUT per pod per minute at most); the proxy's CPU and memory are in the pods' requests",
            )
        )
    if _of_type(resources, "aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration"):
        items.append(
            Item(
                "ECR enhanced scanning (Amazon Inspector, the account's)",
                0.0,
                0.0,
                f"per use, not in the totals: ${prices.INSPECTOR_ECR_INITIAL_SCAN:.2f} per image pushed, "
                f"${prices.INSPECTOR_ECR_RESCAN:.2f} per rescan (each new vulnerability affecting an image within its rescan duration)",
            )
        )
    keys = len(_of_type(resources, "aws:kms/key:Key"))
    items.append(_steady(table, f"KMS keys ({keys})", keys, table.kms_key_per_month, per="month"))
    if _of_type(resources, "aws:cloudwatch/logGroup:LogGroup"):
        ingested = log_gb_per_day * 30
        items.append(
            _steady(
                table,
                "CloudWatch Logs",
                ingested,
                table.logs_ingestion_per_gb,
                per="month",
                note=f"assumes {log_gb_per_day:g} GB/day ingested",
            )
        )
    for token, (what, why) in sorted(NOT_PRICED.items()):
        count = len(_of_type(resources, token))
        if count:
            items.append(Item(f"{what} ({count})", 0.0, 0.0, f"not priced: {why}"))
    return items


def _environment(resources: list[Mapping[str, Any]]) -> str:
    for r in resources:
        found = (r["inputs"].get("tags") or {}).get("ml-platform/environment") if isinstance(r.get("inputs"), dict) else None
        if found:
            return found
    return "staging"


def _managed_pools(resources: list[Mapping[str, Any]], table: RegionPrices) -> list[Item]:
    """Each managed node group: floor at minSize of its first listed type (what EKS launches first for on-demand
    groups), ceiling at maxSize of its dearest listed type."""
    by_urn = {r["urn"]: r for r in resources}
    items = []
    for group in sorted(_of_type(resources, "aws:eks/nodeGroup:NodeGroup"), key=lambda r: r["name"]):
        inputs = group["inputs"]
        spot = inputs.get("capacityType") == "SPOT"
        types = list(inputs["instanceTypes"])
        pool = inputs.get("labels", {}).get("ml-platform/pool", group["name"])
        template = next((by_urn[u] for u in group["propertyDependencies"].get("launchTemplate", []) if u in by_urn), None)
        disk = template["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"] if template else 0
        scaling = inputs["scalingConfig"]
        try:
            hourly = {t: table.hourly(t, spot) for t in types}
        except NoPrice as err:
            items.append(Item(f"pool {pool} (managed, {', '.join(types)})", 0.0, 0.0, f"not priced: {err}"))
            continue
        if table.gp3_per_gb_month is None:
            items.append(Item(f"pool {pool} (managed, {types[0]})", 0.0, 0.0, f"not priced in {table.region}: no gp3 figure"))
            continue
        dearest = max(types, key=lambda t: hourly[t])
        per_node = {t: hourly[t] * H + disk * table.gp3_per_gb_month for t in types}
        note = "" if len(types) == 1 else f"floor at {types[0]}, ceiling at its dearest type, {dearest}"
        items.append(
            Item(
                f"pool {pool} (managed, {types[0]})", scaling["minSize"] * per_node[types[0]], scaling["maxSize"] * per_node[dearest], note
            )
        )
    return items


def _karpenter_pools(resources: list[Mapping[str, Any]], table: RegionPrices) -> list[Item]:
    """Each NodePool from zero; its ceiling up to whichever limit binds first, at the dearest type it may launch."""
    slices = _time_slices(resources)
    items = []
    for pool in sorted(_of_type(resources, "kubernetes:karpenter.sh/v1:NodePool"), key=lambda r: r["name"]):
        spec = pool["inputs"]["spec"]
        name = pool["inputs"]["metadata"]["name"]
        spot_only = _requirement(spec, "karpenter.sh/capacity-type") == ["spot"]
        types = karpenter_types(spec, table)
        if not types:
            items.append(Item(f"pool {name} (Karpenter)", 0.0, 0.0, f"not priced: no type it may launch has a price in {table.region}"))
            continue
        per_vcpu = max(table.hourly(t, spot_only) / table.on_demand(t)[1] for t in types)
        bounds = {"cpu": float(spec["limits"]["cpu"]) * per_vcpu}
        if "nvidia.com/gpu" in spec["limits"]:
            physical = float(spec["limits"]["nvidia.com/gpu"]) / slices.get(name, 1)
            per_gpu = max((table.hourly(t, spot_only) / gpu.count for t in types if (gpu := instance_types.gpu_info(t))), default=0.0)
            bounds["gpu"] = physical * per_gpu
        if "nodes" in spec["limits"]:
            bounds["node"] = float(spec["limits"]["nodes"]) * max(table.hourly(t, spot_only) for t in types)
        binding = min(bounds, key=lambda limit: bounds[limit])
        note = f"from zero; ceiling at its {binding} limit, dearest type" + (", spot" if spot_only else "")
        items.append(Item(f"pool {name} (Karpenter)", 0.0, bounds[binding] * H, note))
    return items


def _models_floor(resources: list[Mapping[str, Any]], table: RegionPrices, environment: str) -> list[Item]:
    """The nodes the models' minimum replicas need beyond the pools' minimums (model_floor.py): in the floor only
    (the ceiling already counts every pool at its limits)."""
    pools = model_floor.pool_shapes(resources, lambda spec: karpenter_types(spec, table), _time_slices(resources), table)
    placed, problems = model_floor.place(model_floor.model_pods(resources), pools, table, environment)
    items = []
    for floor in placed:
        counts = {m: floor.models.get(m, 0) + floor.on_minimum.get(m, 0) for m in {*floor.models, *floor.on_minimum}}
        replicas = ", ".join(
            f"{model} {count}" + (f", {floor.on_minimum[model]} on the pool's minimum nodes" if floor.on_minimum.get(model) else "")
            for model, count in sorted(counts.items())
        )
        if floor.nodes:
            note = f"models' minimum replicas ({replicas}); within the pool's ceiling"
            monthly = floor.nodes * (floor.hourly * H + floor.disk_gib * (table.gp3_per_gb_month or 0.0))
            items.append(Item(f"pool {floor.pool}: {floor.nodes} x {floor.instance_type} for models", monthly, 0.0, note))
        else:
            items.append(Item(f"pool {floor.pool}: models on its minimum nodes", 0.0, 0.0, f"{replicas} fit the pool's minSize nodes"))
    items += [Item("models not in the floor", 0.0, 0.0, f"not priced: {problem}") for problem in problems]
    return items


def _has_capture_proxy(deployment: dict) -> bool:
    pod = deployment["inputs"]["spec"]["template"]["spec"]
    return any(c["name"] == "capture-proxy" for c in pod.get("initContainers", []))


# Billed resources the plan may hold that the price table has no figure for: listed, never left out silently.
NOT_PRICED = {
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": (
        "SageMaker MLflow tracking server",
        "billed per hour of its size (SageMaker pricing page); no sourced figure in infra/delivery/prices.py yet",
    ),
    # The self-hosted registry's database (components/registry_database.py). AWS's Aurora pricing page renders its
    # figures with JavaScript and no stored copy or Price List file for us-west-2 was at hand: listed, not guessed.
    "aws:rds/clusterInstance:ClusterInstance": (
        "Aurora Serverless v2 instances",
        "billed per ACU-hour between the database's minCapacity and maxCapacity (0 while paused), per instance "
        "(Aurora pricing page; `aws pricing get-products --service-code AmazonRDS`, usage type <region>-Aurora:ServerlessV2Usage)",
    ),
    "aws:rds/cluster:Cluster": (
        "Aurora storage",
        "billed per GB-month stored and per million I/O requests, plus backup storage beyond the cluster's size "
        "(usage types <region>-Aurora:StorageUsage, StorageIOUsage, BackupUsage)",
    ),
    "aws:rds/clusterSnapshot:ClusterSnapshot": (
        "Aurora migration snapshots",
        "billed as backup storage per GB-month while kept (prod keeps each one; delete old ones by hand)",
    ),
    "aws:amp/workspace:Workspace": (
        "Amazon Managed Service for Prometheus workspaces",
        "billed per million samples ingested, per GB stored and per query samples processed (grows with the series remote-written)",
    ),
    "aws:ec2/flowLog:FlowLog": ("VPC flow logs", "billed as CloudWatch Logs vended-log ingestion and storage per GB (grows with traffic)"),
    "aws:s3/bucket:Bucket": ("S3 buckets", "billed per GB-month stored and per request (the model store grows with the weights kept)"),
    "aws:ecr/repository:Repository": ("ECR repositories", "billed per GB-month of images stored (lifecycle rules expire old ones)"),
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule": ("ECR pull-through caches", "billed as the ECR storage of the images cached"),
    "aws:sqs/queue:Queue": ("SQS queues", "billed per million requests beyond the free tier (Karpenter's interruption events: a few)"),
}


def plan_region(plan: Mapping[str, Any]) -> str:
    """The region a plan document's stack deploys to: its `region` output (every plan since the output exists), else
    an explicit AWS provider's, else us-west-2, Pulumi.yaml's default `aws:region`."""
    region = (plan.get("outputs") or {}).get("region")
    if region:
        return region
    for resource in plan.get("resources", []):
        if resource["type"] == "pulumi:providers:aws" and resource["inputs"].get("region"):
            return resource["inputs"]["region"]
    return "us-west-2"


# Types estimate() prices (or states per use): their items above.
PRICED_TYPES = {
    "aws:eks/cluster:Cluster",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",  # the NAT gateways' public IPv4 addresses, in their item
    "aws:ec2/vpcEndpoint:VpcEndpoint",  # interface endpoints; gateway endpoints (S3) cost nothing
    "aws:eks/nodeGroup:NodeGroup",
    "aws:ec2/launchTemplate:LaunchTemplate",  # the node groups' disks, in their items
    "kubernetes:karpenter.sh/v1:NodePool",
    "kubernetes:apps/v1:Deployment",  # the models' minimum replicas; the platform's pods run on the pools above
    "kubernetes:networking.k8s.io/v1:Ingress",  # one ALB each
    "kubernetes:helm.sh/v3:Release",  # Prometheus' and the Pushgateway's volumes; the pods run on the pools
    "aws:kms/key:Key",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration",
}
# Types that cost nothing by themselves (configuration, identity, Kubernetes objects whose pods run on the pools).
FREE_TYPES = {
    "aws:cloudwatch/eventRule:EventRule",  # rules on AWS service events (Karpenter's interruption queue) are free
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/tag:Tag",
    "aws:ec2/vpc:Vpc",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy",
    "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    "aws:eks/addon:Addon",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:iam/policy:Policy",
    "aws:iam/role:Role",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:kms/alias:Alias",
    "aws:rds/subnetGroup:SubnetGroup",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "kubernetes:batch/v1:CronJob",  # its pods run on the pools
    "kubernetes:batch/v1:Job",
    "kubernetes:core/v1:ConfigMap",
    "kubernetes:core/v1:LimitRange",
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:Secret",
    "kubernetes:core/v1:Service",  # ClusterIP; the ALBs are the Ingresses'
    "kubernetes:core/v1:ServiceAccount",
    "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass",  # its nodes are the NodePools'
    "kubernetes:keda.sh/v1alpha1:ScaledObject",
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
    "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "kubernetes:policy/v1:PodDisruptionBudget",
    "kubernetes:rbac.authorization.k8s.io/v1:Role",
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "kubernetes:storage.k8s.io/v1:StorageClass",
    "pulumi-python:dynamic:Resource",  # Inspector's rescan durations: the scans are billed per use (above)
    "pulumi:providers:kubernetes",
    "random:index/randomPassword:RandomPassword",
}


def totals(items: list[Item]) -> tuple[float, float]:
    return sum(i.floor for i in items), sum(i.ceiling for i in items)


def render(items: list[Item], markdown: bool = False, region: str = "us-west-2") -> str:
    floor, ceiling = totals(items)
    if markdown:
        rows = ["| item | idle floor | ceiling | note |", "|---|---:|---:|---|"]
        rows += [f"| {i.name} | ${i.floor:,.0f} | ${i.ceiling:,.0f} | {i.note} |" for i in items]
        rows.append(f"| **total per month** | **${floor:,.0f}** | **${ceiling:,.0f}** | |")
    else:
        width = max(len(i.name) for i in items)
        rows = [f"{'item':<{width}}  {'idle floor':>11}  {'ceiling':>11}  note"]
        rows += [f"{i.name:<{width}}  {i.floor:>11,.0f}  {i.ceiling:>11,.0f}  {i.note}" for i in items]
        rows.append(f"{'total per month (USD)':<{width}}  {floor:>11,.0f}  {ceiling:>11,.0f}")
    rows.append(f"\nprices: {region}, {prices.DATE} (sources in infra/delivery/prices.py); estimates, not a bill")
    return "\n".join(rows)
