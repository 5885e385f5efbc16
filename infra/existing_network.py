"""An existing VPC a stack is given (`network.vpcId`): what the program looks up about it, and what must hold
for the platform to work in it.

The platform creates nothing network-related in such a VPC, so it must learn what it would otherwise have
decided: the VPC's CIDRs (network policies, the endpoint access-CIDR overlap check) and DNS settings, each
subnet's zone (EKS needs two Availability Zones, prod three; Karpenter pools' zones must have a subnet; an ALB
takes one subnet per zone) and how the subnets route: private ones must reach S3, ECR and the AWS APIs the
nodes call (a working NAT gateway, or VPC endpoints with private DNS), public ones (for internet-facing load
balancers) an internet gateway. Egress through another target (a transit gateway, a firewall appliance, a
private NAT gateway) cannot be judged from the VPC alone and is reported as such, never passed silently.

`look_up` reads the facts through the AWS provider's data sources (so `pulumi up` reads them with the stack's
own credentials, and the offline plan's mocks answer them: infra/offline/ec2_estate.py); `doctor` reads the
same facts with boto3 (`from_ec2`). `problems` judges them, one function for both. Sources: EKS user guide,
"View Amazon EKS networking requirements for VPC and subnets" (DNS hostnames and resolution, two AZs, no Local
Zone subnets for the cluster) and "Deploy private clusters with limited internet access" (the endpoints nodes
need: ec2, ecr.api, ecr.dkr, s3, sts, logs, eks-auth for Pod Identity, elasticloadbalancing, ssm, eks).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_platform.infra import config, pools
from ml_platform.infra.config.checks import access_cidr_overlaps

# The services whose endpoints are looked up (suffix after com.amazonaws.<region>.). Without a default route,
# nodes cannot start pods without the first (image layers and weights from S3, images from ECR, pod IPs through
# EC2 for the VPC CNI, Pod Identity credentials through eks-auth): errors. The others are what the platform's
# own pods call (Karpenter: sqs, ssm for its AMI alias, eks; Fluent Bit: logs; the load balancer controller):
# warnings.
REQUIRED_WITHOUT_EGRESS = ("s3", "ecr.api", "ecr.dkr", "ec2", "eks-auth")
ALSO_CALLED = ("sts", "logs", "sqs", "ssm", "eks", "elasticloadbalancing")
SERVICES = (*REQUIRED_WITHOUT_EGRESS, *ALSO_CALLED)
NAT, INTERNET_GATEWAY, OTHER, BROKEN, NO_ROUTE = "nat", "internet gateway", "other", "broken", "none"
UNKNOWN = "unknown"
"""An S3 gateway endpoint lookup that found several endpoints, so which route tables they serve is not known."""


@dataclass(frozen=True)
class Subnet:
    id: str
    vpc_id: str
    zone: str
    map_public_ip_on_launch: bool


@dataclass(frozen=True)
class NetworkFacts:
    """What the program needs to know about an existing VPC, as looked up."""

    vpc_id: str
    region: str
    cidrs: tuple[str, ...]
    """The VPC's associated IPv4 CIDRs (primary first)."""
    dns_support: bool
    dns_hostnames: bool
    private: tuple[Subnet, ...]
    public: tuple[Subnet, ...]
    default_route: Mapping[str, tuple[str, str]]
    """Subnet ID -> (NAT, INTERNET_GATEWAY, OTHER, BROKEN or NO_ROUTE, its target) of its 0.0.0.0/0 route, from
    its route table (its explicit association, else the VPC's main table); for private and public subnets."""
    s3_gateway: Mapping[str, bool | str]
    """Private subnet ID -> whether an S3 gateway endpoint serves its route table (UNKNOWN: could not tell)."""
    interface_endpoints: frozenset[str] = field(default_factory=frozenset)
    """SERVICES with an available interface endpoint in the VPC whose private DNS is on (without it, nodes
    resolve the public name and go around the endpoint)."""

    @property
    def zones(self) -> list[str]:
        """The private subnets' distinct zones, sorted."""
        return sorted({subnet.zone for subnet in self.private})

    @property
    def private_subnet_ids(self) -> list[str]:
        return [subnet.id for subnet in self.private]

    def one_per_zone(self, subnets: tuple[Subnet, ...]) -> list[str]:
        """The first subnet of each zone, in the order given: an ALB takes at most one subnet per zone."""
        chosen: dict[str, str] = {}
        for subnet in subnets:
            chosen.setdefault(subnet.zone, subnet.id)
        return list(chosen.values())


