"""Karpenter: the controller (pinned chart, on the system pool, IAM through EKS Pod Identity), its node
role and access entry, the interruption queue with its EventBridge rules, and one EC2NodeClass and
NodePool per Karpenter pool.

The controller's IAM policies are Karpenter v1.14's own least-privilege policies, from
aws/karpenter-provider-aws v1.14.1 website/content/en/preview/getting-started/getting-started-with-karpenter/
cloudformation.yaml (NodeLifecycle, IAMIntegration, EKSIntegration, Interruption, ZonalShift,
ResourceDiscovery), with the template's parameters filled in. They change between releases, so a chart pin
outside POLICY_CHART_VERSIONS is a config error (infra/program.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from ml_platform.components import iam
from ml_platform.components.eks_cluster import node_role
from ml_platform.components.helm import Chart, release
from ml_platform.components.node_pool import node_config
from ml_platform.components.options import inherited_depends_on
from ml_platform.components.resources import STANDARD, sized

TYPE = "mlplatform:k8s:Karpenter"
# Chart versions whose controller policies controller_policies() writes.
POLICY_CHART_VERSIONS = ("1.14.1",)

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
DISCOVERY_TAG = "karpenter.sh/discovery"

# EventBridge patterns Karpenter reacts to (same source as the policies).
INTERRUPTION_EVENTS: dict[str, dict] = {
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "instance-state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    "capacity-reservation-interruption": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"],
    },
}


def controller_policies(cluster: str, region: str, account: str, partition: str, node_role_arn: str, queue_arn: str) -> dict[str, dict]:
    """Karpenter v1.14's controller policies, by name."""
    ec2 = f"arn:{partition}:ec2:{region}"
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned"}
    request_owned = {f"aws:RequestTag/kubernetes.io/cluster/{cluster}": "owned", "aws:RequestTag/eks:eks-cluster-name": cluster}
    tagged_resources = [
        f"{ec2}:*:{kind}/*" for kind in ("fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")
    ]
    profile = f"arn:{partition}:iam::{account}:instance-profile/*"
    cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cluster}"

    def document(*statements: dict) -> dict:
        return {"Version": "2012-10-17", "Statement": list(statements)}

    return {
        "node-lifecycle": document(
            {
                "Sid": "AllowScopedEC2InstanceAccessActions",
                "Effect": "Allow",
                "Resource": [f"{ec2}::image/*", f"{ec2}::snapshot/*"]
                + [f"{ec2}:*:{kind}/*" for kind in ("security-group", "subnet", "capacity-reservation", "placement-group")],
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            },
            {
                "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
                "Effect": "Allow",
                "Resource": f"{ec2}:*:launch-template/*",
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                "Condition": {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}},
            },
            {
                "Sid": "AllowScopedEC2InstanceActionsWithTags",
                "Effect": "Allow",
                "Resource": tagged_resources,
                "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
                "Condition": {"StringEquals": request_owned, "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}},
            },
            {
                "Sid": "AllowScopedResourceCreationTagging",
                "Effect": "Allow",
                "Resource": tagged_resources,
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": {**request_owned, "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
                    "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
                },
            },
            {
                "Sid": "AllowScopedResourceTagging",
                "Effect": "Allow",
                "Resource": f"{ec2}:*:instance/*",
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": owned,
                    "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                    "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster},
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]},
                },
            },
            {
                "Sid": "AllowScopedDeletion",
                "Effect": "Allow",
                "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
                "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                "Condition": {"StringEquals": owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}},
            },
        ),
        "iam-integration": document(
            {
                "Sid": "AllowPassingInstanceRole",
                "Effect": "Allow",
                "Resource": node_role_arn,
                "Action": "iam:PassRole",
                "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}},
            },
            {
                "Sid": "AllowScopedInstanceProfileCreationActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:CreateInstanceProfile"],
                "Condition": {
                    "StringEquals": {**request_owned, "aws:RequestTag/topology.kubernetes.io/region": region},
                    "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileTagActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:TagInstanceProfile"],
                "Condition": {
                    "StringEquals": {
                        **owned,
                        "aws:ResourceTag/topology.kubernetes.io/region": region,
                        **request_owned,
                        "aws:RequestTag/topology.kubernetes.io/region": region,
                    },
                    "StringLike": {
                        "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                        "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
                    },
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"],
                "Condition": {
                    "StringEquals": {**owned, "aws:ResourceTag/topology.kubernetes.io/region": region},
                    "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                },
            },
        ),
        "eks-integration": document(
            {"Sid": "AllowAPIServerEndpointDiscovery", "Effect": "Allow", "Resource": cluster_arn, "Action": "eks:DescribeCluster"}
        ),
        "interruption": document(
            {
                "Sid": "AllowInterruptionQueueActions",
                "Effect": "Allow",
                "Resource": queue_arn,
                "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            }
        ),
        "zonal-shift": document(
            {
                "Sid": "AllowZonalShiftStatusReadOnly",
                "Effect": "Allow",
                "Resource": "*",
                "Action": ["arc-zonal-shift:GetManagedResource"],
                "Condition": {"StringEquals": {"arc-zonal-shift:ResourceIdentifier": cluster_arn}},
            }
        ),
        "resource-discovery": document(
            {
                "Sid": "AllowRegionalReadActions",
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "ec2:DescribeCapacityReservations",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstanceStatus",
                    "ec2:DescribeInstanceTypeOfferings",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplates",
                    "ec2:DescribePlacementGroups",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory",
                    "ec2:DescribeSubnets",
                ],
                "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
            },
            {
                "Sid": "AllowSSMReadActions",
                "Effect": "Allow",
                "Resource": f"arn:{partition}:ssm:{region}::parameter/aws/service/*",
                "Action": "ssm:GetParameter",
            },
            {"Sid": "AllowPricingReadActions", "Effect": "Allow", "Resource": "*", "Action": "pricing:GetProducts"},
            {"Sid": "AllowUnscopedInstanceProfileListAction", "Effect": "Allow", "Resource": "*", "Action": "iam:ListInstanceProfiles"},
            {"Sid": "AllowInstanceProfileReadActions", "Effect": "Allow", "Resource": profile, "Action": "iam:GetInstanceProfile"},
        ),
    }


