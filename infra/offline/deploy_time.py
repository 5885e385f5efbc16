"""How long a first `pulumi up` of a plan takes, estimated from its own dependency graph: each resource starts
when everything it waits for has finished (its dependencies, as the engine receives them, and its provider),
and takes its type's typical create time (DURATIONS). The longest chain is the critical path; the plan summary
prints it, and `make bench` compares it with the essential chain, the part no ordering can avoid: the cluster,
the add-ons nodes need, the system nodes, then the longer of the slowest chart (behind the EBS CSI driver and
the gp3 StorageClass where Prometheus has a volume) and the slowest model (behind Karpenter's CRDs, controller
and NodePools when Karpenter gives it nodes): Pulumi waits for a model's Deployment to be ready.

Durations (seconds), in one place with their sources. Typical create times measured on EKS 1.3x deployments as
the issue that asked for this estimate reports them (EKS cluster ~10 min; managed node group ~4 min; EKS add-on
1.5-2 min; kube-prometheus-stack ~4 min; other Helm releases ~1.5 min); a NAT gateway takes 1-2 minutes to become
available (Amazon VPC user guide, "NAT gateway basics": state `pending` until `available`); a chart of CRDs only
(nothing to wait for but the API server) well under a minute. A model server's Deployment with replicas is ready
after a node is launched and the server has started: the model's own cold-start estimate, which the platform
records on its Deployment (ml-platform/cold-start-seconds, infra/coldstart.py: node, image pull, weights, load,
compile with a cold cache, initialisation); without one, 6 minutes for a GPU model (the published breakdown in
issue #16, 294 s from start to serving for Llama-3.1-8B on one L40S, the image pull on top) and 2 for a CPU
model. Anything else (IAM, KMS, S3, other Kubernetes objects, a Deployment scaled to zero) is seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_platform.components.model_service.spec import COLD_START_ANNOTATION

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
DURATIONS: dict[str, float] = {
    "aws:eks/cluster:Cluster": 600,
    "aws:eks/nodeGroup:NodeGroup": 240,
    "aws:eks/addon:Addon": 105,
    "aws:ec2/natGateway:NatGateway": 120,
    HELM_RELEASE: 90,
    # The self-hosted registry's database. Assumptions, not published figures (AWS gives none): a cluster's
    # storage, a db.serverless instance's boot, a first manual snapshot.
    "aws:rds/cluster:Cluster": 300,
    "aws:rds/clusterInstance:ClusterInstance": 600,
    "aws:rds/clusterSnapshot:ClusterSnapshot": 120,
}
# Helm releases by chart: the monitoring stack waits for Prometheus, Alertmanager and Grafana to be ready;
# CRD charts have no pods.
CHART_DURATIONS: dict[str, float] = {
    "kube-prometheus-stack": 240,
    "prometheus-operator-crds": 30,
    "oci://public.ecr.aws/karpenter/karpenter-crd": 30,
}
MODEL_GPU = 360.0
MODEL_CPU = 120.0
AWS_DEFAULT = 10.0
KUBERNETES_DEFAULT = 5.0
KARPENTER_CHARTS = ("oci://public.ecr.aws/karpenter/karpenter-crd", "oci://public.ecr.aws/karpenter/karpenter")
ADDON_BOOTSTRAP = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")


def duration(resource: Mapping[str, Any]) -> float:
    """Typical create time of one plan resource, seconds (0 for components and providers)."""
    token = resource["type"]
    if not resource["custom"] or token.startswith("pulumi:providers:"):
        return 0.0
    if token == HELM_RELEASE:
        return CHART_DURATIONS.get(resource["inputs"].get("chart", ""), DURATIONS[HELM_RELEASE])
    if token in DURATIONS:
        return DURATIONS[token]
    if _is_model(resource):
        spec = resource["inputs"]["spec"]
        if spec.get("replicas", 1) == 0:  # absent: Kubernetes makes one
            return KUBERNETES_DEFAULT
        estimate = ((resource["inputs"].get("metadata") or {}).get("annotations") or {}).get(COLD_START_ANNOTATION)
        if estimate:
            return float(estimate)  # the model's own cold-start estimate (infra/coldstart.py)
        containers = spec["template"]["spec"]["containers"]
        gpus = any("nvidia.com/gpu" in (c.get("resources", {}).get("limits") or {}) for c in containers)
        return MODEL_GPU if gpus else MODEL_CPU
    return KUBERNETES_DEFAULT if token.startswith("kubernetes:") else AWS_DEFAULT


def _is_model(resource: Mapping[str, Any]) -> bool:
    """A model server's Deployment (components/model_service: app.kubernetes.io/component=model-server)."""
    if resource["type"] != "kubernetes:apps/v1:Deployment":
        return False
    labels = (resource["inputs"].get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/component") == "model-server"


@dataclass(frozen=True)
class DeployTime:
    seconds: float
    """The estimated first deploy: the critical path's length."""
    path: tuple[tuple[str, float], ...]
    """The critical path: (resource name, its own duration), first to last, resources of 30 s or more only."""
    essential: float
    """The essential chain's length, seconds."""

    @property
    def ratio(self) -> float:
        return self.seconds / self.essential if self.essential else 1.0

    def line(self) -> str:
        steps = " -> ".join(f"{name} ({_minutes(seconds)})" for name, seconds in self.path)
        return (
            f"first deploy (estimate): {_minutes(self.seconds)}, {self.ratio:.2f}x the essential chain ({_minutes(self.essential)}); "
            f"critical path: {steps}"
        )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def estimate(resources: Sequence[Mapping[str, Any]]) -> DeployTime:
    """The first deploy of a plan's resources (plan.json's `resources`)."""
    by_urn = {r["urn"]: r for r in resources}
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}

    def waits_for(resource: Mapping[str, Any]) -> list[str]:
        urns = [*resource["dependencies"], *([resource["provider"]] if resource.get("provider") else [])]
        return [u for u in urns if u in by_urn]

    def done(urn: str, seen: tuple[str, ...] = ()) -> float:
        if urn in finish:
            return finish[urn]
        if urn in seen:  # a cycle cannot deploy; the engine refuses it, so the plan would too
            raise ValueError(f"dependency cycle through {urn}")
        latest, previous = 0.0, None
        for dependency in waits_for(by_urn[urn]):
            end = done(dependency, (*seen, urn))
            if end > latest:
                latest, previous = end, dependency
        finish[urn] = latest + duration(by_urn[urn])
        before[urn] = previous
        return finish[urn]

    for urn in by_urn:
        done(urn)
    last = max(finish, key=lambda urn: finish[urn]) if finish else None
    path = []
    while last is not None:
        own = duration(by_urn[last])
        if own >= 30:
            path.append((by_urn[last]["name"], own))
        last = before[last]
    return DeployTime(max(finish.values(), default=0.0), tuple(reversed(path)), essential_chain(resources))


