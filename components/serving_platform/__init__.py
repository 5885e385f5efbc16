"""ServingPlatform: what model services share. KEDA (autoscaling on queue metrics, pinned chart) always; the
AWS Load Balancer Controller (pinned chart, its reference IAM policy through Pod Identity) when a model
is exposed through an ALB."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from ml_platform.components import iam
from ml_platform.components.helm import Chart, release
from ml_platform.components.options import inherited_depends_on
from ml_platform.components.resources import STANDARD, sized

TYPE = "mlplatform:k8s:ServingPlatform"

KEDA_NAMESPACE = "keda"
ALB_SERVICE_ACCOUNT = "aws-load-balancer-controller"
# The controller's reference IAM policy changes with its releases, so one file per chart version sits beside
# this module: `aws-load-balancer-controller-<chart version>.iam-policy.json`, verbatim from
# kubernetes-sigs/aws-load-balancer-controller docs/install/iam_policy.json at the chart's appVersion
# (3.5.0: v3.5.0, commit 11eb202c). A chart pin without its file is a config error (infra/program.py).
ALB_POLICY_PATTERN = "aws-load-balancer-controller-{version}.iam-policy.json"


def alb_policy_versions() -> list[str]:
    """Chart versions of the AWS Load Balancer Controller that have their IAM policy here."""
    prefix, suffix = ALB_POLICY_PATTERN.split("{version}")
    files = Path(__file__).parent.glob(ALB_POLICY_PATTERN.format(version="*"))
    return sorted(p.name.removeprefix(prefix).removesuffix(suffix) for p in files)


def alb_controller_policy(chart_version: str) -> dict:
    """The controller's IAM policy for a chart version; raises KeyError when this repository has none."""
    path = Path(__file__).parent / ALB_POLICY_PATTERN.format(version=chart_version)
    if not path.exists():
        raise KeyError(f"no IAM policy for aws-load-balancer-controller chart {chart_version} (have: {', '.join(alb_policy_versions())})")
    return json.loads(path.read_text())


def keda_values(node_selector: Mapping[str, str], resources: Mapping[str, dict] | None = None) -> dict:
    table = resources or sized(STANDARD)
    return {
        "nodeSelector": dict(node_selector),
        "resources": {
            "operator": table["keda-operator"],
            "metricServer": table["keda-metrics-apiserver"],
            "webhooks": table["keda-webhooks"],
        },
    }


def alb_values(
    cluster_name: str,
    region: str,
    vpc_id: str,
    node_selector: Mapping[str, str],
    replicas: int = 2,
    resources: Mapping[str, dict] | None = None,
) -> dict:
    """Region and VPC are given explicitly: with the IMDS hop limit of 1, pods cannot ask the node."""
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "serviceAccount": {"name": ALB_SERVICE_ACCOUNT},
        "nodeSelector": dict(node_selector),
        "createIngressClassResource": True,
        "ingressClass": "alb",
        # Its webhook catches every Service creation cluster-wide and fails them while the controller is down;
        # nothing here uses Services of type LoadBalancer.
        "enableServiceMutatorWebhook": False,
        # The chart's default is 2 replicas: no more than the system pool has nodes for.
        "replicaCount": replicas,
        "resources": (resources or sized(STANDARD))["aws-load-balancer-controller"],
    }


# The controller's CRDs at a chart version (its appVersion tag; the chart's crds/ holds the same files, which
# Helm installs once and never upgrades). Source: kubernetes-sigs/aws-load-balancer-controller, tag v3.5.0,
# helm/aws-load-balancer-controller/crds/ (the same git blobs as aws/eks-charts' chart 3.5.0).
ALB_CRD_URL = "https://raw.githubusercontent.com/kubernetes-sigs/aws-load-balancer-controller/v{version}/helm/aws-load-balancer-controller/crds/{file}"
ALB_CRD_FILES = ("crds.yaml", "gateway-crds.yaml")


def alb_crd_urls(chart_version: str) -> list[str]:
    """The load balancer controller's CRD files at a chart version (chart and controller versions are equal
    from 3.0 on), applied by Pulumi so that a chart bump updates them (Helm never upgrades a chart's crds/)."""
    return [ALB_CRD_URL.format(version=chart_version, file=file) for file in ALB_CRD_FILES]


