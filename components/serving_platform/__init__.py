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


@dataclass
class ServingPlatformArgs:
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
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
            self.alb_controller = release(
                f"{name}-alb-controller",
                args.alb_chart,
                "aws-load-balancer-controller",
                "kube-system",
                pulumi.Output.from_input(args.vpc_id).apply(
                    lambda vpc: alb_values(args.cluster_name, args.region, vpc, args.node_selector, args.alb_replicas, args.resources)
                ),
                pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider, depends_on=[identity, attachment, *waits]),
            )
        self.register_outputs({})
