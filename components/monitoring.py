"""Monitoring: kube-prometheus-stack (pinned chart) tuned for EKS: no scraping of, and no alerts about, the
control-plane parts EKS hides; Prometheus selecting ServiceMonitors, PodMonitors and rules in every
namespace; Grafana's admin password a generated secret. The release also installs the Prometheus
operator's CRDs, which every ServiceMonitor and PrometheusRule of the platform waits for."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from ml_platform.components import alerts, dashboards, pushgateway
from ml_platform.components.helm import Chart, release
from ml_platform.components.options import inherited_depends_on
from ml_platform.components.pod_identity import pod_identity_role
from ml_platform.components.resources import PROMETHEUS_CPU, STANDARD, sized

TYPE = "mlplatform:k8s:Monitoring"

NAMESPACE = "monitoring"
FULLNAME = "kps"  # short, fixed resource names: the Prometheus service is kps-prometheus
PROMETHEUS_URL = f"http://{FULLNAME}-prometheus.{NAMESPACE}.svc:9090"
GRAFANA_ADMIN_SECRET = "grafana-admin"
DASHBOARD_LABEL = "grafana_dashboard"
PROMETHEUS_SERVICE_ACCOUNT = f"{FULLNAME}-prometheus"

# EKS runs these on its own control plane and exposes no metrics for them: scraping them only fails, and
# kube-prometheus-stack's rules about them would alert forever (kube-prometheus-stack #4106). kube-proxy binds
# its metrics to 127.0.0.1 on EKS nodes, so it cannot be scraped either.
HIDDEN_COMPONENTS = ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")
HIDDEN_RULES = ("etcd", "kubeControllerManager", "kubeSchedulerAlerting", "kubeSchedulerRecording", "kubeProxy")


def alertmanager_config(receivers: Sequence[Mapping[str, Any]], routes: Sequence[Mapping[str, Any]], default: str | None) -> dict:
    """Alertmanager routing: config routes in order, unmatched alerts to the default receiver, grouped per
    alert and namespace, with the platform's inhibitions so one fault pages once."""
    configured = [_receiver(r) for r in receivers]
    return {
        "route": {
            "receiver": default or "null",
            "group_by": ["alertname", "namespace"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                # kube-prometheus-stack's heartbeat and info-inhibitor alerts are plumbing, not pages.
                {"receiver": "null", "matchers": ['alertname=~"Watchdog|InfoInhibitor"']},
                *({"receiver": r["receiver"], "matchers": list(r["matchers"])} for r in routes),
            ],
        },
        "receivers": [{"name": "null"}, *configured],
        "inhibit_rules": [
            *alerts.inhibit_rules(),
            {"source_matchers": ['alertname="InfoInhibitor"'], "target_matchers": ['severity="info"'], "equal": ["namespace"]},
        ],
    }


def _receiver(receiver: Mapping[str, Any]) -> dict:
    name = receiver["name"]
    if receiver.get("slackWebhookUrl"):
        slack = {"api_url": receiver["slackWebhookUrl"], "send_resolved": True}
        if receiver.get("slackChannel"):
            slack["channel"] = receiver["slackChannel"]
        return {"name": name, "slack_configs": [slack]}
    if receiver.get("pagerdutyRoutingKey"):
        return {"name": name, "pagerduty_configs": [{"routing_key": receiver["pagerdutyRoutingKey"], "send_resolved": True}]}
    return {"name": name, "webhook_configs": [{"url": receiver["webhookUrl"], "send_resolved": True}]}


def amp_remote_write_policy(workspace_arn: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "RemoteWrite", "Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": workspace_arn}],
    }


