"""A stack given an existing VPC (network.vpcId): its config rules, the plan with no network resources and
everything placed in the given subnets, and the lookups' judgement of VPCs built in moto's EC2 (real API
shapes: implicit main-table associations, gateway-endpoint routes, transit gateways), through the program's
own data-source calls answered by the offline mocks, and through doctor's boto3 calls."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from ml_platform.infra import config
from ml_platform.infra.delivery import doctor
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline.ec2_estate import Ec2Estate
from ml_platform.infra.offline.stack_files import RawStackConfig
from ml_platform.policy import rules
from tests.helpers import REGION, minimal_sections, prod_sections, raw_config

PRIVATE = ["subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60712", "subnet-0a1b2c3d4e5f60713"]
PUBLIC = ["subnet-0a1b2c3d4e5f60721", "subnet-0a1b2c3d4e5f60722"]
VPC = "vpc-0a1b2c3d4e5f60718"
# Everything the Network component makes: none of it may appear when the VPC is given.
NETWORK_TYPES = {
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ec2/flowLog:FlowLog",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    "mlplatform:network:Network",
}
ALB_MODEL = {
    "runtime": "custom",
    "image": {"repository": "models/custom", "tag": "1.0.0"},
    "source": {"s3Prefix": "ranker/v1/"},
    "port": 8080,
    "healthPath": "/healthz",
    "resources": {"cpu": "1", "memory": "2Gi"},
    "exposure": {"type": "alb", "scheme": "internal"},
}
KARPENTER_CPU = {"kind": "karpenter", "instanceCategories": ["c", "m"], "capacityTypes": ["spot"], "limits": {"cpu": 64, "memoryGiB": 256}}
POOLS = {"system": {"instanceTypes": ["m6i.large"], "minSize": 1, "maxSize": 3}, "cpu": KARPENTER_CPU}


REGISTRIES = {"repositories": ["models/custom"]}


def given(**extra):
    return {"vpcId": VPC, "privateSubnetIds": PRIVATE[:2], **extra}


def problems_of(**sections) -> list[tuple[str, str]]:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(raw_config(**sections), "test")
    return caught.value.problems


def plan_of(sections, estate=None, stack="test"):
    return offline_plan.run(stack, RawStackConfig(raw_config(**sections), []), estate=estate)


# --- config -----------------------------------------------------------------------------------------------


def test_the_fields_of_a_created_vpc_do_not_apply_to_a_given_one():
    found = dict(problems_of(**minimal_sections(network=given(cidr="10.9.0.0/16", natGateways="perAz", flowLogs=True))))
    for field in ("cidr", "natGateways", "flowLogs"):
        assert "with network.vpcId the VPC is not the platform's" in found[f"network.{field}"]


def test_subnet_ids_need_a_vpc_id_and_well_formed_ids():
    assert (
        "set network.vpcId too"
        in dict(problems_of(**minimal_sections(network={"privateSubnetIds": PRIVATE[:2]})))["network.privateSubnetIds"]
    )
    found = dict(problems_of(**minimal_sections(network={"vpcId": "vpc-XYZ", "privateSubnetIds": ["subnet-1", PRIVATE[0], PRIVATE[0]]})))
    assert "not a VPC ID" in found["network.vpcId"]
    assert "not a subnet ID" in found["network.privateSubnetIds[0]"]
    assert "lists a subnet twice" in found["network.privateSubnetIds"]


def test_one_private_subnet_is_not_enough_and_a_subnet_is_private_or_public():
    found = dict(problems_of(**minimal_sections(network={"vpcId": VPC, "privateSubnetIds": PRIVATE[:1], "publicSubnetIds": PRIVATE[:1]})))
    assert "at least two private subnets" in found["network.privateSubnetIds"]
    assert "also listed as private" in found["network.publicSubnetIds"]


def test_prod_in_a_given_vpc_needs_three_zones_but_not_the_nat_and_flow_log_rules():
    found = dict(problems_of(**prod_sections(network=given())))
    assert "prod spreads over at least 3 AZs" in found["network.privateSubnetIds"]
    assert not {"network.azCount", "network.natGateways", "network.flowLogs"} & set(found)
    cfg = config.parse(raw_config(**prod_sections(network=given(privateSubnetIds=PRIVATE))), "prod")
    assert cfg.network.existing


def test_an_internet_facing_alb_in_a_given_vpc_needs_public_subnets():
    model = {**ALB_MODEL, "exposure": {"type": "alb", "scheme": "internet-facing", "certificateArn": CERT}}
    found = dict(problems_of(**minimal_sections(network=given(), models={"ranker": model}, registries=REGISTRIES)))
    assert "network.publicSubnetIds" in found["models.ranker.exposure.scheme"]


CERT = "arn:aws:acm:us-west-2:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


# --- the offline plan (an assumed VPC) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def given_plan():
    sections = minimal_sections(
        network=given(privateSubnetIds=PRIVATE, publicSubnetIds=PUBLIC),
        models={"ranker": ALB_MODEL},
        registries=REGISTRIES,
        nodePools=POOLS,
    )
    return plan_of(sections)


def test_a_given_vpc_plans_with_no_network_resources_and_everything_in_its_subnets(given_plan):
    assert not NETWORK_TYPES & {r["type"] for r in given_plan.resources}
    (cluster,) = given_plan.by_type("aws:eks/cluster:Cluster")
    assert cluster["inputs"]["vpcConfig"]["subnetIds"] == PRIVATE
    for group in given_plan.by_type("aws:eks/nodeGroup:NodeGroup"):
        assert group["inputs"]["subnetIds"] == PRIVATE
    node_class = next(r for r in given_plan.resources if r["inputs"].get("kind") == "EC2NodeClass")
    assert node_class["inputs"]["spec"]["subnetSelectorTerms"] == [{"id": subnet} for subnet in PRIVATE]
    pool = next(r for r in given_plan.resources if r["inputs"].get("kind") == "NodePool")
    zones = next(q for q in pool["inputs"]["spec"]["template"]["spec"]["requirements"] if q["key"] == "topology.kubernetes.io/zone")
    assert zones["values"] == ["us-west-2a", "us-west-2b", "us-west-2c"]
    assert given_plan.outputs["vpcId"] == VPC and given_plan.outputs["privateSubnetIds"] == PRIVATE


def test_load_balancers_use_the_given_subnets_and_the_network_policy_the_looked_up_cidr(given_plan):
    (ingress,) = given_plan.by_type("kubernetes:networking.k8s.io/v1:Ingress")
    assert ingress["inputs"]["metadata"]["annotations"]["alb.ingress.kubernetes.io/subnets"] == ",".join(PRIVATE)
    (policy,) = given_plan.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    blocks = [peer["ipBlock"]["cidr"] for rule in policy["inputs"]["spec"]["ingress"] for peer in rule["from"] if "ipBlock" in peer]
    assert blocks == ["10.0.0.0/16"]
    (release,) = [r for r in given_plan.by_type("kubernetes:helm.sh/v3:Release") if r["inputs"]["name"] == "aws-load-balancer-controller"]
    assert release["inputs"]["values"]["vpcId"] == VPC


def test_the_plan_says_the_vpc_was_assumed_and_passes_the_policy_pack(given_plan):
    assert any("the offline plan cannot see it and assumed 10.0.0.0/16" in w for w in given_plan.warnings)
    assert rules.evaluate(rules.view_from_plan(given_plan.resources)) == []


# --- lookups of VPCs built in moto -------------------------------------------------------------------------


class Vpc:
    """A VPC in moto's EC2, built the way a network team would (or would get wrong)."""

    def __init__(self, ec2, cidr="10.42.0.0/16"):
        self.ec2 = ec2
        self.id = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        # A new VPC has DNS hostnames off (AWS and moto alike); EKS needs them on.
        ec2.modify_vpc_attribute(VpcId=self.id, EnableDnsHostnames={"Value": True})
        self.main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [self.id]}])["RouteTables"][0]["RouteTableId"]
        self.count = 0

    def subnet(self, zone: str, public_ip: bool = False) -> str:
        cidr = f"10.42.{self.count * 16}.0/20"
        self.count += 1
        subnet = self.ec2.create_subnet(VpcId=self.id, CidrBlock=cidr, AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        if public_ip:
            self.ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
        return subnet

    def table(self, subnets, **route) -> str:
        table = self.ec2.create_route_table(VpcId=self.id)["RouteTable"]["RouteTableId"]
        if route:
            self.ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **route)
        for subnet in subnets:
            self.ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        return table

    def nat(self) -> str:
        public = self.subnet("a")
        allocation = self.ec2.allocate_address(Domain="vpc")["AllocationId"]
        return self.ec2.create_nat_gateway(SubnetId=public, AllocationId=allocation)["NatGateway"]["NatGatewayId"]

    def igw(self) -> str:
        gateway = self.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=self.id)
        return gateway

    def endpoint(self, service: str, kind: str = "Interface", tables=()) -> None:
        extra = {"RouteTableIds": list(tables)} if kind == "Gateway" else {}
        self.ec2.create_vpc_endpoint(VpcId=self.id, ServiceName=f"com.amazonaws.{REGION}.{service}", VpcEndpointType=kind, **extra)