def interruption_queue_policy(queue_arn: str) -> dict:
    """EventBridge (and SQS itself) may deliver to the queue; nothing may use it without TLS."""
    return {
        "Version": "2012-10-17",
        "Id": "EC2InterruptionPolicy",
        "Statement": [
            {
                "Sid": "DeliverInterruptionEvents",
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


@dataclass(frozen=True)
class KarpenterPool:
    """One Karpenter NodePool and its EC2NodeClass, in Kubernetes' terms."""

    name: str
    """Pool name: the NodePool's and EC2NodeClass's name."""
    requirements: Sequence[Mapping]
    """NodeSelectorRequirements (instance family/category/generation, capacity type, arch, zone)."""
    labels: Mapping[str, str]
    """Labels of the pool's nodes."""
    taints: Sequence[Mapping[str, str]]
    """Taints of the pool's nodes (Kubernetes spelling)."""
    limits: Mapping[str, str]
    """Resource ceilings: cpu, memory, nvidia.com/gpu."""
    consolidation_policy: str
    """WhenEmpty or WhenEmptyOrUnderutilized."""
    consolidate_after: str
    """e.g. 5m."""
    budgets: Sequence[Mapping]
    """Disruption budgets."""
    expire_after: str
    """Node lifetime, e.g. 720h, or Never."""
    termination_grace_period: str
    """Longest drain before a node is removed anyway."""
    disk_size_gib: int
    """Root volume size."""
    local_nvme: bool = False
    """Put the container runtime, the kubelet's pod storage and pod logs on the nodes' local NVMe, striped
    (EC2NodeClass `instanceStorePolicy: RAID0`; nodeadm's localStorage strategy on AL2023)."""
    fast_image_pull: bool = False
    """nodeadm's FastImagePull on the nodes, through the EC2NodeClass's userData (its `kubelet` field has no
    such setting; Karpenter appends its own NodeConfig after it)."""
    weight: int | None = None
    """Preference among pools (higher first)."""
    gpu: bool = False
    """The pool launches GPU nodes: their kubelet pulls images in parallel (node_pool.node_config)."""


def node_class_spec(
    cluster_name: str,
    node_role_name: str,
    ami_alias: str,
    disk_size_gib: int,
    tags: Mapping[str, str],
    subnet_ids: Sequence[str] | None = None,
    local_nvme: bool = False,
    fast_image_pull: bool = False,
    gpu: bool = False,
) -> dict:
    """EC2NodeClass spec: pinned AMI alias, subnets found by the discovery tag (or, in a VPC the platform does not
    own, the given subnet IDs: one selector term per ID, ORed, and no tags needed on subnets it cannot tag), the
    security group by the discovery tag, IMDSv2 with hop limit 1, an encrypted gp3 root volume."""
    discovery = {"tags": {DISCOVERY_TAG: cluster_name}}
    subnets = [{"id": subnet} for subnet in subnet_ids] if subnet_ids else [discovery]
    store = {"instanceStorePolicy": "RAID0"} if local_nvme else {}
    user_data = node_config(False, fast_image_pull, gpu)
    if user_data:
        store["userData"] = user_data
    return {
        **store,
        "role": node_role_name,
        "amiSelectorTerms": [{"alias": ami_alias}],
        "subnetSelectorTerms": subnets,
        "securityGroupSelectorTerms": [discovery],
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": "/dev/xvda",
                "rootVolume": True,
                "ebs": {"volumeSize": f"{disk_size_gib}Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True},
            }
        ],
        "tags": dict(tags),
    }


def node_pool_spec(pool: KarpenterPool) -> dict:
    """NodePool spec of one pool."""
    spec: dict = {
        "template": {
            "metadata": {"labels": dict(pool.labels)},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": pool.name},
                "requirements": [dict(r) for r in pool.requirements],
                "taints": [dict(t) for t in pool.taints],
                "expireAfter": pool.expire_after,
                "terminationGracePeriod": pool.termination_grace_period,
            },
        },
        "disruption": {
            "consolidationPolicy": pool.consolidation_policy,
            "consolidateAfter": pool.consolidate_after,
            "budgets": [dict(b) for b in pool.budgets],
        },
        "limits": dict(pool.limits),
    }
    if pool.weight is not None:
        spec["weight"] = pool.weight
    return spec


def helm_values(
    cluster_name: str, queue_name: str, replicas: int, node_selector: Mapping[str, str], resources: Mapping[str, dict] | None = None
) -> dict:
    """Chart values (keys checked against ../shared/charts/karpenter/values.yaml in the tests)."""
    return {
        "settings": {"clusterName": cluster_name, "interruptionQueue": queue_name},
        # Pinned so the Pod Identity association, made for this name, always matches.
        "serviceAccount": {"name": SERVICE_ACCOUNT},
        "replicas": replicas,
        # The node's resolver (VPC DNS) rather than CoreDNS: Karpenter must work before CoreDNS has nodes
        # and while a destroy is tearing the cluster's workloads down.
        "dnsPolicy": "Default",
        # On the managed system pool: Karpenter must never run on nodes it manages itself.
        "nodeSelector": {"kubernetes.io/os": "linux", **node_selector},
        "controller": {"resources": (resources or sized(STANDARD))["karpenter"]},
        # Launch failures are alerted on (KarpenterCannotLaunch) and graphed.
        "serviceMonitor": {"enabled": True},
    }


@dataclass
class KarpenterArgs:
    cluster_name: str
    """EKS cluster name (also the discovery tag value and the queue name)."""
    cluster: pulumi.Input[str]
    """The same name as the cluster's output, so what needs the cluster to exist waits for it."""
    cluster_security_group_id: pulumi.Input[str]
    """The EKS-created cluster security group, tagged for node discovery."""
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    chart: Chart
    """Pinned Karpenter chart; its `crd_chart` (same version) installs, and upgrades, the CRDs first."""
    ami_alias: str
    """Pinned EC2NodeClass AMI alias, e.g. al2023@v20260903."""
    region: str
    """AWS region."""
    account_id: pulumi.Input[str]
    """AWS account id."""
    pools: Sequence[KarpenterPool]
    """The Karpenter pools."""
    partition: str = "aws"
    """AWS partition."""
    subnet_ids: Sequence[str] | None = None
    """Subnets of the nodes by ID (an existing VPC's private subnets); None: those tagged
    karpenter.sh/discovery=<cluster_name> (the Network component tags its private subnets)."""
    controller_replicas: int = 2
    """Controller replicas (at most the system pool's node count: the chart spreads them one per node)."""
    controller_node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where the controller runs (the system pool)."""
    resources: Mapping[str, dict] = field(default_factory=lambda: sized(STANDARD))
    """Platform container resources by name (components.resources); this component uses `karpenter`."""
    protect: bool = False
    """Protect the NodePools from deletion and replacement (prod)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources and the nodes Karpenter launches."""


class Karpenter(pulumi.ComponentResource):
    """The controller (pinned chart, on the system pool, IAM through EKS Pod Identity), its node role and access
    entry, the interruption queue with its EventBridge rules, and one EC2NodeClass and NodePool per Karpenter pool.

    Arguments: KarpenterArgs, documented field by field."""

    node_role: aws.iam.Role
    """The IAM role of the nodes Karpenter launches."""
    release: k8s.helm.v3.Release
    """The controller's Helm release."""

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        cluster = args.cluster_name

        # Nodes Karpenter launches get their own role: EKS already holds an access entry for the managed
        # node groups' role, and a principal can have only one.
        self.node_role, node_policies = node_role(name, args.partition, tags, parent=self)
        node_access = aws.eks.AccessEntry(
            f"{name}-node-access", cluster_name=args.cluster, principal_arn=self.node_role.arn, type="EC2_LINUX", tags=tags, opts=child
        )

        queue = aws.sqs.Queue(
            f"{name}-interruptions",
            name=cluster,
            message_retention_seconds=300,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-interruptions",
            queue_url=queue.url,
            policy=queue.arn.apply(lambda arn: json.dumps(interruption_queue_policy(arn))),
            opts=child,
        )
        for event, pattern in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(f"{name}-{event}", event_pattern=json.dumps(pattern), tags=tags, opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{event}", rule=rule.name, arn=queue.arn, target_id="KarpenterInterruptionQueue", opts=child)

        controller_role = aws.iam.Role(
            f"{name}-controller",
            assume_role_policy=json.dumps(iam.service_trust_policy(iam.POD_IDENTITY_SERVICE, tag_session=True)),
            tags=tags,
            opts=child,
        )
        documents = pulumi.Output.all(args.account_id, self.node_role.arn, queue.arn).apply(
            lambda values: controller_policies(cluster, args.region, values[0], args.partition, values[1], values[2])
        )
        controller_policy_attachments = []
        for policy_name in ("node-lifecycle", "iam-integration", "eks-integration", "interruption", "zonal-shift", "resource-discovery"):
            policy = aws.iam.Policy(
                f"{name}-{policy_name}",
                description=f"Karpenter controller of {cluster}: {policy_name}",
                policy=documents.apply(lambda docs, key=policy_name: json.dumps(docs[key])),
                tags=tags,
                opts=child,
            )
            controller_policy_attachments.append(
                aws.iam.RolePolicyAttachment(f"{name}-{policy_name}", role=controller_role.name, policy_arn=policy.arn, opts=child)
            )
        identity = aws.eks.PodIdentityAssociation(
            f"{name}-controller",
            cluster_name=args.cluster,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            role_arn=controller_role.arn,
            tags=tags,
            opts=child,
        )

        # Exactly one security group carries the discovery tag: several break load-balancer target sync.
        aws.ec2.Tag(f"{name}-sg-discovery", resource_id=args.cluster_security_group_id, key=DISCOVERY_TAG, value=cluster, opts=child)

        # Helm installs a chart's crds/ once and never upgrades them; the CRD chart keeps them current.
        crds = release(
            f"{name}-crds",
            Chart(args.chart.crd_chart, "", args.chart.version),
            "karpenter-crd",
            NAMESPACE,
            None,
            pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider),
            timeout=300,
        )
        self.release = release(
            f"{name}-controller",
            args.chart,
            "karpenter",
            NAMESPACE,
            queue.name.apply(
                lambda queue_name: helm_values(cluster, queue_name, args.controller_replicas, args.controller_node_selector, args.resources)
            ),
            skip_crds=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.kubernetes_provider,
                # The controller starts with working credentials, on nodes that exist (a component's
                # depends_on does not reach its children, so it is passed on here).
                depends_on=[crds, identity, *controller_policy_attachments, *inherited_depends_on(opts)],
            ),
        )

        # Custom resources only once their CRDs exist (pulumi-kubernetes #3247) and the controller that
        # reconciles them runs, so a destroy deletes them (and Karpenter terminates their nodes) first.
        after_crds = pulumi.ResourceOptions(
            parent=self, provider=args.kubernetes_provider, depends_on=[crds, self.release, node_access, *node_policies]
        )
        for pool in args.pools:
            node_class = k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}-nodeclass",
                api_version="karpenter.k8s.aws/v1",
                kind="EC2NodeClass",
                metadata={"name": pool.name},
                spec=self.node_role.name.apply(
                    lambda role, p=pool: node_class_spec(
                        cluster, role, args.ami_alias, p.disk_size_gib, tags, args.subnet_ids, p.local_nvme, p.fast_image_pull, p.gpu
                    )
                ),
                opts=after_crds,
            )
            k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}-nodepool",
                api_version="karpenter.sh/v1",
                kind="NodePool",
                metadata={"name": pool.name},
                spec=node_pool_spec(pool),
                # Deleting a NodePool terminates every node it launched: prod refuses it, like a node group.
                opts=pulumi.ResourceOptions.merge(after_crds, pulumi.ResourceOptions(depends_on=[node_class], protect=args.protect)),
            )

        self.register_outputs({"node_role_arn": self.node_role.arn})
