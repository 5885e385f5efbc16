"""The EC2 networking the offline plan's mocks answer lookups from, for stacks given an existing VPC.

An estate is what DescribeVpcs, DescribeSubnets, DescribeRouteTables and DescribeVpcEndpoints return (boto3's
shapes). `answer` turns it into the AWS provider's data-source results (aws.ec2.get_vpc, get_subnet,
get_route_tables, get_route_table, get_vpc_endpoint), including their failures: a VPC, subnet or endpoint
that is not there fails as the provider's singular data sources do ("no matching ... found", "multiple ...
matched"), and the route table data source leaves out the local route and gateway-endpoint routes, as the
provider does.

Two sources:
- `from_client(ec2)`: a real account's or moto's EC2, described (the tests build faulty VPCs in moto);
- `assumed(...)`: for `python -m infra plan`, which has no AWS: a well-formed VPC holding the stack's subnet IDs
  (private subnets across zones, each routing through a NAT gateway, with an S3 gateway endpoint), reported in
  the plan's warnings as assumed, since the real one is only seen by `pulumi preview` and `doctor`.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GET_VPC = "aws:ec2/getVpc:getVpc"
GET_SUBNET = "aws:ec2/getSubnet:getSubnet"
GET_ROUTE_TABLES = "aws:ec2/getRouteTables:getRouteTables"
GET_ROUTE_TABLE = "aws:ec2/getRouteTable:getRouteTable"
GET_VPC_ENDPOINT = "aws:ec2/getVpcEndpoint:getVpcEndpoint"
GET_NAT_GATEWAY = "aws:ec2/getNatGateway:getNatGateway"
TOKENS = (GET_VPC, GET_SUBNET, GET_ROUTE_TABLES, GET_ROUTE_TABLE, GET_VPC_ENDPOINT, GET_NAT_GATEWAY)

# The route fields of the provider's route table data source, by the API's field name.
_ROUTE_FIELDS = {
    "carrierGatewayId": "CarrierGatewayId",
    "cidrBlock": "DestinationCidrBlock",
    "coreNetworkArn": "CoreNetworkArn",
    "destinationPrefixListId": "DestinationPrefixListId",
    "egressOnlyGatewayId": "EgressOnlyInternetGatewayId",
    "gatewayId": "GatewayId",
    "instanceId": "InstanceId",
    "ipv6CidrBlock": "DestinationIpv6CidrBlock",
    "localGatewayId": "LocalGatewayId",
    "natGatewayId": "NatGatewayId",
    "networkInterfaceId": "NetworkInterfaceId",
    "odbNetworkArn": "OdbNetworkArn",
    "transitGatewayId": "TransitGatewayId",
    "vpcEndpointId": "VpcEndpointId",
    "vpcPeeringConnectionId": "VpcPeeringConnectionId",
}


def _id(prefix: str, *seed: str) -> str:
    return f"{prefix}-{hashlib.sha256('/'.join(seed).encode()).hexdigest()[:17]}"


def _not_found(what: str) -> tuple[dict, list[tuple[str, str]]]:
    return {}, [("", f"no matching {what} found")]


@dataclass
class Ec2Estate:
    vpcs: list[dict[str, Any]] = field(default_factory=list)
    subnets: list[dict[str, Any]] = field(default_factory=list)
    route_tables: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    nat_gateways: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the plan's warnings should say about this estate (an assumed one says so)."""

    @classmethod
    def from_client(cls, ec2: Any) -> Ec2Estate:
        """Everything an EC2 client describes in its region (paginated), with each VPC's DNS attributes
        (DescribeVpcs leaves them out; the provider's data source has them)."""

        def every(operation: str, key: str) -> list[dict[str, Any]]:
            return [item for page in ec2.get_paginator(operation).paginate() for item in page[key]]

        vpcs = every("describe_vpcs", "Vpcs")
        for vpc in vpcs:
            for attribute in ("enableDnsSupport", "enableDnsHostnames"):
                answer = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)
                vpc[attribute[0].upper() + attribute[1:]] = answer[attribute[0].upper() + attribute[1:]]["Value"]
        return cls(
            vpcs=vpcs,
            subnets=every("describe_subnets", "Subnets"),
            route_tables=every("describe_route_tables", "RouteTables"),
            endpoints=every("describe_vpc_endpoints", "VpcEndpoints"),
            nat_gateways=every("describe_nat_gateways", "NatGateways"),
        )

    @classmethod
    def assumed(cls, network: Mapping[str, Any], region: str, avoid: Sequence[str] = ()) -> Ec2Estate:
        """A well-formed VPC holding `network`'s vpcId and subnet IDs: its CIDR the first of a few private /16s
        that overlaps none of `avoid` (the cluster's access CIDRs, so the assumption itself raises no overlap),
        private subnets over the region's zones a, b, c, ... in the order given, each with a route table
        sending 0.0.0.0/0 to a NAT gateway and an S3 gateway endpoint; public subnets on the main table with
        an internet gateway."""
        vpc_id = network["vpcId"]
        blocked = [ipaddress.ip_network(c, strict=False) for c in avoid]
        # RFC 1918 first; 100.64.0.0/16 (shared address space) is a valid VPC range too, often a secondary one.
        candidates = ("10.0.0.0/16", "10.100.0.0/16", "172.16.0.0/16", "192.168.0.0/16", "100.64.0.0/16")
        cidr = next((c for c in candidates if not any(ipaddress.ip_network(c).overlaps(b) for b in blocked)), candidates[0])
        slices = list(ipaddress.ip_network(cidr).subnets(new_prefix=20))
        vpc = {"VpcId": vpc_id, "CidrBlock": cidr, "CidrBlockAssociationSet": [_association(vpc_id, cidr)], "State": "available"}
        estate = cls(vpcs=[{**vpc, "EnableDnsSupport": True, "EnableDnsHostnames": True}])
        igw = _id("igw", vpc_id)
        main = _id("rtb", vpc_id, "main")
        estate.route_tables.append(
            _table(main, vpc_id, cidr, [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw}], [{"Main": True, "RouteTableId": main}])
        )
        private = list(network.get("privateSubnetIds") or [])
        public = list(network.get("publicSubnetIds") or [])
        letters = "abcdef"
        for index, subnet in enumerate(private + public):
            is_private = index < len(private)
            zone = f"{region}{letters[(index if is_private else index - len(private)) % len(letters)]}"
            estate.subnets.append(
                {
                    "SubnetId": subnet,
                    "VpcId": vpc_id,
                    "AvailabilityZone": zone,
                    "CidrBlock": str(slices[index % len(slices)]),
                    "MapPublicIpOnLaunch": False,
                    "State": "available",
                }
            )
            if is_private:
                table = _id("rtb", subnet)
                nat = _id("nat", vpc_id, zone)
                if not any(n["NatGatewayId"] == nat for n in estate.nat_gateways):
                    estate.nat_gateways.append({"NatGatewayId": nat, "VpcId": vpc_id, "State": "available", "ConnectivityType": "public"})
                route = {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": nat}
                estate.route_tables.append(
                    _table(table, vpc_id, cidr, [route], [{"Main": False, "SubnetId": subnet, "RouteTableId": table}])
                )
        estate.endpoints.append(
            {
                "VpcEndpointId": _id("vpce", vpc_id, "s3"),
                "VpcId": vpc_id,
                "ServiceName": f"com.amazonaws.{region}.s3",
                "VpcEndpointType": "Gateway",
                "State": "available",
                "RouteTableIds": [_id("rtb", subnet) for subnet in private],
            }
        )
        zones = ", ".join(sorted({s["AvailabilityZone"] for s in estate.subnets[: len(private)]}))
        estate.notes.append(
            f"network.vpcId {vpc_id}: the offline plan cannot see it and assumed {cidr} with the private subnets in {zones} in "
            "the order given, each routing through a NAT gateway with an S3 gateway endpoint; `pulumi preview` and "
            "`python -m infra doctor` look up the real VPC"
        )
        return estate

    def answer(self, token: str, args: Mapping[str, Any]) -> dict | tuple[dict, list[tuple[str, str]]]:
        """The provider's result for one of TOKENS, or its failure."""
        if token == GET_VPC:
            vpc = next((v for v in self.vpcs if v["VpcId"] == args.get("id")), None)
            if vpc is None:
                return _not_found("EC2 VPC")
            associations = vpc.get("CidrBlockAssociationSet", [])
            return {
                "id": vpc["VpcId"],
                "cidrBlock": vpc["CidrBlock"],
                "cidrBlockAssociations": [
                    {"associationId": a["AssociationId"], "cidrBlock": a["CidrBlock"], "state": a["CidrBlockState"]["State"]}
                    for a in associations
                ],
                "state": vpc.get("State", "available"),
                "enableDnsSupport": bool(vpc.get("EnableDnsSupport", True)),
                "enableDnsHostnames": bool(vpc.get("EnableDnsHostnames", False)),
            }
        if token == GET_NAT_GATEWAY:
            nat = next((n for n in self.nat_gateways if n["NatGatewayId"] == args.get("id")), None)
            if nat is None:
                return _not_found("EC2 NAT Gateway")
            return {
                "id": nat["NatGatewayId"],
                "vpcId": nat.get("VpcId", ""),
                "state": nat["State"],
                "connectivityType": nat.get("ConnectivityType", "public"),
            }
        if token == GET_SUBNET:
            subnet = next((s for s in self.subnets if s["SubnetId"] == args.get("id")), None)
            if subnet is None:
                return _not_found("EC2 Subnet")
            return {
                "id": subnet["SubnetId"],
                "vpcId": subnet["VpcId"],
                "availabilityZone": subnet["AvailabilityZone"],
                "cidrBlock": subnet["CidrBlock"],
                "mapPublicIpOnLaunch": bool(subnet.get("MapPublicIpOnLaunch")),
                "state": subnet.get("State", "available"),
            }
        if token == GET_ROUTE_TABLES:
            ids = [t["RouteTableId"] for t in self.route_tables if t["VpcId"] == args.get("vpcId")]
            return {"ids": ids, "id": args.get("vpcId", "")}
        if token == GET_ROUTE_TABLE:
            table = next((t for t in self.route_tables if t["RouteTableId"] == args.get("routeTableId")), None)
            if table is None:
                return _not_found("EC2 Route Table")
            return {
                "id": table["RouteTableId"],
                "routeTableId": table["RouteTableId"],
                "vpcId": table["VpcId"],
                "routes": [_route(r) for r in table.get("Routes", []) if _listed(r)],
                "associations": [
                    {
                        "gatewayId": a.get("GatewayId", ""),
                        "main": bool(a.get("Main")),
                        "routeTableAssociationId": a.get("RouteTableAssociationId", ""),
                        "routeTableId": table["RouteTableId"],
                        "subnetId": a.get("SubnetId", ""),
                    }
                    for a in table.get("Associations", [])
                ],
            }
        if token == GET_VPC_ENDPOINT:
            found = [
                e
                for e in self.endpoints
                if all(
                    args.get(arg) is None or str(e.get(key, "")).lower() == str(args[arg]).lower()
                    for arg, key in (
                        ("vpcId", "VpcId"),
                        ("serviceName", "ServiceName"),
                        ("vpcEndpointType", "VpcEndpointType"),
                        ("state", "State"),
                    )
                )
            ]
            if not found:
                return _not_found("EC2 VPC Endpoint")
            if len(found) > 1:
                return {}, [
                    ("", "multiple EC2 VPC Endpoints matched; use additional constraints to reduce matches to a single EC2 VPC Endpoint")
                ]
            endpoint = found[0]
            return {
                "id": endpoint["VpcEndpointId"],
                "vpcId": endpoint["VpcId"],
                "serviceName": endpoint["ServiceName"],
                "vpcEndpointType": endpoint["VpcEndpointType"],
                "state": endpoint["State"].lower(),
                "routeTableIds": list(endpoint.get("RouteTableIds", [])),
                "privateDnsEnabled": bool(endpoint.get("PrivateDnsEnabled")),
            }
        raise KeyError(token)


def _association(vpc_id: str, cidr: str) -> dict[str, Any]:
    return {"AssociationId": _id("vpc-cidr-assoc", vpc_id, cidr), "CidrBlock": cidr, "CidrBlockState": {"State": "associated"}}


def _table(table_id: str, vpc_id: str, cidr: str, routes: list[dict], associations: list[dict]) -> dict[str, Any]:
    local = {"DestinationCidrBlock": cidr, "GatewayId": "local", "Origin": "CreateRouteTable"}
    return {"RouteTableId": table_id, "VpcId": vpc_id, "Routes": [local, *routes], "Associations": associations}


def _listed(route: Mapping[str, Any]) -> bool:
    """Whether the provider's route table data source lists a route: not the local route, not a route a
    virtual private gateway propagates, not a gateway endpoint's prefix-list route."""
    gateway = route.get("GatewayId", "")
    if gateway == "local" or route.get("Origin") == "EnableVgwRoutePropagation":
        return False
    return not (route.get("DestinationPrefixListId") and gateway.startswith("vpce-"))


def _route(route: Mapping[str, Any]) -> dict[str, str]:
    return {name: route.get(api, "") or "" for name, api in _ROUTE_FIELDS.items()}
