"""Pinned Helm charts and how the platform installs them.

Charts go in with `kubernetes.helm.v3.Release`, not `helm.v4.Chart`: v4 skips Helm hooks, and charts such
as kube-prometheus-stack make their admission webhook's certificate in a hook job (pulumi-kubernetes #3284).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ml_platform.components.images import merge


@dataclass(frozen=True)
class Chart:
    """A pinned Helm chart: where it comes from and which version."""

    name: str
    """Chart name, or a full oci:// reference when `repository` is empty."""
    repository: str
    """An https chart repository, or "" for an oci:// name."""
    version: str
    """The pinned chart version (never a range)."""
    crd_chart: str = ""
    """The chart's CRDs as their own chart of the same version, installed first and upgraded with it (Helm never
    upgrades a chart's crds/); "" when none."""
    values: Mapping[str, Any] = field(default_factory=dict)
    """Values the stack lays over the component's (where the chart's images come from: components/images.py)."""


def release(
    resource_name: str,
    chart: Chart,
    release_name: str,
    namespace: str,
    values: pulumi.Input[dict[str, Any]] | None,
    opts: pulumi.ResourceOptions,
    timeout: int = 600,
    **extra: Any,
) -> k8s.helm.v3.Release:
    """A release of a pinned chart under a fixed release name (so service accounts and services have
    predictable names), waiting up to `timeout` seconds for its resources."""
    if chart.values:
        values = pulumi.Output.from_input(values).apply(lambda own: merge(own or {}, chart.values))
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name,
        chart=chart.name,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository) if chart.repository else None,
        namespace=namespace,
        values=values,
        timeout=timeout,
        opts=opts,
        **extra,
    )
