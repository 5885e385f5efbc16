"""`python -m infra cleanup`: before a destroy, find what Kubernetes controllers created outside Pulumi and
would block it: load balancers, target groups and security groups of the AWS Load Balancer Controller,
network interfaces the VPC CNI left behind, and instances Karpenter launched; all found by the cluster's
tags. Lists them (dry run) by default; `--apply` deletes them, instances first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

LB_CONTROLLER_TAG = "elbv2.k8s.aws/cluster"
CNI_TAG = "cluster.k8s.amazonaws.com/name"


@dataclass
class Leftovers:
    instances: list[str] = field(default_factory=list)
    load_balancers: list[str] = field(default_factory=list)
    target_groups: list[str] = field(default_factory=list)
    network_interfaces: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)

    def items(self) -> list[tuple[str, str]]:
        return [(kind, item) for kind, items in vars(self).items() for item in items]


def _tagged_elbv2(elbv2, arns: list[str], cluster: str) -> list[str]:
    found = []
    for start in range(0, len(arns), 20):  # DescribeTags takes 20 ARNs at a time
        for description in elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            if any(t["Key"] == LB_CONTROLLER_TAG and t["Value"] == cluster for t in description["Tags"]):
                found.append(description["ResourceArn"])
    return sorted(found)


def find(ec2, elbv2, cluster: str) -> Leftovers:
    leftovers = Leftovers()
    reservations = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": f"tag:kubernetes.io/cluster/{cluster}", "Values": ["owned"]},
            {"Name": "tag-key", "Values": ["karpenter.sh/nodepool"]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    leftovers.instances = sorted(i["InstanceId"] for page in reservations for r in page["Reservations"] for i in r["Instances"])
    balancers = [
        lb["LoadBalancerArn"] for page in elbv2.get_paginator("describe_load_balancers").paginate() for lb in page["LoadBalancers"]
    ]
    leftovers.load_balancers = _tagged_elbv2(elbv2, balancers, cluster)
    groups = [tg["TargetGroupArn"] for page in elbv2.get_paginator("describe_target_groups").paginate() for tg in page["TargetGroups"]]
    leftovers.target_groups = _tagged_elbv2(elbv2, groups, cluster)
    interfaces = ec2.describe_network_interfaces(
        Filters=[{"Name": f"tag:{CNI_TAG}", "Values": [cluster]}, {"Name": "status", "Values": ["available"]}]
    )["NetworkInterfaces"]
    leftovers.network_interfaces = sorted(n["NetworkInterfaceId"] for n in interfaces)
    security_groups = ec2.describe_security_groups(Filters=[{"Name": f"tag:{LB_CONTROLLER_TAG}", "Values": [cluster]}])["SecurityGroups"]
    leftovers.security_groups = sorted(g["GroupId"] for g in security_groups)
    return leftovers


def delete(ec2, elbv2, leftovers: Leftovers, say: Callable[[str], None] = print) -> None:
    """Instances first (they hold ENIs and are target group members), then load balancers, target groups,
    interfaces, and last the security groups everything else referenced."""
    if leftovers.instances:
        ec2.terminate_instances(InstanceIds=leftovers.instances)
        say(f"terminating {len(leftovers.instances)} Karpenter instance(s)")
    for arn in leftovers.load_balancers:
        elbv2.delete_load_balancer(LoadBalancerArn=arn)
        say(f"deleted load balancer {arn}")
    for arn in leftovers.target_groups:
        elbv2.delete_target_group(TargetGroupArn=arn)
        say(f"deleted target group {arn}")
    for interface in leftovers.network_interfaces:
        ec2.delete_network_interface(NetworkInterfaceId=interface)
        say(f"deleted network interface {interface}")
    for group in leftovers.security_groups:
        ec2.delete_security_group(GroupId=group)
        say(f"deleted security group {group}")
