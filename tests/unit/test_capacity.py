"""The platform's own pods: every container has requests, and what must run on a managed pool fits it at its
minimum size (infra/offline/capacity.py), checked on every committed stack and shown the plans it must reject."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from ml_platform.components import resources
from ml_platform.infra import cli
from ml_platform.infra.offline import capacity

ROOT = Path(__file__).resolve().parents[2]


def test_allocatable_follows_nodeadm_and_karpenter():
    # m6i.large: 2 vCPU, 8 GiB; kube-reserved 70m and 11 x 29 pods + 255 MiB; 100Mi eviction; 7.5% VM overhead
    assert capacity.allocatable("m6i.large") == (1930, 6903)
    assert capacity.allocatable("m6i.xlarge") == (3920, 14162)
    assert capacity.allocatable("c6i.large") == (1930, int(2 * 2 * 1024 * 0.925) - (11 * 29 + 255 + 100))
    assert capacity.allocatable("t3.large") is None  # burstable: not sized, so never passed


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_platform_container_has_requests_and_the_pools_hold_them(plans, stack):
    pods, unread = capacity.platform_pods(plans[stack].resources)
    assert unread == []
    names = {p.name for p in pods}
    assert {"prometheus", "alertmanager", "grafana", "kube-state-metrics", "node-exporter", "prometheus-operator"} <= names
    assert {"karpenter", "keda-operator", "metrics-server", "fluent-bit", "coredns"} <= names
    pools, problems = capacity.check(plans[stack].resources)
    assert problems == [], problems
    assert all(p.requested_cpu_m <= p.cpu_m * p.nodes and p.requested_memory_mi <= p.memory_mi * p.nodes for p in pools)


def test_gpu_nodes_run_the_gpu_daemonsets_and_system_nodes_do_not(plans):
    pools, _ = capacity.check(plans["prod"].resources)
    by_pool = {p.pool: p for p in pools}
    pods, _ = capacity.platform_pods(plans["prod"].resources)
    gpu_only = {p.name for p in pods if p.gpu_only}
    assert gpu_only == {"nvidia-device-plugin", "dcgm-exporter"}
    every_node = sum(p.cpu_m for p in pods if p.daemonset and not p.gpu_only)
    assert by_pool["gpu"].requested_cpu_m == every_node + sum(p.cpu_m for p in pods if p.gpu_only)


def edited(plan, change):
    resources_ = copy.deepcopy(plan.resources)
    change(resources_)
    return resources_


def release(resources_, chart):
    return next(r["inputs"] for r in resources_ if r["type"] == capacity.HELM_RELEASE and r["inputs"]["chart"].endswith(chart))


def test_a_container_without_requests_is_named(plans):
    def unsized(resources_):
        del release(resources_, "kube-prometheus-stack")["values"]["grafana"]["resources"]

    _, problems = capacity.check(edited(plans["dev"], unsized))
    assert problems == ["grafana (kube-prometheus-stack): a container has no CPU and memory requests in the chart values"]


def test_dev_with_a_4gi_prometheus_does_not_fit_its_one_system_node(plans):
    def bigger(resources_):
        spec = release(resources_, "kube-prometheus-stack")["values"]["prometheus"]["prometheusSpec"]
        spec["resources"] = {"requests": {"cpu": "250m", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}

    _, problems = capacity.check(edited(plans["dev"], bigger))
    ((problem,),) = [problems]
    assert problem.startswith("nodePools.system: the platform's pods do not fit 1 x m6i.large at minSize")
    assert "room for a rolling update included" in problem


def test_pods_spread_one_per_node_need_that_many_nodes(plans):
    def two_controllers(resources_):
        release(resources_, "karpenter")["values"]["replicas"] = 2

    _, problems = capacity.check(edited(plans["dev"], two_controllers))
    assert "nodePools.system.minSize: karpenter runs 2 replicas one per node, on 1 node(s)" in problems


def test_a_node_type_it_cannot_size_is_a_problem_not_a_pass(plans):
    def burstable(resources_):
        group = next(r for r in resources_ if r["type"] == "aws:eks/nodeGroup:NodeGroup")
        group["inputs"]["instanceTypes"] = ["t3.large"]

    _, problems = capacity.check(edited(plans["dev"], burstable))
    assert problems == ["nodePools.system: cannot tell what a t3.large node offers; size it in infra/offline/capacity.py"]


def test_the_plan_fails_on_a_pool_too_small(tmp_path, capsys):
    for path in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("prometheusMemory: 2Gi", "prometheusMemory: 6Gi"))
    assert cli.main(["plan", "--stack", "dev", "--project-dir", str(tmp_path)]) == 1
    assert "nodePools.system: the platform's pods do not fit 1 x m6i.large" in capsys.readouterr().out


def test_the_readme_lists_what_each_platform_container_requests():
    readme = (ROOT / "README.md").read_text()
    for name, sizes in resources.PLATFORM.items():
        small, standard = sizes[resources.SMALL], sizes[resources.STANDARD]
        row = (
            f"| `{name}` | {small.cpu} / {small.memory} / {small.memory_limit} | "
            f"{standard.cpu} / {standard.memory} / {standard.memory_limit} |"
        )
        assert row in readme, row


def test_every_pod_takes_one_of_the_node_pod_slots(plans):
    def medium(resources_):
        group = next(r for r in resources_ if r["type"] == "aws:eks/nodeGroup:NodeGroup")
        group["inputs"]["instanceTypes"] = ["m6g.medium"]
        group["inputs"]["scalingConfig"]["minSize"] = 3

    # 3 x m6g.medium have the CPU and memory, but 8 pods a node, 6 of them DaemonSets
    _, problems = capacity.check(edited(plans["dev"], medium))
    ((problem,),) = [problems]
    assert "each node offers 940m, 3345Mi and 8 pods" in problem


def test_a_pool_at_zero_is_not_sized_and_older_families_are_not_guessed(plans):
    def gpu_at_zero(resources_):
        group = copy.deepcopy(next(r for r in resources_ if r["type"] == "aws:eks/nodeGroup:NodeGroup"))
        group["name"] = "h100"
        group["inputs"]["instanceTypes"] = ["p5.48xlarge"]
        group["inputs"]["scalingConfig"]["minSize"] = 0
        group["inputs"]["labels"] = {"ml-platform/pool": "h100"}
        resources_.append(group)

    pools, problems = capacity.check(edited(plans["dev"], gpu_at_zero))
    assert problems == [] and "h100: no node at minimum size" in [p.line() for p in pools]
    assert capacity.allocatable("m4.large") is None and capacity.max_pods("m6i.large") == 29


def test_the_pushgateway_is_sized_on_the_system_pool_and_an_unknown_chart_is_a_problem(plans):
    resources = copy.deepcopy(plans["staging"].resources)
    pods, problems = capacity.platform_pods(resources)
    (pushgateway,) = [p for p in pods if p.name == "pushgateway"]
    assert (pushgateway.pool, pushgateway.cpu_m, pushgateway.memory_mi, pushgateway.surge) == ("system", 20, 64, False)
    assert problems == []
    release = next(
        r for r in resources if r["type"] == "kubernetes:helm.sh/v3:Release" and r["inputs"]["chart"] == "prometheus-pushgateway"
    )
    release["inputs"]["chart"] = "some-new-chart"
    _, problems = capacity.platform_pods(resources)
    assert problems == ["monitoring-pushgateway (some-new-chart): its pods are not in capacity.WORKLOADS, so they cannot be sized"]
