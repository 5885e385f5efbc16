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

__all__ = ["API_REFUSES", "FORCE_NEW", "K8S_FORCE_NEW", "STATEFUL_TYPES", "forces_replacement", "refused_update"]

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


# The Kubernetes provider's own replace-on-change rules (pulumi-kubernetes provider/pkg/provider/diff.go,
# forceNewProperties, unchanged from 2024-08 to v4.32.0 and HEAD; the pinned 4.34.2 has the same provider
# options): paths are prefixes. ConfigMap and Secret data replace because `enableConfigMapMutable` and
# `enableSecretMutable` default to false, and this program sets neither. A change of `metadata.name` or
# `metadata.namespace` replaces every kind (provider.go), custom resources included.
K8S_FORCE_NEW: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec.selector",),
    "kubernetes:apps/v1:DaemonSet": ("spec.selector",),
    "kubernetes:apps/v1:StatefulSet": (
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.selector",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "kubernetes:batch/v1:Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    "kubernetes:core/v1:Service": ("spec.clusterIP",),
    "kubernetes:core/v1:PersistentVolumeClaim": ("spec.accessModes", "spec.selector", "spec.storageClassName", "spec.volumeName"),
    "kubernetes:core/v1:Secret": ("type", "data", "stringData"),
    "kubernetes:core/v1:ConfigMap": ("data", "binaryData"),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
    "kubernetes:storage.k8s.io/v1:StorageClass": ("parameters", "provisioner"),
    "kubernetes:helm.sh/v3:Release": ("name", "namespace"),
}
K8S_NAME = ("metadata.name", "metadata.namespace")

# Updates the provider would send and the API server refuses, so `pulumi up` fails half-way: a third class,
# which fails the check like a stateful replacement. Sources: kubernetes pkg/apis/storage/validation
# ValidateStorageClassUpdate (reclaimPolicy, volumeBindingMode immutable); the Karpenter v1.14.1 NodePool CRD's
# CEL rules (`self.group == oldSelf.group`, `self.kind == oldSelf.kind` on nodeClassRef;
# `has(self.replicas) == has(oldSelf.replicas)` on spec).
API_REFUSES: dict[str, tuple[str, ...]] = {
    "kubernetes:storage.k8s.io/v1:StorageClass": ("reclaimPolicy", "volumeBindingMode"),
    "kubernetes:karpenter.sh/v1:NodePool": (
        "spec.template.spec.nodeClassRef.group",
        "spec.template.spec.nodeClassRef.kind",
        "spec.replicas",
    ),
}


def _matches(props: tuple[str, ...] | list[str], property_path: str) -> bool:
    path = re.sub(r"\[\d+\]", "", property_path)
    return any(path == prop or path.startswith(f"{prop}.") for prop in props)


def refused_update(resource_type: str, property_path: str) -> bool:
    """Whether the API server refuses an in-place change of `property_path` on this type."""
    return _matches(API_REFUSES.get(resource_type, ()), property_path)


# Inputs that update in place, unless what they read was replaced by a resource of the given type: EKS updates a
# cluster's subnets (UpdateClusterConfig) but only within its VPC, so subnets of a new VPC mean a new cluster.
REPLACED_WITH: dict[tuple[str, str], str] = {("aws:eks/cluster:Cluster", "vpcConfig"): "aws:ec2/vpc:Vpc"}


def forces_replacement(resource_type: str, property_path: str, replace_on_changes: tuple[str, ...] | list[str] = ()) -> bool:
    """Whether changing `property_path` (e.g. `vpcConfig.subnetIds[1]`) replaces a resource of this type: a
    provider rule (AWS's FORCE_NEW, the Kubernetes provider's K8S_FORCE_NEW and name changes) or the resource's
    own `replaceOnChanges` option."""
    top = re.split(r"\[\d+\]", property_path, maxsplit=1)[0]
    if any(top == prop or top.startswith(f"{prop}.") for prop in FORCE_NEW.get(resource_type, ())):
        return True
    if resource_type.startswith("kubernetes:") and _matches((*K8S_FORCE_NEW.get(resource_type, ()), *K8S_NAME), property_path):
        return True
    return _matches(tuple(replace_on_changes), property_path)
