"""The price tables behind `python -m infra cost`: USD, Linux, on-demand, per hour unless noted, one table per region.

Compiled 2026-11-30 from:
- EC2 on-demand, every region: skypilot-org/skypilot-catalog catalogs/v9/aws/vms.csv (commit 2c3d7ea7, mid-2026 or
  later: its us-east-1 figures equal aws/karpenter-provider-aws's pkg/providers/pricing/zz_generated.pricing_aws.go,
  generated 2026-07-20, for every type listed here); m6i.large re-checked for us-west-2 through the AWS Price List
  API on 2026-09-19. A type the catalog does not list in a region is `None` there: not offered (check with `aws ec2
  describe-instance-type-offerings`), never priced at another region's rate.
- Spot: planning discounts from the same catalog's per-AZ spot prices (2025) and describe-spot-price-history for
  m6i/c6i in us-west-2 (2026-09-19). Spot prices move hourly; these are averages for planning.
- Services (EKS, NAT, ALB, public IPv4, interface endpoints, EBS gp3, S3 Standard, CloudWatch Logs ingestion, KMS):
  us-west-2 from AWS's regional price lists as quoted by a cost guide checked against them on 2026-10-04; us-east-2
  from its price catalogs (published 2026-09); the US regions share these list prices. eu-west-1 from the Price
  List API (queried 2026-07-29; NAT from offer AmazonEC2/20260925174521/eu-west-1) and a July 2026 bill (ALB);
  eu-central-1 from the Price List API and cost and usage reports (2026-09; S3 offer published 2026-08-31; CloudWatch
  from a pricebook dated 2026-03-26; ALB from AWS's ELB pricing table). A figure no source gave is `None`: `cost`
  lists that item as not priced in the region.
- Amazon Inspector, ECR container image scanning (enhanced scanning): $0.09 per image's initial scan, $0.01 per
  rescan (https://aws.amazon.com/inspector/pricing/, as quoted by third-party documentation 2026; AWS's page renders
  its figures with JavaScript and no stored copy held them: re-check there). Billed per use (usage types
  ECR_INITIAL_SCAN and ECR_RESCAN, inspector2 ListUsageTotals), so `cost` states it per unit.

Estimates, not a bill: data transfer, NAT and ALB per-GB/LCU charges, and request costs are left out.
Instance types missing here are priced from the nearest listed size of the same family, by vCPU.
"""

from __future__ import annotations

from dataclasses import dataclass

DATE = "2026-11-30"
HOURS_PER_MONTH = 730

# vCPUs of each listed type (the same catalog); a type's price per region is in its RegionPrices.
VCPUS: dict[str, int] = {
    "m6i.large": 2,
    "m6i.xlarge": 4,
    "m6i.2xlarge": 8,
    "c6i.xlarge": 4,
    "r6i.xlarge": 4,
    "m7i.large": 2,
    "g5.xlarge": 4,
    "g5.2xlarge": 8,
    "g5.4xlarge": 16,
    "g5.12xlarge": 48,
    "g5.48xlarge": 192,
    "g6.xlarge": 4,
    "g6.2xlarge": 8,
    "g6.12xlarge": 48,
    "g6e.xlarge": 4,
    "g6e.12xlarge": 48,
    "p4d.24xlarge": 96,
    "p5.48xlarge": 192,
    "g5.8xlarge": 32,
    "g5.16xlarge": 64,
    "g5.24xlarge": 96,
    "g6.4xlarge": 16,
    "g6.8xlarge": 32,
    "g6.16xlarge": 64,
    "g6.24xlarge": 96,
    "g6.48xlarge": 192,
    "g6e.2xlarge": 8,
    "g6e.4xlarge": 16,
    "g6e.8xlarge": 32,
    "g6e.16xlarge": 64,
    "g6e.24xlarge": 96,
    "g6e.48xlarge": 192,
    "p4de.24xlarge": 96,
    "p5e.48xlarge": 192,
    "p5en.48xlarge": 192,
}

# Planning discount of spot against on-demand, by family (AWS advertises "up to 90%").
SPOT_DISCOUNT: dict[str, float] = {"g5": 0.60, "g6": 0.50, "g6e": 0.50, "m6i": 0.50, "c6i": 0.50, "r6i": 0.50, "m7i": 0.50}
DEFAULT_SPOT_DISCOUNT = 0.45

INSPECTOR_ECR_INITIAL_SCAN = 0.09
INSPECTOR_ECR_RESCAN = 0.01


