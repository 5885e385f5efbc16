"""EksCluster: the control plane and its identity: cluster and node IAM roles, a KMS key for Kubernetes
secrets and control-plane logs, API authentication with explicit access entries, the OIDC provider, the
add-ons nodes need before they can join, and a Kubernetes provider for everything that runs inside."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from ml_platform.components import iam
from ml_platform.components.kms import KmsKey, KmsKeyArgs

TYPE = "mlplatform:aws:EksCluster"

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

ACCESS_POLICIES = {
    "cluster-admin": "AmazonEKSClusterAdminPolicy",
    "admin": "AmazonEKSAdminPolicy",
    "view": "AmazonEKSViewPolicy",
}

CLUSTER_ROLE_POLICIES = ("AmazonEKSClusterPolicy",)

# Add-ons that run as DaemonSets and must be there before nodes can become Ready (networking, Pod Identity).
# Add-ons that need running nodes (coredns, the EBS CSI controller) are in ClusterAddons, after the node pools.
BOOTSTRAP_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# vpc-cni enforces NetworkPolicies only when asked to: the model services' policies would do nothing otherwise.
ADDON_CONFIGURATION = {"vpc-cni": json.dumps({"enableNetworkPolicy": "true"})}


@dataclass(frozen=True)
class AccessGrant:
    principal_arn: str
    """IAM role or user given access."""
    access: str
    """Key of ACCESS_POLICIES."""
    namespaces: Sequence[str] = ()
    """Namespaces for a namespaced grant; empty means cluster-wide."""


def access_policy_arn(access: str, partition: str = "aws") -> str:
    return f"arn:{partition}:eks::aws:cluster-access-policy/{ACCESS_POLICIES[access]}"


def managed_policy_arn(name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def node_role(name: str, partition: str, tags: Mapping[str, str], parent: pulumi.Resource) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """An EC2 node role (`<name>-node-role`) with the managed policies every EKS node needs, and those attachments."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-node-role", assume_role_policy=json.dumps(iam.service_trust_policy("ec2.amazonaws.com")), tags=dict(tags), opts=child
    )
    attachments: list[pulumi.Resource] = [
        aws.iam.RolePolicyAttachment(f"{name}-node-{policy}", role=role.name, policy_arn=managed_policy_arn(policy, partition), opts=child)
        for policy in iam.NODE_ROLE_POLICIES
    ]
    return role, attachments


def kubeconfig(cluster_name: str, endpoint: str, certificate_authority: str, region: str) -> dict:
    """A kubeconfig that holds no secret: the token comes from `aws eks get-token` at use time."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [
            {
                "name": cluster_name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }


@dataclass
class EksClusterArgs:
    cluster_name: str
    """EKS cluster name (fixed, so tags and kubeconfigs can name it before it exists)."""
    kubernetes_version: str
    """Pinned Kubernetes minor version, e.g. `1.36`."""
    addon_versions: Mapping[str, str]
    """Pinned add-on versions by add-on name; must cover BOOTSTRAP_ADDONS."""
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets for the control plane's network interfaces."""
    region: str
    """AWS region (for the kubeconfig and the log-encryption key policy)."""
    account_id: pulumi.Input[str]
    """AWS account id."""
    partition: str = "aws"
    """AWS partition."""
    public_access_cidrs: Sequence[str] = ()
    """CIDRs allowed to reach the public endpoint; empty turns the public endpoint off."""
    private_access_cidrs: Sequence[str] = ()
    """CIDRs allowed to reach the private endpoint from outside the cluster security group (CI runners, VPN)."""
    access_grants: Sequence[AccessGrant] = ()
    """Access entries; nobody else gets in (the creator gets no implicit admin)."""
    log_retention_days: int = 90
    """Retention of the control-plane log group."""
    protect: bool = False
    """Protect and retain the cluster and its key, and turn on EKS deletion protection (prod)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for every resource."""


