"""The platform's policies as pure functions over a neutral view of a stack's resources.

Two callers: the CrossGuard pack (policy/__main__.py, `pulumi preview --policy-pack policy`) converts
pulumi_policy's resources into this view; the offline plan (`python -m infra plan`) builds it from
plan.json. Property names are Pulumi's wire names (camelCase), which both sources share.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ENVIRONMENT_TAG = "ml-platform/environment"
PRIVATE_SUBNET_TAG = "kubernetes.io/role/internal-elb"
CONTROL_PLANE_LOG_TYPES = {"api", "audit", "authenticator", "controllerManager", "scheduler"}

ECR_REPOSITORY = "aws:ecr/repository:Repository"
ECR_REGISTRY_SCANNING = "aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration"
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
S3_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SUBNET = "aws:ec2/subnet:Subnet"
S3_BUCKET = "aws:s3/bucket:Bucket"
KMS_KEY = "aws:kms/key:Key"
VPC = "aws:ec2/vpc:Vpc"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
ELASTIC_IP = "aws:ec2/eip:Eip"
# Stateful or availability-critical: losing one loses data or takes the platform down (and a NAT gateway's
# address is what partners allow-list). The one definition the policy pack, the diff's replacement guard and the
# tests share.
KARPENTER_NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"  # deleting one terminates every node it launched
MLFLOW_TRACKING_SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"  # holds the registry's records
RDS_CLUSTER = "aws:rds/cluster:Cluster"  # the self-hosted registry's records and users
RDS_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
MIN_BACKUP_DAYS = 7
STATEFUL_TYPES = (
    EKS_CLUSTER,
    NODE_GROUP,
    KARPENTER_NODE_POOL,
    ECR_REPOSITORY,
    S3_BUCKET,
    KMS_KEY,
    VPC,
    SUBNET,
    NAT_GATEWAY,
    ELASTIC_IP,
    MLFLOW_TRACKING_SERVER,
    RDS_CLUSTER,
    RDS_INSTANCE,
)


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool = False
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def environment(self) -> str | None:
        return (self.props.get("tags") or {}).get(ENVIRONMENT_TAG)


class StackView:
    """All resources of a stack, with look-ups by URN and by who refers to whom."""

    def __init__(self, resources: Iterable[Resource]):
        self.resources = list(resources)
        self._by_urn = {r.urn: r for r in self.resources}

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def dependencies(self, resource: Resource, prop: str) -> list[Resource]:
        return [self._by_urn[urn] for urn in resource.property_dependencies.get(prop, ()) if urn in self._by_urn]

    def referrers(self, target: Resource, type_token: str, prop: str) -> list[Resource]:
        return [r for r in self.of_type(type_token) if target.urn in r.property_dependencies.get(prop, ())]


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    check: Callable[[StackView], list[str]]
    """Returns one message per violation; an empty list means compliant."""


def _ecr_hardened(stack: StackView) -> list[str]:
    problems = []
    for repo in stack.of_type(ECR_REPOSITORY):
        props = repo.props
        if props.get("imageTagMutability") != "IMMUTABLE":
            problems.append(f"{repo.name}: image tags must be IMMUTABLE")
        encryption = props.get("encryptionConfigurations") or [{}]
        if encryption[0].get("encryptionType") != "KMS":
            problems.append(f"{repo.name}: images must be encrypted with KMS")
    return problems


def ecr_wildcard_match(pattern: str, name: str) -> bool:
    """ECR's WILDCARD repository filter: `*` stands for any characters, `/` included; a filter without `*` matches
    every repository whose name contains it (ECR user guide, "Filters for image scanning": `prod` matches
    `repo-prod`)."""
    if "*" not in pattern:
        return pattern in name
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), name) is not None


def continuous_scan_filters(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    """The repository filters of a registry scanning configuration's CONTINUOUS_SCAN rules (the API's and the
    Pulumi resource's `rules` share these names)."""
    return [
        f.get("filter", "") for rule in rules if rule.get("scanFrequency") == "CONTINUOUS_SCAN" for f in rule.get("repositoryFilters") or []
    ]


