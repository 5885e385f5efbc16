"""The price table behind `python -m infra cost`: USD, us-west-2, Linux, per hour unless noted.

Compiled 2026-11-23 from:
- EC2 on-demand: aws/karpenter-provider-aws pkg/providers/pricing/zz_generated.pricing_aws.go (generated
  2026-07-20, us-east-1) and skypilot-org/skypilot-catalog catalogs/v7/aws/vms.csv (us-west-2, which matched
  us-east-1 for every type checked); m6i.large re-checked for us-west-2 through the AWS Price List API on
  2026-09-19. r6i.xlarge, m7i.large, p4d.24xlarge and p5.48xlarge are us-east-1 figures (after AWS's June 2025
  P4/P5 price cut), not confirmed for us-west-2.
- Spot: planning discounts from the same catalog's per-AZ spot prices (2025) and describe-spot-price-history
  for m6i/c6i in us-west-2 (2026-09-19). Spot prices move hourly; these are averages for planning.
- Services: AWS price lists for us-west-2 as quoted by public cost write-ups checked 2026-09/10 (EKS,
  NAT, ALB, EBS gp3, S3, CloudWatch Logs, KMS, interface endpoints, public IPv4).

- Amazon Inspector, ECR container image scanning (enhanced scanning): $0.09 per image's initial scan, $0.01 per
  rescan (https://aws.amazon.com/inspector/pricing/, as quoted by third-party documentation 2026; AWS's page renders
  its figures with JavaScript and no stored copy held them: re-check there). Billed per use (usage types
  ECR_INITIAL_SCAN and ECR_RESCAN, inspector2 ListUsageTotals), so `cost` states it per unit.

Estimates, not a bill: data transfer, NAT and ALB per-GB/LCU charges, and request costs are left out.
Instance types missing here are priced from the nearest listed size of the same family, by vCPU.
"""

from __future__ import annotations

DATE = "2026-11-23"
REGION = "us-west-2"
HOURS_PER_MONTH = 730

# instance type -> (on-demand $/hour, vCPUs)
EC2: dict[str, tuple[float, int]] = {
    "m6i.large": (0.096, 2),
    "m6i.xlarge": (0.192, 4),
    "m6i.2xlarge": (0.384, 8),
    "c6i.xlarge": (0.170, 4),
    "r6i.xlarge": (0.252, 4),
    "m7i.large": (0.1008, 2),
    "g5.xlarge": (1.006, 4),
    "g5.2xlarge": (1.212, 8),
    "g5.4xlarge": (1.624, 16),
    "g5.12xlarge": (5.672, 48),
    "g5.48xlarge": (16.288, 192),
    "g6.xlarge": (0.8048, 4),
    "g6.2xlarge": (0.9776, 8),
    "g6.12xlarge": (4.6016, 48),
    "g6e.xlarge": (1.861, 4),
    "g6e.12xlarge": (10.49264, 48),
    "p4d.24xlarge": (21.9576, 96),
    "p5.48xlarge": (55.04, 192),
}

# Planning discount of spot against on-demand, by family (AWS advertises "up to 90%").
SPOT_DISCOUNT: dict[str, float] = {"g5": 0.60, "g6": 0.50, "g6e": 0.50, "m6i": 0.50, "c6i": 0.50, "r6i": 0.50, "m7i": 0.50}
DEFAULT_SPOT_DISCOUNT = 0.45

EKS_CONTROL_PLANE = 0.10
NAT_GATEWAY = 0.045
PUBLIC_IPV4 = 0.005
ALB = 0.0225
INTERFACE_ENDPOINT_PER_AZ = 0.01
GP3_PER_GB_MONTH = 0.08
S3_PER_GB_MONTH = 0.023
LOGS_INGESTION_PER_GB = 0.50
KMS_KEY_PER_MONTH = 1.00
INSPECTOR_ECR_INITIAL_SCAN = 0.09
INSPECTOR_ECR_RESCAN = 0.01


def on_demand(instance_type: str) -> tuple[float, int]:
    """(on-demand $/hour, vCPUs); a type not in the table is priced by vCPU from its family's listed sizes."""
    if instance_type in EC2:
        return EC2[instance_type]
    family = instance_type.split(".")[0]
    cpus = _vcpus_by_size(instance_type)
    listed = [(abs(listed_cpus - cpus), listed_cpus, price) for name, (price, listed_cpus) in EC2.items() if name.split(".")[0] == family]
    if not listed:
        raise KeyError(f"no price for {instance_type} or its family; add it to infra/delivery/prices.py")
    _, nearest_cpus, nearest_price = min(listed)
    return nearest_price / nearest_cpus * cpus, cpus


def _vcpus_by_size(instance_type: str) -> int:
    size = instance_type.split(".")[1]
    known = {"large": 2, "xlarge": 4, "metal": 96}
    if size in known:
        return known[size]
    return int(size.removesuffix("xlarge")) * 4


def hourly(instance_type: str, spot: bool) -> float:
    price, _ = on_demand(instance_type)
    if spot:
        price *= 1 - SPOT_DISCOUNT.get(instance_type.split(".")[0], DEFAULT_SPOT_DISCOUNT)
    return price
