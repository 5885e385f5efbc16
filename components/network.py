"""Network: the VPC, public and private subnets across AZs, NAT, the S3 gateway endpoint, optional interface
endpoints and flow logs, and a closed default security group."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from ml_platform.components import iam

TYPE = "mlplatform:aws:Network"

# Subnet tags the AWS Load Balancer Controller and Karpenter discover subnets by.
PUBLIC_ELB_TAG = "kubernetes.io/role/elb"
PRIVATE_ELB_TAG = "kubernetes.io/role/internal-elb"
KARPENTER_DISCOVERY_TAG = "karpenter.sh/discovery"


@dataclass(frozen=True)
class SubnetPlan:
    zone_index: int
    public_cidr: str
    private_cidr: str


def subnet_layout(vpc_cidr: str, az_count: int) -> list[SubnetPlan]:
    """Carve the VPC into one private and one public subnet per AZ.

    The VPC splits into eighths: AZ i gets eighth i as its private subnet (pods take VPC IPs with the
    VPC CNI, so private subnets are large); the last eighth is split again into eighths, one public
    subnet per AZ (load balancers and NAT only). Up to 4 AZs; 3 eighths stay free for growth.
    """
    vpc = ipaddress.IPv4Network(vpc_cidr)
    if not 1 <= az_count <= 4:
        raise ValueError(f"az_count must be 1..4, got {az_count}")
    eighths = list(vpc.subnets(prefixlen_diff=3))
    public_pool = list(eighths[-1].subnets(prefixlen_diff=3))
    return [SubnetPlan(i, str(public_pool[i]), str(eighths[i])) for i in range(az_count)]


def flow_log_role_policy(log_group_arn: str) -> dict:
    """What VPC flow logs need to write into their own CloudWatch log group, and nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteFlowLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            },
            # DescribeLogGroups has no resource-level permissions.
            {"Sid": "FindLogGroup", "Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
        ],
    }


@dataclass
class NetworkArgs:
    cluster_name: pulumi.Input[str]
    """EKS cluster name, for the Karpenter discovery tag on private subnets."""
    cidr: str
    """VPC IPv4 CIDR (/16 to /20)."""
    availability_zones: Sequence[str]
    """AZ names, one public and one private subnet each."""
    nat_per_az: bool = False
    """One NAT gateway per AZ (prod) instead of one shared gateway (dev)."""
    flow_logs: bool = False
    """Send VPC flow logs to a CloudWatch log group."""
    flow_log_retention_days: int = 30
    """Retention of the flow log group."""
    flow_log_kms_key_arn: pulumi.Input[str] | None = None
    """KMS key encrypting the flow log group; None uses CloudWatch's own encryption."""
    interface_endpoints: Sequence[str] = ()
    """Interface endpoint service suffixes (e.g. `ecr.api`) reachable privately from the subnets."""
    region: str = "us-east-1"
    """Region, to build endpoint service names."""
    account_id: pulumi.Input[str] = ""
    """Account id, to keep the flow-log service acting for this account only."""
    protect: bool = False
    """Protect the VPC, subnets, NAT gateways and their addresses from deletion and replacement (prod)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for every resource."""


