"""The running-images report (issue #21): a CronJob in the monitoring namespace (images/model-monitoring,
`model-monitor running-images`) that lists the pods of every model namespace, looks up the scan findings of each
digest they run in ECR (Amazon Inspector's enhanced findings), and publishes counts per model, image and severity to
the Pushgateway (components/pushgateway.py), from where Prometheus scrapes them for the alerts below.

The deploy gate (`python -m infra images check`) judges what a stack is about to run; this judges what runs now, as
new CVEs are published against digests deployed weeks ago, and catches what never went through the gate (a
`kubectl set image`, a chart's image the plan knows only by tag).

Least privilege: the job's service account may get and list pods in the model namespaces only (one ClusterRole bound
by a RoleBinding in each: a ClusterRoleBinding would let it read every pod spec of the cluster, environment values
included); its Pod Identity role reads images and findings of the stack's own registry (this account and region)
and Inspector's findings, nothing else. Runs never overlap (concurrencyPolicy Forbid); a run that outlives its
schedule's period is cut off. Nothing gets in (deny-all ingress NetworkPolicy).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from ml_platform.components.alerts import alert
from ml_platform.components.pod_defaults import container_security, cron_schedule, pod_security, pull_policy
from ml_platform.components.pod_identity import pod_identity_role
from ml_platform.components.pushgateway import MONITOR_COMPONENT

TYPE = "mlplatform:k8s:RunningImages"

NAME = "running-images"
"""The job's objects (service account, NetworkPolicy, CronJob, RoleBindings) and its Pushgateway job."""
CLUSTER_ROLE = f"ml-platform:{NAME}"
CONFIG_ENV = "RUNNING_IMAGES_CONFIG"
"""The environment variable the job reads its config from (`model-monitor running-images --config-env`): a ConfigMap
would be replaced on every change of its data (the Kubernetes provider's rule, infra/delivery/replacements.py), and
its data changes with every model added or removed; the CronJob's pod template is updated in place."""
API_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where the job reads its token and the cluster's CA (images/model-monitoring kube.py), as an automounted token would be."""
API_TOKEN_SECONDS = 3600
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
"""A few hundred pods and a few dozen digests' findings in memory at most."""
DEADLINE_SECONDS = 20 * 60
MIN_PERIOD_SECONDS = 900
"""A run lists every model namespace and reads findings page by page: more often than this only adds ECR calls."""
STALE_RUNS = 3
"""Runs a namespace's report may miss before RunningImagesReportStale fires..."""
STALE_MIN_SECONDS = 3 * 3600
"""...and never sooner than this."""
VULNERABLE_FOR = "15m"
README = "README, 'Vulnerabilities'"
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


