"""Every Kubernetes object the plans declare, checked by kubernetes-validate --strict against the
cluster's Kubernetes version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ml_platform.infra import versions
from ml_platform.infra.offline import plan as offline_plan


def validate(paths: list[Path], version: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", f"{version}.0", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_every_manifest_is_valid_for_the_cluster_version(plans, tmp_path):
    paths = []
    for stack, plan in plans.items():
        offline_plan.write(plan, tmp_path / stack)
        paths += sorted((tmp_path / stack / "manifests").rglob("*.yaml"))
    paths = [p for p in paths if "/helm/" not in str(p)]
    assert paths, "the plans declare Kubernetes objects"
    result = validate(paths, versions.DEFAULT_KUBERNETES_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_an_unknown_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "x"}, "provisioner": "p", "bogus": 1}
        )
    )
    result = validate([bad], versions.DEFAULT_KUBERNETES_VERSION)
    assert result.returncode != 0 and "bogus" in result.stdout + result.stderr
