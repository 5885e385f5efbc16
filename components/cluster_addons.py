"""ClusterAddons: what every cluster needs once it has nodes. CoreDNS and the EBS CSI driver (EKS add-ons, the
driver with its Pod Identity role), the encrypted gp3 default StorageClass, and metrics-server, which serves
the resource metrics API (`metrics.k8s.io`) that every HPA on CPU or memory reads and EKS does not install
(EKS user guide, "View resource usage with the Kubernetes Metrics Server"). Created after the system pool."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from ml_platform.components import iam
from ml_platform.components.helm import Chart, release
from ml_platform.components.options import inherited_depends_on
from ml_platform.components.resources import STANDARD, sized

TYPE = "mlplatform:aws:ClusterAddons"

EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
EBS_CSI_MANAGED_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
STORAGE_CLASS = "gp3"
METRICS_SERVER_NAMESPACE = "kube-system"


def ebs_kms_policy(kms_key_arn: str) -> dict:
    """What the EBS CSI driver needs to create and attach volumes encrypted with a customer-managed key."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GrantsForEbs",
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": kms_key_arn,
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
            {
                "Sid": "UseKeyForVolumes",
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": kms_key_arn,
            },
        ],
    }


def storage_class(kms_key_arn: str, reclaim_policy: str) -> dict:
    """The cluster's default StorageClass: gp3, encrypted with the platform key, bound where the pod lands."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3", "encrypted": "true", "kmsKeyId": kms_key_arn, "fsType": "ext4"},
        # A volume in another AZ than the pod's node can never attach.
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
        "reclaimPolicy": reclaim_policy,
    }


def metrics_server_values(replicas: int, node_selector: Mapping[str, str], resources: Mapping[str, dict] | None = None) -> dict:
    """metrics-server chart values (keys checked against ../shared/charts/metrics-server/values.yaml).

    Its APIService is an aggregated API: while no replica answers, every HPA on CPU reports
    `FailedGetResourceMetric` and API discovery of `metrics.k8s.io` fails, which also stalls namespace
    deletion. So: more than one replica wherever the system pool has the nodes, spread over nodes, with a
    disruption budget, on the system pool."""
    values: dict = {
        "replicas": replicas,
        "nodeSelector": dict(node_selector),
        "resources": (resources or sized(STANDARD))["metrics-server"],
        "podDisruptionBudget": {"enabled": replicas > 1, "maxUnavailable": 1},
    }
    if replicas > 1:
        values["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "metrics-server"}},
            }
        ]
    return values


@dataclass
class ClusterAddonsArgs:
    cluster_name: pulumi.Input[str]
    """Cluster to install into."""
    addon_versions: Mapping[str, str]
    """Pinned versions; needs `coredns` and `aws-ebs-csi-driver`."""
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    volume_kms_key_arn: pulumi.Input[str]
    """KMS key encrypting persistent volumes."""
    metrics_server_chart: Chart
    """Pinned metrics-server chart."""
    metrics_server_replicas: int = 1
    """metrics-server replicas (at most the system pool's node count; more than one keeps the API up)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where metrics-server runs (the system pool)."""
    resources: Mapping[str, dict] = field(default_factory=lambda: sized(STANDARD))
    """Platform container resources by name (components.resources); this component uses `metrics-server`."""
    partition: str = "aws"
    """AWS partition."""
    retain_volumes: bool = False
    """Keep a volume's data when its claim is deleted (prod)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""


class ClusterAddons(pulumi.ComponentResource):
    """What every cluster needs once it has nodes. CoreDNS and the EBS CSI driver (EKS add-ons, the driver with its
    Pod Identity role), the encrypted gp3 default StorageClass, and metrics-server, which serves the resource
    metrics API (`metrics.k8s.io`) that every HPA on CPU or memory reads and EKS does not install (EKS user guide,
    "View resource usage with the Kubernetes Metrics Server"). Created after the system pool.

    Arguments: ClusterAddonsArgs, documented field by field."""

    coredns: aws.eks.Addon
    """The CoreDNS add-on: what a controller resolving names through the cluster's DNS waits for (and, on
    destroy, is deleted after)."""
    storage: list[pulumi.Resource]
    """The EBS CSI driver and the gp3 StorageClass: what a pod with a persistent volume waits for."""
    metrics_server: k8s.helm.v3.Release
    """The metrics-server release (the resource metrics API)."""

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # A component's depends_on does not reach its children: the add-ons themselves wait (for nodes).
        after = pulumi.ResourceOptions(parent=self, depends_on=inherited_depends_on(opts))
        tags = dict(args.tags)

        self.coredns = aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=args.cluster_name,
            addon_name="coredns",
            addon_version=args.addon_versions["coredns"],
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=after,
        )

        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi",
            assume_role_policy=json.dumps(iam.service_trust_policy(iam.POD_IDENTITY_SERVICE, tag_session=True)),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi", role=ebs_role.name, policy_arn=f"arn:{args.partition}:iam::aws:policy/{EBS_CSI_MANAGED_POLICY}", opts=child
        )
        kms_policy = aws.iam.RolePolicy(
            f"{name}-ebs-csi-kms",
            role=ebs_role.id,
            policy=pulumi.Output.from_input(args.volume_kms_key_arn).apply(lambda arn: json.dumps(ebs_kms_policy(arn))),
            opts=child,
        )
        ebs = aws.eks.Addon(
            f"{name}-aws-ebs-csi-driver",
            cluster_name=args.cluster_name,
            addon_name="aws-ebs-csi-driver",
            addon_version=args.addon_versions["aws-ebs-csi-driver"],
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            pod_identity_associations=[
                aws.eks.AddonPodIdentityAssociationArgs(role_arn=ebs_role.arn, service_account=EBS_CSI_SERVICE_ACCOUNT)
            ],
            tags=tags,
            opts=pulumi.ResourceOptions.merge(after, pulumi.ResourceOptions(depends_on=[kms_policy])),
        )

        manifest = pulumi.Output.from_input(args.volume_kms_key_arn).apply(
            lambda arn: storage_class(arn, "Retain" if args.retain_volumes else "Delete")
        )
        gp3 = k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata=manifest["metadata"],
            provisioner=manifest["provisioner"],
            parameters=manifest["parameters"],
            volume_binding_mode=manifest["volumeBindingMode"],
            allow_volume_expansion=manifest["allowVolumeExpansion"],
            reclaim_policy=manifest["reclaimPolicy"],
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.kubernetes_provider,
                depends_on=[ebs],
                # The API server refuses to change these on a StorageClass (ValidateStorageClassUpdate), and the
                # provider would try an update: replace it instead, deleting the old first since the name stays.
                # Bound volumes keep their own reclaim policy.
                replace_on_changes=["reclaimPolicy", "volumeBindingMode"],
                delete_before_replace=True,
            ),
        )

        self.storage = [ebs, gp3]
        self.metrics_server = release(
            f"{name}-metrics-server",
            args.metrics_server_chart,
            "metrics-server",
            METRICS_SERVER_NAMESPACE,
            metrics_server_values(args.metrics_server_replicas, args.node_selector, args.resources),
            pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider, depends_on=inherited_depends_on(opts)),
        )
        self.register_outputs({})
