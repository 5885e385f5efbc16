"""The running-images report's component (components/running_images.py): its manifests (valid for the cluster's
Kubernetes version, the CronJob's timing and pod hardening), RBAC that reads pods in the model namespaces only, a
read-only IAM document on the stack's registry, a config the image accepts, and the resources' order."""

from __future__ import annotations

import json
import subprocess
import sys

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from ml_platform.components import running_images as ri
from ml_platform.components.pod_defaults import container_security, pod_security
from ml_platform.infra import versions
from tests.contract.test_checkov import failures, scan
from tests.contract.test_model_monitoring_contract import SOURCE, python
from tests.helpers import render, resource

IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/platform/model-monitoring@sha256:" + "6d" * 32


def spec(**overrides) -> ri.RunningImagesSpec:
    fields = dict(
        image=IMAGE,
        namespaces={"fraud": "fraud", "chat": "chat"},
        region="us-west-2",
        account_id="123456789012",
        schedule="23 * * * *",
        period_seconds=3600,
        pushgateway_url="http://prometheus-pushgateway.monitoring.svc:9091",
        allow=(("CVE-2024-3094", "prod/serving/vllm", "2026-12-31"),),
        node_selector={"ml-platform/pool": "system"},
    )
    fields.update(overrides)
    return ri.RunningImagesSpec(**fields)


