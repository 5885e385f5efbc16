"""`python -m infra cleanup`: before a destroy, find what Kubernetes controllers created outside Pulumi and
would block it: load balancers, target groups and security groups of the AWS Load Balancer Controller,
network interfaces the VPC CNI left behind, instances and instance profiles Karpenter made; all found by the
cluster's tags. Also reports (never deletes) EBS volumes of persistent volume claims left behind: prod's
StorageClass retains them on purpose, and elsewhere they may hold data someone still wants.

Lists them by default; `--apply` deletes them in dependency order and waits for each step, because EC2
refuses a security group while anything still uses it (`DependencyViolation`) and IAM an instance profile
that still holds a role: instances (waiting until terminated), load balancers (waiting until gone), target
groups, interfaces, instance profiles, then the security groups, after revoking every rule of any group that
references them, retrying `DependencyViolation` with backoff within a bounded time. What it could not
delete is returned, for the command to report (exit 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError, WaiterError

LB_CONTROLLER_TAG = "elbv2.k8s.aws/cluster"
CNI_TAG = "cluster.k8s.amazonaws.com/name"
# The EBS CSI driver tags every volume it creates with this (docs/tagging.md of kubernetes-sigs/aws-ebs-csi-driver).
EBS_CSI_TAG = "ebs.csi.aws.com/cluster"
# Karpenter tags the instance profiles it creates for an EC2NodeClass with the cluster's ownership tag, its
# region and its EC2NodeClass (the conditions of its controller policy, components/karpenter.py).
KARPENTER_PROFILE_TAG = "karpenter.k8s.aws/ec2nodeclass"

WAIT_SECONDS = 600
"""How long --apply waits for instances and load balancers to go, and retries security groups, in all."""


@dataclass
class Leftovers:
    instances: list[str] = field(default_factory=list)
    load_balancers: list[str] = field(default_factory=list)
    target_groups: list[str] = field(default_factory=list)
    network_interfaces: list[str] = field(default_factory=list)
    instance_profiles: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    """Reported only: `vol-... (pvc <namespace>/<name>, <size> GiB[, not tagged with any cluster])`."""

    def items(self) -> list[tuple[str, str]]:
        """Everything found, as (kind, id), volumes included."""
        return [(kind, item) for kind, items in vars(self).items() for item in items]

    def deletable(self) -> list[tuple[str, str]]:
        """What --apply deletes: everything but volumes."""
        return [(kind, item) for kind, item in self.items() if kind != "volumes"]


def _tagged_elbv2(elbv2, arns: list[str], cluster: str) -> list[str]:
    found = []
    for start in range(0, len(arns), 20):  # DescribeTags takes 20 ARNs at a time
        for description in elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            if any(t["Key"] == LB_CONTROLLER_TAG and t["Value"] == cluster for t in description["Tags"]):
                found.append(description["ResourceArn"])
    return sorted(found)


def _volumes(ec2, cluster: str) -> list[str]:
    """Unattached volumes the EBS CSI driver made: this cluster's, and those tagged with no cluster at all (the
    driver tags a cluster only when told its ID), which may be this cluster's and are named as unattributed."""
    found = []
    pages = ec2.get_paginator("describe_volumes").paginate(
        Filters=[{"Name": f"tag:{EBS_CSI_TAG}", "Values": ["true"]}, {"Name": "status", "Values": ["available"]}]
    )
    for volume in (v for page in pages for v in page["Volumes"]):
        tags = {t["Key"]: t["Value"] for t in volume.get("Tags", [])}
        clusters = {k.removeprefix("kubernetes.io/cluster/") for k in tags if k.startswith("kubernetes.io/cluster/")}
        if clusters and cluster not in clusters:
            continue
        claim = f"{tags.get('kubernetes.io/created-for/pvc/namespace', '?')}/{tags.get('kubernetes.io/created-for/pvc/name', '?')}"
        note = "" if clusters else ", not tagged with any cluster: check it is this one's"
        found.append(f"{volume['VolumeId']} (pvc {claim}, {volume['Size']} GiB{note})")
    return sorted(found)


def _instance_profiles(iam, cluster: str) -> list[str]:
    found = []
    for page in iam.get_paginator("list_instance_profiles").paginate():
        for profile in page["InstanceProfiles"]:
            # ListInstanceProfiles leaves tags out; GetInstanceProfile carries them.
            detail = iam.get_instance_profile(InstanceProfileName=profile["InstanceProfileName"])["InstanceProfile"]
            tags = {t["Key"]: t["Value"] for t in detail.get("Tags", [])}
            if tags.get(f"kubernetes.io/cluster/{cluster}") == "owned" and KARPENTER_PROFILE_TAG in tags:
                found.append(profile["InstanceProfileName"])
    return sorted(found)


