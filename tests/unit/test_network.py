import ipaddress

import pulumi
from hypothesis import given
from hypothesis import strategies as st

from ml_platform.components import network
from tests.helpers import render, resource

ZONES = ["us-west-2a", "us-west-2b", "us-west-2c"]


def build(**overrides):
    args = dict(cluster_name="ml-platform-test", cidr="10.0.0.0/16", availability_zones=ZONES[:2], region="us-west-2", tags={"t": "1"})
    args.update(overrides)
    return lambda: network.Network("net", network.NetworkArgs(**args))


@given(
    base=st.integers(min_value=0, max_value=2**8 - 1),
    prefix=st.integers(min_value=16, max_value=20),
    az_count=st.integers(min_value=1, max_value=4),
)
def test_subnets_never_overlap_and_stay_inside_the_vpc(base, prefix, az_count):
    vpc = ipaddress.IPv4Network((f"10.{base}.0.0", prefix), strict=False)
    layout = network.subnet_layout(str(vpc), az_count)
    subnets = [ipaddress.IPv4Network(c) for plan in layout for c in (plan.public_cidr, plan.private_cidr)]
    assert len(layout) == az_count
    assert all(s.subnet_of(vpc) for s in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    # private subnets hold the pods: 8x the public ones
    assert all(
        ipaddress.IPv4Network(p.private_cidr).num_addresses == 8 * ipaddress.IPv4Network(p.public_cidr).num_addresses for p in layout
    )


def test_subnet_layout_of_a_slash_16():
    layout = network.subnet_layout("10.0.0.0/16", 3)
    assert [(p.private_cidr, p.public_cidr) for p in layout] == [
        ("10.0.0.0/19", "10.0.224.0/22"),
        ("10.0.32.0/19", "10.0.228.0/22"),
        ("10.0.64.0/19", "10.0.232.0/22"),
    ]


def test_dev_network_has_one_nat_and_private_nodes_subnets():
    plan = render(build())
    assert len(plan.by_type("aws:ec2/natGateway:NatGateway")) == 1
    private = resource(plan, "aws:ec2/subnet:Subnet", "net-private-a")["inputs"]
    assert private["mapPublicIpOnLaunch"] is False
    assert private["tags"]["kubernetes.io/role/internal-elb"] == "1"
    assert private["tags"]["karpenter.sh/discovery"] == "ml-platform-test"
    public = resource(plan, "aws:ec2/subnet:Subnet", "net-public-b")["inputs"]
    assert public["mapPublicIpOnLaunch"] is False and public["tags"]["kubernetes.io/role/elb"] == "1"
    assert not plan.by_type("aws:ec2/flowLog:FlowLog")


def test_vpc_has_dns_and_default_security_group_is_closed():
    plan = render(build())
    vpc = resource(plan, "aws:ec2/vpc:Vpc", "net-vpc")["inputs"]
    assert vpc["enableDnsSupport"] is True and vpc["enableDnsHostnames"] is True
    default_sg = resource(plan, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "net-default-sg")["inputs"]
    assert default_sg.get("ingress", []) == [] and default_sg.get("egress", []) == []


def test_private_routes_go_through_the_zone_nat_when_per_az():
    plan = render(build(availability_zones=ZONES, nat_per_az=True))
    nats = plan.by_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 3
    route_c = resource(plan, "aws:ec2/routeTable:RouteTable", "net-private-c")
    nat_c = resource(plan, "aws:ec2/natGateway:NatGateway", "net-nat-c")
    assert nat_c["urn"] in route_c["propertyDependencies"]["routes"]


def test_s3_gateway_endpoint_serves_every_private_route_table():
    plan = render(build(availability_zones=ZONES))
    endpoint = resource(plan, "aws:ec2/vpcEndpoint:VpcEndpoint", "net-s3")
    assert endpoint["inputs"]["serviceName"] == "com.amazonaws.us-west-2.s3"
    assert endpoint["inputs"]["vpcEndpointType"] == "Gateway"
    assert len(endpoint["inputs"]["routeTableIds"]) == 3


def test_flow_logs_and_interface_endpoints_when_asked():
    plan = render(build(flow_logs=True, flow_log_retention_days=90, interface_endpoints=("ecr.api", "sts")))
    flow_log = resource(plan, "aws:ec2/flowLog:FlowLog", "net-flow-logs")["inputs"]
    assert flow_log["trafficType"] == "ALL" and flow_log["logDestinationType"] == "cloud-watch-logs"
    assert resource(plan, "aws:cloudwatch/logGroup:LogGroup", "net-flow-logs")["inputs"]["retentionInDays"] == 90
    endpoint = resource(plan, "aws:ec2/vpcEndpoint:VpcEndpoint", "net-ecr-api")["inputs"]
    assert endpoint["serviceName"] == "com.amazonaws.us-west-2.ecr.api" and endpoint["privateDnsEnabled"] is True


@pulumi.runtime.test
def test_outputs_list_one_private_subnet_per_zone(pulumi_mocks):
    net = network.Network("net", network.NetworkArgs(cluster_name="c", cidr="10.1.0.0/16", availability_zones=ZONES, region="us-west-2"))

    def check(values):
        private, public, vpc_id = values
        assert len(private) == 3 and len(public) == 3
        assert all(s.startswith("subnet-") for s in private + public)
        assert vpc_id.startswith("vpc-")

    return pulumi.Output.all(net.private_subnet_ids, net.public_subnet_ids, net.vpc_id).apply(check)