@dataclass(frozen=True)
class RunningImagesSpec:
    """What the report covers and where it publishes. Raises ValueError naming the field for a value the job or the
    API server would refuse (the stack config reports schedule mistakes at their key first)."""

    image: str
    """The model-monitoring image (serving.monitoringImage), by digest in prod."""
    namespaces: Mapping[str, str]
    """Model namespace -> model name (a model runs in the namespace of its name: the stack's `models` keys)."""
    region: str
    """The stack's region: its registry's, and where the job calls ECR."""
    account_id: str
    """The stack's account: its registry's id."""
    schedule: str
    """Five-field cron expression, UTC (vulnerabilities.runningImages.schedule, default `23 * * * *`)."""
    period_seconds: int
    """The schedule's longest gap between runs, seconds (infra/config/model_monitoring.py schedule_period_seconds)."""
    pushgateway_url: str
    """Where results are pushed (pushgateway.url(monitoring namespace))."""
    namespace: str = "monitoring"
    """Where the job runs: the Pushgateway's and Prometheus's namespace."""
    partition: str = "aws"
    """AWS partition of the registry's ARNs."""
    allow: tuple[tuple[str, str, str], ...] = ()
    """vulnerabilities.allow as (cve, image, expires YYYY-MM-DD): findings an unexpired entry covers are counted
    apart, so the critical alert agrees with the deploy gate. The job checks `expires` on each run."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where the job runs (the system pool, as the platform's other controllers)."""

    def __post_init__(self) -> None:
        problems = []
        if len(self.schedule.split()) != 5:
            problems.append(f"schedule '{self.schedule}': five cron fields")
        if self.period_seconds < MIN_PERIOD_SECONDS:
            problems.append(f"period_seconds {self.period_seconds}: at least {MIN_PERIOD_SECONDS} (a run every 15 minutes at most)")
        if not self.namespaces:
            problems.append("namespaces: at least one model namespace")
        problems += [f"namespaces: '{ns}' is not a namespace name" for ns in self.namespaces if not _NAMESPACE.match(ns)]
        if not re.match(r"^\d{12}\Z", self.account_id):
            problems.append(f"account_id '{self.account_id}': 12 digits")
        if problems:
            raise ValueError("RunningImagesSpec: " + "; ".join(problems))

    @property
    def stale_seconds(self) -> int:
        """How old the last success may get before RunningImagesReportStale: STALE_RUNS periods, at least 3 hours."""
        return max(STALE_MIN_SECONDS, STALE_RUNS * self.period_seconds)


def job_config(spec: RunningImagesSpec) -> dict:
    """The job's configuration (images/model-monitoring's running_images.parse_config), in its CONFIG_ENV."""
    return {
        "namespaces": dict(sorted(spec.namespaces.items())),
        "region": spec.region,
        "registryId": spec.account_id,
        "pushgateway": spec.pushgateway_url,
        "allow": [{"cve": cve, "image": image, "expires": expires} for cve, image, expires in spec.allow],
    }


def findings_policy(spec: RunningImagesSpec) -> dict:
    """The job's AWS access: read image manifests (an index's platform manifests), image details and scan findings
    of the stack's registry's repositories; Inspector's findings, which ECR's DescribeImageScanFindings returns under
    enhanced scanning (ECR user guide, "IAM permissions required for enhanced scanning": inspector2:ListFindings
    takes no resource-level permissions). Read-only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadRegistryImagesAndFindings",
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:DescribeImageScanFindings", "ecr:DescribeImages"],
                "Resource": f"arn:{spec.partition}:ecr:{spec.region}:{spec.account_id}:repository/*",
            },
            {"Sid": "ReadEnhancedFindings", "Effect": "Allow", "Action": "inspector2:ListFindings", "Resource": "*"},
        ],
    }


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": MONITOR_COMPONENT, "app.kubernetes.io/part-of": "ml-platform"}


def rbac(spec: RunningImagesSpec) -> list[dict]:
    """A ClusterRole that may get and list pods, bound in each model namespace only (RoleBindings)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": CLUSTER_ROLE, "labels": _labels()},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    subject = {"kind": "ServiceAccount", "name": NAME, "namespace": spec.namespace}
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": NAME, "namespace": namespace, "labels": _labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
            "subjects": [subject],
        }
        for namespace in sorted(spec.namespaces)
    ]
    return [role, *bindings]


