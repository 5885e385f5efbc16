"""Where the pinned charts' images come from, and how a stack redirects them: through an ECR pull-through
cache of their upstream registry, and by digest.

Anonymous docker.io pulls are rate-limited per NAT address, and every public registry is a dependency of
each node launch. ECR pull-through caches serve ECR Public, quay.io and registry.k8s.io without a credential,
and Docker Hub, ghcr.io and gitlab.com with one; nvcr.io has none (ECR user guide, "Sync an upstream registry
with an Amazon ECR private registry"). A cached image is `<registry>/<cache prefix>/<upstream repository>`.

`CHART_IMAGES` is every image the platform's charts run at their pinned versions (found by rendering each
chart with `helm template` and the program's values, 2026-11-29), with the values key of its image map and
how that map spells the image: `full` (`repository: host/path`) or `split` (`registry` + `repository`). Only
registry and repository are set here; tags stay the chart's, so a chart pin moves them. `digest_key` is the
key that pins a digest where the chart has one, with `hex` when the chart adds the `sha256:` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChartImage:
    chart: str
    path: str
    """Values path of the image map."""
    style: str
    """`full`: the map's `repository` includes the registry host; `split`: `registry` and `repository`."""
    upstream: str
    """Registry host the chart pulls from."""
    repository: str
    """Repository path on that host."""
    digest_key: str | None = None
    """Key in the image map that pins a digest, or None where the chart takes none."""
    hex: bool = False
    """The digest key takes the bare hex (the chart writes `sha256:`)."""


CHART_IMAGES: dict[str, ChartImage] = {
    "metrics-server": ChartImage("metrics-server", "image", "full", "registry.k8s.io", "metrics-server/metrics-server"),
    "fluent-bit": ChartImage("aws-for-fluent-bit", "image", "full", "public.ecr.aws", "aws-observability/aws-for-fluent-bit"),
    "dcgm-exporter": ChartImage("dcgm-exporter", "image", "full", "nvcr.io", "nvidia/k8s/dcgm-exporter"),
    "nvidia-device-plugin": ChartImage("nvidia-device-plugin", "image", "full", "nvcr.io", "nvidia/k8s-device-plugin"),
    "aws-load-balancer-controller": ChartImage(
        "aws-load-balancer-controller", "image", "full", "public.ecr.aws", "eks/aws-load-balancer-controller"
    ),
    # The chart's release process sets the controller's digest (../shared/charts/SOURCES.md).
    "karpenter": ChartImage("karpenter", "controller.image", "full", "public.ecr.aws", "karpenter/controller", "digest"),
    "keda": ChartImage("keda", "image.keda", "split", "ghcr.io", "kedacore/keda"),
    "keda-metrics-apiserver": ChartImage("keda", "image.metricsApiServer", "split", "ghcr.io", "kedacore/keda-metrics-apiserver"),
    "keda-admission-webhooks": ChartImage("keda", "image.webhooks", "split", "ghcr.io", "kedacore/keda-admission-webhooks"),
    "prometheus-operator": ChartImage(
        "kube-prometheus-stack", "prometheusOperator.image", "split", "quay.io", "prometheus-operator/prometheus-operator", "sha", True
    ),
    "prometheus-config-reloader": ChartImage(
        "kube-prometheus-stack",
        "prometheusOperator.prometheusConfigReloader.image",
        "split",
        "quay.io",
        "prometheus-operator/prometheus-config-reloader",
        "sha",
        True,
    ),
    "prometheus": ChartImage(
        "kube-prometheus-stack", "prometheus.prometheusSpec.image", "split", "quay.io", "prometheus/prometheus", "sha", True
    ),
    "alertmanager": ChartImage(
        "kube-prometheus-stack", "alertmanager.alertmanagerSpec.image", "split", "quay.io", "prometheus/alertmanager", "sha", True
    ),
    "kube-webhook-certgen": ChartImage(
        "kube-prometheus-stack",
        "prometheusOperator.admissionWebhooks.patch.image",
        "split",
        "ghcr.io",
        "jkroepke/kube-webhook-certgen",
        "sha",
        True,
    ),
    "grafana": ChartImage("kube-prometheus-stack", "grafana.image", "split", "docker.io", "grafana/grafana", "sha", True),
    "grafana-sidecar": ChartImage(
        "kube-prometheus-stack", "grafana.sidecar.image", "split", "quay.io", "kiwigrid/k8s-sidecar", "sha", True
    ),
    "kube-state-metrics": ChartImage(
        "kube-prometheus-stack", "kube-state-metrics.image", "split", "registry.k8s.io", "kube-state-metrics/kube-state-metrics", "sha"
    ),
    "node-exporter": ChartImage(
        "kube-prometheus-stack", "prometheus-node-exporter.image", "split", "quay.io", "prometheus/node-exporter", "digest"
    ),
    # The chart writes `[registry/]repository:tag` and takes no digest.
    "pushgateway": ChartImage("prometheus-pushgateway", "image", "full", "quay.io", "prometheus/pushgateway"),
}


def image_values(image: ChartImage, location: str | None, digest: str | None) -> dict:
    """The image map's values: pulled from `location` (`<registry host>/<repository path>`: a pull-through
    cache's copy or a mirror; None for the chart's upstream) and pinned to `digest` (`sha256:...`, None for
    the chart's tag alone)."""
    fields: dict[str, Any] = {}
    if location is not None:
        host, _, path = location.partition("/")
        fields |= {"repository": location} if image.style == "full" else {"registry": host, "repository": path}
    if digest is not None and image.digest_key is not None:
        fields[image.digest_key] = digest.removeprefix("sha256:") if image.hex else digest
    values: dict[str, Any] = fields
    for key in reversed(image.path.split(".")):
        values = {key: values}
    return values if fields else {}


def merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict:
    """`patch` laid over `base` map by map, as Helm merges values."""
    merged = dict(base)
    for key, value in patch.items():
        merged[key] = merge(merged[key], value) if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) else value
    return merged