@pytest.fixture
def ec2():
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def run_in(ec2, network, **overrides):
    sections = minimal_sections(network=network, **overrides)
    return plan_of(sections, estate=Ec2Estate.from_client(ec2))


def failure(ec2, network, **overrides) -> str:
    with pytest.raises(Exception) as caught:
        run_in(ec2, network, **overrides)
    return str(caught.value)


def test_a_well_built_vpc_plans_with_its_cidrs_looked_up(ec2):
    vpc = Vpc(ec2)
    ec2.associate_vpc_cidr_block(VpcId=vpc.id, CidrBlock="100.64.0.0/16")
    private = [vpc.subnet("a"), vpc.subnet("b")]
    table = vpc.table(private, NatGatewayId=vpc.nat())
    vpc.endpoint("s3", "Gateway", [table])
    plan = run_in(ec2, {"vpcId": vpc.id, "privateSubnetIds": private}, models={"ranker": ALB_MODEL}, registries=REGISTRIES, nodePools=POOLS)
    (policy,) = plan.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    blocks = [peer["ipBlock"]["cidr"] for rule in policy["inputs"]["spec"]["ingress"] for peer in rule["from"] if "ipBlock" in peer]
    assert blocks == ["10.42.0.0/16", "100.64.0.0/16"]
    assert not any("network." in w for w in plan.warnings)


