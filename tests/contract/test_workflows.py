"""The CI workflows are valid for GitHub (its workflow schema, through check-jsonschema) and pass zizmor's
security audits (pinned actions, least-privilege tokens, no template injection)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def check_schema(path: Path) -> subprocess.CompletedProcess:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def audit(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("zizmor"), "--offline", "--no-progress", str(path)], capture_output=True, text=True, timeout=120)


def test_there_are_workflows():
    assert [p.name for p in WORKFLOWS] == ["pull-request.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_githubs_schema(path):
    result = check_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_passes_zizmor(path):
    result = audit(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit():
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    ref = step["uses"].split("@", 1)[1]
                    assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), step["uses"]


def test_the_checks_catch_a_broken_or_unsafe_workflow(tmp_path):
    # Edited as text: a YAML round trip would turn `on:` into `true:` and fail for the wrong reason.
    text = (ROOT / ".github" / "workflows" / "pull-request.yml").read_text()
    safe = tmp_path / "safe.yml"
    safe.write_text(text)
    assert audit(safe).returncode == 0 and check_schema(safe).returncode == 0
    unsafe = tmp_path / "unsafe.yml"
    unsafe.write_text(text + "\n      - name: Echo the title\n        run: echo ${{ github.event.pull_request.title }}\n")
    assert check_schema(unsafe).returncode == 0
    result = audit(unsafe)
    assert result.returncode != 0 and "template-injection" in result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("    runs-on: ubuntu-24.04\n", ""))
    assert check_schema(broken).returncode != 0, "the schema requires runs-on"
