"""ServingPlatform: KEDA always, the AWS Load Balancer Controller with the IAM policy of its pinned chart."""

import json

import pytest
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from ml_platform.components import serving_platform
from ml_platform.infra import config, program, versions
from tests.helpers import minimal_sections, raw_config


def test_every_pinnable_chart_version_has_its_policy_beside_the_component():
    pinned = versions.CHARTS["aws-load-balancer-controller"].version
    assert pinned in serving_platform.alb_policy_versions()
    for version in serving_platform.alb_policy_versions():
        document = serving_platform.alb_controller_policy(version)
        IAMPolicyDocumentValidator(json.dumps(document)).validate()
        assert any("elasticloadbalancing:CreateLoadBalancer" in str(s.get("Action")) for s in document["Statement"])


def test_a_chart_pin_without_its_policy_is_a_config_error_naming_the_key():
    cfg = config.parse(raw_config(**minimal_sections(pins={"charts": {"aws-load-balancer-controller": "3.6.0"}})), "test")
    with pytest.raises(config.ConfigError) as caught:
        program.check_pins(cfg)
    ((path, message),) = caught.value.problems
    assert path == "pins.charts.aws-load-balancer-controller"
    assert "'3.6.0' has no IAM policy" in message and "aws-load-balancer-controller-3.6.0.iam-policy.json" in message
    with pytest.raises(KeyError, match=r"no IAM policy for aws-load-balancer-controller chart 3\.6\.0"):
        serving_platform.alb_controller_policy("3.6.0")


def test_the_pinned_policy_passes_its_check():
    program.check_pins(config.parse(raw_config(**minimal_sections(pins={"charts": {"aws-load-balancer-controller": "3.5.0"}})), "test"))


def test_karpenter_policies_belong_to_the_pinned_chart_version():
    from ml_platform.components import karpenter

    assert versions.CHARTS["karpenter"].version in karpenter.POLICY_CHART_VERSIONS
    cfg = config.parse(raw_config(**minimal_sections(pins={"charts": {"karpenter": "1.15.0"}})), "test")
    with pytest.raises(config.ConfigError) as caught:
        program.check_pins(cfg)
    assert caught.value.problems[0][0] == "pins.charts.karpenter"


def test_the_load_balancer_controllers_crds_follow_its_chart_version(plans):
    """Helm installs a chart's crds/ once and never upgrades them: Pulumi applies the controller's CRD files at
    the pinned version instead (a chart bump changes their URLs), through a provider that adopts the CRDs an
    earlier Helm install left, and the release skips its own copy."""
    plan = plans["staging"]
    (release,) = [r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r["inputs"]["name"] == "aws-load-balancer-controller"]
    (group,) = plan.by_type("kubernetes:yaml/v2:ConfigGroup")
    version = versions.CHARTS["aws-load-balancer-controller"].version
    assert group["inputs"]["files"] == serving_platform.alb_crd_urls(version)
    assert all(f"/v{version}/helm/aws-load-balancer-controller/crds/" in url for url in group["inputs"]["files"])
    assert release["inputs"]["skipCrds"] is True and group["urn"] in release["dependencies"]
    provider = group["provider"]
    crd_provider = next(r for r in plan.resources if r["urn"] == provider)
    assert crd_provider["inputs"]["upsertExistingObjects"] == "true" and crd_provider["inputs"]["enablePatchForce"] == "true"
    others = {r["provider"] for r in plan.resources if r["type"].startswith("kubernetes:") and r is not group}
    main = next(r for r in plan.resources if r["type"] == "pulumi:providers:kubernetes" and r["name"] == "eks-k8s")
    assert main["inputs"]["upsertExistingObjects"] == "false", "the cluster's provider never adopts what it finds"
    assert provider not in others, "only the CRDs go through the adopting provider"
