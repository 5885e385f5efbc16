"""diff over real plans: no change is quiet; replacements of stateful resources are loud and fail the check."""

import copy
import json

import pytest

from infra import cli
from infra.delivery import diff, replacements


def document(plan) -> dict:
    return json.loads(plan.to_json())


def mutate(plan_document, type_token, name, change):
    head = copy.deepcopy(plan_document)
    change(next(r for r in head["resources"] if r["type"] == type_token and r["name"] == name))
    return head


def test_the_same_plan_has_no_changes(plans):
    base = document(plans["prod"])
    assert diff.compare(base, base) == []
    assert "0 to add, 0 to change (0 replaced), 0 to remove" in diff.render(base, base, [])


def test_a_scaling_change_is_a_plain_change(plans):
    base = document(plans["prod"])
    head = mutate(base, "aws:eks/nodeGroup:NodeGroup", "gpu-ng", lambda r: r["inputs"]["scalingConfig"].update(maxSize=12))
    (change,) = diff.compare(base, head)
    assert change.action == "changed" and change.properties == ["scalingConfig.maxSize"] and change.replaces == []
    assert diff.stateful_replacements([change]) == []


def test_a_force_new_property_is_a_stateful_replacement(plans):
    base = document(plans["prod"])
    head = mutate(base, "aws:eks/nodeGroup:NodeGroup", "gpu-ng", lambda r: r["inputs"].update(instanceTypes=["g6.2xlarge"]))
    changes = diff.compare(base, head)
    assert [c.label for c in diff.stateful_replacements(changes)] == ["aws:eks/nodeGroup:NodeGroup gpu-ng"]
    text = diff.render(base, head, changes)
    assert "STATEFUL REPLACEMENT" in text and "instanceTypes[0] forces replacement" in text


def test_a_renamed_cluster_without_alias_is_caught(plans):
    base = document(plans["prod"])
    head = copy.deepcopy(base)
    head["resources"] = [r for r in head["resources"] if r["type"] != "aws:eks/cluster:Cluster"]
    risky = diff.stateful_replacements(diff.compare(base, head))
    assert [c.resource["type"] for c in risky] == ["aws:eks/cluster:Cluster"]
    assert "alias" in risky[0].replaces[0]


def test_an_aliased_rename_is_not_a_replacement(plans):
    base = document(plans["prod"])
    head = copy.deepcopy(base)
    cluster = next(r for r in head["resources"] if r["type"] == "aws:eks/cluster:Cluster")
    old = cluster["urn"]
    cluster["urn"] = old.replace("::eks-cluster", "::platform-cluster")
    cluster["aliases"] = [old]
    assert diff.stateful_replacements(diff.compare(base, head)) == []


def test_replacement_table_matches_prefixes():
    assert replacements.forces_replacement("aws:eks/cluster:Cluster", "accessConfig.bootstrapClusterCreatorAdminPermissions")
    assert replacements.forces_replacement("aws:eks/nodeGroup:NodeGroup", "subnetIds[2]")
    assert not replacements.forces_replacement("aws:eks/nodeGroup:NodeGroup", "scalingConfig.desiredSize")
    assert not replacements.forces_replacement("aws:eks/cluster:Cluster", "vpcConfig.subnetIds[0]")  # in place since provider v5.25
    assert set(replacements.STATEFUL_TYPES) <= set(replacements.FORCE_NEW)


def test_markdown_is_bounded_with_summary_first(plans):
    base, head = document(plans["dev"]), document(plans["prod"])
    text = diff.render(base, head, diff.compare(base, head), markdown=True)
    assert text.startswith("### Plan diff of `prod`:") and "<details>" in text
    assert "estimated monthly cost" in text.splitlines()[1]
    assert len(text.splitlines()) < diff.MAX_ROWS + 60


def test_cli_exit_codes(plans, tmp_path):
    base = document(plans["prod"])
    head = mutate(base, "aws:s3/bucket:Bucket", "models-bucket", lambda r: r["inputs"].update(bucket="renamed-bucket"))
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "head.json").write_text(json.dumps(head))
    assert cli.main(["diff", "--base", str(tmp_path / "base.json"), "--head", str(tmp_path / "head.json")]) == 0
    assert cli.main(["diff", "--base", str(tmp_path / "base.json"), "--head", str(tmp_path / "head.json"), "--fail-on-replace"]) == 3
    assert cli.main(["diff", "--base", str(tmp_path / "base.json"), "--head", str(tmp_path / "base.json"), "--fail-on-replace"]) == 0
    assert cli.main(["diff", "--base", str(tmp_path / "missing"), "--head", str(tmp_path / "head.json")]) == 2


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_committed_plans_are_stable_against_themselves_across_runs(plans, stack):
    from infra.offline import plan as offline_plan
    from infra.offline import stack_files

    again = json.loads(offline_plan.run(stack, stack_files.read_stack(stack)).to_json())
    assert diff.compare(document(plans[stack]), again) == []


def test_plans_of_two_stacks_are_not_compared_unless_asked(plans, tmp_path, capsys):
    (tmp_path / "dev.json").write_text(plans["dev"].to_json())
    (tmp_path / "prod.json").write_text(plans["prod"].to_json())
    arguments = ["diff", "--base", str(tmp_path / "dev.json"), "--head", str(tmp_path / "prod.json")]
    assert cli.main(arguments) == 2
    assert "the base plan is of stack 'dev' and the head plan of 'prod'" in capsys.readouterr().err
    assert cli.main([*arguments, "--allow-stack-mismatch"]) == 0
