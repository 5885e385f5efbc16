"""diff over real plans: no change is quiet; replacements of stateful resources are loud and fail the check."""

import copy
import json

import pytest

from ml_platform.infra import cli
from ml_platform.infra.delivery import diff, replacements


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
    assert set(replacements.STATEFUL_TYPES) <= set(replacements.FORCE_NEW) | set(replacements.K8S_FORCE_NEW)


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
    from ml_platform.infra.offline import plan as offline_plan
    from ml_platform.infra.offline import stack_files

    again = json.loads(offline_plan.run(stack, stack_files.read_stack(stack)).to_json())
    assert diff.compare(document(plans[stack]), again) == []


def test_plans_of_two_stacks_are_not_compared_unless_asked(plans, tmp_path, capsys):
    (tmp_path / "dev.json").write_text(plans["dev"].to_json())
    (tmp_path / "prod.json").write_text(plans["prod"].to_json())
    arguments = ["diff", "--base", str(tmp_path / "dev.json"), "--head", str(tmp_path / "prod.json")]
    assert cli.main(arguments) == 2
    assert "the base plan is of stack 'dev' and the head plan of 'prod'" in capsys.readouterr().err
    assert cli.main([*arguments, "--allow-stack-mismatch"]) == 0


def test_a_replaced_launch_template_replaces_its_node_group_through_a_nested_force_new_property(plans):
    base = document(plans["prod"])
    head = mutate(base, "aws:ec2/launchTemplate:LaunchTemplate", "gpu-lt", lambda r: r["inputs"].update(namePrefix="gpu-"))
    risky = diff.stateful_replacements(diff.compare(base, head))
    assert [c.label for c in risky] == ["aws:eks/nodeGroup:NodeGroup gpu-ng"]
    assert "launchTemplate forces replacement: it reads gpu-lt" in risky[0].replaces[0]
    assert "protected" in risky[0].replaces[1]


def test_an_updated_launch_template_rolls_its_nodes(plans):
    base = document(plans["prod"])
    head = mutate(base, "aws:ec2/launchTemplate:LaunchTemplate", "gpu-lt", lambda r: r["inputs"]["tags"].update(team="ml"))
    group = next(c for c in diff.compare(base, head) if c.label == "aws:eks/nodeGroup:NodeGroup gpu-ng")
    assert not group.replaces and "EKS replaces the group's nodes, rolling" in group.notes[0]


def test_a_new_cluster_replaces_every_object_of_its_kubernetes_provider(plans):
    base = document(plans["prod"])
    head = mutate(base, "aws:eks/cluster:Cluster", "eks-cluster", lambda r: r["inputs"].update(name="ml-platform-prod-2"))
    changes = {c.label: c for c in diff.compare(base, head)}
    deployment = changes["kubernetes:apps/v1:Deployment model-chat-deployment"]
    assert any("its provider" in why and "a new cluster" in why for why in deployment.replaces)


def test_a_type_without_rules_reading_a_replaced_resource_may_be_replaced(plans):
    base = document(plans["prod"])
    head = mutate(base, "aws:ec2/vpc:Vpc", "network-vpc", lambda r: r["inputs"].update(cidrBlock="10.30.0.0/16"))
    changes = {c.label: c for c in diff.compare(base, head)}
    gateway = changes["aws:ec2/internetGateway:InternetGateway network-igw"]
    assert any("no replacement rule for aws:ec2/internetGateway:InternetGateway: it may be replaced" in n for n in gateway.notes)


def test_a_deleted_karpenter_pool_is_a_stateful_removal(plans):
    base = document(plans["prod"])
    head = copy.deepcopy(base)
    head["resources"] = [r for r in head["resources"] if r["name"] != "karpenter-gpu-large-nodepool"]
    (removed,) = diff.stateful_replacements(diff.compare(base, head))
    assert removed.action == "removed" and removed.replaces[0].startswith("deleted: its URN is gone")


def test_a_policy_document_shows_what_changed_inside_it(plans):
    base = document(plans["prod"])

    def edit(resource):
        policy = json.loads(resource["inputs"]["policy"])
        policy["Statement"][0]["Sid"] = "Renamed"
        resource["inputs"]["policy"] = json.dumps(policy)

    head = mutate(base, "aws:iam/policy:Policy", "serving-alb-controller", edit)
    text = diff.render(base, head, diff.compare(base, head))
    assert "policy Statement[0].Sid:" in text and '→ "Renamed"' in text


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[]", "expected an object with `stack` and `resources`"),
        ('{"stack": "prod"}', "expected an object with `stack` and `resources`"),
        ("{}", "expected an object with `stack` and `resources`"),
        ('{"stack": "prod", "resources": [{"urn": "u"}]}', "resources[0] lacks type, name, inputs"),
        (b"\xff\xfe", "is not a plan.json"),
    ],
)
def test_a_file_that_is_not_a_plan_is_refused_not_a_traceback(plans, tmp_path, capsys, content, fragment):
    (tmp_path / "good.json").write_text(plans["prod"].to_json())
    bad = tmp_path / "bad.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert cli.main(["diff", "--base", str(tmp_path / "good.json"), "--head", str(bad)]) == 2
    assert fragment in capsys.readouterr().err


def test_a_plan_of_an_older_program_gets_the_defaults_of_what_it_lacks(plans, tmp_path):
    older = json.loads(plans["prod"].to_json())
    for resource in older["resources"]:
        resource.pop("propertyDependencies")
        resource.pop("replaceOnChanges")
    (tmp_path / "old.json").write_text(json.dumps(older))
    (tmp_path / "new.json").write_text(plans["prod"].to_json())
    assert cli.main(["diff", "--base", str(tmp_path / "old.json"), "--head", str(tmp_path / "new.json")]) == 0
