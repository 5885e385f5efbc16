"""Every pinned version the platform deploys, exported as the stack's `versions` output so a stack can be
reproduced exactly. Nothing here floats: no `latest`, no `@latest` AMI alias.

- Per Kubernetes version (add-on builds, AMI release, support dates): the data file
  infra/kubernetes-versions.yaml, each pin with its source and the date it was read, validated on load
  (KubernetesVersions) and by tests/unit/test_kubernetes_versions.py. Adding a version is a data change there.
- Charts (below): the versions whose default values are in ../shared/charts/<chart>/ (Chart.yaml), so every
  values key the program sets is checked against the pinned chart's defaults.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import botocore.session
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

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


# The EKS add-ons the platform installs (components/eks_cluster.py, components/cluster_addons.py): every
# Kubernetes version pins a build of each.
ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver")
VERSIONS_FILE = Path(__file__).with_name("kubernetes-versions.yaml")
_ADDON_BUILD = re.compile(r"^v[0-9]+\.[0-9]+\.[0-9]+-eksbuild\.[0-9]+$")


class VersionsFileError(Exception):
    """infra/kubernetes-versions.yaml is unreadable or breaks its schema; the message names the file and key."""


class Pin(BaseModel):
    """One pinned version, where it was read and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    source: str
    """An https:// page or the `aws ...` command that gives the version."""
    checked: datetime.date
    """When the source was read (YYYY-MM-DD)."""

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.startswith(("https://", "aws ")):
            raise ValueError("must be an https:// page or the `aws ...` command that gives the version")
        return value

    @field_validator("checked")
    @classmethod
    def _checked(cls, value: datetime.date) -> datetime.date:
        if value > datetime.date.today() + datetime.timedelta(days=1):
            raise ValueError(f"{value} is in the future")
        return value


class KubernetesVersion(Pin):
    """What EKS runs with one Kubernetes minor version (`version` is the key it is filed under)."""

    version: str = ""
    standardSupportUntil: datetime.date
    extendedSupportUntil: datetime.date
    amiRelease: Pin
    """The AL2023 AMI release of managed node groups (`releaseVersion`): `<k8s>.<patch>-<YYYYMMDD>`."""
    addons: dict[str, Pin]

    @model_validator(mode="after")
    def _consistent(self) -> KubernetesVersion:
        problems = []
        if self.extendedSupportUntil <= self.standardSupportUntil:
            problems.append("extendedSupportUntil must come after standardSupportUntil")
        if set(self.addons) != set(ADDONS):
            missing, unknown = sorted(set(ADDONS) - set(self.addons)), sorted(set(self.addons) - set(ADDONS))
            problems.append(f"addons must pin exactly {', '.join(ADDONS)} (missing: {missing or 'none'}, unknown: {unknown or 'none'})")
        for name, pin in sorted(self.addons.items()):
            if not _ADDON_BUILD.match(pin.version):
                problems.append(f"addons.{name}.version '{pin.version}' is not an EKS add-on build (v<major>.<minor>.<patch>-eksbuild.<n>)")
        release = re.fullmatch(r"([0-9]+\.[0-9]+)\.[0-9]+-([0-9]{8})", self.amiRelease.version)
        if release is None:
            problems.append(f"amiRelease.version '{self.amiRelease.version}' is not an AMI release (<k8s>.<patch>-<YYYYMMDD>)")
        else:
            try:
                built = datetime.datetime.strptime(release.group(2), "%Y%m%d").date()
                if built > self.amiRelease.checked:
                    problems.append(f"amiRelease.version is dated {built}, after it was checked ({self.amiRelease.checked})")
            except ValueError:
                problems.append(f"amiRelease.version '{self.amiRelease.version}' has no valid date")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class KubernetesVersions(BaseModel):
    """The whole data file: the default version and every pinned one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default: str
    versions: dict[str, KubernetesVersion]

    @model_validator(mode="after")
    def _named(self) -> KubernetesVersions:
        problems = []
        for key, entry in self.versions.items():
            if not re.fullmatch(r"1\.[0-9]+", key):
                problems.append(f"versions.{key}: a Kubernetes minor version is written '1.<minor>' (quoted)")
                continue
            if not entry.amiRelease.version.startswith(f"{key}."):
                problems.append(f"versions.{key}.amiRelease.version '{entry.amiRelease.version}' is not a release of Kubernetes {key}")
            proxy = entry.addons.get("kube-proxy")
            if proxy is not None and not proxy.version.startswith(f"v{key}."):
                # kube-proxy is built per Kubernetes version; a build of another one would not match the control plane.
                problems.append(f"versions.{key}.addons.kube-proxy.version '{proxy.version}' is not a build for Kubernetes {key}")
        if self.default not in self.versions:
            problems.append(f"default '{self.default}' is not one of the versions ({', '.join(sorted(self.versions))})")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_versions(path: Path = VERSIONS_FILE) -> KubernetesVersions:
    """The data file, strictly read (ruamel.yaml: a key given twice is an error) and validated.
    Raises VersionsFileError naming the file and each key at fault."""
    try:
        data: Any = YAML(typ="safe", pure=True).load(path.read_text())
        return KubernetesVersions.model_validate(data)
    except (OSError, YAMLError) as err:
        raise VersionsFileError(f"{path.name}: {err}") from None
    except ValidationError as err:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()]
        raise VersionsFileError(f"{path.name} breaks its schema:\n  " + "\n  ".join(lines)) from None


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
