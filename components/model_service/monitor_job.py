"""A model's monitor job: a CronJob (images/model-monitoring, `model-monitor run`) that reads the captured window
from the model store, compares its inputs with reference data (drift, Evidently), joins its predictions with labels
that arrived since (feedback), writes reports under `drift/<model>/<version>/`, and publishes the results to the
Pushgateway (components/pushgateway.py), from where Prometheus scrapes them for the alerts below.

The job has an identity of its own (service account `<model>-monitor`): it reads the model's captures, reference
data and labels and writes its reports; the model's pods cannot read any of that, and the job cannot touch the
weights. Runs never overlap (concurrencyPolicy Forbid); a run that outlives its schedule's period is cut off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ml_platform.components.alerts import alert
from ml_platform.components.model_service import capture
from ml_platform.components.pod_defaults import container_security, cron_schedule, pod_security, pull_policy
from ml_platform.components.pushgateway import MONITOR_COMPONENT
from ml_platform.components.scheduling import node_affinity

if TYPE_CHECKING:
    from ml_platform.components.model_service.spec import ModelSpec

CONFIG_DIR = "/etc/model-monitor"
REPORT_PREFIX = "drift/"
RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
"""Evidently holds the window and the reference in memory (pandas)."""
DEADLINE_SECONDS = 50 * 60
STALE_RUNS = 3
"""Runs a model's results may miss before ModelDriftJobStale fires."""


@dataclass(frozen=True)
class MonitorSpec:
    """What a model's monitor job compares and publishes. Raises ValueError naming the field for a value the job
    would refuse (the stack config reports the same mistakes at their keys first)."""

    image: str
    """The model-monitoring image."""
    bucket: str
    """The model store's bucket name."""
    version: str
    """The served version (as the capture proxy writes it)."""
    schedule: str
    """Five-field cron expression, UTC."""
    period_seconds: int
    """The schedule's longest gap between runs, seconds (the stale alert waits STALE_RUNS of these)."""
    window_seconds: int
    """Captured records of this long before each run are judged, seconds."""
    min_samples: int
    """Fewer records is "too few samples"."""
    pushgateway_url: str
    """Where results are pushed."""
    reference_prefix: str
    """Reference data's prefix in the store."""
    method: str = "psi"
    """Evidently's stattest."""
    threshold: float | None = None
    """The stattest's threshold; None: Evidently's default."""
    drift_share: float = 0.5
    """Share of drifted features at which the data counts as drifted."""
    records_path: str = "$.instances[*]"
    """JSONPath of the feature records in a captured request."""
    feedback: Mapping[str, object] | None = None
    """{labelsPrefix, joinKey, predictionPath, labelField, metric, objective, window (seconds, or None: the drift
    window)} or None."""
    excluded_pools: tuple[str, ...] = field(default=())
    """Pools the job keeps off (the system pool)."""

    def __post_init__(self) -> None:
        problems = []
        if len(self.schedule.split()) != 5:
            problems.append(f"schedule '{self.schedule}': five cron fields")
        if self.window_seconds < 3600:
            problems.append(f"window_seconds {self.window_seconds}: at least 3600")
        if self.min_samples < 1:
            problems.append(f"min_samples {self.min_samples}: at least 1")
        if not 0 < self.drift_share <= 1:
            problems.append(f"drift_share {self.drift_share}: 0 < share <= 1")
        if not self.reference_prefix.endswith("/"):
            problems.append(f"reference_prefix '{self.reference_prefix}': ends with '/'")
        if problems:
            raise ValueError("MonitorSpec: " + "; ".join(problems))


def name(spec: ModelSpec) -> str:
    """The job's objects' name (service account, ConfigMap, CronJob): `<model>-monitor`."""
    return f"{spec.name}-monitor"


def model_report_prefix(model: str) -> str:
    """`drift/<model>/`: every version's reports of the model (the store's lifecycle rule expires them)."""
    return f"{REPORT_PREFIX}{model}/"


def report_prefix(spec: ModelSpec) -> str:
    """`drift/<model>/<version>/`: where the job writes its reports, and all it may write."""
    assert spec.monitor is not None
    return f"{model_report_prefix(spec.name)}{spec.monitor.version}/"