class NoPrice(KeyError):
    """An instance type the region's table cannot price: not offered there, or no family to price it from."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class RegionPrices:
    """One region's prices; a service figure None means no sourced figure (that item is listed as not priced)."""

    region: str
    ec2: dict[str, float | None]
    """On-demand $/hour by instance type; None: the type is not offered in the region (per the catalog)."""
    eks_control_plane: float | None
    nat_gateway: float | None
    public_ipv4: float | None
    alb: float | None
    interface_endpoint_per_az: float | None
    gp3_per_gb_month: float | None
    s3_per_gb_month: float | None
    logs_ingestion_per_gb: float | None
    kms_key_per_month: float | None

    def on_demand(self, instance_type: str) -> tuple[float, int]:
        """(on-demand $/hour, vCPUs); a CPU type not listed is priced by vCPU from its family's listed sizes here
        (EC2's m, c and r sizes are priced in proportion to their vCPUs). Raises NoPrice for a type not offered in
        the region, a GPU type not listed (GPU sizes are not priced by vCPU: a g5.16xlarge costs far less than
        four g5.4xlarge), a metal size, or a family the table does not list."""
        if instance_type in self.ec2:
            price = self.ec2[instance_type]
            if price is None:
                raise NoPrice(f"{instance_type} is not offered in {self.region} (per the price catalog)")
            return price, VCPUS[instance_type]
        family = instance_type.split(".")[0]
        if family[0] in "gp" or instance_type.endswith(".metal"):
            raise NoPrice(f"no price for {instance_type} in {self.region}: list it in infra/delivery/prices.py (GPU, metal: not by vCPU)")
        cpus = _vcpus_by_size(instance_type)
        if cpus is None:
            raise NoPrice(f"no price for {instance_type} in {self.region}: its size is not one priced by vCPU (large to 48xlarge)")
        listed = [
            (abs(VCPUS[name] - cpus), VCPUS[name], price)
            for name, price in self.ec2.items()
            if name.split(".")[0] == family and price is not None
        ]
        if not listed:
            raise NoPrice(f"no price for {instance_type} or its family in {self.region}; add it to infra/delivery/prices.py")
        _, nearest_cpus, nearest_price = min(listed)
        return nearest_price / nearest_cpus * cpus, cpus

    def hourly(self, instance_type: str, spot: bool) -> float:
        """$/hour of one instance, with the family's planning spot discount when `spot`. Raises NoPrice."""
        price, _ = self.on_demand(instance_type)
        if spot:
            price *= 1 - SPOT_DISCOUNT.get(instance_type.split(".")[0], DEFAULT_SPOT_DISCOUNT)
        return price

    def priced(self, instance_type: str) -> bool:
        try:
            self.on_demand(instance_type)
        except NoPrice:
            return False
        return True


def cpu_sizes() -> list[str]:
    """Every size of the listed CPU families (large to 24xlarge) the tables can price by vCPU."""
    families = sorted({name.split(".")[0] for name in VCPUS if name[0] not in "gp"})
    sizes = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
    return [f"{family}.{size}" for family in families for size in sizes]


def _vcpus_by_size(instance_type: str) -> int | None:
    """vCPUs of a Nitro size (large 2, xlarge 4, Nxlarge 4N); None for other sizes (medium, small, metal-24xl...)."""
    size = instance_type.partition(".")[2]
    known = {"large": 2, "xlarge": 4}
    if size in known:
        return known[size]
    multiple = size.removesuffix("xlarge")
    return int(multiple) * 4 if size.endswith("xlarge") and multiple.isdigit() else None


_US_EC2: dict[str, float | None] = {
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "m6i.2xlarge": 0.384,
    "c6i.xlarge": 0.170,
    "r6i.xlarge": 0.252,
    "m7i.large": 0.1008,
    "g5.xlarge": 1.006,
    "g5.2xlarge": 1.212,
    "g5.4xlarge": 1.624,
    "g5.12xlarge": 5.672,
    "g5.48xlarge": 16.288,
    "g6.xlarge": 0.8048,
    "g6.2xlarge": 0.9776,
    "g6.12xlarge": 4.6016,
    "g6e.xlarge": 1.861,
    "g6e.12xlarge": 10.49264,
    "p4d.24xlarge": 21.95764,
    "p5.48xlarge": 55.04,
    "g5.8xlarge": 2.448,
    "g5.16xlarge": 4.096,
    "g5.24xlarge": 8.144,
    "g6.4xlarge": 1.3232,
    "g6.8xlarge": 2.0144,
    "g6.16xlarge": 3.3968,
    "g6.24xlarge": 6.6752,
    "g6.48xlarge": 13.3504,
    "g6e.2xlarge": 2.24208,
    "g6e.4xlarge": 3.00424,
    "g6e.8xlarge": 4.52856,
    "g6e.16xlarge": 7.57719,
    "g6e.24xlarge": 15.06559,
    "g6e.48xlarge": 30.13118,
    "p4de.24xlarge": 27.44705,
    "p5e.48xlarge": None,
    "p5en.48xlarge": 63.296,
}
_US_SERVICES = {
    "eks_control_plane": 0.10,
    "nat_gateway": 0.045,
    "public_ipv4": 0.005,
    "alb": 0.0225,
    "interface_endpoint_per_az": 0.01,
    "gp3_per_gb_month": 0.08,
    "s3_per_gb_month": 0.023,
    "logs_ingestion_per_gb": 0.50,
    "kms_key_per_month": 1.00,
}

