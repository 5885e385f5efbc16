"""The first-deploy estimate: the critical path of a plan's dependency graph under the duration table, and the
shape of the platform's graph that keeps it within 1.1x the essential chain (nothing waits for a chart it does
not need at run time)."""

from __future__ import annotations

import pytest

from ml_platform.infra.offline import deploy_time


def resource(name, token, deps=(), provider="", custom=True, **inputs):
    return {
        "urn": f"urn:{name}",
        "name": name,
        "type": token,
        "custom": custom,
        "dependencies": [f"urn:{d}" for d in deps],
        "provider": f"urn:{provider}" if provider else "",
        "inputs": inputs,
    }


def test_the_critical_path_is_the_longest_chain_through_dependencies_and_providers():
    graph = [
        resource("cluster", "aws:eks/cluster:Cluster"),
        resource("k8s", "pulumi:providers:kubernetes", ["cluster"]),
        resource("vpc-cni", "aws:eks/addon:Addon", ["cluster"], addonName="vpc-cni"),
        resource("nodes", "aws:eks/nodeGroup:NodeGroup", ["vpc-cni"]),
        resource("crds", "kubernetes:helm.sh/v3:Release", provider="k8s", chart="prometheus-operator-crds"),
        resource("kps", "kubernetes:helm.sh/v3:Release", ["nodes", "crds"], provider="k8s", chart="kube-prometheus-stack"),
        resource("rule", "kubernetes:monitoring.coreos.com/v1:PrometheusRule", ["crds"], provider="k8s"),
    ]
    estimate = deploy_time.estimate(graph)
    assert estimate.seconds == 600 + 105 + 240 + 240
    assert [name for name, _ in estimate.path] == ["cluster", "vpc-cni", "nodes", "kps"]
    assert estimate.essential == 600 + 105 + 240 + 240 and estimate.ratio == 1.0
    waiting = [
        *graph[:-2],
        resource("kps", "kubernetes:helm.sh/v3:Release", ["nodes", "metrics"], provider="k8s", chart="kube-prometheus-stack"),
        resource("metrics", "kubernetes:helm.sh/v3:Release", ["nodes"], provider="k8s", chart="metrics-server"),
    ]
    assert deploy_time.estimate(waiting).seconds == 600 + 105 + 240 + 90 + 240


def test_a_cycle_is_refused():
    with pytest.raises(ValueError, match="dependency cycle"):
        deploy_time.estimate([resource("a", "aws:iam/role:Role", ["b"]), resource("b", "aws:iam/role:Role", ["a"])])


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_deploys_within_a_tenth_of_the_essential_chain(plans, stack):
    estimate = deploy_time.estimate(plans[stack].resources)
    assert estimate.ratio <= 1.1, estimate.line()


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_no_release_waits_for_the_monitoring_chart(plans, stack):
    """Karpenter, Fluent Bit, the NVIDIA charts and every model need the Prometheus operator's CRDs only."""
    chart = next(r["urn"] for r in plans[stack].by_type("kubernetes:helm.sh/v3:Release") if r["inputs"]["name"] == "kube-prometheus-stack")
    waiting = [r["name"] for r in plans[stack].resources if chart in r["dependencies"]]
    assert waiting == [], waiting


def model(name, deps, gpus=0, replicas=None):
    spec = {"template": {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)} if gpus else {}}}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return resource(
        name, "kubernetes:apps/v1:Deployment", deps, metadata={"labels": {"app.kubernetes.io/component": "model-server"}}, spec=spec
    )


def test_a_model_is_awaited_behind_the_capacity_it_needs_and_counts_in_the_essential_chain():
    graph = [
        resource("cluster", "aws:eks/cluster:Cluster"),
        resource("vpc-cni", "aws:eks/addon:Addon", ["cluster"], addonName="vpc-cni"),
        resource("nodes", "aws:eks/nodeGroup:NodeGroup", ["vpc-cni"]),
        resource("karpenter-crds", "kubernetes:helm.sh/v3:Release", ["nodes"], chart="oci://public.ecr.aws/karpenter/karpenter-crd"),
        resource("karpenter", "kubernetes:helm.sh/v3:Release", ["karpenter-crds"], chart="oci://public.ecr.aws/karpenter/karpenter"),
        resource("nodepool", "kubernetes:karpenter.sh/v1:NodePool", ["karpenter"]),
        model("chat", ["nodepool"], gpus=1),
        model("idle", ["nodepool"], gpus=1, replicas=0),
    ]
    estimate = deploy_time.estimate(graph)
    assert estimate.seconds == 600 + 105 + 240 + 30 + 90 + 5 + 360
    assert estimate.path[-1] == ("chat", 360)
    assert estimate.essential == estimate.seconds
    assert deploy_time.duration(graph[-1]) == deploy_time.KUBERNETES_DEFAULT, "a Deployment scaled to zero is ready at once"


def test_a_plan_without_a_cluster_counts_none():
    namespace_preview = [resource("k8s", "pulumi:providers:kubernetes"), model("chat", [], gpus=1)]
    assert deploy_time.essential_chain(namespace_preview) == 360


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_models_wait_for_their_capacity_and_the_controllers_for_the_system_pool_only(plans, stack):
    by_name = {r["name"]: r for r in plans[stack].resources}
    deployment = by_name["model-chat-deployment"]
    assert any("Karpenter" in d for d in deployment["dependencies"]) or any("NodePool" in d for d in deployment["dependencies"])
    gpu_pools = [r["urn"] for r in plans[stack].by_type("aws:eks/nodeGroup:NodeGroup") if r["name"] != "system-ng"]
    for name in ("addons-aws-ebs-csi-driver", "addons-coredns", "monitoring-kube-prometheus-stack", "karpenter-controller", "serving-keda"):
        assert not set(gpu_pools) & set(by_name[name]["dependencies"]), name
    assert by_name["addons-coredns"]["urn"] in by_name["serving-keda"]["dependencies"]


def test_a_models_own_cold_start_estimate_is_its_duration(plans):
    from ml_platform.components.model_service.spec import COLD_START_ANNOTATION
    from ml_platform.infra import config, models
    from ml_platform.infra.offline import deploy_time, stack_files

    cfg = config.parse(stack_files.read_stack("prod").values, "prod")
    (deployment,) = [r for r in plans["prod"].resources if r["name"] == "model-chat-deployment"]
    expected = round(models.cold_start("chat", cfg.models["chat"], cfg).worst_seconds)
    assert deployment["inputs"]["metadata"]["annotations"][COLD_START_ANNOTATION] == str(expected)
    assert deploy_time.duration(deployment) == expected != deploy_time.MODEL_GPU
    unannotated = {**deployment, "inputs": {**deployment["inputs"], "metadata": {**deployment["inputs"]["metadata"], "annotations": {}}}}
    assert deploy_time.duration(unannotated) == deploy_time.MODEL_GPU