def test_a_nat_without_an_s3_endpoint_is_a_cost_warning(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b")]
    vpc.table(private, NatGatewayId=vpc.nat())
    plan = run_in(ec2, {"vpcId": vpc.id, "privateSubnetIds": private})
    assert sum("an S3 gateway endpoint on its route table would keep model weights" in w for w in plan.warnings) == 2


def test_a_subnet_of_another_vpc_one_zone_and_public_ips_are_refused(ec2):
    vpc, other = Vpc(ec2), Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("a", public_ip=True), other.subnet("a")]
    vpc.table(private[:2], NatGatewayId=vpc.nat())
    message = failure(ec2, {"vpcId": vpc.id, "privateSubnetIds": private})
    assert f"network.privateSubnetIds[2]: {private[2]} is in {other.id}, not in network.vpcId ({vpc.id})" in message
    assert "network.privateSubnetIds[1]" in message and "gives instances public IPs on launch" in message
    assert "the private subnets cover only us-west-2a; dev needs 2 zones" in message


def test_prod_needs_three_zones_by_lookup(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b"), vpc.subnet("b")]
    vpc.table(private, NatGatewayId=vpc.nat())
    with pytest.raises(Exception, match="prod needs 3 zones"):
        plan_of(prod_sections(network={"vpcId": vpc.id, "privateSubnetIds": private}), Ec2Estate.from_client(ec2), stack="prod")


def test_an_internet_gateway_route_on_the_main_table_marks_an_implicitly_associated_subnet_public(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b")]
    ec2.create_route(RouteTableId=vpc.main, DestinationCidrBlock="0.0.0.0/0", GatewayId=vpc.igw())
    vpc.table(private[1:], NatGatewayId=vpc.nat())
    message = failure(ec2, {"vpcId": vpc.id, "privateSubnetIds": private})
    assert f"network.privateSubnetIds[0]: {private[0]} routes 0.0.0.0/0 to igw-" in message
    assert "privateSubnetIds[1]" not in message


def test_no_route_out_needs_s3_and_ecr_endpoints(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b")]
    table = vpc.table(private)
    message = failure(ec2, {"vpcId": vpc.id, "privateSubnetIds": private})
    assert "has no default route and no VPC endpoint (with private DNS) for s3, ecr.api, ecr.dkr, ec2, eks-auth" in message
    vpc.endpoint("s3", "Gateway", [table])
    for service in ("ecr.api", "ecr.dkr", "ec2", "eks-auth"):
        vpc.endpoint(service)
    plan = run_in(ec2, {"vpcId": vpc.id, "privateSubnetIds": private})
    assert any("no interface endpoint for sts, logs, sqs, ssm, eks, elasticloadbalancing" in w for w in plan.warnings)


def test_egress_through_a_transit_gateway_is_said_to_be_unverified(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b")]
    gateway = ec2.create_transit_gateway()["TransitGateway"]["TransitGatewayId"]
    vpc.table(private, TransitGatewayId=gateway)
    plan = run_in(ec2, {"vpcId": vpc.id, "privateSubnetIds": private})
    assert sum(f"sends 0.0.0.0/0 to {gateway}, which the platform cannot see through" in w for w in plan.warnings) == 2


def test_access_cidrs_overlapping_the_looked_up_vpc_and_pool_zones_without_a_subnet_are_refused(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b")]
    vpc.table(private, NatGatewayId=vpc.nat())
    pools = {**POOLS, "cpu": {**KARPENTER_CPU, "zones": ["us-west-2c"]}}
    cluster = {"admins": [{"principalArn": "arn:aws:iam::123456789012:role/platform-admins"}], "privateAccessCidrs": ["10.42.8.0/24"]}
    message = failure(ec2, {"vpcId": vpc.id, "privateSubnetIds": private}, nodePools=pools, cluster=cluster)
    assert "cluster.privateAccessCidrs[0]: 10.42.8.0/24 overlaps the VPC (10.42.0.0/16)" in message
    assert "nodePools.cpu.zones[0]: 'us-west-2c' has no private subnet in network.privateSubnetIds" in message


def test_a_vpc_or_subnet_that_does_not_exist_is_named(ec2):
    message = failure(ec2, given())
    assert f"network.vpcId: cannot look up {VPC} in {REGION}: " in message and "no matching EC2 VPC found" in message
    vpc = Vpc(ec2)
    message = failure(ec2, {"vpcId": vpc.id, "privateSubnetIds": PRIVATE[:2]})
    assert f"network.privateSubnetIds[0]: cannot look up {PRIVATE[0]}" in message


def test_doctor_judges_the_real_vpc_the_same_way(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b")]
    vpc.table(private)
    cfg = config.parse(raw_config(**minimal_sections(network={"vpcId": vpc.id, "privateSubnetIds": private})), "test")
    check, zones = doctor.existing_network_check(cfg, ec2)
    assert (
        not check.ok
        and "no VPC endpoint (with private DNS) for s3, ecr.api, ecr.dkr" in check.detail
        and zones == ["us-west-2a", "us-west-2b"]
    )
    vpc.table([], NatGatewayId=vpc.nat())
    for subnet in private:
        association = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["RouteTables"][0]
        ec2.disassociate_route_table(
            AssociationId=next(a["RouteTableAssociationId"] for a in association["Associations"] if a.get("SubnetId") == subnet)
        )
    ec2.create_route(
        RouteTableId=vpc.main, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=ec2.describe_nat_gateways()["NatGateways"][0]["NatGatewayId"]
    )
    check, _ = doctor.existing_network_check(cfg, ec2)
    assert check.ok and "CIDRs 10.42.0.0/16" in check.detail and "warning:" in check.detail
    missing = config.parse(raw_config(**minimal_sections(network=given())), "test")
    check, _ = doctor.existing_network_check(missing, ec2)
    assert not check.ok


def test_the_offline_estate_answers_like_the_provider(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b")]
    table = vpc.table(private, NatGatewayId=vpc.nat())
    vpc.endpoint("s3", "Gateway", [table])
    vpc.endpoint("s3", "Gateway", [vpc.main])
    estate = Ec2Estate.from_client(ec2)
    answer = estate.answer("aws:ec2/getRouteTable:getRouteTable", {"routeTableId": table})
    # The provider lists neither the local route nor a gateway endpoint's prefix-list route.
    assert [r["cidrBlock"] for r in answer["routes"]] == ["0.0.0.0/0"]
    many = estate.answer("aws:ec2/getVpcEndpoint:getVpcEndpoint", {"vpcId": vpc.id, "serviceName": f"com.amazonaws.{REGION}.s3"})
    assert "multiple EC2 VPC Endpoints matched" in many[1][0][1]
    assert json.dumps(estate.answer("aws:ec2/getSubnet:getSubnet", {"id": "subnet-00000000"})).count("no matching EC2 Subnet found") == 1


def test_moving_a_stack_into_a_given_vpc_is_stopped_by_the_replacement_guard(plans, tmp_path, capsys):
    from ml_platform.infra import cli
    from ml_platform.infra.offline.stack_files import read_stack

    raw = read_stack("dev")
    values = {**raw.values, "ml-platform:network": json.dumps(given())}
    moved = offline_plan.run("dev", RawStackConfig(values, raw.secret_keys))
    offline_plan.write(plans["dev"], tmp_path / "base")
    offline_plan.write(moved, tmp_path / "head")
    assert cli.main(["diff", "--base", str(tmp_path / "base"), "--head", str(tmp_path / "head"), "--fail-on-replace"]) == 3
    out = capsys.readouterr().out
    assert "aws:ec2/vpc:Vpc network-vpc: deleted" in out and "aws:eks/cluster:Cluster eks-cluster" in out


def test_dns_off_a_deleted_nat_and_endpoints_without_private_dns_are_refused(ec2):
    vpc = Vpc(ec2)
    ec2.modify_vpc_attribute(VpcId=vpc.id, EnableDnsHostnames={"Value": False})
    private = [vpc.subnet("a"), vpc.subnet("b")]
    nat = vpc.nat()
    vpc.table(private[:1], NatGatewayId=nat)
    table = vpc.table(private[1:])
    vpc.endpoint("s3", "Gateway", [table])
    for service in ("ecr.api", "ecr.dkr", "ec2", "eks-auth"):
        ec2.create_vpc_endpoint(
            VpcId=vpc.id, ServiceName=f"com.amazonaws.{REGION}.{service}", VpcEndpointType="Interface", PrivateDnsEnabled=False
        )
    ec2.delete_nat_gateway(NatGatewayId=nat)
    message = failure(ec2, {"vpcId": vpc.id, "privateSubnetIds": private})
    assert f"network.vpcId: {vpc.id} has DNS hostnames off; EKS needs both on" in message
    assert f"network.privateSubnetIds[0]: {private[0]} routes 0.0.0.0/0 to {nat}, which is deleted" in message
    assert "network.privateSubnetIds[1]" in message and "(with private DNS) for ecr.api, ecr.dkr, ec2, eks-auth" in message


def test_an_alb_gets_one_subnet_per_zone_and_internet_facing_needs_an_internet_gateway(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("a"), vpc.subnet("b")]
    vpc.table(private, NatGatewayId=vpc.nat())
    public = [vpc.subnet("a"), vpc.subnet("b")]
    vpc.table(public, NatGatewayId=vpc.nat())
    network = {"vpcId": vpc.id, "privateSubnetIds": private, "publicSubnetIds": public}
    facing = {**ALB_MODEL, "exposure": {"type": "alb", "scheme": "internet-facing", "certificateArn": CERT}}
    models = {"ranker": ALB_MODEL, "edge": {**facing, "source": {"s3Prefix": "edge/v1/"}}}
    message = failure(ec2, network, models=models, registries=REGISTRIES, nodePools=POOLS)
    assert f"network.publicSubnetIds[0]: {public[0]} routes 0.0.0.0/0 to nat-" in message and "not to an internet gateway" in message
    gateway = vpc.igw()
    for subnet in public:
        table = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["RouteTables"][0]
        ec2.replace_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    plan = run_in(ec2, network, models=models, registries=REGISTRIES, nodePools=POOLS)
    subnets = {
        r["inputs"]["metadata"]["namespace"]: r["inputs"]["metadata"]["annotations"]["alb.ingress.kubernetes.io/subnets"]
        for r in plan.by_type("kubernetes:networking.k8s.io/v1:Ingress")
    }
    assert subnets == {"ranker": f"{private[0]},{private[2]}", "edge": f"{public[0]},{public[1]}"}


def test_a_local_zone_subnet_is_refused_and_a_private_nat_is_unverified(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b"), vpc.subnet("c")]
    private_nat = ec2.create_nat_gateway(SubnetId=private[2], ConnectivityType="private")["NatGateway"]["NatGatewayId"]
    vpc.table(private, NatGatewayId=private_nat)
    estate = Ec2Estate.from_client(ec2)
    # moto has no Local Zones: the network team's subnet in us-west-2-lax-1a, as DescribeSubnets would show it.
    next(s for s in estate.subnets if s["SubnetId"] == private[2])["AvailabilityZone"] = "us-west-2-lax-1a"
    with pytest.raises(Exception) as caught:
        plan_of(minimal_sections(network={"vpcId": vpc.id, "privateSubnetIds": private}), estate)
    assert f"{private[2]} is in us-west-2-lax-1a, a Local Zone or Wavelength Zone" in str(caught.value)
    plan = plan_of(minimal_sections(network={"vpcId": vpc.id, "privateSubnetIds": private[:2]}), estate)
    assert any(f"{private_nat} (a private NAT gateway, no internet egress of its own)" in w for w in plan.warnings)


def test_several_s3_gateway_endpoints_are_a_warning_in_the_plan_and_judged_by_doctor(ec2):
    vpc = Vpc(ec2)
    private = [vpc.subnet("a"), vpc.subnet("b")]
    first, second = vpc.table(private[:1]), vpc.table(private[1:])
    vpc.endpoint("s3", "Gateway", [first])
    vpc.endpoint("s3", "Gateway", [second])
    for service in ("ecr.api", "ecr.dkr", "ec2", "eks-auth"):
        vpc.endpoint(service)
    network = {"vpcId": vpc.id, "privateSubnetIds": private}
    plan = run_in(ec2, network)
    assert sum("several S3 gateway endpoints" in w for w in plan.warnings) == 2
    check, _ = doctor.existing_network_check(config.parse(raw_config(**minimal_sections(network=network)), "test"), ec2)
    assert check.ok, check.detail


def test_karpenter_zones_outside_a_created_vpcs_zones_are_refused():
    pools = {**POOLS, "cpu": {**KARPENTER_CPU, "zones": ["us-west-2c"]}}
    with pytest.raises(
        Exception, match=r"nodePools\.cpu\.zones\[0\]: 'us-west-2c' is not one of the VPC's zones \(us-west-2a, us-west-2b\)"
    ):
        plan_of(minimal_sections(nodePools=pools))