def essential_chain(resources: Sequence[Mapping[str, Any]]) -> float:
    """The part of a first deploy no ordering avoids, in seconds: the cluster, the bootstrap add-ons and the system
    nodes (each where the plan has one), then the longer of the slowest chart (behind the EBS CSI driver and the gp3
    StorageClass where Prometheus keeps its data on a volume) and the slowest model (behind Karpenter's CRD chart,
    controller and a NodePool where the plan runs Karpenter)."""
    has = {r["type"] for r in resources}
    cluster = DURATIONS["aws:eks/cluster:Cluster"] if "aws:eks/cluster:Cluster" in has else 0.0
    addons = [r for r in resources if r["type"] == "aws:eks/addon:Addon"]
    bootstrap = max((duration(r) for r in addons if r["inputs"].get("addonName") in ADDON_BOOTSTRAP), default=0.0)
    nodes = DURATIONS["aws:eks/nodeGroup:NodeGroup"] if "aws:eks/nodeGroup:NodeGroup" in has else 0.0
    releases = [r for r in resources if r["type"] == HELM_RELEASE]
    slowest = max((duration(r) for r in releases), default=0.0)
    volume = any(((r["inputs"].get("values") or {}).get("prometheus") or {}).get("prometheusSpec", {}).get("storageSpec") for r in releases)
    storage = 0.0
    if volume:
        csi = max((duration(r) for r in addons if r["inputs"].get("addonName") == "aws-ebs-csi-driver"), default=0.0)
        storage = csi + KUBERNETES_DEFAULT  # the StorageClass
    karpenter = [r for r in releases if r["inputs"].get("chart") in KARPENTER_CHARTS]
    capacity = sum(duration(r) for r in karpenter) + (KUBERNETES_DEFAULT if karpenter else 0.0)  # CRDs, controller, NodePool
    model = max((duration(r) for r in resources if _is_model(r)), default=0.0)
    return cluster + bootstrap + nodes + max(storage + slowest, capacity + model if model else 0.0)
