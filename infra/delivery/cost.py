"""`python -m infra cost`: the monthly cost of a plan, as an idle floor (every pool at its minimum) and a
ceiling (every pool at its limits), itemised. Computed from plan.json alone, so two plans can be compared.
Prices and their sources: infra/delivery/prices.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ml_platform.components import instance_types
from ml_platform.infra.delivery import prices

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


def _karpenter_types(spec: Mapping[str, Any]) -> list[str]:
    """Priced instance types a Karpenter NodePool may launch."""
    families = _requirement(spec, "karpenter.k8s.aws/instance-family")
    categories = _requirement(spec, "karpenter.k8s.aws/instance-category")
    floor = int((_requirement(spec, "karpenter.k8s.aws/instance-generation") or ["0"])[0])
    gpu_counts = {int(count) for count in _requirement(spec, "karpenter.k8s.aws/instance-gpu-count")}
    chosen = []
    for name in prices.EC2:
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


def estimate(resources: list[Mapping[str, Any]], log_gb_per_day: float = 5.0) -> list[Item]:
    items: list[Item] = []
    clusters = len(_of_type(resources, "aws:eks/cluster:Cluster"))
    items.append(Item("EKS control plane", clusters * prices.EKS_CONTROL_PLANE * H, clusters * prices.EKS_CONTROL_PLANE * H))
    nats = len(_of_type(resources, "aws:ec2/natGateway:NatGateway"))
    if not _of_type(resources, "aws:ec2/vpc:Vpc") and _of_type(resources, "aws:eks/cluster:Cluster"):
        # An existing VPC (network.vpcId): its NAT gateways and endpoints are its owner's, billed there.
        items.append(Item("network (existing VPC)", 0, 0, "not priced: its NAT gateways, endpoints and traffic are billed to its owner"))
    else:
        nat = nats * (prices.NAT_GATEWAY + prices.PUBLIC_IPV4) * H
        items.append(Item(f"NAT gateways ({nats})", nat, nat, "plus $0.045/GB processed"))
    endpoint_azs = sum(
        len(r["inputs"].get("subnetIds", []))
        for r in _of_type(resources, "aws:ec2/vpcEndpoint:VpcEndpoint")
        if r["inputs"].get("vpcEndpointType") == "Interface"
    )
    if endpoint_azs:
        cost = endpoint_azs * prices.INTERFACE_ENDPOINT_PER_AZ * H
        items.append(Item("interface endpoints", cost, cost, "plus $0.01/GB"))

    by_urn = {r["urn"]: r for r in resources}
    for group in sorted(_of_type(resources, "aws:eks/nodeGroup:NodeGroup"), key=lambda r: r["name"]):
        inputs = group["inputs"]
        hourly = prices.hourly(inputs["instanceTypes"][0], inputs.get("capacityType") == "SPOT")
        template = next((by_urn[u] for u in group["propertyDependencies"].get("launchTemplate", []) if u in by_urn), None)
        disk = template["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"] if template else 0
        per_node = hourly * H + disk * prices.GP3_PER_GB_MONTH
        scaling = inputs["scalingConfig"]
        pool = inputs.get("labels", {}).get("ml-platform/pool", group["name"])
        items.append(
            Item(f"pool {pool} (managed, {inputs['instanceTypes'][0]})", scaling["minSize"] * per_node, scaling["maxSize"] * per_node)
        )

    slices = _time_slices(resources)
    for pool in sorted(_of_type(resources, "kubernetes:karpenter.sh/v1:NodePool"), key=lambda r: r["name"]):
        spec = pool["inputs"]["spec"]
        name = pool["inputs"]["metadata"]["name"]
        spot_only = _requirement(spec, "karpenter.sh/capacity-type") == ["spot"]
        types = _karpenter_types(spec)
        # The worst case Karpenter may pick within each limit; whichever limit binds first is the ceiling.
        per_vcpu = max((prices.hourly(t, spot_only) / prices.on_demand(t)[1] for t in types), default=0.0)
        bounds = {"cpu": float(spec["limits"]["cpu"]) * per_vcpu}
        if "nvidia.com/gpu" in spec["limits"]:
            physical = float(spec["limits"]["nvidia.com/gpu"]) / slices.get(name, 1)
            per_gpu = max((prices.hourly(t, spot_only) / gpu.count for t in types if (gpu := instance_types.gpu_info(t))), default=0.0)
            bounds["gpu"] = physical * per_gpu
        if "nodes" in spec["limits"]:
            bounds["node"] = float(spec["limits"]["nodes"]) * max((prices.hourly(t, spot_only) for t in types), default=0.0)
        binding = min(bounds, key=lambda limit: bounds[limit])
        note = f"from zero; ceiling at its {binding} limit" + (", spot" if spot_only else "")
        items.append(Item(f"pool {name} (Karpenter)", 0.0, bounds[binding] * H, note))

    albs = len(_of_type(resources, "kubernetes:networking.k8s.io/v1:Ingress"))
    if albs:
        items.append(
            Item(f"load balancers ({albs} ALB{'' if albs == 1 else 's'})", albs * prices.ALB * H, albs * prices.ALB * H, "plus LCUs")
        )

    volumes = 0
    for release in _of_type(resources, "kubernetes:helm.sh/v3:Release"):
        claim = (release["inputs"].get("values") or {}).get("prometheus", {}).get("prometheusSpec", {}).get("storageSpec")
        if isinstance(claim, dict):
            volumes += int(claim["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"].removesuffix("Gi"))
    if volumes:
        items.append(Item("Prometheus storage (gp3)", volumes * prices.GP3_PER_GB_MONTH, volumes * prices.GP3_PER_GB_MONTH))
    for release in _of_type(resources, "kubernetes:helm.sh/v3:Release"):
        volume = (release["inputs"].get("values") or {}).get("persistentVolume") or {}
        if release["inputs"]["chart"] == "prometheus-pushgateway" and volume.get("enabled"):
            size = int(volume["size"].removesuffix("Gi"))
            items.append(Item("Pushgateway storage (gp3)", size * prices.GP3_PER_GB_MONTH, size * prices.GP3_PER_GB_MONTH))
    captures = [d for d in _of_type(resources, "kubernetes:apps/v1:Deployment") if _has_capture_proxy(d)]
    if captures:
        items.append(
            Item(
                f"captured traffic (S3, {len(captures)} model{'' if len(captures) == 1 else 's'})",
                0.0,
                0.0,
                f"not priced: grows with traffic x capture.sampleRate (S3 ${prices.S3_PER_GB_MONTH}/GB-month stored, kept "
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
    items.append(Item(f"KMS keys ({keys})", keys * prices.KMS_KEY_PER_MONTH, keys * prices.KMS_KEY_PER_MONTH))
    if _of_type(resources, "aws:cloudwatch/logGroup:LogGroup"):
        logs = log_gb_per_day * 30 * prices.LOGS_INGESTION_PER_GB
        items.append(Item("CloudWatch Logs", logs, logs, f"assumes {log_gb_per_day:g} GB/day ingested"))
    for token, (what, why) in sorted(NOT_PRICED.items()):
        count = len(_of_type(resources, token))
        if count:
            items.append(Item(f"{what} ({count})", 0.0, 0.0, f"not priced: {why}"))
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
}


def totals(items: list[Item]) -> tuple[float, float]:
    return sum(i.floor for i in items), sum(i.ceiling for i in items)


def render(items: list[Item], markdown: bool = False) -> str:
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
    rows.append(f"\nprices: {prices.REGION}, {prices.DATE} (sources in infra/delivery/prices.py); estimates, not a bill")
    return "\n".join(rows)