def _ecr_registry_scanning(stack: StackView) -> list[str]:
    """Scanning is the registry's (ECR keeps one configuration per account and region; the repository-level scan on
    push "is being deprecated, in favor of specifying the image scanning configuration at the registry level", ECR
    API reference, PutImageScanningConfiguration): a stack that declares it scans ENHANCED (Amazon Inspector),
    continuously, with filters covering every repository it creates (retained when destroyed: CrossGuard does not
    see retainOnDelete, the unit tests check it). A stack that does not declare it leaves the check to `doctor`,
    which reads the account's."""
    problems = []
    repositories = [str(repo.props.get("name") or repo.name) for repo in stack.of_type(ECR_REPOSITORY)]
    for scanning in stack.of_type(ECR_REGISTRY_SCANNING):
        props = scanning.props
        if props.get("scanType") != "ENHANCED":
            problems.append(f"{scanning.name}: scanType must be ENHANCED (Amazon Inspector), not {props.get('scanType')}")
        continuous = continuous_scan_filters(props.get("rules") or [])
        if not continuous:
            problems.append(f"{scanning.name}: needs a CONTINUOUS_SCAN rule (scan on push alone never rescans)")
        for name in repositories:
            if continuous and not any(ecr_wildcard_match(pattern, name) for pattern in continuous):
                problems.append(f"{scanning.name}: repository {name} matches no continuous scanning filter, so it is not scanned")
    return problems


def _eks_secrets_encrypted(stack: StackView) -> list[str]:
    problems = []
    for cluster in stack.of_type(EKS_CLUSTER):
        config = cluster.props.get("encryptionConfig") or {}
        if "secrets" not in (config.get("resources") or []) or not (config.get("provider") or {}).get("keyArn"):
            problems.append(f"{cluster.name}: Kubernetes secrets must be encrypted with a KMS key")
    return problems


def _eks_logging(stack: StackView) -> list[str]:
    problems = []
    for cluster in stack.of_type(EKS_CLUSTER):
        missing = CONTROL_PLANE_LOG_TYPES - set(cluster.props.get("enabledClusterLogTypes") or [])
        if missing:
            problems.append(f"{cluster.name}: control-plane log types not enabled: {', '.join(sorted(missing))}")
    return problems


def _eks_endpoint(stack: StackView) -> list[str]:
    problems = []
    for cluster in stack.of_type(EKS_CLUSTER):
        vpc = cluster.props.get("vpcConfig") or {}
        if not vpc.get("endpointPrivateAccess"):
            problems.append(f"{cluster.name}: the private API endpoint must be on")
        if vpc.get("endpointPublicAccess"):
            cidrs = vpc.get("publicAccessCidrs") or []
            if cluster.environment == "prod":
                problems.append(f"{cluster.name}: prod clusters have no public API endpoint")
            elif not cidrs or any(ipaddress.ip_network(c).prefixlen == 0 for c in cidrs):
                problems.append(f"{cluster.name}: a public API endpoint must be limited to listed CIDRs, never 0.0.0.0/0")
    return problems


def _eks_api_auth(stack: StackView) -> list[str]:
    problems = []
    for cluster in stack.of_type(EKS_CLUSTER):
        access = cluster.props.get("accessConfig") or {}
        if access.get("authenticationMode") != "API":
            problems.append(f"{cluster.name}: authentication mode must be API (access entries), not the aws-auth ConfigMap")
        if access.get("bootstrapClusterCreatorAdminPermissions", True):
            problems.append(f"{cluster.name}: the cluster creator must not get implicit admin; use access entries")
    return problems


