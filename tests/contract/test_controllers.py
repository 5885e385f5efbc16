"""The controller contract (infra/offline/controllers.py) over every stack file of the repository, previews
included: each object some controller acts on has that controller and the data it reads. Every rule is also
shown the plan it must reject, starting with the old one (an HPA and no metrics API)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from ml_platform.infra import cli
from ml_platform.infra.offline import controllers, stack_files
from ml_platform.infra.offline import plan as offline_plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def previews(tmp_path_factory):
    """Plans of the pull-request template (Pulumi.pr.yaml) in both modes, as `preview-stack create` writes them."""
    project = tmp_path_factory.mktemp("project")
    for path in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(path, project / path.name)
    (project / "policy").mkdir()
    plans = {}
    for pr, mode in ((7, "namespace"), (8, "full")):
        arguments = ["preview-stack", "create", "--project-dir", str(project), "--pr", str(pr), "--mode", mode]
        assert cli.main([*arguments, "--now", "2026-11-23T10:00:00Z", "--offline"]) == 0
        plans[mode] = offline_plan.run(f"pr-{pr}", stack_files.read_stack(f"pr-{pr}", project))
    return plans


def test_every_stack_file_is_covered():
    # A stack file added to the repository must join the contract below; Pulumi.pr.yaml is the previews' template.
    assert set(stack_files.stack_names(ROOT)) <= {"dev", "staging", "prod"} | {f"pr-{n}" for n in range(1, 100000)}
    assert (ROOT / "Pulumi.pr.yaml").exists()


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_object_has_its_controller_and_data(plans, stack):
    assert controllers.gaps(plans[stack].resources) == []


def test_a_full_preview_runs_its_own_controllers(previews):
    assert controllers.gaps(previews["full"].resources) == []


def test_a_namespace_preview_is_served_by_its_base_stacks_controllers(previews, plans):
    preview = previews["namespace"].resources
    assert controllers.gaps(preview, base=plans["dev"].resources) == []
    # Resolved there, not exempted: alone, the preview's objects have no controller at all.
    alone = controllers.gaps(preview)
    assert any("ScaledObject/chat: nothing here installs and runs the keda.sh controller" in g for g in alone)
    assert any("HorizontalPodAutoscaler/fraud" in g and "metrics.k8s.io" in g for g in alone)


@pytest.fixture
def project(tmp_path):
    for path in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "policy").mkdir()
    return tmp_path


def test_the_plan_command_reports_gaps_and_fails(project, capsys, monkeypatch):
    assert cli.main(["plan", "--stack", "dev", "--project-dir", str(project)]) == 0
    assert "controller and capacity problems: none" in capsys.readouterr().out
    # Without the fact that metrics-server serves the resource metrics API, dev's CPU model has no metrics source.
    monkeypatch.delitem(controllers.CHARTS, "metrics-server")
    assert cli.main(["plan", "--stack", "dev", "--project-dir", str(project)]) == 1
    out = capsys.readouterr().out
    assert "controller and capacity problems (1):" in out
    assert "fraud/HorizontalPodAutoscaler/fraud: a ContainerResource metric reads metrics.k8s.io" in out


def test_a_namespace_preview_without_its_base_stack_file_is_not_passed(project, capsys):
    arguments = ["preview-stack", "create", "--project-dir", str(project), "--pr", "9", "--now", "2026-11-23T10:00:00Z"]
    assert cli.main([*arguments, "--offline"]) == 0
    (project / "Pulumi.dev.yaml").unlink()
    assert cli.main(["plan", "--stack", "pr-9", "--project-dir", str(project)]) == 1
    assert "base stack 'dev': no Pulumi.dev.yaml here, so its controllers cannot be checked" in capsys.readouterr().out


# -- each rule rejects the plan it must -------------------------------------------------------------------------


def edited(plan, change) -> list[dict]:
    resources = copy.deepcopy(plan.resources)
    change(resources)
    return resources


def without(resources, predicate):
    resources[:] = [r for r in resources if not predicate(r)]


def release(resources, chart):
    return next(r for r in resources if r["type"] == controllers.HELM_RELEASE and controllers.chart_name(r["inputs"]) == chart)


def kind(resources, kind_name, name):
    return next(r["inputs"] for r in resources if r["inputs"].get("kind") == kind_name and r["inputs"]["metadata"]["name"] == name)


def addon(resources, name):
    return next(r for r in resources if r["type"] == "aws:eks/addon:Addon" and r["inputs"]["addonName"] == name)


def set_vpc_cni_off(resources):
    addon(resources, "vpc-cni")["inputs"]["configurationValues"] = json.dumps({"enableNetworkPolicy": "false"})


def select_by_release_label(resources):
    spec = release(resources, "kube-prometheus-stack")["inputs"]["values"]["prometheus"]["prometheusSpec"]
    spec["serviceMonitorSelectorNilUsesHelmValues"] = True


def strip_cpu_request(resources):
    deployment = kind(resources, "Deployment", "fraud")
    del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def scale_on_another_namespace(resources):
    trigger = kind(resources, "ScaledObject", "chat")["spec"]["triggers"][0]["metadata"]
    trigger["query"] = trigger["query"].replace('{namespace="chat"}', '{namespace="fraud"}')


def scale_on_everything(resources):
    trigger = kind(resources, "ScaledObject", "chat")["spec"]["triggers"][0]["metadata"]
    trigger["query"] = "sum(vllm:num_requests_waiting)"


def invent_zero(resources):
    trigger = kind(resources, "ScaledObject", "chat")["spec"]["triggers"][0]["metadata"]
    trigger["query"] = 'sum(vllm:num_requests_waiting{namespace="chat"}) or vector(0)'


def constant_load(resources):
    kind(resources, "ScaledObject", "chat")["spec"]["triggers"][0]["metadata"]["query"] = "vector(7)"


def point_at_another_prometheus(resources):
    kind(resources, "ScaledObject", "chat")["spec"]["triggers"][0]["metadata"]["serverAddress"] = "http://prometheus.monitoring:9090"


def rename_the_metrics_port(resources):
    kind(resources, "ServiceMonitor", "chat")["spec"]["endpoints"][0]["port"] = "metrics"


def storage_class_typo(resources):
    spec = release(resources, "kube-prometheus-stack")["inputs"]["values"]["prometheus"]["prometheusSpec"]
    spec["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"] = "gp2"


BREAKS = {
    # the old plan: an HPA on CPU and nothing serving the resource metrics API
    "no metrics-server": (
        "staging",
        lambda rs: without(rs, lambda r: r["type"] == controllers.HELM_RELEASE and r["inputs"]["chart"] == "metrics-server"),
        "fraud/HorizontalPodAutoscaler/fraud: a ContainerResource metric reads metrics.k8s.io, which nothing here serves",
    ),
    "no KEDA": (
        "dev",
        lambda rs: without(rs, lambda r: r["type"] == controllers.HELM_RELEASE and r["inputs"]["chart"] == "keda"),
        "chat/ScaledObject/chat: nothing here installs and runs the keda.sh controller",
    ),
    "HPA target without a CPU request": ("dev", strip_cpu_request, "utilisation of cpu needs a cpu request on every container it measures"),
    "query of another namespace": ("dev", scale_on_another_namespace, "the query must select the model's own namespace"),
    "query of every namespace": ("dev", scale_on_everything, 'must select the model\'s own namespace (namespace="chat"), not None'),
    "missing series read as zero": ("dev", invent_zero, "vector() makes a value out of missing series"),
    "a constant load": ("dev", constant_load, "the query reads no series of the scaled model"),
    "another Prometheus": ("dev", point_at_another_prometheus, "its Prometheus http://prometheus.monitoring:9090 is not one the plan runs"),
    "ServiceMonitors selected by release label": (
        "dev",
        select_by_release_label,
        "chat/ServiceMonitor/chat: no Prometheus here selects it",
    ),
    "chart ServiceMonitors not selected": ("dev", select_by_release_label, "logging/ServiceMonitor (aws-for-fluent-bit chart)"),
    "ServiceMonitor on a missing port": ("dev", rename_the_metrics_port, "selects no Service with a port named ['metrics']"),
    "no ALB controller": (
        "dev",
        lambda rs: without(rs, lambda r: r["type"] == controllers.HELM_RELEASE and r["inputs"]["chart"] == "aws-load-balancer-controller"),
        "chat/Ingress/chat: no controller here serves ingress class 'alb'",
    ),
    "network policies not enforced": ("dev", set_vpc_cni_off, "fraud/NetworkPolicy/fraud: the VPC CNI does not enforce network policies"),
    "Prometheus volume on an undeclared class": ("prod", storage_class_typo, "StorageClass 'gp2' is not declared"),
    "no EBS CSI driver": (
        "prod",
        lambda rs: without(rs, lambda r: r["type"] == "aws:eks/addon:Addon" and r["inputs"]["addonName"] == "aws-ebs-csi-driver"),
        "provisioned by ebs.csi.aws.com, which no add-on here runs",
    ),
    "no Pod Identity agent": (
        "dev",
        lambda rs: without(rs, lambda r: r["type"] == "aws:eks/addon:Addon" and r["inputs"]["addonName"] == "eks-pod-identity-agent"),
        "chat/ServiceAccount/chat: no EKS Pod Identity agent hands it credentials",
    ),
    "no Karpenter controller": (
        "dev",
        lambda rs: without(rs, lambda r: r["type"] == controllers.HELM_RELEASE and r["inputs"]["chart"].endswith("/karpenter")),
        "_cluster/NodePool/gpu: nothing here installs and runs the karpenter.sh controller",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_each_rule_rejects_the_plan_it_must(plans, case):
    stack, change, expected = BREAKS[case]
    found = controllers.gaps(edited(plans[stack], change))
    assert any(expected in gap for gap in found), found


def test_a_query_that_does_not_parse_is_a_gap_not_a_pass(plans):
    def broken(resources):
        kind(resources, "ScaledObject", "chat")["spec"]["triggers"][0]["metadata"]["query"] = "sum(rate(x[5m])"

    assert any("the query does not parse" in gap for gap in controllers.gaps(edited(plans["dev"], broken)))


def test_a_model_in_a_shared_namespace_must_select_its_own_service(previews, plans):
    def drop_service(resources):
        trigger = kind(resources, "ScaledObject", "chat")["spec"]["triggers"][0]["metadata"]
        trigger["query"] = trigger["query"].replace(', service="chat"', "")

    found = controllers.gaps(edited(previews["namespace"], drop_service), base=plans["dev"].resources)
    assert any("pr-7/ScaledObject/chat: vllm:num_requests_waiting: the namespace is shared" in gap for gap in found), found
