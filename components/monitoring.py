"""Monitoring: kube-prometheus-stack (pinned chart) tuned for EKS: no scraping of, and no alerts about, the
control-plane parts EKS hides; Prometheus selecting ServiceMonitors, PodMonitors and rules in every
namespace; Grafana's admin password a generated secret. The release also installs the Prometheus
operator's CRDs, which every ServiceMonitor and PrometheusRule of the platform waits for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.helm import Chart, release

TYPE = "mlplatform:k8s:Monitoring"

NAMESPACE = "monitoring"
FULLNAME = "kps"  # short, fixed resource names: the Prometheus service is kps-prometheus
PROMETHEUS_URL = f"http://{FULLNAME}-prometheus.{NAMESPACE}.svc:9090"
GRAFANA_ADMIN_SECRET = "grafana-admin"

# EKS runs these on its own control plane and exposes no metrics for them: scraping them only fails, and
# kube-prometheus-stack's rules about them would alert forever (kube-prometheus-stack #4106). kube-proxy binds
# its metrics to 127.0.0.1 on EKS nodes, so it cannot be scraped either.
HIDDEN_COMPONENTS = ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")
HIDDEN_RULES = ("etcd", "kubeControllerManager", "kubeSchedulerAlerting", "kubeSchedulerRecording", "kubeProxy")


def values(retention: str, storage_gib: int | None, node_selector: Mapping[str, str]) -> dict:
    """Chart values (keys checked against ../shared/charts/kube-prometheus-stack/values.yaml in the tests)."""
    prometheus_spec: dict = {
        # Select every ServiceMonitor, PodMonitor, probe and rule in every namespace, not only the chart's own.
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "retention": retention,
        "nodeSelector": dict(node_selector),
        "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    }
    if storage_gib is not None:
        prometheus_spec["storageSpec"] = {
            "volumeClaimTemplate": {
                "spec": {
                    "storageClassName": "gp3",
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": f"{storage_gib}Gi"}},
                }
            }
        }
    return {
        "fullnameOverride": FULLNAME,
        **{component: {"enabled": False} for component in HIDDEN_COMPONENTS},
        "defaultRules": {"rules": {rule: False for rule in HIDDEN_RULES}},
        "prometheus": {"prometheusSpec": prometheus_spec},
        "grafana": {
            "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
            "nodeSelector": dict(node_selector),
        },
        "alertmanager": {"alertmanagerSpec": {"nodeSelector": dict(node_selector)}},
        "prometheusOperator": {"nodeSelector": dict(node_selector)},
    }


@dataclass
class MonitoringArgs:
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    chart: Chart
    """Pinned kube-prometheus-stack chart."""
    retention: str = "15d"
    """How long Prometheus keeps samples."""
    storage_gib: int | None = None
    """Persistent gp3 volume for Prometheus; None keeps data on the pod (lost on restart; dev only)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where Prometheus, Alertmanager, Grafana and the operator run (the system pool)."""


class Monitoring(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata={"name": NAMESPACE, "labels": {"ml-platform/component": "monitoring"}}, opts=k8s_opts
        )
        password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=pulumi.ResourceOptions(parent=self))
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": NAMESPACE},
            string_data={"admin-user": "admin", "admin-password": password.result},
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[namespace])),
        )
        self.release = release(
            f"{name}-kube-prometheus-stack",
            args.chart,
            "kube-prometheus-stack",
            NAMESPACE,
            values(args.retention, args.storage_gib, args.node_selector),
            pulumi.ResourceOptions.merge(
                k8s_opts, pulumi.ResourceOptions(depends_on=[namespace, admin, *((opts.depends_on or []) if opts else [])])
            ),
            timeout=900,
        )
        self.register_outputs({})