def _node_groups_private(stack: StackView) -> list[str]:
    problems = []
    owns_subnets = bool(stack.of_type(SUBNET))
    for group in stack.of_type(NODE_GROUP):
        subnets = stack.dependencies(group, "subnetIds")
        given = group.props.get("subnetIds") or []
        if not subnets and not owns_subnets and given and all(isinstance(s, str) and s.startswith("subnet-") for s in given):
            # An existing VPC's subnets (network.vpcId): the program looked each up and refused a public one
            # (public IPs on launch, a default route to an internet gateway) before registering anything.
            continue
        if not subnets:
            problems.append(f"{group.name}: subnets cannot be traced to subnets of this stack")
        for subnet in subnets:
            tags = subnet.props.get("tags") or {}
            if subnet.props.get("mapPublicIpOnLaunch") or PRIVATE_SUBNET_TAG not in tags:
                problems.append(f"{group.name}: runs in {subnet.name}, which is not a private subnet")
    return problems


def _imdsv2(stack: StackView) -> list[str]:
    problems = []
    for template in stack.of_type(LAUNCH_TEMPLATE):
        metadata = template.props.get("metadataOptions") or {}
        if metadata.get("httpTokens") != "required":
            problems.append(f"{template.name}: IMDSv2 must be required (httpTokens=required)")
        if metadata.get("httpPutResponseHopLimit") != 1:
            problems.append(f"{template.name}: the IMDS hop limit must be 1 so pods cannot use the node's role")
    for group in stack.of_type(NODE_GROUP):
        if not stack.dependencies(group, "launchTemplate"):
            problems.append(f"{group.name}: node groups must use a launch template of this stack (IMDSv2 settings)")
    return problems


