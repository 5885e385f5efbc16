"""`python -m infra doctor`: a preflight before `pulumi up`. No example values left in the stack file,
credentials and account, an existing VPC's subnets, zones and routes (network.vpcId), each GPU instance
type the stack may launch offered in its zones, the account's GPU
vCPU quotas against what the pools may run, the registry's scanning (ECR enhanced scanning over the stack's
repositories, Inspector's rescan durations where the stack owns it), and the state backend bucket. Prints a
pass/fail report."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from ml_platform.components import instance_types
from ml_platform.infra import config, existing_network
from ml_platform.infra.delivery.aws_errors import explain
from ml_platform.infra.placeholders import Placeholder
from ml_platform.policy.rules import continuous_scan_filters, ecr_wildcard_match

# EC2 vCPU quotas (Service Quotas, service code ec2) for the GPU instance classes.
QUOTAS = {
    ("G", "on-demand"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("P", "on-demand"): ("L-417A185B", "Running On-Demand P instances"),
    ("G", "spot"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("P", "spot"): ("L-7212CCBC", "All P Spot Instance Requests"),
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def gpu_class(family: str) -> str:
    return "P" if family.startswith("p") else "G"


def gpu_types(pool: config.ManagedPoolConfig | config.KarpenterPoolConfig) -> list[str]:
    """Instance types of a GPU pool: its listed types, or every type of its families."""
    if isinstance(pool, config.ManagedPoolConfig):
        return list(pool.instanceTypes)
    families = set(pool.instanceFamilies)
    return sorted(t for t in instance_types.known_instance_types() if instance_types.family_of(t) in families)


def zones_of(cfg: config.StackConfig, ec2) -> list[str]:
    if cfg.network.availabilityZones:
        return list(cfg.network.availabilityZones)
    zones = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"]
    return sorted(z["ZoneName"] for z in zones)[: cfg.network.azCount]


def existing_network_check(cfg: config.StackConfig, ec2) -> tuple[Check, list[str]]:
    """(the check of network.vpcId's VPC, its private subnets' zones): the same facts and judgement as the
    program's lookups (infra/existing_network.py), read with boto3. Warnings pass but are shown."""
    name = f"existing network {cfg.network.vpcId}"
    try:
        facts = existing_network.from_ec2(ec2, cfg)
    except ClientError as err:
        where = f"network.vpcId {cfg.network.vpcId} and its subnets (network.privateSubnetIds, publicSubnetIds) in {cfg.region}"
        return Check(name, False, f"{where}: {explain(err)}"), []
    errors, warnings = existing_network.problems(facts, cfg)
    if errors:
        return Check(name, False, "; ".join(f"{path}: {message}" for path, message in errors)), facts.zones
    detail = f"CIDRs {', '.join(facts.cidrs)}; private subnets in {', '.join(facts.zones)}"
    return Check(name, True, detail + "".join(f"; warning: {w}" for w in warnings)), facts.zones


def vcpus(ec2, types: list[str]) -> dict[str, int]:
    found = {}
    for start in range(0, len(types), 100):
        for item in ec2.describe_instance_types(InstanceTypes=types[start : start + 100])["InstanceTypes"]:
            found[item["InstanceType"]] = item["VCpuInfo"]["DefaultVCpus"]
    return found


def needed_vcpus(cfg: config.StackConfig, ec2) -> dict[tuple[str, str], int]:
    """Most GPU vCPUs the pools may run, per (G or P, on-demand or spot)."""
    needed: dict[tuple[str, str], int] = defaultdict(int)
    for pool in cfg.nodePools.values():
        if pool.gpu is None:
            continue
        if isinstance(pool, config.ManagedPoolConfig):
            sizes = vcpus(ec2, list(pool.instanceTypes))
            capacity = "spot" if pool.capacityType == "SPOT" else "on-demand"
            needed[(gpu_class(pool.instanceTypes[0]), capacity)] += pool.maxSize * max(sizes.values())
        else:
            for capacity in pool.capacityTypes:
                for klass in {gpu_class(f) for f in pool.instanceFamilies}:
                    needed[(klass, capacity)] += pool.limits.cpu
    return dict(needed)


