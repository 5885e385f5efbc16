"""PreviewNamespace: the place of a namespace-mode pull-request preview in another stack's cluster: a
Kubernetes provider for that cluster, the namespace the preview's models share, and its log group (so the
preview's logs go when it does)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from ml_platform.components.model_service import namespace as model_namespace

TYPE = "mlplatform:k8s:PreviewNamespace"
EXPIRES_ANNOTATION = "ml-platform/expires-at"


@dataclass
class PreviewNamespaceArgs:
    kubeconfig: pulumi.Input[str]
    """Kubeconfig of the cluster the preview runs in (the base stack's `kubeconfig` output)."""
    namespace: str
    """Namespace of the preview's models (`pr-<number>`)."""
    log_group_name: pulumi.Input[str]
    """CloudWatch log group Fluent Bit ships the namespace's logs to."""
    log_retention_days: int
    """Retention of that log group."""
    expires_at: str
    """When the preview expires (UTC), written on the namespace for whoever finds it in the cluster."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra namespace labels."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""


class PreviewNamespace(pulumi.ComponentResource):
    """The place of a namespace-mode pull-request preview in another stack's cluster: a Kubernetes provider for that
    cluster, the namespace the preview's models share, and its log group (so the preview's logs go when it does).

    Arguments: PreviewNamespaceArgs, documented field by field."""

    provider: k8s.Provider
    """A Kubernetes provider for the base stack's cluster."""
    namespace: k8s.core.v1.Namespace
    """The preview's namespace, shared by its models."""

    def __init__(self, name: str, args: PreviewNamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=args.kubeconfig, enable_server_side_apply=True, opts=pulumi.ResourceOptions(parent=self)
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=args.log_group_name,
            retention_in_days=args.log_retention_days,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        metadata = model_namespace(args.namespace, args.labels)["metadata"]
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={**metadata, "annotations": {EXPIRES_ANNOTATION: args.expires_at}},
            # On destroy the namespace, with every pod in it, is gone before its log group: Fluent Bit would
            # otherwise create the group again from the last lines and block the next preview of this number.
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[logs]),
        )
        self.register_outputs({"namespace": args.namespace})