def by_kind(objects: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for o in objects:
        found.setdefault(o["kind"], []).append(o)
    return found


def test_the_cronjob_never_overlaps_ends_within_its_period_and_runs_hardened():
    objects = by_kind(ri.manifests(spec()))
    (cronjob,) = objects["CronJob"]
    assert cronjob["metadata"]["namespace"] == "monitoring"
    job = cronjob["spec"]
    assert (job["schedule"], job["timeZone"], job["concurrencyPolicy"]) == ("23 * * * *", "Etc/UTC", "Forbid")
    assert job["startingDeadlineSeconds"] < 3600
    template = job["jobTemplate"]["spec"]
    assert template["activeDeadlineSeconds"] == ri.DEADLINE_SECONDS < 3600 and template["backoffLimit"] == 1
    pod = template["template"]["spec"]
    assert pod["securityContext"] == pod_security() and pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "running-images"
    assert pod["nodeSelector"] == {"ml-platform/pool": "system"} and "tolerations" not in pod
    (container,) = pod["containers"]
    assert container["securityContext"] == container_security() and container["imagePullPolicy"] == "IfNotPresent"
    assert [*container["command"], *container["args"]] == ["model-monitor", "running-images", "--config-env", "RUNNING_IMAGES_CONFIG"]
    assert container["resources"]["limits"]["memory"]
    # The one container that reads the API gets a token, where the image looks for it; nothing is automounted.
    (account,) = objects["ServiceAccount"]
    assert account["automountServiceAccountToken"] is False and pod["automountServiceAccountToken"] is False
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["api-token"] == {"name": "api-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}
    (token,) = [v for v in pod["volumes"] if v["name"] == "api-token"]
    assert [sorted(source) for source in token["projected"]["sources"]] == [["serviceAccountToken"], ["configMap"]]
    assert token["projected"]["sources"][0]["serviceAccountToken"] == {"path": "token", "expirationSeconds": 3600}
    (policy,) = objects["NetworkPolicy"]
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "running-images"}},
        "policyTypes": ["Ingress"],
        "ingress": [],
    }
    # The Pushgateway admits monitor jobs' pods (and anything in its own namespace).
    assert template["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "model-monitor"


@pytest.mark.parametrize(
    ("schedule", "period", "deadline"), [("23 * * * *", 3600, 1200), ("*/15 * * * *", 900, 600), ("0 3 * * *", 86400, 1200)]
)
def test_a_run_is_cut_off_before_the_next_is_due(schedule, period, deadline):
    cronjob = by_kind(ri.manifests(spec(schedule=schedule, period_seconds=period)))["CronJob"][0]["spec"]
    assert cronjob["jobTemplate"]["spec"]["activeDeadlineSeconds"] == deadline < period
    assert cronjob["startingDeadlineSeconds"] < period


def test_the_job_reads_pods_in_the_model_namespaces_and_nothing_else():
    objects = by_kind(ri.manifests(spec()))
    (role,) = objects["ClusterRole"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    assert "ClusterRoleBinding" not in objects, "bound per namespace: no pod spec elsewhere in the cluster is readable"
    bindings = objects["RoleBinding"]
    assert [b["metadata"]["namespace"] for b in bindings] == ["chat", "fraud"]
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ml-platform:running-images"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "running-images", "namespace": "monitoring"}]


def test_the_iam_document_reads_the_stacks_registry_only():
    document = ri.findings_policy(spec(partition="aws-cn", region="cn-north-1"))
    IAMPolicyDocumentValidator(json.dumps(document)).validate()
    registry, inspector = document["Statement"]
    assert registry["Resource"] == "arn:aws-cn:ecr:cn-north-1:123456789012:repository/*"
    assert sorted(registry["Action"]) == ["ecr:BatchGetImage", "ecr:DescribeImageScanFindings", "ecr:DescribeImages"]
    assert inspector == {"Sid": "ReadEnhancedFindings", "Effect": "Allow", "Action": "inspector2:ListFindings", "Resource": "*"}
    actions = [a for s in document["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert all(a.split(":")[1].startswith(("Describe", "BatchGet", "List")) for a in actions), "read-only"


def config_of(s: ri.RunningImagesSpec) -> dict:
    container = by_kind(ri.manifests(s))["CronJob"][0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return json.loads(next(e["value"] for e in container["env"] if e["name"] == "RUNNING_IMAGES_CONFIG"))


def test_the_image_accepts_the_rendered_config():
    document = config_of(spec())
    assert document["namespaces"] == {"chat": "chat", "fraud": "fraud"} and document["registryId"] == "123456789012"
    assert document["allow"] == [{"cve": "CVE-2024-3094", "image": "prod/serving/vllm", "expires": "2026-12-31"}]
    check = (
        "import json, sys\nfrom model_monitoring import running_images\nprint(running_images.parse_config(json.load(sys.stdin)).namespaces)"
    )
    result = subprocess.run(
        [python(), "-c", check],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(SOURCE), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0 and "'fraud': 'fraud'" in result.stdout, result.stderr
    # and it refuses what it should: a registry id that is not an account
    bad = subprocess.run(
        [python(), "-c", check], input=json.dumps({**document, "registryId": "x"}), capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(SOURCE), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert bad.returncode != 0 and "registryId" in bad.stderr


def test_adding_a_model_updates_the_cronjob_adds_a_binding_and_replaces_nothing():
    more = {"fraud": "fraud", "chat": "chat", "embed": "embed"}
    before, after = ri.manifests(spec()), ri.manifests(spec(namespaces=more))
    assert config_of(spec(namespaces=more))["namespaces"]["embed"] == "embed"
    # No ConfigMap: the Kubernetes provider replaces one whose data changes; a CronJob's env is updated in place.
    assert "ConfigMap" not in by_kind(after)
    embed = next(o for o in after if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == "embed")
    assert [o for o in after if o not in before] == [embed, by_kind(after)["CronJob"][0]]


def write_manifests(directory) -> list[str]:
    paths = []
    for number, manifest in enumerate(ri.manifests(spec())):
        path = directory / f"{number}-{manifest['kind']}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        paths.append(str(path))
    return paths


def test_the_manifests_are_valid_for_the_cluster_version(tmp_path):
    paths = write_manifests(tmp_path)
    command = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", f"{versions.DEFAULT_KUBERNETES_VERSION}.0", *paths]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_manifests_pass_checkov_with_nothing_skipped(tmp_path):
    write_manifests(tmp_path)
    report = scan(tmp_path, {})
    assert report["summary"]["passed"] > 50
    assert failures(report) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"period_seconds": 300}, "period_seconds 300: at least 900"),
        ({"namespaces": {}}, "namespaces: at least one model namespace"),
        ({"namespaces": {"Fraud": "fraud"}}, "'Fraud' is not a namespace name"),
        ({"schedule": "@hourly"}, "five cron fields"),
        ({"account_id": "1234"}, "account_id '1234': 12 digits"),
    ],
)
def test_the_spec_refuses_what_the_job_or_the_api_would(overrides, message):
    with pytest.raises(ValueError, match=message):
        spec(**overrides)


def test_staleness_waits_three_runs_and_at_least_three_hours():
    assert spec().stale_seconds == 3 * 3600
    assert spec(schedule="*/15 * * * *", period_seconds=900).stale_seconds == 3 * 3600
    assert spec(schedule="0 3 * * *", period_seconds=86400).stale_seconds == 3 * 86400


def build(model_namespace: bool = True):
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        crds = k8s.core.v1.Namespace("crds-stand-in", metadata={"name": "monitoring"}, opts=pulumi.ResourceOptions(provider=provider))
        namespaces = [k8s.core.v1.Namespace("fraud", metadata={"name": "fraud"}, opts=pulumi.ResourceOptions(provider=provider))]
        ri.RunningImages(
            "running-images",
            ri.RunningImagesArgs(
                spec=spec(),
                kubernetes_provider=provider,
                cluster_name="ml-platform-staging",
                monitoring_crds=crds,
                model_namespaces=namespaces if model_namespace else (),
                tags={"stack": "staging"},
            ),
        )

    return program


def test_the_component_waits_for_what_each_object_needs():
    plan = render(build())
    association = resource(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "running-images-ecr-reader")
    assert (association["inputs"]["namespace"], association["inputs"]["serviceAccount"]) == ("monitoring", "running-images")
    document = json.loads(resource(plan, "aws:iam/rolePolicy:RolePolicy", "running-images-ecr-reader")["inputs"]["policy"])
    assert document == ri.findings_policy(spec())
    crds = resource(plan, "kubernetes:core/v1:Namespace", "crds-stand-in")["urn"]
    fraud = resource(plan, "kubernetes:core/v1:Namespace", "fraud")["urn"]
    cronjob = resource(plan, "kubernetes:batch/v1:CronJob", "running-images-cronjob")
    assert association["urn"] in cronjob["dependencies"] and crds in cronjob["dependencies"]
    binding = resource(plan, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "running-images-rolebinding-fraud")
    assert fraud in binding["dependencies"], "a RoleBinding cannot be created before its namespace"
    rule = resource(plan, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "running-images-rules")
    assert crds in rule["dependencies"]
    assert [r["alert"] for r in rule["inputs"]["spec"]["groups"][0]["rules"]] == [
        "ModelImageVulnerable",
        "RunningImagesUnscanned",
        "RunningImagesReportStale",
    ]
    kinds = sorted(
        r["type"].split(":")[-1] for r in plan.resources if r["type"].startswith("kubernetes:") and r["name"].startswith("running-images")
    )
    assert kinds == [
        "ClusterRole",
        "CronJob",
        "NetworkPolicy",
        "PrometheusRule",
        "RoleBinding",
        "RoleBinding",
        "ServiceAccount",
    ]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_plans_report_on_every_model_namespace(plans, stack):
    (cronjob,) = [r for r in plans[stack].resources if r["type"] == "kubernetes:batch/v1:CronJob" and r["name"] == "running-images-cronjob"]
    env = cronjob["inputs"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    report = json.loads(next(e["value"] for e in env if e["name"] == "RUNNING_IMAGES_CONFIG"))
    models = {
        r["inputs"]["metadata"]["namespace"]
        for r in plans[stack].resources
        if r["type"] == "kubernetes:apps/v1:Deployment"
        and (r["inputs"]["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "model-server"
    }
    assert set(report["namespaces"]) == models
    assert report["pushgateway"] == "http://prometheus-pushgateway.monitoring.svc:9091"
    assert any(r["inputs"].get("chart") == "prometheus-pushgateway" for r in plans[stack].resources), "the report needs the Pushgateway"


def test_dev_has_no_monitoring_image_so_no_report(plans):
    assert not [r for r in plans["dev"].resources if r["name"].startswith("running-images")]