REGIONS: dict[str, RegionPrices] = {
    region: RegionPrices(region, dict(_US_EC2), **_US_SERVICES) for region in ("us-west-2", "us-east-1", "us-east-2")
}
REGIONS["us-east-2"].ec2["p4de.24xlarge"] = None  # not offered there, per the catalog
REGIONS["eu-west-1"] = RegionPrices(
    "eu-west-1",
    {
        "m6i.large": 0.107,
        "m6i.xlarge": 0.214,
        "m6i.2xlarge": 0.428,
        "c6i.xlarge": 0.1824,
        "r6i.xlarge": 0.282,
        "m7i.large": 0.11235,
        "g5.xlarge": 1.123,
        "g5.2xlarge": 1.35296,
        "g5.4xlarge": 1.81287,
        "g5.12xlarge": 6.33167,
        "g5.48xlarge": 18.18233,
        "g6.xlarge": None,
        "g6.2xlarge": None,
        "g6.12xlarge": None,
        "g6e.xlarge": None,
        "g6e.12xlarge": None,
        "p4d.24xlarge": 23.71569,
        "p5.48xlarge": None,
        "g5.8xlarge": 2.73271,
        "g5.16xlarge": 4.57237,
        "g5.24xlarge": 9.09117,
        "g6.4xlarge": None,
        "g6.8xlarge": None,
        "g6.16xlarge": None,
        "g6.24xlarge": None,
        "g6.48xlarge": None,
        "g6e.2xlarge": None,
        "g6e.4xlarge": None,
        "g6e.8xlarge": None,
        "g6e.16xlarge": None,
        "g6e.24xlarge": None,
        "g6e.48xlarge": None,
        "p4de.24xlarge": None,
        "p5e.48xlarge": None,
        "p5en.48xlarge": None,
    },
    eks_control_plane=0.10,
    nat_gateway=0.048,
    public_ipv4=0.005,
    alb=0.0252,
    interface_endpoint_per_az=0.011,
    gp3_per_gb_month=0.088,
    s3_per_gb_month=0.023,
    logs_ingestion_per_gb=None,
    kms_key_per_month=1.00,
)
REGIONS["eu-central-1"] = RegionPrices(
    "eu-central-1",
    {
        "m6i.large": 0.115,
        "m6i.xlarge": 0.23,
        "m6i.2xlarge": 0.46,
        "c6i.xlarge": 0.194,
        "r6i.xlarge": 0.304,
        "m7i.large": 0.12075,
        "g5.xlarge": 1.258,
        "g5.2xlarge": 1.5156,
        "g5.4xlarge": 2.03081,
        "g5.12xlarge": 7.09282,
        "g5.48xlarge": 20.3681,
        "g6.xlarge": 1.0064,
        "g6.2xlarge": 1.22249,
        "g6.12xlarge": 5.75429,
        "g6e.xlarge": 2.327,
        "g6e.12xlarge": 13.12002,
        "p4d.24xlarge": 27.43298,
        "p5.48xlarge": None,
        "g5.8xlarge": 3.06122,
        "g5.16xlarge": 5.12204,
        "g5.24xlarge": 10.18405,
        "g6.4xlarge": 1.65466,
        "g6.8xlarge": 2.519,
        "g6.16xlarge": 4.24769,
        "g6.24xlarge": 8.34732,
        "g6.48xlarge": 16.69464,
        "g6e.2xlarge": 2.8035,
        "g6e.4xlarge": 3.75651,
        "g6e.8xlarge": 5.66252,
        "g6e.16xlarge": 9.47454,
        "g6e.24xlarge": 18.83806,
        "g6e.48xlarge": 37.67612,
        "p4de.24xlarge": 34.29122,
        "p5e.48xlarge": None,
        "p5en.48xlarge": None,
    },
    eks_control_plane=0.10,
    nat_gateway=0.052,
    public_ipv4=0.005,
    alb=0.027,
    interface_endpoint_per_az=0.012,
    gp3_per_gb_month=0.0952,
    s3_per_gb_month=0.0245,
    logs_ingestion_per_gb=0.63,
    kms_key_per_month=1.00,
)


class UnknownRegion(KeyError):
    """A region the tables have no prices for."""

    def __str__(self) -> str:
        return str(self.args[0])


def for_region(region: str) -> RegionPrices:
    """The table of `region`. Raises UnknownRegion naming the regions there are tables for."""
    if region not in REGIONS:
        raise UnknownRegion(f"no prices for {region}; the tables have {', '.join(sorted(REGIONS))}")
    return REGIONS[region]
