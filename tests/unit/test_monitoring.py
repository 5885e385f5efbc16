import json
import shutil
import subprocess

import pulumi_kubernetes as k8s
import yaml

from ml_platform.components import alerts, dashboards, monitoring
from ml_platform.components.helm import Chart
from tests.helpers import render, resource

CHART = Chart("kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts", "88.5.3")
CRD_CHART = Chart("prometheus-operator-crds", "https://prometheus-community.github.io/helm-charts", "31.0.1")


def build(**overrides):
    def program():
        args = dict(
            kubernetes_provider=k8s.Provider("k8s", kubeconfig="{}"),
            chart=CHART,
            crd_chart=CRD_CHART,
            node_selector={"ml-platform/pool": "system"},
        )
        args.update(overrides)
        monitoring.Monitoring("monitoring", monitoring.MonitoringArgs(**args))

    return program


def test_eks_hidden_components_are_neither_scraped_nor_alerted_on():
    values = monitoring.values("15d", 100, {})
    assert all(values[c] == {"enabled": False} for c in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"))
    assert all(values["defaultRules"]["rules"][r] is False for r in ("etcd", "kubeControllerManager", "kubeSchedulerAlerting"))
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False and spec["ruleSelectorNilUsesHelmValues"] is False
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "gp3"
    assert "storageSpec" not in monitoring.values("3d", None, {})["prometheus"]["prometheusSpec"]


def test_alertmanager_routes_receivers_and_inhibitions():
    config = monitoring.alertmanager_config(
        [
            {"name": "pagerduty", "pagerdutyRoutingKey": "k"},
            {"name": "slack", "slackWebhookUrl": "https://hooks.slack.com/x", "slackChannel": "#a"},
        ],
        [{"receiver": "pagerduty", "matchers": ['severity="critical"']}],
        "slack",
    )
    assert config["route"]["receiver"] == "slack"
    assert config["route"]["routes"] == [
        {"receiver": "null", "matchers": ['alertname=~"Watchdog|InfoInhibitor"']},
        {"receiver": "pagerduty", "matchers": ['severity="critical"']},
    ]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key"] == "k"
    assert receivers["slack"]["slack_configs"][0] == {"api_url": "https://hooks.slack.com/x", "channel": "#a", "send_resolved": True}
    assert config["inhibit_rules"][:-1] == alerts.inhibit_rules()


def amtool_check(tmp_path, config: dict) -> subprocess.CompletedProcess:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is installed by make test (Debian's prometheus-alertmanager)"
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)


def test_alertmanager_config_is_valid_for_amtool(tmp_path):
    config = monitoring.alertmanager_config(
        [
            {"name": "pagerduty", "pagerdutyRoutingKey": "k"},
            {"name": "slack", "slackWebhookUrl": "https://hooks.slack.com/x", "slackChannel": "#a"},
            {"name": "hook", "webhookUrl": "https://hooks.example.com/x"},
        ],
        [{"receiver": "pagerduty", "matchers": ['severity="critical"']}],
        "slack",
    )
    result = amtool_check(tmp_path, config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert amtool_check(tmp_path, monitoring.alertmanager_config([], [], None)).returncode == 0


def test_amtool_rejects_a_route_to_a_missing_receiver(tmp_path):
    config = monitoring.alertmanager_config([], [{"receiver": "nobody", "matchers": ['severity="critical"']}], None)
    assert amtool_check(tmp_path, config).returncode != 0


def test_receiver_secrets_stay_out_of_the_chart_values():
    plan = render(build(alertmanager=monitoring.alertmanager_config([{"name": "hook", "webhookUrl": "https://secret"}], [], "hook")))
    release = resource(plan, "kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")["inputs"]
    assert "https://secret" not in json.dumps(release)
    assert release["values"]["alertmanager"]["alertmanagerSpec"]["useExistingSecret"] is True
    secret = resource(plan, "kubernetes:core/v1:Secret", "monitoring-alertmanager-config")["inputs"]
    assert secret["metadata"]["name"] == "alertmanager-kps-alertmanager"


def test_grafana_password_is_generated_and_secret():
    plan = render(build())
    password = resource(plan, "random:index/randomPassword:RandomPassword", "monitoring-grafana-admin")["inputs"]
    assert password["length"] == 32
    admin = resource(plan, "kubernetes:core/v1:Secret", "monitoring-grafana-admin")["inputs"]
    assert admin["stringData"].startswith("[secret:")
    values = resource(plan, "kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")["inputs"]["values"]
    assert values["grafana"]["admin"]["existingSecret"] == "grafana-admin" and "adminPassword" not in values["grafana"]


def test_amp_remote_write_through_pod_identity():
    plan = render(build(amp_remote_write=True, cluster="c", region="us-west-2"))
    values = resource(plan, "kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")["inputs"]["values"]
    (remote,) = values["prometheus"]["prometheusSpec"]["remoteWrite"]
    assert remote["url"].startswith("https://aps-workspaces.us-west-2.amazonaws.com/workspaces/ws-") and remote["url"].endswith(
        "/api/v1/remote_write"
    )
    assert remote["sigv4"] == {"region": "us-west-2"}
    association = resource(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "monitoring-amp-writer")["inputs"]
    assert (association["namespace"], association["serviceAccount"]) == ("monitoring", "kps-prometheus")
    policy = json.loads(resource(plan, "aws:iam/rolePolicy:RolePolicy", "monitoring-amp-writer")["inputs"]["policy"])
    assert policy["Statement"][0]["Action"] == "aps:RemoteWrite" and policy["Statement"][0]["Resource"].startswith("arn:aws:aps:")


def test_the_operator_crds_come_first_in_their_own_release_that_adopts_and_keeps_them():
    plan = render(build())
    crds = resource(plan, "kubernetes:helm.sh/v3:Release", "monitoring-operator-crds")
    chart = resource(plan, "kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")
    assert crds["inputs"]["chart"] == "prometheus-operator-crds" and crds["inputs"]["version"] == "31.0.1"
    # Stacks made before this release hold the CRDs from the chart's crds/ folder, without Helm's ownership metadata.
    assert crds["inputs"]["takeOwnership"] is True
    assert crds["inputs"]["values"] == {"crds": {"annotations": {"helm.sh/resource-policy": "keep"}}}
    assert chart["inputs"]["values"]["crds"] == {"enabled": False}
    assert crds["urn"] in chart["dependencies"]
    namespace = resource(plan, "kubernetes:core/v1:Namespace", "monitoring-namespace")["urn"]
    assert crds["dependencies"] == [namespace], "the CRDs wait for nothing but the namespace"


def test_dashboards_and_rules_wait_for_the_crds_only():
    plan = render(build())
    crds = resource(plan, "kubernetes:helm.sh/v3:Release", "monitoring-operator-crds")["urn"]
    rule = resource(plan, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "monitoring-platform-rules")
    assert crds in rule["dependencies"] and not any("kube-prometheus-stack" in d for d in rule["dependencies"])
    maps = plan.by_type("kubernetes:core/v1:ConfigMap")
    assert {m["inputs"]["metadata"]["name"] for m in maps} == {"dashboard-gpu", "dashboard-model-serving", "dashboard-platform"}
    assert all(m["inputs"]["metadata"]["labels"] == {"grafana_dashboard": "1"} for m in maps)


def test_dashboard_queries_are_valid_promql(tmp_path):
    """Every panel's query, as a recording rule, through promtool (Grafana variables stand in as regexes)."""
    rules = []
    for name, dashboard in dashboards.all_dashboards().items():
        assert len(dashboard["panels"]) >= 6 and dashboard["uid"].startswith("ml-platform-")
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$node", ".*").replace("$model", ".*")
                rules.append({"record": f"dashboard:{name.replace('-', '_')}:{panel['id']}{target['refId']}", "expr": expr})
    path = tmp_path / "dashboards.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by make test"
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gpu_dashboard_covers_what_on_call_needs():
    titles = " ".join(p["title"] for p in dashboards.gpu()["panels"]).lower()
    assert all(word in titles for word in ("utilisation per node", "utilisation per pod", "memory", "temperature", "power", "xid"))


def test_watchdog_goes_nowhere_and_criticals_page(tmp_path):
    config = monitoring.alertmanager_config(
        [{"name": "pagerduty", "pagerdutyRoutingKey": "k"}, {"name": "slack", "webhookUrl": "https://hooks.example.com/x"}],
        [{"receiver": "pagerduty", "matchers": ['severity="critical"']}],
        "slack",
    )
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(config))

    def route(*labels):
        result = subprocess.run(
            [shutil.which("amtool"), "config", "routes", "test", "--config.file", str(path), *labels], capture_output=True, text=True
        )
        return result.stdout.strip()

    assert route("alertname=Watchdog", "severity=none") == "null"
    assert route("alertname=NodeNotReady", "severity=critical") == "pagerduty"
    assert route("alertname=GpuOverheating", "severity=warning") == "slack"


def test_gpu_figures_say_what_a_time_sliced_gpu_means():
    from ml_platform.components import dashboards

    panels = [p for board in dashboards.all_dashboards().values() for p in board["panels"]]
    for panel in panels:
        for target in panel["targets"]:
            if "DCGM_FI_DEV_GPU_UTIL" not in target["expr"]:
                continue
            if 'pod!=""' in target["expr"]:
                # the exporter puts a shared GPU's whole value on one of its pods
                assert panel["title"].endswith(dashboards.SHARED_GPU_NOTE), panel["title"]
            else:
                # one physical GPU, however many series carry it
                assert target["expr"].startswith("max by (Hostname, gpu)"), panel["title"]
    assert any(p["title"] == "GPUs (or slices) requested and advertised per node" for p in panels)
