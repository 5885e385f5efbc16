"""Every pinned version the platform deploys, in one place, exported as the stack's `versions` output so a
stack can be reproduced exactly. Nothing here floats: no `latest`, no `@latest` AMI alias.

Sources (checked 2026-11-23; re-check with `aws eks describe-addon-versions --kubernetes-version <v>
--addon-name <name>` and the amazon-eks-ami releases page before bumping):
- Kubernetes 1.36 is in EKS standard support until 2027-08-02 (EKS "Kubernetes versions" page).
- kube-proxy, coredns: the EKS user guide's per-version tables ("managing-kube-proxy", "managing-coredns").
- vpc-cni, eks-pod-identity-agent, aws-ebs-csi-driver: the builds EKS resolved as default for 1.36.
- AL2023 AMI release 1.36.3-20260903: amazon-eks-ami release v20260903 (standard and NVIDIA variants);
  Karpenter selects the same release through the EC2NodeClass alias `al2023@v20260903`.
- Charts: the versions whose default values are in ../shared/charts/<chart>/ (Chart.yaml), so every
  values key the program sets is checked against the pinned chart's defaults.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace

import botocore.session

from ml_platform.components.helm import Chart


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
    "aws-for-fluent-bit": Chart("aws-for-fluent-bit", "https://aws.github.io/eks-charts", "0.2.0"),
    "metrics-server": Chart("metrics-server", "https://kubernetes-sigs.github.io/metrics-server/", "3.13.1"),
}

# Images the platform itself runs (model images are the stack config's). AWS CLI v2 reads EKS Pod Identity
# credentials from 2.15.0 on.
LOADER_IMAGE = ("public.ecr.aws/aws-cli/aws-cli", "2.37.11")


EKS_RELEASES: dict[str, EksRelease] = {
    "1.36": EksRelease(
        kubernetes="1.36",
        addons={
            "vpc-cni": "v1.22.4-eksbuild.3",
            "kube-proxy": "v1.36.0-eksbuild.14",
            "eks-pod-identity-agent": "v1.3.10-eksbuild.3",
            "coredns": "v1.14.3-eksbuild.3",
            "aws-ebs-csi-driver": "v1.66.0-eksbuild.1",
        },
        ami_release="1.36.3-20260903",
    ),
}

DEFAULT_KUBERNETES_VERSION = "1.36"


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