def job_config(spec: ModelSpec) -> dict:
    """The job's configuration file (images/model-monitoring's `model-monitor run --config`)."""
    monitor = spec.monitor
    assert monitor is not None
    drift: dict = {
        "referencePrefix": monitor.reference_prefix,
        "method": monitor.method,
        "driftShare": monitor.drift_share,
        "recordsPath": monitor.records_path,
        "reportPrefix": report_prefix(spec),
    }
    if monitor.threshold is not None:
        drift["threshold"] = monitor.threshold
    config: dict = {
        "model": spec.name,
        "namespace": spec.namespace,
        "version": monitor.version,
        "bucket": monitor.bucket,
        "region": spec.region,
        "capturePrefix": capture.prefix(spec.name, monitor.version),
        "windowSeconds": monitor.window_seconds,
        "minSamples": monitor.min_samples,
        "pushgateway": monitor.pushgateway_url,
        "drift": drift,
    }
    if monitor.feedback is not None:
        feedback = {k: v for k, v in monitor.feedback.items() if k not in ("objective", "window") and v is not None}
        if monitor.feedback.get("window"):
            feedback["windowSeconds"] = int(str(monitor.feedback["window"]))
        config["feedback"] = {**feedback, "reportPrefix": f"{report_prefix(spec)}feedback/"}
    return config


def store_policy(spec: ModelSpec, bucket_arn: str, kms_key_arn: str) -> dict:
    """The job's access to the model store: read the model's captures of its version, the reference data and the
    labels; write its reports; the store's key through S3 only."""
    monitor = spec.monitor
    assert monitor is not None
    reads = [capture.prefix(spec.name, monitor.version), monitor.reference_prefix]
    if monitor.feedback is not None:
        reads.append(str(monitor.feedback["labelsPrefix"]))
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadInputs", "Effect": "Allow", "Action": "s3:GetObject", "Resource": [f"{bucket_arn}/{p}*" for p in reads]},
            {
                "Sid": "ListInputs",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in reads]}},
            },
            {"Sid": "WriteReports", "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{bucket_arn}/{report_prefix(spec)}*"},
            {
                "Sid": "UseKeyThroughS3",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{spec.region}.amazonaws.com"}},
            },
        ],
    }


def _labels(spec: ModelSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name(spec),
        "app.kubernetes.io/component": MONITOR_COMPONENT,
        "app.kubernetes.io/part-of": "ml-platform",
    }


def manifests(spec: ModelSpec) -> list[dict]:
    """The job's objects in apply order: service account, ConfigMap, NetworkPolicy (nothing gets in), CronJob."""
    monitor = spec.monitor
    assert monitor is not None
    meta = {"name": name(spec), "namespace": spec.namespace, "labels": _labels(spec)}
    config = json.dumps(job_config(spec), indent=2, sort_keys=True)
    pod_spec: dict = {
        "serviceAccountName": name(spec),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": pod_security(),
        "containers": [
            {
                "name": "monitor",
                "image": monitor.image,
                "imagePullPolicy": pull_policy(monitor.image),
                "command": ["model-monitor"],
                "args": ["run", "--config", f"{CONFIG_DIR}/config.json"],
                "env": [{"name": "AWS_REGION", "value": spec.region}, {"name": "HOME", "value": "/tmp"}],
                "resources": RESOURCES,
                "securityContext": container_security(),
                "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": name(spec)}}, {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}],
        # No GPU node (they are tainted, and the job tolerates nothing), never the system pool.
        **({"affinity": node_affinity(monitor.excluded_pools)} if monitor.excluded_pools else {}),
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"config.json": config}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta,
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name(spec)}}, "policyTypes": ["Ingress"], "ingress": []},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta,
            "spec": {
                **cron_schedule(monitor.schedule),
                "jobTemplate": {
                    "metadata": {"labels": _labels(spec)},
                    "spec": {
                        "backoffLimit": 1,
                        "activeDeadlineSeconds": min(DEADLINE_SECONDS, max(monitor.period_seconds - 60, 300)),
                        "ttlSecondsAfterFinished": 86400,
                        "template": {
                            "metadata": {
                                "labels": _labels(spec),
                                # The config's content: a changed config reaches the next run's pod (and shows in the diff).
                                "annotations": {"ml-platform/config-sha256": hashlib.sha256(config.encode()).hexdigest()[:16]},
                            },
                            "spec": pod_spec,
                        },
                    },
                },
            },
        },
    ]