class EksCluster(pulumi.ComponentResource):
    """The control plane and its identity: cluster and node IAM roles, a KMS key for Kubernetes secrets and control-
    plane logs, API authentication with explicit access entries, the OIDC provider, the add-ons nodes need before
    they can join, and a Kubernetes provider for everything that runs inside.

    Arguments: EksClusterArgs, documented field by field."""

    name: pulumi.Output[str]
    """The cluster's name, as an output (what needs the cluster waits for it)."""
    endpoint: pulumi.Output[str]
    """The API server's URL."""
    certificate_authority: pulumi.Output[str]
    """The cluster CA, base64 PEM."""
    node_role: aws.iam.Role
    """The IAM role of managed node groups."""
    oidc_provider_arn: pulumi.Output[str]
    """The IAM OIDC provider of the cluster's service-account issuer."""
    kubeconfig: pulumi.Output[str]
    """A kubeconfig (JSON) that gets its token from `aws eks get-token`; it holds no secret."""
    provider: k8s.Provider
    """A Kubernetes provider for the cluster, which waits for the access entries."""
    cluster_security_group_id: pulumi.Output[str]
    """The security group EKS creates for the cluster."""
    bootstrap_addons: list[aws.eks.Addon]
    """The add-ons nodes need before they join (vpc-cni, kube-proxy, eks-pod-identity-agent)."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        secrets_key = KmsKey(
            f"{name}-secrets",
            KmsKeyArgs(
                description=f"EKS {args.cluster_name}: Kubernetes secrets and control-plane logs",
                alias=f"{args.cluster_name}-secrets",
                account_id=args.account_id,
                partition=args.partition,
                region=args.region,
                service_principals=(f"logs.{args.region}.amazonaws.com",),
                protect=args.protect,
                tags=tags,
            ),
            opts=child,
        )

        cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            assume_role_policy=json.dumps(iam.service_trust_policy("eks.amazonaws.com", tag_session=True)),
            tags=tags,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-cluster-{policy}", role=cluster_role.name, policy_arn=managed_policy_arn(policy, args.partition), opts=child
            )
            for policy in CLUSTER_ROLE_POLICIES
        ]
        self.node_role, node_attachments = node_role(name, args.partition, tags, parent=self)

        # EKS writes to /aws/eks/<name>/cluster; creating it first lets us set retention and encryption.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            kms_key_id=secrets_key.arn,
            # The audit trail of a protected cluster must not be deletable by accident either.
            deletion_protection_enabled=args.protect,
            tags=tags,
            opts=child,
        )

        cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                # No hidden admin for whoever ran `pulumi up`: access is exactly the configured access entries.
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            # The networking add-ons are EKS-managed (pinned) from the first day, not self-managed leftovers.
            bootstrap_self_managed_addons=False,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(args.public_access_cidrs),
                public_access_cidrs=list(args.public_access_cidrs) or None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn), resources=["secrets"]
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            # Without this, a version left behind silently moves to paid extended support.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            deletion_protection=args.protect,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[log_group, *attachments],
                # Replacing a cluster drops every workload: prod protects and retains it.
                protect=args.protect,
                retain_on_delete=args.protect,
            ),
        )

        associations = []
        for grant in args.access_grants:
            # Named by principal, not list position: reordering admins must not move an entry to another
            # principal (EKS refuses a second entry for the same principal while the first still exists).
            suffix = hashlib.sha256(grant.principal_arn.encode()).hexdigest()[:8]
            entry = aws.eks.AccessEntry(
                f"{name}-access-{suffix}",
                cluster_name=cluster.name,
                principal_arn=grant.principal_arn,
                type="STANDARD",
                tags=tags,
                opts=child,
            )
            associations.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-access-{suffix}",
                    cluster_name=cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=access_policy_arn(grant.access, args.partition),
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(
                        type="namespace" if grant.namespaces else "cluster",
                        namespaces=list(grant.namespaces) or None,
                    ),
                    opts=child,
                )
            )

        for cidr in args.private_access_cidrs:
            # Lets a deployer outside the cluster's security group (a CI runner, a VPN) reach the private endpoint.
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-from-{cidr.replace('/', '-')}",
                security_group_id=cluster.vpc_config.cluster_security_group_id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ipv4=cidr,
                description="Kubernetes API through the private endpoint",
                tags=tags,
                opts=child,
            )

        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=cluster.identities.apply(lambda identities: identities[0].oidcs[0].issuer),
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )

        self.bootstrap_addons = [
            aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=cluster.name,
                addon_name=addon,
                addon_version=args.addon_versions[addon],
                configuration_values=ADDON_CONFIGURATION.get(addon),
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=tags,
                # vpc-cni runs with the node role's AmazonEKS_CNI_Policy: attach it before the DaemonSets start.
                opts=pulumi.ResourceOptions(parent=self, depends_on=node_attachments),
            )
            for addon in BOOTSTRAP_ADDONS
        ]

        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority = cluster.certificate_authority.apply(lambda ca: ca.data)
        self.cluster_security_group_id = cluster.vpc_config.apply(lambda vpc: vpc.cluster_security_group_id)
        self.oidc_provider_arn = oidc.arn
        self.kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, self.certificate_authority).apply(
            lambda values: json.dumps(kubeconfig(values[0], values[1], values[2], args.region), sort_keys=True)
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            # Never adopt what exists, whatever PULUMI_K8S_UPSERT_EXISTING_OBJECTS says: a name clash must fail.
            upsert_existing_objects=False,
            # The deployer's own access comes from these associations: nothing can be applied before them.
            opts=pulumi.ResourceOptions(parent=self, depends_on=associations),
        )
        self.register_outputs(
            {
                "name": self.name,
                "endpoint": self.endpoint,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "node_role_arn": self.node_role.arn,
            }
        )
