"""reproduce: the copy of staging declares the same resources, runs staging's exact versions and images,
and protects nothing."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ml_platform.infra import cli
from ml_platform.infra.delivery import reproduce
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files

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
    # The same shape, less staging's model registry: the copy uses staging's (sagemaker.serverOfStack).
    registry = [(t, n) for t, n in shape(staging) if n.startswith("model-registry")]
    assert registry and shape(copy) == [item for item in shape(staging) if item not in registry]
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
    assert "versions: Field required" in capsys.readouterr().err
    assert (
        cli.main(
            ["reproduce", "--from", "staging", "--as", "Repro_5", "--outputs", str(project / "outputs.json"), "--project-dir", str(project)]
        )
        == 2
    )
    assert not (project / "Pulumi.repro-4.yaml").exists()


def reproduce_from(project, outputs, source="staging", name="repro-6"):
    (project / "given.json").write_text(json.dumps(outputs))
    return cli.main(["reproduce", "--from", source, "--as", name, "--outputs", str(project / "given.json"), "--project-dir", str(project)])


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda o: o["versions"].pop("eks"), "versions.eks: Field required"),
        (lambda o: o["versions"]["eks"].pop("ami_release"), "versions.eks.ami_release: Field required"),
        (lambda o: o["versions"]["eks"].__setitem__("kubernetes", "latest"), "versions.eks.kubernetes: String should match pattern"),
        (lambda o: o["versions"]["charts"]["keda"].pop("version"), "versions.charts.keda.version: Field required"),
        (lambda o: o["versions"].__setitem__("charts", ["keda"]), "versions.charts: Input should be a valid dictionary"),
        (lambda o: o.pop("clusterName"), "clusterName: Field required"),
        # written from the README's words before it gave the shape: versions as a flat map
        (lambda o: o.__setitem__("versions", {"kubernetes": "1.36", "keda": "2.20.2"}), "versions.eks: Field required"),
    ],
)
def test_malformed_outputs_are_exit_2_naming_the_field_and_write_nothing(project, plans, capsys, change, says):
    outputs = json.loads(json.dumps(plans["staging"].outputs))
    change(outputs)
    assert reproduce_from(project, outputs) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (project / "Pulumi.repro-6.yaml").exists()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda v: v["eks"].__setitem__("kubernetes", "1.99"), "1.99"),
        (lambda v: v["charts"]["karpenter"].__setitem__("version", "9.9.9"), "9.9.9"),
        (lambda v: v["images"]["models"].__setitem__("chat", "not an image"), "models.chat.image"),
        (lambda v: v["images"]["models"].__setitem__("ghost", "serving/vllm:v1"), "versions.images.models: ghost"),
        (lambda v: v["eks"]["addons"].__setitem__("nope", "v1.0.0-eksbuild.1"), "'nope' is not an add-on"),
    ],
)
def test_outputs_the_program_cannot_run_are_refused_before_writing(project, plans, capsys, change, says):
    outputs = json.loads(json.dumps(plans["staging"].outputs))
    change(outputs["versions"])
    assert reproduce_from(project, outputs) == 2
    assert says in capsys.readouterr().err
    assert not (project / "Pulumi.repro-6.yaml").exists()


def test_an_outputs_file_that_is_not_text_is_exit_2(project, capsys):
    (project / "binary.json").write_bytes(b"\xff\xfe{}")
    args = ["reproduce", "--from", "staging", "--as", "repro-7", "--outputs", str(project / "binary.json"), "--project-dir", str(project)]
    assert cli.main(args) == 2 and "Traceback" not in capsys.readouterr().err


def test_outputs_of_another_stack_are_refused(project, plans, capsys):
    shutil.copy(ROOT / "Pulumi.prod.yaml", project / "Pulumi.prod.yaml")
    assert reproduce_from(project, plans["staging"].outputs, source="prod") == 2
    err = capsys.readouterr().err
    assert "the outputs are of cluster 'ml-platform-staging' (staging), not of stack 'prod' (cluster 'ml-platform-prod', prod)" in err
    assert not (project / "Pulumi.repro-6.yaml").exists()


def test_a_list_is_not_outputs(project, capsys):
    assert reproduce_from(project, ["versions"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err


def test_the_readmes_example_outputs_are_accepted():
    text = (ROOT / "README.md").read_text()
    block = text.split("must have this\nshape", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    source = {"config": {"ml-platform:environment": "staging"}}
    parsed = reproduce.check_outputs(json.loads(block), "staging", source)
    assert parsed.versions.eks.kubernetes == "1.36" and parsed.versions.images.models["chat"].endswith("@sha256:<digest>")
