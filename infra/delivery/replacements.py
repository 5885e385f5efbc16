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

from ml_platform.policy.rules import STATEFUL_TYPES

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
    # internal/service/sagemaker/mlflow_tracking_server.go: a new version, role or name is a new server, whose
    # records (experiments, registered models, aliases) start empty.
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": ("trackingServerName", "roleArn", "mlflowVersion", "region"),
    # internal/service/rds/cluster.go and cluster_instance.go: a new engine, key, subnet group, user or name is a
    # new, empty database (the self-hosted registry's records and users).
    "aws:rds/cluster:Cluster": (
        "engine",
        "engineMode",
        "storageEncrypted",
        "kmsKeyId",
        "dbSubnetGroupName",
        "masterUsername",
        "databaseName",
        "clusterIdentifier",
        "clusterIdentifierPrefix",
        "availabilityZones",
        "clusterScalabilityType",
        "dbSystemId",
        "snapshotIdentifier",
        "sourceRegion",
        "region",
    ),
    "aws:rds/clusterInstance:ClusterInstance": (
        "clusterIdentifier",
        "engine",
        "identifier",
        "identifierPrefix",
        "availabilityZone",
        "dbSubnetGroupName",
        "customIamInstanceProfile",
        "region",
    ),
    # The registry's migration snapshot is named for the MLflow version: a new version is a new snapshot.
    "aws:rds/clusterSnapshot:ClusterSnapshot": ("dbClusterIdentifier", "dbClusterSnapshotIdentifier", "region"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", "namePrefix", "region"),
    "aws:eks/addon:Addon": ("addonName", "clusterName", "namespaceConfig", "region"),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    # Resources that hang off a VPC, a cluster or a subnet (vpc_id, cluster_name, ... ForceNew in
    # internal/service/ec2/vpc_security_group.go, vpc_route_table.go, vpc_endpoint.go, vpc_flow_log.go,
    # vpc_default_security_group.go, vpc_route_table_association.go, vpc_security_group_ingress_rule.go,
    # eks/access_entry.go, eks/pod_identity_association.go, iam/openid_connect_provider.go).
    "aws:ec2/securityGroup:SecurityGroup": ("vpcId", "name", "namePrefix", "description", "region"),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": ("vpcId", "region"),
    "aws:ec2/routeTable:RouteTable": ("vpcId", "region"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("subnetId", "gatewayId", "region"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("vpcId", "serviceName", "vpcEndpointType", "region"),
    "aws:ec2/flowLog:FlowLog": ("vpcId", "subnetId", "logDestination", "logDestinationType", "trafficType", "iamRoleArn", "region"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("securityGroupId", "region"),
    "aws:eks/accessEntry:AccessEntry": ("clusterName", "principalArn", "type", "region"),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": ("clusterName", "principalArn", "policyArn", "region"),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": ("clusterName", "namespace", "serviceAccount", "region"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": ("url",),
}

# Types with no rule here that read a replaced resource are shown as "may be replaced" (never passed as a
# plain update). A Kubernetes provider whose cluster is replaced replaces every object it manages.
K8S_PROVIDER = "pulumi:providers:kubernetes"

# Updates that make a dependent act without changing its inputs offline: a launch template update publishes a
# new version, and EKS then replaces the node group's nodes, rolling; an EC2NodeClass or NodePool template
# change is drift, and Karpenter replaces the pool's nodes within its disruption budgets.
ROLLS_NODES: dict[str, str] = {
    "aws:ec2/launchTemplate:LaunchTemplate": "a new launch template version: EKS replaces the group's nodes, rolling",
    "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass": "drift: Karpenter replaces the pool's nodes, within its disruption budgets",
    "kubernetes:karpenter.sh/v1:NodePool": "drift: Karpenter replaces the pool's nodes, within its disruption budgets",
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
    "kubernetes:karpenter.sh/v1:NodePool": (),  # custom resources: a name change only
}
K8S_NAME = ("metadata.name", "metadata.namespace")

# Updates the provider would send and the API server refuses, so `pulumi up` fails half-way: a third class,
# which fails the check like a stateful replacement. Sources: kubernetes pkg/apis/storage/validation
# ValidateStorageClassUpdate (reclaimPolicy, volumeBindingMode immutable); the Karpenter v1.14.1 NodePool CRD's
# CEL rules (`self.group == oldSelf.group`, `self.kind == oldSelf.kind` on nodeClassRef;
# `has(self.replicas) == has(oldSelf.replicas)` on spec).
API_REFUSES: dict[str, tuple[str, ...]] = {
    "kubernetes:storage.k8s.io/v1:StorageClass": ("reclaimPolicy", "volumeBindingMode"),
    # EKS moves a cluster's control-plane subnets only within the AZs chosen at creation (EKS user guide,
    # "Network requirements"): new subnets may be in a new zone, so any change is called out.
    "aws:eks/cluster:Cluster": ("vpcConfig.subnetIds",),
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


def reads_force_new(resource_type: str, top_level: str) -> bool:
    """Whether a top-level input (what propertyDependencies name) holds a replacement-forcing property, itself or
    below it (`launchTemplate` holds `launchTemplate.id`): a new value read from a replaced resource replaces."""
    props = (*FORCE_NEW.get(resource_type, ()), *K8S_FORCE_NEW.get(resource_type, ()))
    return any(prop == top_level or prop.startswith(f"{top_level}.") for prop in props)


def has_rules(resource_type: str) -> bool:
    return resource_type in FORCE_NEW or resource_type in K8S_FORCE_NEW or resource_type.startswith("kubernetes:")


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