def placeholder_check(examples: Sequence[Placeholder]) -> Check:
    """Fails while the stack file holds any of the repository's example values (infra/placeholders.py)."""
    if not examples:
        return Check("placeholders", True, "no example values from this repository")
    return Check("placeholders", False, f"{len(examples)} example value(s) to replace: " + "; ".join(p.line() for p in examples))


def run(session, cfg: config.StackConfig, backend_bucket: str | None = None, examples: Sequence[Placeholder] = ()) -> list[Check]:
    """The preflight's checks, in order: placeholders (offline), credentials (STS; without them nothing else
    is asked), GPU instance-type offerings per GPU pool's zones, GPU vCPU quotas (Service Quotas), and the
    state backend's bucket when `backend_bucket` is given."""
    checks: list[Check] = [placeholder_check(examples)]
    try:
        identity = session.client("sts", region_name=cfg.region).get_caller_identity()
        checks.append(Check("credentials", True, f"account {identity['Account']} as {identity['Arn']}"))
    except (ClientError, BotoCoreError) as err:
        return [*checks, Check("credentials", False, explain(err))]

    ec2 = session.client("ec2", region_name=cfg.region)
    if cfg.network.existing:
        network_check, zones = existing_network_check(cfg, ec2)
        checks.append(network_check)
    else:
        zones = zones_of(cfg, ec2)
    for name, pool in sorted(cfg.nodePools.items()):
        if pool.gpu is None:
            continue
        types = gpu_types(pool)
        offerings = ec2.describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": types}, {"Name": "location", "Values": zones}]
        )["InstanceTypeOfferings"]
        offered = defaultdict(set)
        for offering in offerings:
            offered[offering["Location"]].add(offering["InstanceType"])
        missing = [zone for zone in zones if not offered[zone]]
        detail = ", ".join(f"{zone}: {len(offered[zone])} of {len(types)} types" for zone in zones)
        checks.append(Check(f"gpu offerings of pool {name}", not missing, detail + (f"; none in {', '.join(missing)}" if missing else "")))

    quotas = session.client("service-quotas", region_name=cfg.region)
    for (klass, capacity), need in sorted(needed_vcpus(cfg, ec2).items()):
        code, title = QUOTAS[(klass, capacity)]
        try:
            value = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
        except ClientError as err:
            checks.append(Check(f"quota {title}", False, f"cannot read {code}: {err.response['Error']['Code']}"))
            continue
        checks.append(
            Check(
                f"quota {title}",
                value >= need,
                f"{value:g} vCPUs, pools may need {need}" + ("" if value >= need else f"; request {code} to {need}"),
            )
        )

    checks += scanning_checks(session, cfg)
    if backend_bucket:
        try:
            session.client("s3", region_name=cfg.region).head_bucket(Bucket=backend_bucket)
            checks.append(Check("state backend", True, f"s3://{backend_bucket} is reachable"))
        except ClientError as err:
            checks.append(Check("state backend", False, f"s3://{backend_bucket}: {err.response['Error']['Code']} (run bootstrap-backend)"))
    return checks


