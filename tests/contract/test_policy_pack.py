"""The policy pack: every policy passes on the real plans and fails on a resource that breaks it, both
through the plain rules (used by the offline plan) and through the CrossGuard pack."""

from __future__ import annotations

import copy
import runpy
from pathlib import Path
from types import SimpleNamespace

import pulumi_policy
import pytest

from ml_platform.policy import rules

ROOT = Path(__file__).resolve().parents[2]


def view_with(plan, type_token: str, mutate, name: str | None = None, protect: bool | None = None) -> rules.StackView:
    """The plan's policy view with one resource of `type_token` changed."""
    resources = copy.deepcopy(plan.resources)
    target = next(r for r in resources if r["type"] == type_token and (name is None or r["name"] == name))
    mutate(target["inputs"])
    if protect is not None:
        target["protect"] = protect
    return rules.view_from_plan(resources)


def set_path(path: str, value):
    def mutate(inputs):
        *parents, last = path.split(".")
        node = inputs
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return mutate


BREAKS = [
    ("ecr-immutable-kms", "dev", rules.ECR_REPOSITORY, set_path("imageTagMutability", "MUTABLE"), None, None),
    ("ecr-registry-scanning", "prod", rules.ECR_REGISTRY_SCANNING, set_path("scanType", "BASIC"), None, None),
    (
        "ecr-registry-scanning",
        "prod",
        rules.ECR_REGISTRY_SCANNING,
        set_path("rules", [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}]),
        None,
        None,
    ),
    (
        "ecr-registry-scanning",
        "prod",
        rules.ECR_REGISTRY_SCANNING,
        set_path("rules", [{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "staging/*", "filterType": "WILDCARD"}]}]),
        None,
        None,
    ),
    ("eks-secrets-encrypted", "dev", rules.EKS_CLUSTER, set_path("encryptionConfig.resources", []), None, None),
    ("eks-control-plane-logging", "dev", rules.EKS_CLUSTER, set_path("enabledClusterLogTypes", ["api"]), None, None),
    ("eks-endpoint-access", "dev", rules.EKS_CLUSTER, set_path("vpcConfig.publicAccessCidrs", ["0.0.0.0/0"]), None, None),
    ("eks-endpoint-access", "prod", rules.EKS_CLUSTER, set_path("vpcConfig.endpointPublicAccess", True), None, None),
    ("eks-api-auth-mode", "dev", rules.EKS_CLUSTER, set_path("accessConfig.authenticationMode", "API_AND_CONFIG_MAP"), None, None),
    ("eks-api-auth-mode", "dev", rules.EKS_CLUSTER, set_path("accessConfig.bootstrapClusterCreatorAdminPermissions", True), None, None),
    ("nodes-imdsv2", "dev", rules.LAUNCH_TEMPLATE, set_path("metadataOptions.httpTokens", "optional"), None, None),
    ("nodes-imdsv2", "dev", rules.LAUNCH_TEMPLATE, set_path("metadataOptions.httpPutResponseHopLimit", 2), None, None),
    ("node-groups-private-subnets", "dev", rules.SUBNET, set_path("mapPublicIpOnLaunch", True), "network-private-a", None),
    ("s3-private-encrypted-versioned", "dev", rules.S3_PUBLIC_ACCESS_BLOCK, set_path("restrictPublicBuckets", False), None, None),
    (
        "s3-private-encrypted-versioned",
        "dev",
        rules.S3_ENCRYPTION,
        set_path("rules", [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]),
        None,
        None,
    ),
    ("s3-private-encrypted-versioned", "dev", rules.S3_VERSIONING, set_path("versioningConfiguration.status", "Suspended"), None, None),
    ("kms-rotation", "dev", rules.KMS_KEY, set_path("enableKeyRotation", False), None, None),
    ("prod-stateful-protected", "prod", rules.S3_BUCKET, lambda inputs: None, None, False),
    ("prod-stateful-protected", "prod", rules.RDS_CLUSTER, lambda inputs: None, None, False),
    ("prod-stateful-protected", "prod", rules.RDS_INSTANCE, lambda inputs: None, "model-registry-db-instance-1", False),
    ("databases-private-encrypted-backed-up", "staging", rules.RDS_CLUSTER, set_path("storageEncrypted", False), None, None),
    ("databases-private-encrypted-backed-up", "staging", rules.RDS_CLUSTER, set_path("backupRetentionPeriod", 1), None, None),
    ("databases-private-encrypted-backed-up", "staging", rules.RDS_INSTANCE, set_path("publiclyAccessible", True), None, None),
    (
        "databases-private-encrypted-backed-up",
        "staging",
        rules.SECURITY_GROUP,
        set_path("ingress", [{"protocol": "tcp", "fromPort": 5432, "toPort": 5432, "cidrBlocks": ["0.0.0.0/0"]}]),
        "model-registry-db-access",
        None,
    ),
    ("databases-private-encrypted-backed-up", "prod", rules.RDS_CLUSTER, set_path("deletionProtection", False), None, None),
    ("databases-private-encrypted-backed-up", "prod", rules.RDS_CLUSTER, set_path("skipFinalSnapshot", True), None, None),
]