def find(ec2, elbv2, cluster: str, iam=None) -> Leftovers:
    """This cluster's leftovers; `iam` None skips instance profiles."""
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
    leftovers.volumes = _volumes(ec2, cluster)
    if iam is not None:
        leftovers.instance_profiles = _instance_profiles(iam, cluster)
    return leftovers


def _revoke_references(ec2, groups: list[str], say: Callable[[str], None]) -> None:
    """Revoke every rule, in any group, whose source or destination is one of `groups` (EC2 refuses to delete a
    group another group's rule names)."""
    for direction, prefix in (("ingress", "ip-permission.group-id"), ("egress", "egress.ip-permission.group-id")):
        referencing = ec2.describe_security_groups(Filters=[{"Name": prefix, "Values": groups}])["SecurityGroups"]
        for group in referencing:
            permissions = group["IpPermissions"] if direction == "ingress" else group["IpPermissionsEgress"]
            rules = [
                {**p, "UserIdGroupPairs": [pair for pair in p["UserIdGroupPairs"] if pair["GroupId"] in groups]}
                for p in permissions
                if any(pair["GroupId"] in groups for pair in p.get("UserIdGroupPairs", []))
            ]
            if not rules:
                continue
            revoke = ec2.revoke_security_group_ingress if direction == "ingress" else ec2.revoke_security_group_egress
            revoke(GroupId=group["GroupId"], IpPermissions=rules)
            say(f"revoked {len(rules)} {direction} rule(s) of {group['GroupId']} naming the groups to delete")


def delete(
    ec2,
    elbv2,
    leftovers: Leftovers,
    say: Callable[[str], None] = print,
    iam=None,
    wait_seconds: float | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> list[str]:
    """Delete everything but volumes, in dependency order, waiting for each step; returns a line per item
    it could not delete (empty when all went). `wait_seconds` (default WAIT_SECONDS) bounds the waits and
    retries; `sleep` and `clock` (default time.sleep, time.monotonic) are how a retry waits and tells time."""
    wait_seconds = WAIT_SECONDS if wait_seconds is None else wait_seconds
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    failed: list[str] = []
    deadline = clock() + wait_seconds
    delay = min(15.0, max(1.0, wait_seconds / 40))
    attempts = max(1, int(wait_seconds / delay))
    if leftovers.instances:
        ec2.terminate_instances(InstanceIds=leftovers.instances)
        say(f"terminating {len(leftovers.instances)} Karpenter instance(s)")
        try:
            ec2.get_waiter("instance_terminated").wait(
                InstanceIds=leftovers.instances, WaiterConfig={"Delay": delay, "MaxAttempts": attempts}
            )
            say("instances terminated")
        except WaiterError as err:
            failed.append(f"instances {', '.join(leftovers.instances)}: not terminated after {wait_seconds:g}s ({err})")
    for arn in leftovers.load_balancers:
        elbv2.delete_load_balancer(LoadBalancerArn=arn)
        say(f"deleting load balancer {arn}")
    if leftovers.load_balancers:
        try:
            elbv2.get_waiter("load_balancers_deleted").wait(
                LoadBalancerArns=leftovers.load_balancers, WaiterConfig={"Delay": delay, "MaxAttempts": attempts}
            )
            say("load balancers deleted")
        except WaiterError as err:
            failed.append(f"load balancers: still there after {wait_seconds:g}s ({err})")
    for arn in leftovers.target_groups:
        _attempt(lambda arn=arn: elbv2.delete_target_group(TargetGroupArn=arn), f"target group {arn}", failed, say)
    for interface in leftovers.network_interfaces:
        _attempt(lambda i=interface: ec2.delete_network_interface(NetworkInterfaceId=i), f"network interface {interface}", failed, say)
    for name in leftovers.instance_profiles:
        _attempt(lambda n=name: _delete_instance_profile(iam, n), f"instance profile {name}", failed, say)
    if leftovers.security_groups:
        _revoke_references(ec2, leftovers.security_groups, say)
    for group in leftovers.security_groups:
        wait = 1.0
        while True:
            try:
                ec2.delete_security_group(GroupId=group)
                say(f"deleted security group {group}")
                break
            except ClientError as err:
                code = err.response["Error"]["Code"]
                if code == "InvalidGroup.NotFound":
                    break
                if code != "DependencyViolation" or clock() + wait > deadline:
                    failed.append(f"security group {group}: {code} ({err.response['Error'].get('Message', '')})")
                    break
                say(f"security group {group} still in use; retrying in {wait:g}s")
                sleep(wait)
                wait = min(wait * 2, 30.0)
    return failed


def _delete_instance_profile(iam, name: str) -> None:
    for role in iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]:
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
    iam.delete_instance_profile(InstanceProfileName=name)


def _attempt(action: Callable[[], object], what: str, failed: list[str], say: Callable[[str], None]) -> None:
    try:
        action()
        say(f"deleted {what}")
    except ClientError as err:
        failed.append(f"{what}: {err.response['Error']['Code']} ({err.response['Error'].get('Message', '')})")
