"""The platform's own images (images/<name>/Dockerfile): checkov's Dockerfile policies pass with no exception,
and the check fails a Dockerfile that runs as root from a floating base. Every package of an image is pinned."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import tool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))


def scan(dockerfile: Path) -> list[str]:
    options = ["--framework", "dockerfile", "--output", "json", "--quiet", "--skip-download", "--compact"]
    result = subprocess.run(
        [tool("checkov"), "-f", str(dockerfile), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    report = report[0] if isinstance(report, list) else report
    return sorted(c["check_id"] for c in report.get("results", {}).get("failed_checks", []))


def test_there_are_platform_images():
    assert [p.parent.name for p in DOCKERFILES] == ["mlflow", "model-monitoring"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_checkov_passes_every_dockerfile(dockerfile):
    assert scan(dockerfile) == []


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_base_and_package_is_pinned(dockerfile):
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), flags=re.MULTILINE)
    assert bases and all(re.search(r":[0-9][\w.-]*$|@sha256:[0-9a-f]{64}$", base) for base in bases), bases
    lines = [line for line in (dockerfile.parent / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.+-]+", line) for line in lines), [x for x in lines if "==" not in x]


def test_the_check_fails_a_root_image_from_a_floating_base(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text('FROM python:latest\nRUN pip install mlflow\nCMD ["mlflow", "server"]\n')
    failed = scan(bad)
    assert {"CKV_DOCKER_3", "CKV_DOCKER_7"} <= set(failed), failed