def _s3_hardened(stack: StackView) -> list[str]:
    problems = []
    for bucket in stack.of_type(S3_BUCKET):
        blocks = stack.referrers(bucket, S3_PUBLIC_ACCESS_BLOCK, "bucket")
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        if not any(all(block.props.get(flag) for flag in flags) for block in blocks):
            problems.append(f"{bucket.name}: all public access must be blocked")
        encryption = stack.referrers(bucket, S3_ENCRYPTION, "bucket")
        if not any(
            ((rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") in ("aws:kms", "aws:kms:dsse"))
            for config in encryption
            for rule in config.props.get("rules") or []
        ):
            problems.append(f"{bucket.name}: default encryption must be SSE-KMS")
        versioning = stack.referrers(bucket, S3_VERSIONING, "bucket")
        if not any((v.props.get("versioningConfiguration") or {}).get("status") == "Enabled" for v in versioning):
            problems.append(f"{bucket.name}: versioning must be enabled")
    return problems


def _kms_rotation(stack: StackView) -> list[str]:
    return [f"{key.name}: key rotation must be on" for key in stack.of_type(KMS_KEY) if not key.props.get("enableKeyRotation")]


def _databases_hardened(stack: StackView) -> list[str]:
    """Aurora clusters: storage encrypted with this stack's KMS key, backups kept at least MIN_BACKUP_DAYS days,
    reachable only inside the VPC (no public instance; subnets of a subnet group, a security group that admits
    other security groups only), and in prod deletion protection and a final snapshot."""
    problems = []
    for cluster in stack.of_type(RDS_CLUSTER):
        props = cluster.props
        if not props.get("storageEncrypted") or not stack.dependencies(cluster, "kmsKeyId"):
            problems.append(f"{cluster.name}: storage must be encrypted with this stack's KMS key (storageEncrypted, kmsKeyId)")
        if (props.get("backupRetentionPeriod") or 1) < MIN_BACKUP_DAYS:
            problems.append(f"{cluster.name}: backups must be kept at least {MIN_BACKUP_DAYS} days (backupRetentionPeriod)")
        if not stack.dependencies(cluster, "dbSubnetGroupName"):
            problems.append(f"{cluster.name}: must sit in a subnet group of this stack (dbSubnetGroupName)")
        for group in stack.dependencies(cluster, "vpcSecurityGroupIds"):
            for rule in group.props.get("ingress") or []:
                if rule.get("cidrBlocks") or rule.get("ipv6CidrBlocks") or not rule.get("securityGroups"):
                    problems.append(f"{cluster.name}: {group.name} must admit only security groups (the cluster's), no CIDR ranges")
        if not stack.dependencies(cluster, "vpcSecurityGroupIds"):
            problems.append(f"{cluster.name}: must use a security group of this stack (vpcSecurityGroupIds)")
        if cluster.environment == "prod":
            if not props.get("deletionProtection"):
                problems.append(f"{cluster.name}: prod databases need deletion protection")
            if props.get("skipFinalSnapshot") or not props.get("finalSnapshotIdentifier"):
                problems.append(f"{cluster.name}: prod databases take a final snapshot when deleted (finalSnapshotIdentifier)")
    for instance in stack.of_type(RDS_INSTANCE):
        if instance.props.get("publiclyAccessible"):
            problems.append(f"{instance.name}: database instances must not be publicly accessible")
    return problems


def _prod_protected(stack: StackView) -> list[str]:
    return [
        f"{r.name} ({r.type}): prod stateful resources must be protected"
        for r in stack.resources
        if r.type in STATEFUL_TYPES and r.environment == "prod" and not r.protect
    ]


POLICIES: tuple[Policy, ...] = (
    Policy("ecr-immutable-kms", "ECR repositories use immutable tags and KMS encryption.", _ecr_hardened),
    Policy(
        "ecr-registry-scanning",
        "The registry's scanning, where a stack declares it, is ENHANCED and continuous over every repository.",
        _ecr_registry_scanning,
    ),
    Policy("eks-secrets-encrypted", "EKS clusters encrypt Kubernetes secrets with a KMS key.", _eks_secrets_encrypted),
    Policy("eks-control-plane-logging", "EKS clusters send all five control-plane log types to CloudWatch.", _eks_logging),
    Policy("eks-endpoint-access", "EKS API: private endpoint on; public endpoint only from listed CIDRs, never in prod.", _eks_endpoint),
    Policy("eks-api-auth-mode", "EKS clusters use API authentication (access entries) with no implicit creator admin.", _eks_api_auth),
    Policy(
        "node-groups-private-subnets",
        "Node groups run only in private subnets (this stack's, or an existing VPC's subnets the program checked by lookup).",
        _node_groups_private,
    ),
    Policy("nodes-imdsv2", "Nodes require IMDSv2 with hop limit 1 through their launch template.", _imdsv2),
    Policy("s3-private-encrypted-versioned", "S3 buckets block public access, use SSE-KMS and keep versions.", _s3_hardened),
    Policy("kms-rotation", "KMS keys rotate.", _kms_rotation),
    Policy(
        "databases-private-encrypted-backed-up",
        "Databases are encrypted with the stack's key, private to the VPC, back up at least 7 days, and in prod are "
        "deletion-protected with a final snapshot.",
        _databases_hardened,
    ),
    Policy(
        "prod-stateful-protected",
        "In prod, the cluster, node groups and Karpenter node pools, registries, buckets, KMS keys, VPC, subnets, NAT gateways and "
        "their addresses, the model registry's server and its database are protected.",
        _prod_protected,
    ),
)


def evaluate(stack: StackView) -> list[str]:
    """Every violation of every policy, as `<policy>: <message>`."""
    return [f"{policy.name}: {message}" for policy in POLICIES for message in policy.check(stack)]


def view_from_plan(resources: Iterable[Mapping[str, Any]]) -> StackView:
    """The policies' view of an offline plan's resources (plan.json `resources`)."""
    return StackView(
        Resource(
            type=r["type"],
            name=r["name"],
            urn=r["urn"],
            props=r["inputs"],
            protect=r["protect"],
            property_dependencies=r["propertyDependencies"],
        )
        for r in resources
        if r["custom"]
    )