@dataclass
class ServingPlatformArgs:
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    kubeconfig: pulumi.Input[str]
    """The cluster's kubeconfig, for the provider that applies the load balancer controller's CRDs."""
    cluster_name: str
    """EKS cluster name."""
    cluster: pulumi.Input[str]
    """The cluster's name as its output, so the Pod Identity association waits for the cluster."""
    region: str
    """AWS region."""
    vpc_id: pulumi.Input[str]
    """VPC of the load balancers."""
    keda_chart: Chart
    """Pinned KEDA chart."""
    alb_chart: Chart
    """Pinned AWS Load Balancer Controller chart."""
    alb_controller: bool = False
    """Install the load balancer controller (some model is exposed through an ALB)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where the controllers run (the system pool)."""
    alb_replicas: int = 2
    """Load balancer controller replicas (at most the system pool's node count)."""
    resources: Mapping[str, dict] = field(default_factory=lambda: sized(STANDARD))
    """Platform container resources by name (components.resources); this component uses `keda-operator`,
    `keda-metrics-apiserver`, `keda-webhooks` and `aws-load-balancer-controller`."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""


class ServingPlatform(pulumi.ComponentResource):
    """What model services share. KEDA (autoscaling on queue metrics, pinned chart) always; the AWS Load Balancer
    Controller (pinned chart, its reference IAM policy through Pod Identity) when a model is exposed through an ALB.

    Arguments: ServingPlatformArgs, documented field by field."""

    keda: k8s.helm.v3.Release
    """The KEDA release (its CRDs with it)."""
    alb_controller: k8s.helm.v3.Release | None
    """The AWS Load Balancer Controller release; None when no model uses an ALB."""

    def __init__(self, name: str, args: ServingPlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        waits = inherited_depends_on(opts)
        self.keda = release(
            f"{name}-keda",
            args.keda_chart,
            "keda",
            KEDA_NAMESPACE,
            keda_values(args.node_selector, args.resources),
            pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider, depends_on=waits),
            create_namespace=True,
        )

        self.alb_controller = None
        if args.alb_controller:
            role = aws.iam.Role(
                f"{name}-alb-controller",
                assume_role_policy=json.dumps(iam.service_trust_policy(iam.POD_IDENTITY_SERVICE, tag_session=True)),
                tags=dict(args.tags),
                opts=child,
            )
            policy = aws.iam.Policy(
                f"{name}-alb-controller",
                description=f"AWS Load Balancer Controller of {args.cluster_name} (reference policy v{args.alb_chart.version})",
                policy=json.dumps(alb_controller_policy(args.alb_chart.version)),
                tags=dict(args.tags),
                opts=child,
            )
            attachment = aws.iam.RolePolicyAttachment(f"{name}-alb-controller", role=role.name, policy_arn=policy.arn, opts=child)
            identity = aws.eks.PodIdentityAssociation(
                f"{name}-alb-controller",
                cluster_name=args.cluster,
                namespace="kube-system",
                service_account=ALB_SERVICE_ACCOUNT,
                role_arn=role.arn,
                tags=dict(args.tags),
                opts=child,
            )
            # The CRDs from the controller's release files at the pinned version, applied by Pulumi (server-side):
            # a chart bump changes the URLs and so updates them, which the chart's crds/ never would. Their own
            # provider adopts the CRDs a stack already has from an earlier Helm install (upsert, forcing the
            # fields Helm set) without letting any other resource adopt what it finds. When the last ALB model
            # goes, its Ingress goes first (the controller removes its TargetGroupBindings), then the release,
            # then the CRDs.
            crd_provider = k8s.Provider(
                f"{name}-alb-crds-k8s",
                kubeconfig=args.kubeconfig,
                enable_server_side_apply=True,
                upsert_existing_objects=True,
                enable_patch_force=True,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.kubernetes_provider]),
            )
            # One group for both files: a CRD that moves from one file to the other in a later release keeps its
            # URN, so a chart bump never deletes and recreates it (which would delete its custom resources).
            crds = k8s.yaml.v2.ConfigGroup(
                f"{name}-alb-crds",
                files=alb_crd_urls(args.alb_chart.version),
                opts=pulumi.ResourceOptions(parent=self, provider=crd_provider),
            )
            self.alb_controller = release(
                f"{name}-alb-controller",
                args.alb_chart,
                "aws-load-balancer-controller",
                "kube-system",
                pulumi.Output.from_input(args.vpc_id).apply(
                    lambda vpc: alb_values(args.cluster_name, args.region, vpc, args.node_selector, args.alb_replicas, args.resources)
                ),
                pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider, depends_on=[identity, attachment, crds, *waits]),
                skip_crds=True,
            )
        self.register_outputs({})
