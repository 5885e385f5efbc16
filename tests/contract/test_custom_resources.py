"""Every custom resource the plans declare is valid against its CRD schema (strictly), and depends on the
Helm release that installs its CRD."""

from __future__ import annotations

import pytest

from tests.contract import crd_schemas

CRD_RELEASES = {
    "karpenter.sh": "karpenter-crd",
    "karpenter.k8s.aws": "karpenter-crd",
    "keda.sh": "keda",
    "monitoring.coreos.com": "prometheus-operator-crds",
}


def custom_resources(plan):
    return [
        r
        for r in plan.resources
        if r["type"].startswith("kubernetes:")
        and "/" in r["inputs"].get("apiVersion", "")
        and r["inputs"]["apiVersion"].split("/")[0] in CRD_RELEASES
    ]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_custom_resources_match_their_crd_schemas(plans, stack):
    resources = custom_resources(plans[stack])
    kinds = {r["inputs"]["kind"] for r in resources}
    assert {"NodePool", "EC2NodeClass", "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds
    for resource in resources:
        assert crd_schemas.errors(resource["inputs"]) == [], resource["name"]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_custom_resources_wait_for_the_release_that_installs_their_crds(plans, stack):
    releases = {r["inputs"]["name"]: r["urn"] for r in plans[stack].by_type("kubernetes:helm.sh/v3:Release")}
    for resource in custom_resources(plans[stack]):
        group = resource["inputs"]["apiVersion"].split("/")[0]
        assert releases[CRD_RELEASES[group]] in resource["dependencies"], resource["name"]


def test_the_schema_check_rejects_bad_resources(plans):
    node_pool = next(r["inputs"] for r in custom_resources(plans["dev"]) if r["inputs"]["kind"] == "NodePool")
    bad_policy = {
        **node_pool,
        "spec": {**node_pool["spec"], "disruption": {**node_pool["spec"]["disruption"], "consolidationPolicy": "Always"}},
    }
    assert any("consolidationPolicy" in e for e in crd_schemas.errors(bad_policy))
    typo = {**node_pool, "spec": {**node_pool["spec"], "limit": {"cpu": "1"}}}
    assert any("limit" in e for e in crd_schemas.errors(typo))