def route_kind(route: Mapping[str, Any], nat_state: Callable[[str], tuple[str, str]]) -> tuple[str, str]:
    """(kind, target) of a route given as the provider's route table data source lists it (camelCase keys) or
    as DescribeRouteTables does (PascalCase). `nat_state(id)` gives a NAT gateway's (state, connectivity type)."""
    get = {key[:1].lower() + key[1:]: value for key, value in route.items()}.get
    if get("state") == "blackhole":
        return BROKEN, f"{get('natGatewayId') or get('gatewayId') or 'a deleted target'} (a blackhole route)"
    if get("natGatewayId"):
        nat = get("natGatewayId")
        state, connectivity = nat_state(nat)
        if state != "available":
            return BROKEN, f"{nat}, which is {state or 'gone'}"
        if connectivity == "private":
            return OTHER, f"{nat} (a private NAT gateway, no internet egress of its own)"
        return NAT, nat
    gateway = get("gatewayId") or ""
    if gateway.startswith("igw-"):
        return INTERNET_GATEWAY, gateway
    for key in ("transitGatewayId", "networkInterfaceId", "instanceId", "vpcPeeringConnectionId", "vpcEndpointId", "coreNetworkArn"):
        if get(key):
            return OTHER, get(key)
    return OTHER, gateway or "an unknown target"