def values(
    retention: str,
    storage_gib: int | None,
    node_selector: Mapping[str, str],
    memory: str = "4Gi",
    remote_write_url: str | None = None,
    region: str = "",
    resources: Mapping[str, dict] | None = None,
    cpu: str = PROMETHEUS_CPU[STANDARD],
) -> dict:
    """Chart values (keys checked against ../shared/charts/kube-prometheus-stack/values.yaml in the tests). Every
    container of the chart and its subcharts gets requests and a memory limit from `resources`
    (components.resources): the operator, the config reloader it adds to Prometheus and Alertmanager, the
    admission webhook's certificate Jobs, Alertmanager, Grafana and its two sidecars, kube-state-metrics and
    node-exporter."""
    table = resources or sized(STANDARD)
    prometheus_spec: dict = {
        # Select every ServiceMonitor, PodMonitor, probe and rule in every namespace, not only the chart's own.
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "retention": retention,
        "nodeSelector": dict(node_selector),
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
    }
    if remote_write_url:
        prometheus_spec["remoteWrite"] = [{"url": remote_write_url, "sigv4": {"region": region}}]
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
        # The operator's CRDs come from their own release (crd_values): this chart's copy sits in a crds/ folder,
        # which Helm installs once and never upgrades. Existing CRDs stay (Helm never deletes crds/ content).
        "crds": {"enabled": False},
        **{component: {"enabled": False} for component in HIDDEN_COMPONENTS},
        "defaultRules": {"rules": {rule: False for rule in HIDDEN_RULES}},
        "prometheus": {"prometheusSpec": prometheus_spec},
        "grafana": {
            "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
            "nodeSelector": dict(node_selector),
            "resources": table["grafana"],
            # A `helm test` pod, never run by an install; off, so every pod the chart defines is one that runs.
            "testFramework": {"enabled": False},
            # Dashboards are ConfigMaps labelled grafana_dashboard=1, in any namespace. One key sizes both sidecars.
            "sidecar": {
                "dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1", "searchNamespace": "ALL"},
                "resources": table["grafana-sidecar"],
            },
        },
        # Alertmanager's configuration (with its receivers' secrets) comes from the Secret the component makes,
        # so no secret ever sits in the chart values.
        "alertmanager": {
            "alertmanagerSpec": {"nodeSelector": dict(node_selector), "useExistingSecret": True, "resources": table["alertmanager"]}
        },
        "prometheusOperator": {
            "nodeSelector": dict(node_selector),
            "resources": table["prometheus-operator"],
            # The reloader the operator adds to Prometheus and Alertmanager (init and sidecar); the chart's default
            # "0" means none at all.
            "prometheusConfigReloader": {"resources": table["prometheus-config-reloader"]},
            # The webhook certificate's hook Jobs run at every install and upgrade, on the system pool too.
            "admissionWebhooks": {"patch": {"resources": table["prometheus-admission-jobs"], "nodeSelector": dict(node_selector)}},
        },
        "prometheus-node-exporter": {"resources": table["node-exporter"]},
        # Node pool and model-server labels as metric labels, for the dashboards' per-pool and per-model views.
        "kube-state-metrics": {
            "metricLabelsAllowlist": ["nodes=[ml-platform/pool,nvidia.com/gpu.present]", "namespaces=[app.kubernetes.io/component]"],
            "nodeSelector": dict(node_selector),
            "resources": table["kube-state-metrics"],
        },
    }


def crd_values() -> dict:
    """Values of the prometheus-operator-crds release (keys checked against
    ../shared/charts/prometheus-operator-crds/values.yaml): every CRD, kept when the release goes (Helm's
    resource policy), since deleting a CRD deletes every ServiceMonitor, PrometheusRule and Prometheus with it."""
    return {"crds": {"annotations": {"helm.sh/resource-policy": "keep"}}}


