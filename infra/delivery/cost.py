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

import itertools
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
    """Priced instance types (in `table`'s region) a Karpenter NodePool may launch: its families or categories and
    generation, its GPU counts and architecture, and only types one node of which stays within its limits."""
    families = _requirement(spec, "karpenter.k8s.aws/instance-family")
    categories = _requirement(spec, "karpenter.k8s.aws/instance-category")
    floor = int((_requirement(spec, "karpenter.k8s.aws/instance-generation") or ["0"])[0])
    gpu_counts = {int(count) for count in _requirement(spec, "karpenter.k8s.aws/instance-gpu-count")}
    architectures = _requirement(spec, "kubernetes.io/arch") or ["amd64"]
    limits = model_floor.nodepool_limits(spec.get("limits") or {})
    chosen = []
    for name in sorted(set(prices.VCPUS) | set(prices.cpu_sizes())):
        arch = {"x86_64": "amd64"}.get(instance_types.architecture(name), instance_types.architecture(name))
        if not table.priced(name) or arch not in architectures:
            continue
        family = name.split(".")[0]
        generation = int("".join(ch for ch in family if ch.isdigit()) or 0)
        if family in families or (family[0] in categories and generation > floor and family[1].isdigit()):
            gpu = instance_types.gpu_info(name)
            if gpu_counts and (gpu is None or gpu.count not in gpu_counts):
                continue
            # One node past a limit is never launched (the GPU limit as written: Karpenter counts a node's GPUs).
            if any(model_floor.node_size(name)[k] > limit for k, limit in limits.items() if k != "nodes"):
                continue
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

    shapes = model_floor.pool_shapes(resources, lambda spec: karpenter_types(spec, table), _time_slices(resources))
    items += _managed_pools(resources, table)
    items += _karpenter_pools([shape for shape in shapes if not shape.managed], table)
    items += _models_floor(resources, shapes, table, environment)

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
    """Each managed node group: floor at what runs, its desiredSize (default minSize; the platform installs no
    autoscaler for managed groups, so nothing resizes it) of its first listed type (what EKS launches first for
    on-demand groups); ceiling at maxSize of its dearest listed type (resized by hand)."""
    by_urn = {r["urn"]: r for r in resources}
    items = []
    for group in sorted(_of_type(resources, "aws:eks/nodeGroup:NodeGroup"), key=lambda r: r["name"]):
        inputs = group["inputs"]
        spot = inputs.get("capacityType") == "SPOT"
        types = list(inputs["instanceTypes"])
        pool = inputs.get("labels", {}).get("ml-platform/pool", group["name"])
        disk = model_floor.launch_template_gib(group, by_urn)
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
        running = int(scaling.get("desiredSize", scaling["minSize"]))
        notes = [] if len(types) == 1 else [f"floor at {types[0]}, ceiling at its dearest type, {dearest}"]
        if running != scaling["minSize"]:
            notes.append(f"floor at desiredSize {running}: nothing scales a managed group down to minSize {scaling['minSize']}")
        floor_cost, ceiling_cost = running * per_node[types[0]], scaling["maxSize"] * per_node[dearest]
        items.append(Item(f"pool {pool} (managed, {types[0]})", floor_cost, ceiling_cost, "; ".join(notes)))
    return items


def _karpenter_pools(pools: list[model_floor.PoolShape], table: RegionPrices) -> list[Item]:
    """Each NodePool from zero; its ceiling the dearest mix of the types it may launch within its limits."""
    items = []
    for pool in sorted(pools, key=lambda shape: shape.name):
        if not pool.types:
            items.append(
                Item(f"pool {pool.name} (Karpenter)", 0.0, 0.0, f"not priced: no type it may launch has a price in {table.region}")
            )
            continue
        disk_hourly = pool.disk_gib * (table.gp3_per_gb_month or 0.0) / H
        hourly, binding = most_spent(
            list(pool.types), pool.limits, lambda t, spot=pool.spot_only, disk=disk_hourly: table.hourly(t, spot) + disk
        )
        names = ", ".join(binding[:-1]) + (" and " if len(binding) > 1 else "") + binding[-1]
        which = names + (" limit allows" if len(binding) == 1 else " limits allow")
        note = f"from zero; ceiling: the dearest mix of types its {which}" + (", spot" if pool.spot_only else "")
        items.append(Item(f"pool {pool.name} (Karpenter)", 0.0, hourly * H, note))
    return items


