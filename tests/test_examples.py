"""Every program under examples/ is a Pulumi project of its own that uses ml_platform.components through its
public API only, and plans offline (plan_program: its own Pulumi.yaml and stack files, run as Pulumi runs it);
what it declares passes the same checks as the platform's plans."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from ml_platform import components
from ml_platform.infra import versions
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files
from tests.contract import crd_schemas
from tests.contract.test_kubernetes_manifests import validate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROGRAMS = sorted(path.parent for path in EXAMPLES.glob("*/Pulumi.yaml"))
STACKS = [(program, name) for program in PROGRAMS for name in stack_files.stack_names(program)]


def test_there_are_examples_each_with_a_stack():
    assert PROGRAMS, "examples/ holds at least one program"
    assert {program for program, _ in STACKS} == set(PROGRAMS), "every example has a stack file to plan"


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_an_example_imports_only_the_public_api(program):
    imported = []
    for path in program.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ml_platform"):
                imported += [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("ml_platform") for a in node.names), f"{path.name}: import from ml_platform.components"
    assert imported
    assert all(module == "ml_platform.components" and name in components.__all__ for module, name in imported), imported


@pytest.mark.parametrize(("program", "stack"), STACKS, ids=lambda v: getattr(v, "name", v))
def test_an_example_plans_offline_and_its_objects_are_valid(program, stack, tmp_path):
    plan = offline_plan.plan_program(program, stack)
    assert plan.project == stack_files.project_name(program, expected=None)
    assert json.loads(plan.to_json())["project"] == plan.project
    assert plan.by_type("mlplatform:k8s:ModelService"), "the example declares a model service"
    offline_plan.write(plan, tmp_path / "plan")
    manifests = [p for p in (tmp_path / "plan" / "manifests").rglob("*.yaml")]
    core = [p for p in manifests if "monitoring.coreos.com" not in p.read_text()]
    result = validate(core, versions.DEFAULT_KUBERNETES_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr
    for resource in plan.resources:
        if resource["type"].startswith("kubernetes:monitoring.coreos.com"):
            assert crd_schemas.errors(resource["inputs"]) == [], resource["name"]


def test_the_model_service_example_deploys_through_the_kubeconfig_and_reads_only_its_prefix():
    program = EXAMPLES / "model-service-on-existing-cluster"
    plan = offline_plan.plan_program(program, "dev")
    (provider,) = plan.by_type("pulumi:providers:kubernetes")
    k8s_objects = [r for r in plan.resources if r["type"].startswith("kubernetes:") and r["custom"]]
    assert k8s_objects and all(r["provider"].startswith(provider["urn"]) for r in k8s_objects)
    (policy,) = plan.by_type("aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(policy["inputs"]["policy"])["Statement"]
    assert statements[0]["Resource"] == "arn:aws:s3:::ml-platform-dev-models-111122223333/ranker/v3/*"
    (association,) = plan.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert association["inputs"]["clusterName"] == "ml-platform-dev"
    assert association["inputs"]["namespace"] == "ranker" and association["inputs"]["serviceAccount"] == "ranker"
    assert plan.outputs == {"namespace": "ranker", "serviceUrl": "http://ranker.ranker.svc:8080"}


def test_plan_program_names_a_missing_stack_and_a_missing_entry_point(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: other\nruntime: python\nmain: src/\n")
    with pytest.raises(stack_files.StackFileError, match=r"no stack file Pulumi\.dev\.yaml"):
        offline_plan.plan_program(tmp_path, "dev")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    with pytest.raises(stack_files.StackFileError, match=r"main 'src/' has no __main__\.py"):
        offline_plan.plan_program(tmp_path, "dev")


def test_the_platform_commands_refuse_another_project_by_name(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: model-service-example\nruntime: python\n")
    with pytest.raises(stack_files.StackFileError, match="is the Pulumi project 'model-service-example', not 'ml-platform'"):
        stack_files.find_project_dir(tmp_path)