@dataclass
class MonitoringArgs:
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    chart: Chart
    """Pinned kube-prometheus-stack chart."""
    crd_chart: Chart
    """Pinned prometheus-operator-crds chart: the CRDs of the operator the kube-prometheus-stack chart runs, as
    templates (so `helm upgrade` updates them)."""
    retention: str = "15d"
    """How long Prometheus keeps samples."""
    storage_gib: int | None = None
    """Persistent gp3 volume for Prometheus; None keeps data on the pod (lost on restart; dev only)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where Prometheus, Alertmanager, Grafana and the operator run (the system pool)."""
    memory: str = "4Gi"
    """Prometheus memory (request and limit)."""
    cpu: str = PROMETHEUS_CPU[STANDARD]
    """Prometheus CPU request."""
    resources: Mapping[str, dict] = field(default_factory=lambda: sized(STANDARD))
    """Platform container resources by name (components.resources): the operator, reloader, admission Jobs,
    Alertmanager, Grafana and its sidecars, kube-state-metrics, node-exporter."""
    alertmanager: pulumi.Input[Mapping[str, Any]] = field(default_factory=lambda: alertmanager_config([], [], None))
    """Alertmanager configuration (alertmanager_config); a secret Output when receivers hold secrets."""
    model_namespaces: Sequence[str] = ()
    """Namespaces of model services, for the crash-loop alert."""
    pushgateway: Chart | None = None
    """Pinned prometheus-pushgateway chart, installed when a model's monitor job or the running-images report publishes
    (components/pushgateway.py); None: no Pushgateway."""
    pushgateway_storage_gib: int | None = None
    """The Pushgateway's gp3 volume; None keeps its groups in memory only (dev)."""
    amp_remote_write: bool = False
    """Write to an Amazon Managed Service for Prometheus workspace as well."""
    cluster: pulumi.Input[str] = ""
    """The cluster's name as its output (for the Pod Identity association of the AMP writer)."""
    region: str = ""
    """AWS region (SigV4 signing)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""


class Monitoring(pulumi.ComponentResource):
    """Kube-prometheus-stack (pinned chart) tuned for EKS: no scraping of, and no alerts about, the control-plane
    parts EKS hides; Prometheus selecting ServiceMonitors, PodMonitors and rules in every namespace; Grafana's admin
    password a generated secret. The Prometheus operator's CRDs come first, in their own release (`crds`), which
    is all that every ServiceMonitor and PrometheusRule of the platform waits for: it needs only the namespace,
    not the nodes or the volume Prometheus needs (the component's depends_on reaches the chart, not the CRDs).

    Arguments: MonitoringArgs, documented field by field."""

    release: k8s.helm.v3.Release
    """The kube-prometheus-stack release (Prometheus, Alertmanager, Grafana, the operator)."""
    crds: k8s.helm.v3.Release
    """The prometheus-operator-crds release: what a ServiceMonitor or PrometheusRule waits for."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata={"name": NAMESPACE, "labels": {"ml-platform/component": "monitoring"}}, opts=k8s_opts
        )
        # A stack made before this release has the CRDs already, from kube-prometheus-stack's crds/ folder and
        # without Helm's ownership metadata: take_ownership (Helm's --take-ownership, on install and upgrade)
        # adopts them instead of failing with "invalid ownership metadata" (README, "CRDs in their own releases").
        self.crds = release(
            f"{name}-operator-crds",
            args.crd_chart,
            "prometheus-operator-crds",
            NAMESPACE,
            crd_values(),
            pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[namespace])),
            timeout=300,
            take_ownership=True,
        )
        password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=pulumi.ResourceOptions(parent=self))
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": NAMESPACE},
            string_data={"admin-user": "admin", "admin-password": password.result},
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[namespace])),
        )
        remote_write_url: pulumi.Input[str | None] = None
        # Prometheus reads AWS credentials once, when it loads its config: its pod must come after the association.
        amp_identity: list[pulumi.Resource] = []
        if args.amp_remote_write:
            workspace = aws.amp.Workspace(
                f"{name}-amp", alias=f"{name}-metrics", tags=dict(args.tags), opts=pulumi.ResourceOptions(parent=self)
            )
            amp_identity = pod_identity_role(
                f"{name}-amp-writer",
                args.cluster,
                NAMESPACE,
                PROMETHEUS_SERVICE_ACCOUNT,
                workspace.arn.apply(lambda arn: json.dumps(amp_remote_write_policy(arn))),
                parent=self,
                tags=args.tags,
            )
            remote_write_url = workspace.prometheus_endpoint.apply(lambda endpoint: f"{endpoint.rstrip('/')}/api/v1/remote_write")

        alertmanager_secret = k8s.core.v1.Secret(
            f"{name}-alertmanager-config",
            # The name the operator looks for with useExistingSecret: alertmanager-<Alertmanager object name>.
            metadata={"name": f"alertmanager-{FULLNAME}-alertmanager", "namespace": NAMESPACE},
            string_data={
                "alertmanager.yaml": pulumi.Output.from_input(args.alertmanager).apply(
                    lambda config: yaml.safe_dump(config, sort_keys=True)
                )
            },
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[namespace])),
        )
        chart_values = pulumi.Output.from_input(remote_write_url).apply(
            lambda url: values(
                args.retention, args.storage_gib, args.node_selector, args.memory, url, args.region, args.resources, args.cpu
            )
        )
        self.release = release(
            f"{name}-kube-prometheus-stack",
            args.chart,
            "kube-prometheus-stack",
            NAMESPACE,
            chart_values,
            pulumi.ResourceOptions.merge(
                k8s_opts,
                pulumi.ResourceOptions(
                    depends_on=[
                        namespace,
                        self.crds,
                        admin,
                        alertmanager_secret,
                        *amp_identity,
                        *inherited_depends_on(opts),
                    ]
                ),
            ),
            timeout=900,
        )
        after_crds = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[self.crds]))
        if args.pushgateway is not None:
            # Its ServiceMonitor needs the CRDs; its volume, like Prometheus's, the component's storage dependencies.
            release(
                f"{name}-pushgateway",
                args.pushgateway,
                pushgateway.RELEASE,
                NAMESPACE,
                pushgateway.values(NAMESPACE, args.node_selector, args.pushgateway_storage_gib, args.resources["pushgateway"]),
                pulumi.ResourceOptions.merge(
                    k8s_opts, pulumi.ResourceOptions(depends_on=[namespace, self.crds, *inherited_depends_on(opts)])
                ),
            )
        k8s.apiextensions.CustomResource(
            f"{name}-platform-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "ml-platform", "namespace": NAMESPACE},
            spec={"groups": alerts.platform_rule_groups(args.model_namespaces)},
            opts=after_crds,
        )
        for dashboard_name, dashboard in dashboards.all_dashboards().items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{dashboard_name}",
                metadata={"name": f"dashboard-{dashboard_name}", "namespace": NAMESPACE, "labels": {DASHBOARD_LABEL: "1"}},
                data={f"{dashboard_name}.json": json.dumps(dashboard, sort_keys=True)},
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[namespace])),
            )
        self.register_outputs({})
