"""Properties whose change makes AWS (through the Terraform AWS provider that pulumi-aws bridges) delete and
recreate a resource, for the resources this platform cannot lose lightly. The one place `diff` looks.

Source: hashicorp/terraform-provider-aws resource schemas, `ForceNew: true` (checked 2026-11-23):
internal/service/eks/cluster.go, eks/node_group.go, eks/addon.go, ecr/repository.go, s3/bucket.go,
kms/key.go, ec2/vpc_.go, ec2/vpc_subnet.go, ec2/vpc_nat_gateway.go, ec2/ec2_eip.go, logs/group.go,
ec2/ec2_launch_template.go, iam/role.go. Which types are stateful is policy/rules.py's STATEFUL_TYPES, the one
definition the policy pack, this guard and the tests share.
Changing `region` replaces every regional resource. Conditional cases (an EKS cluster's encryptionConfig
replaces only when removed; a VPC's tenancy except dedicated -> default) are treated as replacements: a
false alarm costs a look, a missed one costs a cluster. `pulumi preview --json` (replaceReasons) remains the
ground truth on a real stack.
"""

from __future__ import annotations

import re

from policy.rules import STATEFUL_TYPES

__all__ = ["FORCE_NEW", "STATEFUL_TYPES", "forces_replacement"]

FORCE_NEW: dict[str, tuple[str, ...]] = {
    "aws:eks/cluster:Cluster": (
        "name",
        "roleArn",
        "bootstrapSelfManagedAddons",
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "kubernetesNetworkConfig.ipFamily",
        "kubernetesNetworkConfig.serviceIpv4Cidr",
        "encryptionConfig",
        "outpostConfig",
        "region",
    ),
    "aws:eks/nodeGroup:NodeGroup": (
        "clusterName",
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "nodeRoleArn",
        "subnetIds",
        "amiType",
        "capacityType",
        "diskSize",
        "instanceTypes",
        "launchTemplate.id",
        "launchTemplate.name",
        "remoteAccess",
        "region",
    ),
    "aws:ecr/repository:Repository": ("name", "encryptionConfigurations", "region"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "bucketNamespace", "objectLockEnabled", "region"),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion", "customKeyStoreId", "xksKeyId", "region"),
    "aws:ec2/vpc:Vpc": ("cidrBlock", "instanceTenancy", "ipv4IpamPoolId", "ipv4NetmaskLength", "region"),
    "aws:ec2/subnet:Subnet": ("vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId", "ipv6Native", "outpostArn", "region"),
    "aws:ec2/natGateway:NatGateway": ("allocationId", "connectivityType", "privateIp", "subnetId", "availabilityMode", "region"),
    "aws:ec2/eip:Eip": (
        "address",
        "customerOwnedIpv4Pool",
        "domain",
        "ipamPoolId",
        "networkBorderGroup",
        "publicIpv4Pool",
        "region",
    ),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix", "logGroupClass", "region"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", "namePrefix", "region"),
    "aws:eks/addon:Addon": ("addonName", "clusterName", "namespaceConfig", "region"),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
}


def forces_replacement(resource_type: str, property_path: str) -> bool:
    """Whether changing `property_path` (e.g. `vpcConfig.subnetIds[1]`) replaces a resource of this type."""
    top = re.split(r"\[\d+\]", property_path, maxsplit=1)[0]
    return any(top == prop or top.startswith(f"{prop}.") for prop in FORCE_NEW.get(resource_type, ()))
