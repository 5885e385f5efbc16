"""reproduce: the copy of staging declares the same resources, runs staging's exact versions and images,
and protects nothing."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from infra import cli
from infra.offline import plan as offline_plan
from infra.offline import stack_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, plans):
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "outputs.json").write_text(json.dumps(plans["staging"].outputs))
    return tmp_path


def shape(plan):
    return sorted((r["type"], r["name"]) for r in plan.resources)


def test_the_copy_plans_like_staging_with_its_versions_and_nothing_protected(project, plans):
    assert (
        cli.main(
            ["reproduce", "--from", "staging", "--as", "repro-1", "--outputs", str(project / "outputs.json"), "--project-dir", str(project)]
        )
        == 0
    )
    copy = offline_plan.run("repro-1", stack_files.read_stack("repro-1", project))
    staging = plans["staging"]
    assert shape(copy) == shape(staging)
    assert not [r for r in copy.resources if r["protect"]]
    assert copy.outputs["versions"]["eks"] == staging.outputs["versions"]["eks"]
    assert copy.outputs["versions"]["charts"] == staging.outputs["versions"]["charts"]
    # the copy runs staging's images, from staging's registry
    assert copy.outputs["versions"]["images"]["models"] == staging.outputs["versions"]["images"]["models"]
    written = yaml.safe_load((project / "Pulumi.repro-1.yaml").read_text())["config"]
    assert written["ml-platform:ephemeral"] is True and written["ml-platform:protectStatefulResources"] is False
    assert written["ml-platform:pins"]["amiRelease"] == staging.outputs["versions"]["eks"]["ami_release"]


def test_pins_in_a_stack_file_override_the_module(project, plans):
    outputs = json.loads((project / "outputs.json").read_text())
    outputs["versions"]["eks"]["addons"]["coredns"] = "v1.14.9-eksbuild.2"
    outputs["versions"]["charts"]["keda"]["version"] = "2.20.1"
    (project / "outputs.json").write_text(json.dumps(outputs))
    assert (
        cli.main(
            ["reproduce", "--from", "staging", "--as", "repro-2", "--outputs", str(project / "outputs.json"), "--project-dir", str(project)]
        )
        == 0
    )
    copy = offline_plan.run("repro-2", stack_files.read_stack("repro-2", project))
    coredns = next(r for r in copy.by_type("aws:eks/addon:Addon") if r["inputs"]["addonName"] == "coredns")
    assert coredns["inputs"]["addonVersion"] == "v1.14.9-eksbuild.2"
    keda = next(r for r in copy.by_type("kubernetes:helm.sh/v3:Release") if r["inputs"]["name"] == "keda")
    assert keda["inputs"]["version"] == "2.20.1"


def test_refuses_to_overwrite_or_to_copy_without_versions(project, capsys):
    args = ["reproduce", "--from", "staging", "--as", "repro-3", "--outputs", str(project / "outputs.json"), "--project-dir", str(project)]
    assert cli.main(args) == 0
    assert cli.main(args) == 2 and "Pulumi.repro-3.yaml exists" in capsys.readouterr().err
    (project / "empty.json").write_text("{}")
    assert (
        cli.main(
            ["reproduce", "--from", "staging", "--as", "repro-4", "--outputs", str(project / "empty.json"), "--project-dir", str(project)]
        )
        == 2
    )
    assert "has no `versions` output" in capsys.readouterr().err
    assert (
        cli.main(
            ["reproduce", "--from", "staging", "--as", "Repro_5", "--outputs", str(project / "outputs.json"), "--project-dir", str(project)]
        )
        == 2
    )
    assert not (project / "Pulumi.repro-4.yaml").exists()