def rule_group(spec: ModelSpec) -> dict:
    """The job's alerts, on what it pushed (series carry job=model-drift|model-feedback and the model's namespace,
    model and version: the Pushgateway's ServiceMonitor honours the pushed labels)."""
    monitor = spec.monitor
    assert monitor is not None
    model = f'job="model-drift", namespace="{spec.namespace}", model="{spec.name}"'
    # Verdicts are about the version the model serves: an older version's group lingers in the Pushgateway until the
    # new version's first run deletes it, and must not keep its alert firing (nor point at the wrong report).
    drift = f'{model}, version="{monitor.version}"'
    stale_seconds = STALE_RUNS * monitor.period_seconds
    rules = [
        alert(
            "ModelDataDrift",
            f"max by (namespace, model, version) (model_drift_detected{{{drift}}}) == 1",
            "0m",
            "warning",
            f"{spec.name} {{{{ $labels.version }}}}: the captured inputs drifted from the reference data",
            f"Read the newest report under s3://<store>/{report_prefix(spec)}: which features moved, and is it the world "
            "or a client bug? Retraining data: the captured requests under capture/ (README, 'Drift and feedback').",
            model=spec.name,
            namespace=spec.namespace,
        ),
        alert(
            "ModelDriftTooFewSamples",
            f"max by (namespace, model, version) (model_drift_insufficient_samples{{{drift}}}) == 1",
            f"{max(monitor.period_seconds * 2, 3600) // 60}m",
            "info",
            f"{spec.name} {{{{ $labels.version }}}}: too few captured requests to judge drift (below {monitor.min_samples})",
            "Raise capture.sampleRate or drift.window, or lower drift.minSamples: no verdict is not 'no drift'",
            model=spec.name,
            namespace=spec.namespace,
        ),
        alert(
            "ModelDriftJobStale",
            # The newest success of any version of the model: a version change keeps the old version's success until
            # the new version's first run replaces it, so a promotion is not a stale job. Old: the job stopped
            # succeeding. Absent: nothing was ever published (or the Pushgateway lost it) although the CronJob has
            # existed for as long.
            f"(time() - max by (namespace, model) (model_drift_last_success_timestamp_seconds{{{model}}}) > {stale_seconds})"
            f" or (absent(model_drift_last_success_timestamp_seconds{{{model}}})"
            f' * on() group_left() (time() - max(kube_cronjob_created{{namespace="{spec.namespace}", cronjob="{name(spec)}"}})'
            f" > {stale_seconds}))",
            "10m",
            "warning",
            f"{spec.name}'s monitor job has not succeeded for {STALE_RUNS} runs",
            f"kubectl -n {spec.namespace} get jobs -l app.kubernetes.io/name={name(spec)}; kubectl -n {spec.namespace} logs "
            f"job/<newest>: AccessDenied, a missing reference prefix or the Pushgateway unreachable",
            model=spec.name,
            namespace=spec.namespace,
        ),
    ]
    if monitor.feedback is not None:
        objective = float(str(monitor.feedback["objective"]))
        metric = str(monitor.feedback["metric"])
        worse = "<" if metric == "accuracy" else ">"
        feedback = f'job="model-feedback", namespace="{spec.namespace}", model="{spec.name}", version="{monitor.version}"'
        rules.append(
            alert(
                "ModelQualityBelowObjective",
                f'min by (namespace, model, version) (model_quality{{{feedback}, metric="{metric}"}}) {worse} {objective:g}'
                f" and on(namespace, model, version) max by (namespace, model, version) "
                f"(model_feedback_insufficient_samples{{{feedback}}}) == 0",
                "0m",
                "critical",
                f"{spec.name} {{{{ $labels.version }}}}: realised {metric} {{{{ $value | humanize }}}} is worse than {objective:g}",
                "Labels joined with captured predictions show the model is wrong more often than agreed: roll back to the "
                "previous version (models lock) or retrain on the captured window with its labels",
                model=spec.name,
                namespace=spec.namespace,
            )
        )
    return {"name": f"{spec.name}.drift", "rules": rules}
