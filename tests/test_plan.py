"""The offline plans of the committed stacks: produced, deterministic, shaped per environment, and
never losing prod's protection."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pulumi
import pytest

from ml_platform.infra import versions
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files
from ml_platform.infra.offline.mocks import plain
from ml_platform.infra.offline.secrets import masked
from ml_platform.policy import rules
from tests.helpers import render

SNAPSHOTS = Path(__file__).parent / "snapshots"
STATEFUL_TYPES = rules.STATEFUL_TYPES
# Stateful resources whose data outlives a destroy in prod (the network and the node groups go with the stack).
RETAINED_TYPES = ("aws:eks/cluster:Cluster", "aws:ecr/repository:Repository", "aws:s3/bucket:Bucket", "aws:kms/key:Key")


def urns(plan, type_token):
    return [r["urn"] for r in plan.by_type(type_token)]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_plans_without_warnings_or_policy_violations(plans, stack):
    plan = plans[stack]
    assert len(plan.resources) > 50
    # the only warnings: chart images that do not pull through the stack's registry, each with what to do, and
    # the example values the stack files ship with (infra/placeholders.py)
    expected = [
        w for w in plan.warnings if ("pull from" in w and "directly" in w) or "pinned by digest" in w or w.startswith("placeholder ")
    ]
    assert plan.warnings and expected == plan.warnings
    assert any(w.startswith("placeholder ml-platform:cluster.admins[0].principalArn") for w in plan.warnings)
    assert rules.evaluate(rules.view_from_plan(plan.resources)) == []


def test_plan_is_byte_identical_across_runs(plans, tmp_path):
    again = offline_plan.run("dev", stack_files.read_stack("dev"))
    assert again.to_json() == plans["dev"].to_json()
    offline_plan.write(plans["dev"], tmp_path / "a")
    offline_plan.write(again, tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) >= 2
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)


def test_plan_json_records_what_the_design_promises(plans):
    document = json.loads(plans["dev"].to_json())
    assert [r["urn"] for r in document["resources"]] == sorted(r["urn"] for r in document["resources"])
    keys = {
        "urn",
        "type",
        "name",
        "parent",
        "provider",
        "custom",
        "inputs",
        "dependencies",
        "propertyDependencies",
        "protect",
        "retainOnDelete",
        "deleteBeforeReplace",
        "ignoreChanges",
    }
    assert all(keys <= set(r) for r in document["resources"])
    storage_class = next(r for r in document["resources"] if r["type"] == "kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage_class["provider"].endswith("pulumi:providers:kubernetes::eks-k8s")
    assert document["outputs"]["clusterName"] == "ml-platform-dev"


def test_secrets_are_masked_in_the_plan():
    import pulumi_aws as aws

    plan = render(lambda: aws.ssm.Parameter("p", type="SecureString", value=pulumi.Output.secret("hunter2")))
    shown = plan.by_type("aws:ssm/parameter:Parameter")[0]["inputs"]["value"]
    assert shown == masked("hunter2") and shown.startswith("[secret:") and len(shown) == len("[secret:]") + 12
    assert "hunter2" not in plan.to_json()
    # a keyed digest: the same value shows the same, a changed one shows changed, neither shows the value
    wire = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "x"}
    assert plain(wire) == masked("x") != masked("y")


def test_dev_is_cheap(plans):
    dev = plans["dev"]
    assert len(dev.by_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len([r for r in dev.by_type("aws:ec2/subnet:Subnet") if "private" in r["name"]]) == 2
    assert not [r for r in dev.resources if r["protect"]]
    # GPUs only through Karpenter: nothing runs (or costs) until a GPU pod is pending, spot first.
    assert [r["name"] for r in dev.by_type("aws:eks/nodeGroup:NodeGroup")] == ["system-ng"]
    node_pools = {m["metadata"]["name"]: m["spec"] for m in dev.manifests().values() if m.get("kind") == "NodePool"}
    capacity = {
        name: next(r["values"] for r in spec["template"]["spec"]["requirements"] if r["key"] == "karpenter.sh/capacity-type")
        for name, spec in node_pools.items()
    }
    assert capacity["gpu"] == ["spot"] and capacity["gpu-on-demand"] == ["on-demand"]
    assert node_pools["gpu"]["weight"] > node_pools["gpu-on-demand"]["weight"]


def test_prod_is_hardened(plans):
    prod = plans["prod"]
    assert len(prod.by_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len(prod.by_type("aws:ec2/flowLog:FlowLog")) == 1
    cluster = prod.by_type("aws:eks/cluster:Cluster")[0]
    assert cluster["inputs"]["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster["inputs"]["deletionProtection"] is True
    system = next(r for r in prod.by_type("aws:eks/nodeGroup:NodeGroup") if r["name"] == "system-ng")["inputs"]
    assert system["scalingConfig"]["minSize"] >= 2 and system["capacityType"] == "ON_DEMAND"


def test_prod_protects_every_stateful_resource_and_retains_its_data(plans):
    stateful = [r for r in plans["prod"].resources if r["type"] in rules.STATEFUL_TYPES]
    # SageMaker's managed registry is the other mode (tests/unit/test_sagemaker_mlflow.py plans prod with it).
    assert {r["type"] for r in stateful} == set(rules.STATEFUL_TYPES) - {rules.MLFLOW_TRACKING_SERVER}
    assert all(r["protect"] for r in stateful), [r["name"] for r in stateful if not r["protect"]]
    assert all(r["retainOnDelete"] for r in stateful if r["type"] in RETAINED_TYPES)
    # dev protects nothing: a throwaway cluster must go with `pulumi destroy`
    assert not any(r["protect"] for r in plans["dev"].resources)


def test_prod_never_loses_a_stateful_resource_or_its_protection(plans):
    """A refactor that renames the cluster, a node group, a registry, the bucket or a key would replace it.

    tests/snapshots/prod-stateful.json holds their URNs; a rename must add an alias (so the old URN keeps
    resolving), not drop it. Regenerate with UPDATE_SNAPSHOTS=1 only for a deliberate addition.
    """
    current = {r["urn"]: r["protect"] for r in plans["prod"].resources if r["type"] in STATEFUL_TYPES}
    aliases = {alias for r in plans["prod"].resources for alias in r["aliases"]}
    path = SNAPSHOTS / "prod-stateful.json"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    recorded = json.loads(path.read_text())
    missing = [urn for urn in recorded if urn not in current and urn not in aliases]
    assert missing == [], f"prod would replace: {missing}"
    unprotected = [urn for urn, protected in recorded.items() if protected and not current.get(urn, True)]
    assert unprotected == []


def test_versions_output_pins_everything_in_use(plans):
    pinned = plans["dev"].outputs["versions"]["eks"]
    release = versions.EKS_RELEASES[versions.DEFAULT_KUBERNETES_VERSION]
    assert pinned["kubernetes"] == release.kubernetes and pinned["ami_release"] == release.ami_release
    in_use = {r["inputs"]["addonName"]: r["inputs"]["addonVersion"] for r in plans["dev"].by_type("aws:eks/addon:Addon")}
    assert in_use == pinned["addons"]
    assert {r["inputs"]["releaseVersion"] for r in plans["dev"].by_type("aws:eks/nodeGroup:NodeGroup")} == {pinned["ami_release"]}
    assert "latest" not in json.dumps(plans["prod"].to_json()).lower()
    images = plans["prod"].outputs["versions"]["images"]
    assert (
        images["models"]["chat"]
        == "123456789012.dkr.ecr.us-west-2.amazonaws.com/prod/serving/vllm@sha256:" + images["models"]["chat"][-64:]
    )
    assert "@sha256:" in images["loader"]


def test_stack_outputs(plans):
    outputs = plans["staging"].outputs
    assert set(outputs) >= {"clusterName", "clusterEndpoint", "kubeconfig", "registryUrls", "modelStoreBucket", "versions"}
    assert outputs["registryUrls"]["serving/vllm"].endswith(".dkr.ecr.us-west-2.amazonaws.com/staging/serving/vllm")
    assert json.loads(outputs["kubeconfig"])["users"][0]["user"]["exec"]["command"] == "aws"


def test_summary_counts_resources_per_component(plans):
    text = offline_plan.summary(plans["prod"], [])
    assert "eks (EksCluster)" in text and "network (Network)" in text
    protected = sum(1 for r in plans["prod"].resources if r["protect"])
    assert protected >= 8 and f"protected ({protected}):" in text and "policy violations: none" in text


def test_a_recorded_rename_aliases_the_component_and_its_children(monkeypatch):
    from ml_platform.components.kms import KmsKey, KmsKeyArgs
    from ml_platform.infra import aliases

    monkeypatch.setattr(aliases, "RENAMED", {"platform-data": ("data",)})
    plan = render(
        lambda: KmsKey(
            "platform-data",
            KmsKeyArgs(description="d", alias="test-data", account_id="123456789012"),
            opts=aliases.options("platform-data"),
        )
    )
    key = plan.by_type("aws:kms/key:Key")[0]
    assert key["urn"].endswith("::platform-data-key")
    assert key["aliases"] == ["urn:pulumi:test::ml-platform::mlplatform:aws:KmsKey$aws:kms/key:Key::data-key"]


def test_names_unique_per_account_carry_the_stack(plans):
    for stack, plan in plans.items():
        aliases = [r["inputs"]["name"] for r in plan.by_type("aws:kms/alias:Alias")]
        assert aliases and all(a.startswith(f"alias/ml-platform-{stack}-") for a in aliases)
        assert all(r["inputs"]["name"].startswith(f"{stack}/") for r in plan.by_type("aws:ecr/repository:Repository"))
        rules_ = plan.by_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
        assert rules_ and all(r["inputs"]["ecrRepositoryPrefix"].startswith(f"{stack}/") for r in rules_)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_log_group_fluent_bit_writes_to_is_declared(plans, stack):
    """No log group is created outside the program: the groups of every namespace Fluent Bit tails, and the
    one for records without metadata, are in the plan (encrypted in prod); `pr-*` namespaces declare their own."""
    plan = plans[stack]
    release = next(r["inputs"] for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r["inputs"]["chart"] == "aws-for-fluent-bit")
    output = release["values"]["cloudWatchLogs"]
    prefix = output["logGroupTemplate"].removesuffix("$kubernetes['namespace_name']")
    tailed = [p.split("_")[1] for p in release["values"]["input"]["path"].split(",")]
    groups = {g["inputs"].get("name"): g["inputs"] for g in plan.by_type("aws:cloudwatch/logGroup:LogGroup")}
    written = {output["logGroupName"]} | {prefix + n for n in tailed if "*" not in n}
    assert written <= set(groups), written - set(groups)
    assert output["autoCreateGroup"] is False
    assert [n for n in tailed if "*" in n] == ([] if stack == "prod" else ["pr-*"])
    if stack == "prod":
        assert all(groups[name].get("kmsKeyId") for name in written)


def test_a_models_deployment_waits_for_the_pools_it_can_run_on_only(plans):
    by_name = {r["name"]: r for r in plans["prod"].resources}

    def waits_for(deployment: str) -> set[str]:
        return {urn.split("::")[-1] for urn in by_name[deployment]["dependencies"]}

    chat, fraud = waits_for("model-chat-deployment"), waits_for("model-fraud-deployment")
    assert {"gpu-ng", "nvidia-nvidia-device-plugin", "karpenter-gpu-large-nodepool"} <= chat
    assert "gpu-ng" not in fraud and "nvidia-nvidia-device-plugin" not in fraud, "a CPU model does not wait for GPU capacity"
    assert "karpenter-cpu-nodepool" in fraud and "system-ng" not in chat | fraud
