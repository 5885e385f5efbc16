"""What every pod the platform declares itself (model servers, the self-hosted registry's server and its
migration Job) shares: the user it runs as, its security contexts (the restricted Pod Security Standard, checkov's
Kubernetes checks), its image pull policy, and the shape of its NetworkPolicy."""

from __future__ import annotations

from collections.abc import Sequence

UID = 10001  # any non-root UID above 10000: no clash with host users (checkov CKV_K8S_40)


def container_security() -> dict:
    """No privilege escalation, a read-only root filesystem, non-root, no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> dict:
    """Non-root as UID (group and volumes too), under the runtime's default seccomp profile."""
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}}


def cron_schedule(schedule: str) -> dict:
    """The scheduling part of the platform's CronJobs' spec: `schedule` read in UTC, never two runs at once, a run
    missed by more than 10 minutes (the controller down, the cluster paused) skipped rather than made up, the last
    success and three failures kept."""
    return {
        "schedule": schedule,
        "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 600,
        "successfulJobsHistoryLimit": 1,
        "failedJobsHistoryLimit": 3,
    }


def pull_policy(image: str) -> str:
    """A digest never moves, so the node's copy is the image; a tag may have been pushed again."""
    return "IfNotPresent" if "@sha256:" in image else "Always"


def ingress_policy(
    metadata: dict,
    pod_name: str,
    monitoring_namespace: str,
    metrics_ports: Sequence[int],
    serving_ports: Sequence[int],
    allowed_namespaces: Sequence[str] = (),
    cidrs: Sequence[str] = (),
) -> dict:
    """A NetworkPolicy for the pods named `pod_name` (label app.kubernetes.io/name): Prometheus' namespace reaches
    `metrics_ports`; `allowed_namespaces` and `cidrs` (a load balancer's, for ip targets) reach `serving_ports`;
    nothing else gets in. Egress is not restricted."""

    def ports(numbers: Sequence[int]) -> list[dict]:
        return [{"protocol": "TCP", "port": number} for number in numbers]

    rules = [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": monitoring_namespace}}}],
            "ports": ports(metrics_ports),
        }
    ]
    if allowed_namespaces:
        names = sorted(allowed_namespaces)
        selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": names}]}
        rules.append({"from": [{"namespaceSelector": selector}], "ports": ports(serving_ports)})
    if cidrs:
        rules.append({"from": [{"ipBlock": {"cidr": cidr}} for cidr in cidrs], "ports": ports(serving_ports)})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": pod_name}}, "policyTypes": ["Ingress"], "ingress": rules},
    }