def most_spent(types: list[str], limits: Mapping[str, float], hourly) -> tuple[float, list[str]]:
    """The most a NodePool can cost per hour within all its limits at once: the linear programme "maximise the
    price of the nodes, each limit a budget" solved exactly by its vertices (an optimum uses at most as many types
    as there are limits). Fractional nodes make it an upper bound, never below what Karpenter can launch.
    Returns ($/hour, the limits that bind)."""
    names = [k for k in ("cpu", "memory", "gpu", "nodes") if k in limits]
    uses = {t: model_floor.node_size(t) for t in types}
    price = {t: hourly(t) for t in types}
    best, binding = 0.0, names[:1]
    for size in range(1, len(names) + 1):
        for chosen in itertools.combinations(types, size):
            for tight in itertools.combinations(names, size):
                x = _solve([[uses[t][k] for t in chosen] for k in tight], [limits[k] for k in tight])
                if x is None or any(v < -1e-9 for v in x):
                    continue
                if any(sum(v * uses[t][k] for v, t in zip(x, chosen, strict=True)) > limits[k] + 1e-6 for k in names):
                    continue
                value = sum(v * price[t] for v, t in zip(x, chosen, strict=True))
                if value > best + 1e-9:
                    best = value
                    binding = [k for k in names if abs(sum(v * uses[t][k] for v, t in zip(x, chosen, strict=True)) - limits[k]) < 1e-6]
    return best, binding


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float] | None:
    """x with matrix x = rhs (square, at most 4 x 4), by Gaussian elimination; None when singular."""
    n = len(rhs)
    rows = [[*row, value] for row, value in zip(matrix, rhs, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        if abs(rows[pivot][col]) < 1e-12:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(n):
            if r != col and rows[r][col]:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def _models_floor(
    resources: list[Mapping[str, Any]], pools: list[model_floor.PoolShape], table: RegionPrices, environment: str
) -> list[Item]:
    """The nodes the models' minimum replicas need beyond the pools' minimums (model_floor.py): in the floor only
    (the ceiling already counts every pool at its limits)."""
    placed, problems = model_floor.place(model_floor.model_pods(resources), pools, table, environment)
    items = []
    for floor in placed:
        if floor.on_minimum:
            running = ", ".join(f"{model} {count}" for model, count in sorted(floor.on_minimum.items()))
            note = f"{running}: on its running {floor.instance_type} nodes (desiredSize), already in the floor"
            items.append(Item(f"pool {floor.pool}: models on its running nodes", 0.0, 0.0, note))
        if floor.nodes:
            replicas = ", ".join(f"{model} {count}" for model, count in sorted(floor.models.items()))
            monthly = floor.nodes * (floor.hourly * H + floor.disk_gib * (table.gp3_per_gb_month or 0.0))
            note = f"models' minimum replicas ({replicas}); within the pool's ceiling"
            items.append(Item(f"pool {floor.pool}: {floor.nodes} x {floor.instance_type} for models", monthly, 0.0, note))
    items += [Item("models not in the floor", 0.0, 0.0, f"not priced: {problem}") for problem in problems]
    items += [Item("models on a schedule", 0.0, 0.0, f"not priced: {line}") for line in model_floor.part_time(resources)]
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
    """The region a plan document's stack deploys to: its `region` output (every full and preview stack exports it),
    else us-west-2, Pulumi.yaml's default `aws:region`."""
    return (plan.get("outputs") or {}).get("region") or "us-west-2"


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
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
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