def scanning_checks(session, cfg: config.StackConfig) -> list[Check]:
    """The account's ECR scanning in the stack's region (ecr GetRegistryScanningConfiguration): ENHANCED, with a
    CONTINUOUS_SCAN filter over every repository of the stack, else the gate has no rescanned findings to read.

    - Another stack owns it: not so fails where the stack refuses unscanned images (`unscanned: fail`, prod's
      default) and warns (passing) elsewhere, so staging's deploy is not held up before the owner's first deploy.
    - This stack owns it (`vulnerabilities.registryScanning`): BASIC passes (its first `pulumi up` turns ENHANCED
      on); ENHANCED with other rules than it declares fails (another stack declares it too: each `pulumi up` would
      overwrite the other's). Inspector's rescan durations are compared with its settings (inspector2
      GetConfiguration); a refusal to read them fails, since `pulumi up` calls the same API."""
    owned = cfg.vulnerabilities.registryScanning
    ecr = session.client("ecr", region_name=cfg.region)
    try:
        scanning = ecr.get_registry_scanning_configuration()["scanningConfiguration"]
    except ClientError as err:
        return [Check("registry scanning", False, f"cannot read the registry's scanning configuration: {explain(err)}")]
    rules = scanning.get("rules", [])
    filters = continuous_scan_filters(rules)
    repositories = [f"{cfg.registry_prefix}/{r}" if cfg.registry_prefix else r for r in cfg.registries.repositories]
    unscanned = [r for r in repositories if not any(ecr_wildcard_match(f, r) for f in filters)]
    enhanced = scanning.get("scanType") == "ENHANCED"
    if owned is not None:
        declared = sorted(owned.repositoryFilters)
        uncovered = [r for r in repositories if not any(ecr_wildcard_match(f, r) for f in declared)]
        if uncovered:
            check = Check(
                "registry scanning",
                False,
                f"this stack's own repositories {', '.join(uncovered)} match none of its repositoryFilters {declared}: never scanned",
            )
        elif not enhanced:
            check = Check("registry scanning", True, f"{scanning.get('scanType')} now; this stack declares ENHANCED, which pulumi up sets")
        elif len(rules) != 1 or rules[0].get("scanFrequency") != "CONTINUOUS_SCAN" or sorted(filters) != declared:
            check = Check(
                "registry scanning",
                False,
                f"the account's scanning ({rules}) is not what this stack declares (CONTINUOUS_SCAN over {declared}): another "
                "stack may declare vulnerabilities.registryScanning too; exactly one per account and region may",
            )
        else:
            check = Check("registry scanning", True, f"ENHANCED, continuous over {', '.join(filters)} (this stack owns it)")
    elif enhanced and not unscanned:
        check = Check("registry scanning", True, f"ENHANCED, continuous over {', '.join(filters)}")
    else:
        what = (
            "BASIC (images scanned once on push, never rescanned)"
            if not enhanced
            else f"ENHANCED, but no continuous filter matches {', '.join(unscanned)}"
        )
        strict = cfg.unscanned_verdict == "fail"
        check = Check(
            "registry scanning",
            not strict,
            ("" if strict else "WARNING (vulnerabilities.unscanned is warn here): ")
            + f"{what}; declare vulnerabilities.registryScanning in the one stack that owns this account's scanning "
            "(README, 'Vulnerabilities')",
        )
    checks = [check]
    if owned is not None:
        try:
            answer = session.client("inspector2", region_name=cfg.region).get_configuration()
        except ClientError as err:
            # Before the owner's first `pulumi up` Inspector may not be on yet; after it, any refusal is a failure,
            # since `pulumi up` calls the same API to keep the durations.
            first = not enhanced and err.response["Error"]["Code"] not in ("AccessDeniedException", "AccessDenied", "UnauthorizedException")
            detail = explain(err).splitlines()[0][:160]
            if first:
                return [*checks, Check("inspector rescan durations", True, f"not set yet ({detail}); pulumi up sets them")]
            return [*checks, Check("inspector rescan durations", False, f"{detail}: pulumi up needs inspector2 access to set them")]
        state = (answer.get("ecrConfiguration") or {}).get("rescanDurationState") or {}
        wanted = {k: getattr(owned, k) for k in ("rescanDuration", "pullDateRescanDuration", "pullDateRescanMode")}
        differing = {k: state.get(k) for k, v in wanted.items() if state.get(k) != v}
        detail = ", ".join(f"{k} {v}" for k, v in wanted.items())
        checks.append(Check("inspector rescan durations", True, detail if not differing else f"now {differing}; pulumi up sets {detail}"))
    return checks
