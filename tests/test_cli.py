"""`python -m infra plan` end to end: files written, exit status 2 on a bad config without a traceback,
exit status 1 on a policy violation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from ml_platform.components import eks_cluster
from ml_platform.infra import cli

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_plan_writes_plan_and_manifests(tmp_path):
    result = run_cli("plan", "--stack", "dev", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Offline plan of stack 'dev'" in result.stdout and "policy violations: none" in result.stdout
    document = json.loads((tmp_path / "plan.json").read_text())
    assert document["stack"] == "dev"
    assert (tmp_path / "manifests" / "_cluster" / "StorageClass-gp3.yaml").exists()


def test_bad_config_exits_2_naming_every_key_without_traceback(tmp_path):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  ml-platform:environment: prod\n  ml-platform:nodepools: {}\n  ml-platform:network: {azCount: '3'}\n"
    )
    result = run_cli("plan", "--stack", "broken", "--project-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "nodepools: unknown key; did you mean 'nodePools'?" in result.stderr
    assert "network.azCount: expected an integer, got str '3'" in result.stderr
    assert not (tmp_path / "out").exists(), "nothing is written for a bad config"


def test_unknown_stack_exits_2():
    result = run_cli("plan", "--stack", "nosuchstack")
    assert result.returncode == 2 and "no stack file Pulumi.nosuchstack.yaml" in result.stderr


def test_policy_violation_exits_1(monkeypatch, tmp_path, capsys):
    # A regression that drops the audit log: the policy pack, run by the plan, must stop it.
    monkeypatch.setattr(eks_cluster, "CONTROL_PLANE_LOG_TYPES", ("api", "authenticator", "controllerManager", "scheduler"))
    status = cli.main(["plan", "--stack", "dev", "--out", str(tmp_path)])
    assert status == 1
    assert "eks-control-plane-logging: eks-cluster: control-plane log types not enabled: audit" in capsys.readouterr().out


def test_a_plan_that_cannot_be_written_is_a_clear_error_and_keeps_the_earlier_one(tmp_path, capsys):
    from ml_platform.infra import cli

    assert cli.main(["plan", "--stack", "dev", "--out", "/proc/nope"]) == 2
    assert "--out /proc/nope: cannot write the plan there" in capsys.readouterr().err
    out = tmp_path / "plan"
    assert cli.main(["plan", "--stack", "dev", "--out", str(out)]) == 0
    before = (out / "plan.json").read_text()
    # a file where the new plan is written first: the write fails half-way, and the earlier plan stays whole
    (tmp_path / ".plan.writing").write_text("in the way")
    assert cli.main(["plan", "--stack", "dev", "--out", str(out)]) == 2
    assert (out / "plan.json").read_text() == before