class Network(pulumi.ComponentResource):
    """The VPC, public and private subnets across AZs, NAT, the S3 gateway endpoint, optional interface endpoints
    and flow logs, and a closed default security group.

    Arguments: NetworkArgs, documented field by field."""

    vpc_id: pulumi.Output[str]
    """The VPC's ID."""
    egress: list[pulumi.Resource]
    """The private subnets' route table associations: what gives nodes their route out (delete after what needs it)."""
    private_subnet_ids: pulumi.Output[list[str]]
    """The private subnets, one per zone."""
    public_subnet_ids: pulumi.Output[list[str]]
    """The public subnets, one per zone."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The VPC, its subnets and the NAT gateways with their addresses carry everything (and allow-lists name
        # the NAT addresses): protected where the stack protects its stateful resources (prod).
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect)
        tags = dict(args.tags)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={**tags, "Name": f"{name}-vpc"},
            opts=kept,
        )
        # Takes over the VPC's default security group and strips every rule, so nothing can use it by accident.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[], tags=tags, opts=child)

        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": f"{name}-igw"}, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{name}-public"},
            opts=child,
        )

        layout = subnet_layout(args.cidr, len(args.availability_zones))
        public_subnets, private_subnets, private_route_tables, nat_gateways = [], [], [], []
        egress: list[pulumi.Resource] = []
        for plan, zone in zip(layout, args.availability_zones, strict=True):
            suffix = zone[-1]
            public = aws.ec2.Subnet(
                f"{name}-public-{suffix}",
                vpc_id=vpc.id,
                cidr_block=plan.public_cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-public-{zone}", PUBLIC_ELB_TAG: "1"},
                opts=kept,
            )
            aws.ec2.RouteTableAssociation(f"{name}-public-{suffix}", subnet_id=public.id, route_table_id=public_rt.id, opts=child)
            public_subnets.append(public)

            if args.nat_per_az or not nat_gateways:
                eip = aws.ec2.Eip(f"{name}-nat-{suffix}", domain="vpc", tags={**tags, "Name": f"{name}-nat-{zone}"}, opts=kept)
                nat_gateways.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{suffix}",
                        allocation_id=eip.id,
                        subnet_id=public.id,
                        tags={**tags, "Name": f"{name}-nat-{zone}"},
                        # A public NAT gateway routes out through the internet gateway; AWS wants it attached first.
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw], protect=args.protect),
                    )
                )

            private = aws.ec2.Subnet(
                f"{name}-private-{suffix}",
                vpc_id=vpc.id,
                cidr_block=plan.private_cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-private-{zone}", PRIVATE_ELB_TAG: "1", KARPENTER_DISCOVERY_TAG: args.cluster_name},
                opts=kept,
            )
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{suffix}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_gateways[-1].id)],
                tags={**tags, "Name": f"{name}-private-{zone}"},
                opts=child,
            )
            private_association = aws.ec2.RouteTableAssociation(
                f"{name}-private-{suffix}", subnet_id=private.id, route_table_id=private_rt.id, opts=child
            )
            private_subnets.append(private)
            egress.append(private_association)
            private_route_tables.append(private_rt)

        # Model weights and images' layers come from S3: keep that traffic off the NAT gateways (cost, throughput).
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_route_tables],
            tags={**tags, "Name": f"{name}-s3"},
            opts=child,
        )

        if args.interface_endpoints:
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoints",
                vpc_id=vpc.id,
                description="HTTPS from inside the VPC to interface endpoints",
                ingress=[
                    aws.ec2.SecurityGroupIngressArgs(
                        protocol="tcp", from_port=443, to_port=443, cidr_blocks=[args.cidr], description="HTTPS from the VPC"
                    )
                ],
                tags={**tags, "Name": f"{name}-endpoints"},
                opts=child,
            )
            for service in args.interface_endpoints:
                aws.ec2.VpcEndpoint(
                    f"{name}-{service.replace('.', '-')}",
                    vpc_id=vpc.id,
                    service_name=f"com.amazonaws.{args.region}.{service}",
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=[s.id for s in private_subnets],
                    security_group_ids=[endpoint_sg.id],
                    tags={**tags, "Name": f"{name}-{service}"},
                    opts=child,
                )

        if args.flow_logs:
            log_group = aws.cloudwatch.LogGroup(
                f"{name}-flow-logs",
                retention_in_days=args.flow_log_retention_days,
                kms_key_id=args.flow_log_kms_key_arn,
                tags=tags,
                opts=child,
            )
            role = aws.iam.Role(
                f"{name}-flow-logs",
                assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                    lambda account: json.dumps(iam.service_trust_policy("vpc-flow-logs.amazonaws.com", source_account=account))
                ),
                tags=tags,
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-flow-logs",
                role=role.id,
                policy=log_group.arn.apply(lambda arn: json.dumps(flow_log_role_policy(arn))),
                opts=child,
            )
            aws.ec2.FlowLog(
                f"{name}-flow-logs",
                vpc_id=vpc.id,
                traffic_type="ALL",
                log_destination_type="cloud-watch-logs",
                log_destination=log_group.arn,
                iam_role_arn=role.arn,
                max_aggregation_interval=60,
                tags=tags,
                opts=child,
            )

        self.vpc_id = vpc.id
        # What private subnets need to reach AWS APIs: controllers that launch and clean up nodes
        # (Karpenter) depend on it, so a destroy removes them first and they can still finish their work.
        self.egress: list[pulumi.Resource] = [*egress, *private_route_tables, *nat_gateways]
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.register_outputs(
            {"vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids, "public_subnet_ids": self.public_subnet_ids}
        )
