"""The schema and reader of infra/kubernetes-versions.yaml: per Kubernetes version, the EKS add-on builds, the
AL2023 AMI release and the support dates, each pin with where and when it was read.

The rules catch what a reviewer of a new entry would miss: builds that do not name their Kubernetes version
(kube-proxy, the AMI release), a copied entry whose sources still name the old version or another add-on, an
AMI source whose release tag differs from the version, support dates not after the previous version's, an
entry added after its standard support ended, an unquoted key (YAML reads 1.30 as the number 1.3). infra/versions.py
loads the file once; tests/unit/test_kubernetes_versions.py shows each rule failing on its mistake.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import YAMLError

# The EKS add-ons the platform installs (components/eks_cluster.py, components/cluster_addons.py): every
# Kubernetes version pins a build of each.
ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver")
VERSIONS_FILE = Path(__file__).with_name("kubernetes-versions.yaml")
_ADDON_BUILD = re.compile(r"^v[0-9]+\.[0-9]+\.[0-9]+-eksbuild\.[0-9]+\Z")
_MINOR = re.compile(r"^1\.[0-9]+\Z")


def _check_source(value: str) -> str:
    if value.startswith("aws eks "):
        return value
    url = urlparse(value)
    if url.scheme != "https" or not url.netloc or url.path in ("", "/"):
        raise ValueError("must be an https:// page (with a path) or the `aws eks ...` command that gives the version")
    return value


class VersionsFileError(Exception):
    """infra/kubernetes-versions.yaml is unreadable or breaks its schema; the message names the file and key."""


class Pin(BaseModel):
    """One pinned version, where it was read and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    source: str
    """An https:// page, or the `aws eks ...` command that gives the version."""
    checked: datetime.date
    """When the source was read (YYYY-MM-DD)."""

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _check_source(value)

    @field_validator("checked")
    @classmethod
    def _checked(cls, value: datetime.date) -> datetime.date:
        if value > datetime.date.today() + datetime.timedelta(days=1):
            raise ValueError(f"{value} is in the future")
        return value


class KubernetesVersion(BaseModel):
    """What EKS runs with one Kubernetes minor version (the key it is filed under)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    standardSupportUntil: datetime.date
    extendedSupportUntil: datetime.date
    source: str
    """The page the support dates come from."""
    checked: datetime.date
    """When the entry was added or its dates last read; standard support must end after it."""
    amiRelease: Pin
    """The AL2023 AMI release of managed node groups (`releaseVersion`): `<k8s>.<patch>-<YYYYMMDD>`."""
    addons: dict[str, Pin]

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _check_source(value)

    @model_validator(mode="after")
    def _consistent(self) -> KubernetesVersion:
        problems = []
        if self.extendedSupportUntil <= self.standardSupportUntil:
            problems.append("extendedSupportUntil must come after standardSupportUntil")
        if self.standardSupportUntil <= self.checked:
            problems.append(
                f"standardSupportUntil {self.standardSupportUntil} is not after checked ({self.checked}): add supported versions"
            )
        if set(self.addons) != set(ADDONS):
            missing, unknown = sorted(set(ADDONS) - set(self.addons)), sorted(set(self.addons) - set(ADDONS))
            problems.append(f"addons must pin exactly {', '.join(ADDONS)} (missing: {missing or 'none'}, unknown: {unknown or 'none'})")
        for name, pin in sorted(self.addons.items()):
            if not _ADDON_BUILD.match(pin.version):
                problems.append(f"addons.{name}.version '{pin.version}' is not an EKS add-on build (v<major>.<minor>.<patch>-eksbuild.<n>)")
            named = re.search(r"--addon-name\s+(\S+)", pin.source)
            if named and named.group(1) != name:
                problems.append(f"addons.{name}.source names the add-on {named.group(1)}")
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
            tag = re.search(r"/tag/v([0-9]{8})\b", self.amiRelease.source)
            if tag and tag.group(1) != release.group(2):
                problems.append(f"amiRelease.source is the release v{tag.group(1)}, not the version's v{release.group(2)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class KubernetesVersions(BaseModel):
    """The whole data file: the default version and every pinned one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default: str
    versions: dict[str, KubernetesVersion]

    @field_validator("versions", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ValueError(f"the key {key!r} is a number: quote each version ('\"1.30\"'), since YAML reads 1.30 as 1.3")
        return value

    @field_validator("default", mode="before")
    @classmethod
    def _default(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is a number: quote it ('\"1.36\"')")
        return value

    @model_validator(mode="after")
    def _named(self) -> KubernetesVersions:
        problems = []
        previous: tuple[int, KubernetesVersion] | None = None
        for key, entry in sorted(self.versions.items(), key=lambda item: _minor(item[0])):
            if not _MINOR.match(key):
                problems.append(f"versions.{key}: a Kubernetes minor version is written '1.<minor>'")
                continue
            if not entry.amiRelease.version.startswith(f"{key}."):
                problems.append(f"versions.{key}.amiRelease.version '{entry.amiRelease.version}' is not a release of Kubernetes {key}")
            proxy = entry.addons.get("kube-proxy")
            if proxy is not None and not proxy.version.startswith(f"v{key}."):
                # kube-proxy is built per Kubernetes version; a build of another one would not match the control plane.
                problems.append(f"versions.{key}.addons.kube-proxy.version '{proxy.version}' is not a build for Kubernetes {key}")
            for name, pin in sorted({**entry.addons, "amiRelease": entry.amiRelease}.items()):
                named = re.search(r"--kubernetes-version\s+(\S+)", pin.source)
                if named and named.group(1) != key:
                    where = "amiRelease" if name == "amiRelease" else f"addons.{name}"
                    problems.append(f"versions.{key}.{where}.source asks for Kubernetes {named.group(1)}")
            if previous is not None and entry.standardSupportUntil <= previous[1].standardSupportUntil:
                problems.append(
                    f"versions.{key}.standardSupportUntil is not after that of 1.{previous[0]} (copied from the previous entry?)"
                )
            previous = (_minor(key), entry)
        if self.default not in self.versions:
            problems.append(f"default '{self.default}' is not one of the versions ({', '.join(sorted(self.versions))})")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _minor(key: str) -> int:
    return int(key.split(".")[1]) if _MINOR.match(key) else -1


def load_versions(path: Path = VERSIONS_FILE) -> KubernetesVersions:
    """The data file, strictly read (ruamel.yaml: a key given twice is an error) and validated.
    Raises VersionsFileError naming the file and each key at fault."""
    try:
        data: Any = YAML(typ="safe", pure=True).load(path.read_text())
        return KubernetesVersions.model_validate(data)
    except DuplicateKeyError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else "?"
        raise VersionsFileError(f"{path.name}: line {line}: {str(err.problem).split(' with ')[0]}; keep one") from None
    except ValidationError as err:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()]
        raise VersionsFileError(f"{path.name} breaks its schema:\n  " + "\n  ".join(lines)) from None
    except (OSError, YAMLError, ValueError) as err:
        # ruamel.yaml raises ValueError itself for an impossible date (2026-11-31).
        raise VersionsFileError(f"{path.name}: {err}") from None