@pytest.mark.parametrize(
    ("policy", "stack", "type_token", "mutate", "name", "protect"), BREAKS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BREAKS)]
)
def test_policy_fails_when_its_rule_is_broken(plans, policy, stack, type_token, mutate, name, protect):
    violations = rules.evaluate(view_with(plans[stack], type_token, mutate, name, protect))
    assert [v for v in violations if v.startswith(f"{policy}:")], violations


def test_every_policy_has_a_failing_case_and_passes_on_every_plan(plans):
    assert {b[0] for b in BREAKS} == {p.name for p in rules.POLICIES}
    for plan in plans.values():
        assert rules.evaluate(rules.view_from_plan(plan.resources)) == []


def test_the_protection_policy_ignores_dev(plans):
    assert rules.evaluate(view_with(plans["dev"], rules.S3_BUCKET, lambda inputs: None, protect=False)) == []


def load_pack(monkeypatch) -> dict:
    """Run policy/__main__.py as Pulumi's policy host does, with PolicyPack captured instead of served."""
    captured = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: captured.update(kwargs))
    runpy.run_path(str(ROOT / "policy"), run_name="__main__")
    return captured


def crossguard_args(plan, mutate_bucket_protect: bool | None = None):
    resources = []
    for r in plan.resources:
        if not r["custom"]:
            continue
        protect = r["protect"] if mutate_bucket_protect is None or r["type"] != rules.S3_BUCKET else mutate_bucket_protect
        resources.append(
            SimpleNamespace(
                resource_type=r["type"],
                name=r["name"],
                urn=r["urn"],
                props=r["inputs"],
                opts=SimpleNamespace(protect=protect),
                property_dependencies={k: [SimpleNamespace(urn=u) for u in v] for k, v in r["propertyDependencies"].items()},
            )
        )
    return SimpleNamespace(resources=resources)


def test_crossguard_pack_serves_every_policy_as_mandatory(monkeypatch):
    pack = load_pack(monkeypatch)
    assert pack["name"] == "ml-platform"
    assert [p.name for p in pack["policies"]] == [p.name for p in rules.POLICIES]
    assert all(p.enforcement_level == pulumi_policy.EnforcementLevel.MANDATORY for p in pack["policies"])


def test_crossguard_policy_reports_through_the_engine_interface(monkeypatch, plans):
    pack = load_pack(monkeypatch)
    protection = next(p for p in pack["policies"] if p.name == "prod-stateful-protected")
    reported = []
    protection.validate(crossguard_args(plans["prod"]), lambda message, urn=None: reported.append(message))
    assert reported == []
    protection.validate(crossguard_args(plans["prod"], mutate_bucket_protect=False), lambda message, urn=None: reported.append(message))
    assert reported == ["models-bucket (aws:s3/bucket:Bucket): prod stateful resources must be protected"]


def test_policy_pack_files():
    import yaml

    manifest = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert manifest["runtime"]["options"]["virtualenv"] == "../venv"
    assert "pulumi-policy==1.21.0" in (ROOT / "policy" / "requirements.txt").read_text()