def manifests(spec: RunningImagesSpec) -> list[dict]:
    """The job's objects in apply order: service account, ClusterRole and RoleBindings, NetworkPolicy (nothing gets
    in), CronJob (its config in the pod's environment, CONFIG_ENV)."""
    meta = {"name": NAME, "namespace": spec.namespace, "labels": _labels()}
    pod_spec: dict = {
        "serviceAccountName": NAME,
        # The job reads the Kubernetes API with its account's token, mounted below where client libraries look
        # (API_TOKEN_DIR) with a lifetime of its own, in the one container that calls the API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": pod_security(),
        "containers": [
            {
                "name": "report",
                "image": spec.image,
                "imagePullPolicy": pull_policy(spec.image),
                "command": ["model-monitor"],
                "args": ["running-images", "--config-env", CONFIG_ENV],
                "env": [
                    {"name": CONFIG_ENV, "value": json.dumps(job_config(spec), sort_keys=True)},
                    {"name": "AWS_REGION", "value": spec.region},
                    {"name": "HOME", "value": "/tmp"},
                ],
                "resources": RESOURCES,
                "securityContext": container_security(),
                "volumeMounts": [
                    {"name": "api-token", "mountPath": API_TOKEN_DIR, "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {
                "name": "api-token",
                "projected": {
                    "sources": [
                        # The API server's audience (the default); the kubelet renews it before it expires.
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": API_TOKEN_SECONDS}},
                        # Every namespace has the cluster's CA in this ConfigMap (Kubernetes' root CA publisher).
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    ]
                },
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
        **({"nodeSelector": dict(spec.node_selector)} if spec.node_selector else {}),
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False},
        *rbac(spec),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta,
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}}, "policyTypes": ["Ingress"], "ingress": []},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta,
            "spec": {
                **cron_schedule(spec.schedule),
                "jobTemplate": {
                    "metadata": {"labels": _labels()},
                    "spec": {
                        "backoffLimit": 1,
                        "activeDeadlineSeconds": min(DEADLINE_SECONDS, spec.period_seconds - 300),
                        "ttlSecondsAfterFinished": 86400,
                        "template": {
                            "metadata": {"labels": _labels()},
                            "spec": pod_spec,
                        },
                    },
                },
            },
        },
    ]


def rule_group(spec: RunningImagesSpec) -> dict:
    """The report's alerts, on what it pushed (series carry job=running-images and the model's namespace and model:
    the Pushgateway's ServiceMonitor honours the pushed labels). Every alert carries `namespace` and `model`."""
    namespaces = "|".join(sorted(spec.namespaces))
    pushed = f'job="{NAME}", namespace=~"{namespaces}"'
    stale = spec.stale_seconds
    success = "ml_platform_running_images_last_success_timestamp_seconds"
    # Never published (or the Pushgateway lost it) although the CronJob has existed for as long: absent() yields the
    # namespace's labels, label_replace adds its model, so both branches name the same namespace and model.
    never = " or ".join(
        f'label_replace(absent({success}{{job="{NAME}", namespace="{namespace}"}}), "model", "{model}", "", "")'
        for namespace, model in sorted(spec.namespaces.items())
    )
    return {
        "name": "ml-platform.running-images",
        "rules": [
            alert(
                "ModelImageVulnerable",
                f'max by (namespace, model, image) (ml_platform_running_image_vulnerabilities{{{pushed}, severity="CRITICAL"}}) > 0',
                VULNERABLE_FOR,
                "critical",
                "{{ $labels.model }} runs {{ $labels.image }}, which has {{ $value }} critical vulnerabilities",
                "python -m infra images check --stack <stack> names them and their fixed versions: rebuild or bump the image and "
                "redeploy; no fix yet and not reachable: a vulnerabilities.allow entry with its reason and expiry, then pulumi up "
                f"({README})",
            ),
            alert(
                "RunningImagesUnscanned",
                f"max by (namespace, model, reason) (ml_platform_running_images_unscanned{{{pushed}}}) > 0",
                f"{stale // 60}m",
                "info",
                "{{ $value }} images running in {{ $labels.namespace }} have no scan results ({{ $labels.reason }})",
                f"kubectl -n {spec.namespace} logs job/<newest running-images job> names them. outside_ecr, other_registry: pull "
                "through a cache or mirror into the stack's registry; scan_not_found, pending: is the registry's scanning on "
                f"(python -m infra doctor)?; scan_eligibility_expired: vulnerabilities.registryScanning rescan durations ({README})",
            ),
            alert(
                "RunningImagesReportStale",
                f"(time() - max by (namespace, model) ({success}{{{pushed}}}) > {stale})"
                f" or (max by (namespace, model) ({never})"
                f' * on() group_left() (time() - max(kube_cronjob_created{{namespace="{spec.namespace}", cronjob="{NAME}"}})'
                f" > {stale}))",
                "10m",
                "warning",
                f"The running-images report of {{{{ $labels.namespace }}}} has not succeeded for {stale // 3600}h",
                f"kubectl -n {spec.namespace} get jobs -l app.kubernetes.io/name={NAME}; kubectl -n {spec.namespace} logs job/<newest>: "
                "Forbidden (the model namespace's RoleBinding), AccessDenied (the Pod Identity role), the Pushgateway unreachable",
            ),
        ],
    }