def table_of(subnet: str, tables: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The route table a subnet uses: its explicit association, else the VPC's main table (DescribeRouteTables
    lists a subnet's implicit association with the main table nowhere). `tables` as default_routes takes them."""
    main = next((t for t in tables if any(a.get("main") for a in t.get("associations", []))), None)
    return next((t for t in tables if any(a.get("subnetId") == subnet for a in t.get("associations", []))), main)


def default_routes(
    subnet_ids: list[str], tables: list[Mapping[str, Any]], nat_state: Callable[[str], tuple[str, str]]
) -> dict[str, tuple[str, str]]:
    """Subnet ID -> route_kind of its default route; `tables` as the provider's data source returns them
    (routeTableId, routes with cidrBlock, associations with subnetId and main)."""
    found = {}
    for subnet in subnet_ids:
        table = table_of(subnet, tables)
        routes = [] if table is None else [r for r in table.get("routes", []) if r.get("cidrBlock") == "0.0.0.0/0"]
        found[subnet] = route_kind(routes[0], nat_state) if routes else (NO_ROUTE, "")
    return found


def problems(facts: NetworkFacts, cfg: config.StackConfig) -> tuple[list[tuple[str, str]], list[str]]:
    """(errors as (key path, message), warnings) about an existing VPC for this stack. Conservative: what
    cannot be verified is a warning naming what to check, never a silent pass."""
    errors: list[tuple[str, str]] = []
    warnings: list[str] = []
    if not (facts.dns_support and facts.dns_hostnames):
        off = [name for name, on in (("DNS resolution", facts.dns_support), ("DNS hostnames", facts.dns_hostnames)) if not on]
        errors.append(("network.vpcId", f"{facts.vpc_id} has {' and '.join(off)} off; EKS needs both on, or nodes cannot register"))
    for field_name, subnets in (("privateSubnetIds", facts.private), ("publicSubnetIds", facts.public)):
        for index, subnet in enumerate(subnets):
            at = f"network.{field_name}[{index}]"
            if subnet.vpc_id != facts.vpc_id:
                errors.append((at, f"{subnet.id} is in {subnet.vpc_id}, not in network.vpcId ({facts.vpc_id})"))
            if not re.fullmatch(re.escape(facts.region) + r"[a-z]", subnet.zone):
                errors.append(
                    (at, f"{subnet.id} is in {subnet.zone}, a Local Zone or Wavelength Zone; the platform needs Availability Zones")
                )
    for index, subnet in enumerate(facts.private):
        if subnet.map_public_ip_on_launch:
            errors.append(
                (f"network.privateSubnetIds[{index}]", f"{subnet.id} gives instances public IPs on launch: it is not a private subnet")
            )
    zones = facts.zones
    wanted = 3 if cfg.environment == "prod" else 2
    if len(zones) < wanted:
        where = f"only {', '.join(zones)}" if zones else "no zone"
        errors.append(("network.privateSubnetIds", f"the private subnets cover {where}; {cfg.environment} needs {wanted} zones"))
    errors += [(path, f"'{zone}' has no private subnet in network.privateSubnetIds") for path, zone in pools.zones_outside(cfg, zones)]
    errors += access_cidr_overlaps(cfg, facts.cidrs)
    errors += _public_problems(facts, cfg, warnings)
    for index, subnet in enumerate(facts.private):
        _private_routes(f"network.privateSubnetIds[{index}]", subnet, facts, errors, warnings)
    return errors, warnings


def _public_problems(facts: NetworkFacts, cfg: config.StackConfig, warnings: list[str]) -> list[tuple[str, str]]:
    internet_facing = [
        name for name, model in sorted(cfg.models.items()) if model.exposure.type == "alb" and model.exposure.scheme == "internet-facing"
    ]
    if not internet_facing:
        if cfg.network.publicSubnetIds:
            warnings.append("network.publicSubnetIds: no model is internet-facing, so the platform uses none of these subnets")
        return []
    errors = []
    if len({s.zone for s in facts.public}) < 2:
        errors.append(
            ("network.publicSubnetIds", f"an internet-facing ALB ({', '.join(internet_facing)}) needs public subnets in two zones")
        )
    for index, subnet in enumerate(facts.public):
        kind, target = facts.default_route.get(subnet.id, (NO_ROUTE, ""))
        if kind != INTERNET_GATEWAY:
            route = f"routes 0.0.0.0/0 to {target}" if target else "has no default route"
            errors.append(
                (
                    f"network.publicSubnetIds[{index}]",
                    f"{subnet.id} {route}, not to an internet gateway: an internet-facing ALB there is unreachable",
                )
            )
    return errors


def _private_routes(at: str, subnet: Subnet, facts: NetworkFacts, errors: list, warnings: list) -> None:
    kind, target = facts.default_route.get(subnet.id, (NO_ROUTE, ""))
    if kind == INTERNET_GATEWAY:
        errors.append((at, f"{subnet.id} routes 0.0.0.0/0 to {target}: a public subnet, where nodes without public IPs have no egress"))
    elif kind == BROKEN:
        errors.append((at, f"{subnet.id} routes 0.0.0.0/0 to {target}: nodes there would have no egress"))
    elif kind == OTHER:
        warnings.append(
            f"{at}: {subnet.id} sends 0.0.0.0/0 to {target}, which the platform cannot see through: make sure it reaches S3, "
            f"ECR and the AWS APIs ({', '.join(SERVICES[1:])}), or nodes will not start pods"
        )
    elif kind == NAT and facts.s3_gateway.get(subnet.id) is False:
        warnings.append(
            f"{at}: {subnet.id} reaches S3 through {target}; an S3 gateway endpoint on its route table would keep model weights "
            "and image layers off the NAT gateway (no per-GB charge)"
        )
    elif kind == NO_ROUTE:
        gateway = facts.s3_gateway.get(subnet.id)
        missing = [s for s in REQUIRED_WITHOUT_EGRESS if s not in facts.interface_endpoints and not (s == "s3" and gateway is True)]
        if gateway == UNKNOWN and "s3" in missing:
            missing.remove("s3")
            warnings.append(
                f"{at}: {subnet.id} has no default route and the VPC has several S3 gateway endpoints; the lookup cannot tell "
                "whether one serves this subnet's route table: check it (`python -m infra doctor` does)"
            )
        if missing:
            errors.append(
                (
                    at,
                    f"{subnet.id} has no default route and no VPC endpoint (with private DNS) for {', '.join(missing)}: "
                    "nodes could not pull images or weights, or get pod IPs and credentials",
                )
            )
        others = [s for s in ALSO_CALLED if s not in facts.interface_endpoints]
        if others:
            warnings.append(
                f"{at}: {subnet.id} has no default route and no interface endpoint for {', '.join(others)}, which the platform's pods call"
            )


# The provider's route fields (snake_case in the Python SDK) by their API name, for route_kind.
_ROUTE_TARGETS = {
    "natGatewayId": "nat_gateway_id",
    "gatewayId": "gateway_id",
    "transitGatewayId": "transit_gateway_id",
    "networkInterfaceId": "network_interface_id",
    "instanceId": "instance_id",
    "vpcPeeringConnectionId": "vpc_peering_connection_id",
    "vpcEndpointId": "vpc_endpoint_id",
    "coreNetworkArn": "core_network_arn",
}


def look_up(cfg: config.StackConfig) -> NetworkFacts:
    """The facts of cfg.network's existing VPC through the AWS provider's data sources (aws.ec2.get_vpc,
    get_subnet, get_route_tables, get_route_table, get_nat_gateway, get_vpc_endpoint). A VPC or subnet that
    does not exist raises pulumi.RunError naming the key."""
    import pulumi
    import pulumi_aws as aws

    network = cfg.network
    assert network.vpcId is not None

    def lookup(path: str, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as err:  # the provider's error, whatever its type: say which key it is about
            raise pulumi.RunError(f"{path}: cannot look up {what} in {cfg.region}: {err}") from None

    vpc = lookup("network.vpcId", network.vpcId, lambda: aws.ec2.get_vpc(id=network.vpcId))
    cidrs = [a.cidr_block for a in vpc.cidr_block_associations or [] if a.state == "associated"]
    cidrs = [vpc.cidr_block, *[c for c in cidrs if c != vpc.cidr_block]]

    def subnets(field_name: str) -> tuple[Subnet, ...]:
        found = []
        for index, subnet_id in enumerate(getattr(network, field_name)):
            s = lookup(f"network.{field_name}[{index}]", subnet_id, lambda subnet_id=subnet_id: aws.ec2.get_subnet(id=subnet_id))
            found.append(Subnet(subnet_id, s.vpc_id, s.availability_zone, bool(s.map_public_ip_on_launch)))
        return tuple(found)

    private, public = subnets("privateSubnetIds"), subnets("publicSubnetIds")
    ids = lookup("network.vpcId", f"the route tables of {network.vpcId}", lambda: aws.ec2.get_route_tables(vpc_id=network.vpcId)).ids
    tables = []
    for table_id in sorted(ids):
        table = lookup("network.vpcId", table_id, lambda table_id=table_id: aws.ec2.get_route_table(route_table_id=table_id))
        routes = [
            {"cidrBlock": r.cidr_block, **{name: getattr(r, attr) for name, attr in _ROUTE_TARGETS.items() if getattr(r, attr, None)}}
            for r in table.routes
        ]
        associations = [{"subnetId": a.subnet_id, "main": a.main} for a in table.associations]
        tables.append({"routeTableId": table.route_table_id, "routes": routes, "associations": associations})

    def nat_state(nat_id: str) -> tuple[str, str]:
        try:
            nat = aws.ec2.get_nat_gateway(id=nat_id)
        except Exception as err:
            if "no matching" in str(err).lower():
                return "", ""
            raise pulumi.RunError(f"network.vpcId: cannot look up {nat_id} in {cfg.region}: {err}") from None
        return nat.state, nat.connectivity_type

    def endpoint(service: str, endpoint_type: str) -> Any:
        name = f"com.amazonaws.{cfg.region}.{service}"
        try:
            return aws.ec2.get_vpc_endpoint(vpc_id=network.vpcId, service_name=name, vpc_endpoint_type=endpoint_type, state="available")
        except Exception as err:
            # The provider's singular data source fails on none ("no matching ...") and on several ("multiple ...").
            text = str(err).lower()
            if "no matching" in text:
                return None
            if "multiple" in text:
                return UNKNOWN
            raise pulumi.RunError(f"network.vpcId: cannot look up the {name} endpoint of {network.vpcId}: {err}") from None

    gateway = endpoint("s3", "Gateway")
    s3_gateway: dict[str, bool | str] = {}
    for subnet in private:
        table = table_of(subnet.id, tables)
        table_id = table["routeTableId"] if table else None
        s3_gateway[subnet.id] = UNKNOWN if gateway == UNKNOWN else bool(gateway) and table_id in gateway.route_table_ids
    interface = set()
    for service in SERVICES:
        found = endpoint(service, "Interface")
        # Several interface endpoints of one service: at most one has private DNS (AWS allows one per VPC).
        if found == UNKNOWN or (found is not None and found.private_dns_enabled):
            interface.add(service)
    return NetworkFacts(
        vpc_id=network.vpcId,
        region=cfg.region,
        cidrs=tuple(cidrs),
        dns_support=bool(vpc.enable_dns_support),
        dns_hostnames=bool(vpc.enable_dns_hostnames),
        private=private,
        public=public,
        default_route=default_routes([s.id for s in (*private, *public)], tables, nat_state),
        s3_gateway=s3_gateway,
        interface_endpoints=frozenset(interface),
    )


def from_ec2(ec2: Any, cfg: config.StackConfig) -> NetworkFacts:
    """The same facts through boto3's EC2 client (doctor): DescribeVpcs, DescribeVpcAttribute,
    DescribeSubnets, DescribeRouteTables, DescribeNatGateways, DescribeVpcEndpoints. Raises botocore's
    ClientError for a VPC or subnet that does not exist."""
    network = cfg.network
    vpc = ec2.describe_vpcs(VpcIds=[network.vpcId])["Vpcs"][0]
    cidrs = [vpc["CidrBlock"]]
    cidrs += [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", []) if a["CidrBlockState"]["State"] == "associated"]
    support = ec2.describe_vpc_attribute(VpcId=network.vpcId, Attribute="enableDnsSupport")["EnableDnsSupport"]["Value"]
    hostnames = ec2.describe_vpc_attribute(VpcId=network.vpcId, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    described = {}
    wanted = [*network.privateSubnetIds, *network.publicSubnetIds]
    for subnet in ec2.describe_subnets(SubnetIds=wanted)["Subnets"]:
        described[subnet["SubnetId"]] = Subnet(
            subnet["SubnetId"], subnet["VpcId"], subnet["AvailabilityZone"], subnet["MapPublicIpOnLaunch"]
        )
    by_vpc = [{"Name": "vpc-id", "Values": [network.vpcId]}]
    tables = [
        {
            "routeTableId": t["RouteTableId"],
            "routes": [{**r, "cidrBlock": r.get("DestinationCidrBlock")} for r in t.get("Routes", [])],
            "associations": [{"subnetId": a.get("SubnetId"), "main": a.get("Main", False)} for a in t.get("Associations", [])],
        }
        for page in ec2.get_paginator("describe_route_tables").paginate(Filters=by_vpc)
        for t in page["RouteTables"]
    ]
    nats = {
        n["NatGatewayId"]: (n["State"], n.get("ConnectivityType", "public"))
        for page in ec2.get_paginator("describe_nat_gateways").paginate(Filters=by_vpc)
        for n in page["NatGateways"]
    }
    endpoints = [
        e
        for page in ec2.get_paginator("describe_vpc_endpoints").paginate(Filters=by_vpc)
        for e in page["VpcEndpoints"]
        if e.get("State", "").lower() == "available"
    ]
    prefix = f"com.amazonaws.{cfg.region}."
    gateways = [e for e in endpoints if e["ServiceName"] == f"{prefix}s3" and e["VpcEndpointType"] == "Gateway"]
    private = tuple(described[s] for s in network.privateSubnetIds)
    public = tuple(described[s] for s in network.publicSubnetIds)
    return NetworkFacts(
        vpc_id=network.vpcId,
        region=cfg.region,
        cidrs=tuple(dict.fromkeys(cidrs)),
        dns_support=bool(support),
        dns_hostnames=bool(hostnames),
        private=private,
        public=public,
        default_route=default_routes([s.id for s in (*private, *public)], tables, lambda nat: nats.get(nat, ("", ""))),
        s3_gateway={
            s.id: any((table_of(s.id, tables) or {}).get("routeTableId") in e.get("RouteTableIds", []) for e in gateways) for s in private
        },
        interface_endpoints=frozenset(
            e["ServiceName"].removeprefix(prefix)
            for e in endpoints
            if e["VpcEndpointType"] == "Interface" and e["ServiceName"].startswith(prefix) and e.get("PrivateDnsEnabled")
        )
        & frozenset(SERVICES),
    )
