"""Every pinned version the platform deploys, exported as the stack's `versions` output so a stack can be
reproduced exactly. Nothing here floats: no `latest`, no `@latest` AMI alias.

- Per Kubernetes version (add-on builds, AMI release, support dates): the data file
  infra/kubernetes-versions.yaml, each pin with its source and the date it was read, validated when loaded here
  (infra/kubernetes_versions.py) and by tests/unit/test_kubernetes_versions.py. Adding a version is a data change.
- Charts (below): the versions whose default values are in ../shared/charts/<chart>/ (Chart.yaml), so every
  values key the program sets is checked against the pinned chart's defaults.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import asdict, dataclass, replace

import botocore.session

from ml_platform.components.helm import Chart
from ml_platform.infra.kubernetes_versions import ADDONS, VERSIONS_FILE, KubernetesVersions, VersionsFileError, load_versions


@dataclass(frozen=True)
class EksRelease:
    """What runs with one Kubernetes minor version."""

    kubernetes: str
    addons: dict[str, str]
    ami_release: str  # EKS managed node group `releaseVersion` for every AL2023 AMI type

    @property
    def ami_alias(self) -> str:
        """Karpenter EC2NodeClass alias of the same AMI release: `al2023@vYYYYMMDD`."""
        return f"al2023@v{self.ami_release.rsplit('-', 1)[1]}"


CHARTS: dict[str, Chart] = {
    "karpenter": Chart("oci://public.ecr.aws/karpenter/karpenter", "", "1.14.1", crd_chart="oci://public.ecr.aws/karpenter/karpenter-crd"),
    "nvidia-device-plugin": Chart("nvidia-device-plugin", "https://nvidia.github.io/k8s-device-plugin", "0.20.0"),
    "dcgm-exporter": Chart("dcgm-exporter", "https://nvidia.github.io/dcgm-exporter/helm-charts", "4.8.2"),
    "keda": Chart("keda", "https://kedacore.github.io/charts", "2.20.2"),
    "aws-load-balancer-controller": Chart("aws-load-balancer-controller", "https://aws.github.io/eks-charts", "3.5.0"),
    "kube-prometheus-stack": Chart("kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts", "88.5.3"),
    # The CRDs of Prometheus operator v0.93.1, the operator of kube-prometheus-stack 88.5.3 (same names, versions
    # and bodies): move the two together.
    "prometheus-operator-crds": Chart("prometheus-operator-crds", "https://prometheus-community.github.io/helm-charts", "31.0.1"),
    "aws-for-fluent-bit": Chart("aws-for-fluent-bit", "https://aws.github.io/eks-charts", "0.2.0"),
    "metrics-server": Chart("metrics-server", "https://kubernetes-sigs.github.io/metrics-server/", "3.13.1"),
    # Where the models' monitor jobs publish drift and quality (components/pushgateway.py).
    "prometheus-pushgateway": Chart("prometheus-pushgateway", "https://prometheus-community.github.io/helm-charts", "3.8.0"),
}

# Images the platform itself runs (model images are the stack config's). AWS CLI v2 reads EKS Pod Identity
# credentials from 2.15.0 on.
LOADER_IMAGE = ("public.ecr.aws/aws-cli/aws-cli", "2.37.11")


def releases(kubernetes: KubernetesVersions) -> dict[str, EksRelease]:
    """The EksRelease of every version in the data file."""
    return {
        key: EksRelease(
            kubernetes=key, addons={name: pin.version for name, pin in entry.addons.items()}, ami_release=entry.amiRelease.version
        )
        for key, entry in kubernetes.versions.items()
    }


KUBERNETES = load_versions()
EKS_RELEASES: dict[str, EksRelease] = releases(KUBERNETES)
DEFAULT_KUBERNETES_VERSION = KUBERNETES.default


def support_warning(kubernetes_version: str, today: datetime.date) -> str | None:
    """A warning when `kubernetes_version` is within 90 days of, or past, the end of EKS standard support: with
    the cluster's upgrade policy STANDARD, EKS then upgrades the control plane by itself (EKS user guide,
    "Cluster upgrade policy"). None otherwise."""
    entry = KUBERNETES.versions[kubernetes_version]
    left = (entry.standardSupportUntil - today).days
    if left > 90:
        return None
    when = f"ended on {entry.standardSupportUntil}" if left < 0 else f"ends on {entry.standardSupportUntil} (in {left} days)"
    return (
        f"cluster.version {kubernetes_version}: EKS standard support {when}; with upgrade policy STANDARD EKS then "
        "upgrades the control plane itself: add the next version to infra/kubernetes-versions.yaml and move cluster.version"
    )


@functools.cache
def eks_regions() -> tuple[str, ...]:
    """Regions with an EKS endpoint in the pinned botocore's endpoint data."""
    return tuple(botocore.session.get_session().get_available_regions("eks"))


def resolve(
    kubernetes_version: str, addons: dict[str, str], ami_release: str | None, charts: dict[str, str]
) -> tuple[EksRelease, dict[str, Chart]]:
    """The versions a stack runs: this module's pins, overridden by the stack's `pins` config (which
    `python -m infra reproduce` writes, so a copy of staging runs exactly staging's versions)."""
    pinned = EKS_RELEASES[kubernetes_version]
    release = EksRelease(kubernetes_version, {**pinned.addons, **addons}, ami_release or pinned.ami_release)
    return release, {key: replace(chart, version=charts.get(key, chart.version)) for key, chart in CHARTS.items()}


def versions_output(release: EksRelease, charts: dict[str, Chart]) -> dict:
    """The stack's `versions` output: everything pinned that this stack runs."""
    return {
        "eks": {**asdict(release), "ami_alias": release.ami_alias},
        "charts": {
            key: {"name": chart.name, "repository": chart.repository, "version": chart.version, "crd_chart": chart.crd_chart}
            for key, chart in sorted(charts.items())
        },
    }


__all__ = [
    "ADDONS",
    "CHARTS",
    "DEFAULT_KUBERNETES_VERSION",
    "EKS_RELEASES",
    "KUBERNETES",
    "LOADER_IMAGE",
    "VERSIONS_FILE",
    "EksRelease",
    "VersionsFileError",
    "eks_regions",
    "load_versions",
    "releases",
    "resolve",
    "support_warning",
    "versions_output",
]