def prometheus_rule(spec: RunningImagesSpec) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME, "namespace": spec.namespace, "labels": _labels()},
        "spec": {"groups": [rule_group(spec)]},
    }


@dataclass
class RunningImagesArgs:
    spec: RunningImagesSpec
    """What the report covers and where it publishes."""
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    cluster_name: pulumi.Input[str]
    """Cluster of the Pod Identity association."""
    monitoring_crds: pulumi.Resource
    """The Monitoring component's CRD release: the monitoring namespace exists once it does, and the PrometheusRule
    needs its CRD."""
    model_namespaces: Sequence[pulumi.Resource] = ()
    """What creates the model namespaces (the ModelService components): the RoleBindings in them wait for it."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""


class RunningImages(pulumi.ComponentResource):
    """The running-images report: its CronJob, service account, RBAC, NetworkPolicy, Pod Identity role and alerts.
    Arguments: RunningImagesArgs, documented field by field."""

    def __init__(self, name: str, args: RunningImagesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        spec = args.spec
        in_monitoring = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider, depends_on=[args.monitoring_crds])
        identity = pod_identity_role(
            f"{name}-ecr-reader",
            args.cluster_name,
            spec.namespace,
            NAME,
            json.dumps(findings_policy(spec)),
            parent=self,
            tags=args.tags,
            association_depends_on=[args.monitoring_crds],
        )
        for manifest in manifests(spec):
            kind, metadata = manifest["kind"], manifest["metadata"]
            body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
            resource_name = f"{name}-{kind.lower()}"
            waits: list[pulumi.Resource] = []
            if kind == "RoleBinding":
                resource_name = f"{name}-rolebinding-{metadata['namespace']}"
                waits = list(args.model_namespaces)
            if kind == "CronJob":
                # Pod Identity adds credentials only when a pod is created: the association comes first.
                waits = identity
            options = pulumi.ResourceOptions.merge(in_monitoring, pulumi.ResourceOptions(depends_on=waits))
            _KINDS[kind](resource_name, metadata=metadata, **body, opts=options)
        rule = prometheus_rule(spec)
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version=rule["apiVersion"],
            kind=rule["kind"],
            metadata=rule["metadata"],
            spec=rule["spec"],
            opts=in_monitoring,
        )
        self.register_outputs({})


def _service_account(resource_name: str, metadata: dict, automountServiceAccountToken: bool, opts):
    return k8s.core.v1.ServiceAccount(
        resource_name, metadata=metadata, automount_service_account_token=automountServiceAccountToken, opts=opts
    )


_KINDS = {
    "ServiceAccount": _service_account,
    "ClusterRole": lambda n, metadata, rules, opts: k8s.rbac.v1.ClusterRole(n, metadata=metadata, rules=rules, opts=opts),
    "RoleBinding": lambda n, metadata, roleRef, subjects, opts: k8s.rbac.v1.RoleBinding(
        n, metadata=metadata, role_ref=roleRef, subjects=subjects, opts=opts
    ),
    "NetworkPolicy": lambda n, metadata, spec, opts: k8s.networking.v1.NetworkPolicy(n, metadata=metadata, spec=spec, opts=opts),
    "CronJob": lambda n, metadata, spec, opts: k8s.batch.v1.CronJob(n, metadata=metadata, spec=spec, opts=opts),
}
