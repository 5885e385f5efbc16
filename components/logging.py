"""Logging: Fluent Bit (the pinned aws-for-fluent-bit chart) shipping container logs to CloudWatch Logs, one
log group per namespace, so each model server's logs have their own group.

Every group Fluent Bit writes to is declared here, with its retention (and the data key in prod), so it is in
state, encrypted where it must be, and removed by `pulumi destroy` (or kept, in prod): one per shipped
namespace, and `unlabelled` for records the Kubernetes filter could not give metadata (its API lookup
failed), which Fluent Bit sends to the output's `log_group_name`. Fluent Bit may not create groups (no
`logs:CreateLogGroup`, `autoCreateGroup` off): it tails only the log files of the shipped namespaces
(`/var/log/containers/<pod>_<namespace>_<container>-<id>.log`), and a namespace outside them (a team's
`apps`) is shipped once it is listed in `monitoring.logNamespaces`. Namespace previews declare their own
group and are tailed by the `pr-*` pattern outside prod."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from ml_platform.components.helm import Chart, release
from ml_platform.components.options import inherited_depends_on
from ml_platform.components.pod_identity import pod_identity_role
from ml_platform.components.resources import STANDARD, sized

TYPE = "mlplatform:aws:Logging"

NAMESPACE = "logging"
SERVICE_ACCOUNT = "fluent-bit"


def log_group_prefix(cluster_name: str) -> str:
    return f"/ml-platform/{cluster_name}"


UNLABELLED = "unlabelled"
# Where the kubelet links every container's log: /var/log/containers/<pod>_<namespace>_<container>-<id>.log.
CONTAINER_LOGS = "/var/log/containers/*_{namespace}_*.log"


def shipping_policy(region: str, account: str, prefix: str, partition: str = "aws") -> dict:
    """Write streams and events to this stack's declared log groups; never create a group."""
    groups = f"arn:{partition}:logs:{region}:{account}:log-group:{prefix}/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ShipToStackGroups",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [groups, f"{groups}:*"],
            },
        ],
    }


def tail_path(namespaces: Sequence[str]) -> str:
    """Fluent Bit's tail input path: the log files of these namespaces (or namespace patterns) only."""
    return ",".join(CONTAINER_LOGS.format(namespace=namespace) for namespace in sorted(set(namespaces)))


def values(region: str, prefix: str, namespaces: Sequence[str], resources: Mapping[str, dict] | None = None) -> dict:
    """Chart values (keys checked against ../shared/charts/aws-for-fluent-bit/values.yaml in the tests)."""
    return {
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
        "input": {"path": tail_path(namespaces)},
        "cloudWatchLogs": {
            "enabled": True,
            "region": region,
            # Records without Kubernetes metadata (the template cannot resolve) go here.
            "logGroupName": f"{prefix}/{UNLABELLED}",
            "logGroupTemplate": f"{prefix}/$kubernetes['namespace_name']",
            "logStreamTemplate": "$kubernetes['pod_name'].$kubernetes['container_name']",
            # Every group is declared by the program: one Fluent Bit made would be outside state, unencrypted.
            "autoCreateGroup": False,
        },
        # GPU nodes are tainted; logs from every node are needed.
        "tolerations": [{"operator": "Exists"}],
        "serviceMonitor": {"enabled": True},
        "resources": (resources or sized(STANDARD))["fluent-bit"],
    }


@dataclass
class LoggingArgs:
    cluster_name: str
    """EKS cluster name (names the log groups)."""
    cluster: pulumi.Input[str]
    """The cluster's name as its output (the Pod Identity association waits for the cluster)."""
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    chart: Chart
    """Pinned aws-for-fluent-bit chart."""
    region: str
    """AWS region."""
    account_id: str
    """AWS account id."""
    namespaces: Sequence[str]
    """Namespaces whose logs are shipped, each to a group declared here (platform, model and listed namespaces)."""
    namespace_patterns: Sequence[str] = ()
    """Namespace globs also tailed whose groups are declared elsewhere (`pr-*`: namespace previews declare theirs)."""
    retention_days: int = 30
    """Retention of every group."""
    kms_key_arn: pulumi.Input[str] | None = None
    """KMS key encrypting the declared groups (prod); None uses CloudWatch's own encryption."""
    partition: str = "aws"
    """AWS partition."""
    protect: bool = False
    """Keep the groups' logs when the stack goes (prod)."""
    resources: Mapping[str, dict] = field(default_factory=lambda: sized(STANDARD))
    """Platform container resources by name (components.resources); this component uses `fluent-bit`."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""


class Logging(pulumi.ComponentResource):
    """Fluent Bit (the pinned aws-for-fluent-bit chart) shipping container logs to CloudWatch Logs, one log group
    per namespace, so each model server's logs have their own group.

    Arguments: LoggingArgs, documented field by field."""

    def __init__(self, name: str, args: LoggingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        prefix = log_group_prefix(args.cluster_name)
        groups = []
        for namespace in sorted({*args.namespaces, UNLABELLED}):
            group = aws.cloudwatch.LogGroup(
                f"{name}-{namespace}",
                name=f"{prefix}/{namespace}",
                retention_in_days=args.retention_days,
                kms_key_id=args.kms_key_arn,
                tags=dict(args.tags),
                # Prod keeps its logs (audit) even if the stack is destroyed.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=args.protect),
            )
            groups.append(group)
        identity = pod_identity_role(
            f"{name}-fluent-bit",
            args.cluster,
            NAMESPACE,
            SERVICE_ACCOUNT,
            json.dumps(shipping_policy(args.region, args.account_id, prefix, args.partition)),
            parent=self,
            tags=args.tags,
        )
        release(
            f"{name}-fluent-bit",
            args.chart,
            "aws-for-fluent-bit",
            NAMESPACE,
            values(args.region, prefix, [*args.namespaces, *args.namespace_patterns], args.resources),
            pulumi.ResourceOptions(
                parent=self,
                provider=args.kubernetes_provider,
                # Credentials are added when a pod is created: the association comes first; and the declared groups,
                # so Fluent Bit never races to create one of them itself.
                depends_on=[*identity, *groups, *inherited_depends_on(opts)],
            ),
            create_namespace=True,
        )
        self.register_outputs({})
