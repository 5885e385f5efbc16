"""Drift detection and the feedback loop as the plans declare them: staging's and prod's `fraud` (a CPU model with
capture, drift and feedback) and `chat` (a vLLM model with metric drift). What moves to the capture proxy (the
Service's target, the NetworkPolicy, the scrapes, the autoscaler's container), least-privilege identities for the
proxy and the monitor job, the capture prefix's expiry, the Pushgateway, the CronJob, and config mistakes."""

from __future__ import annotations

import json

import pytest
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from ml_platform.components.model_service import capture, monitor_job
from ml_platform.infra import config, models
from ml_platform.infra.offline import stack_files

STORE = "arn:aws:s3:::ml-platform-{}-models-123456789012"


def manifest(plan, kind: str, name: str, namespace: str = "fraud") -> dict:
    (found,) = [
        r["inputs"]
        for r in plan.resources
        if r["type"].endswith(f":{kind}")
        and r["inputs"].get("metadata", {}).get("name") == name
        and r["inputs"]["metadata"].get("namespace") == namespace
    ]
    return found


def policy(plan, resource_name: str) -> dict:
    (found,) = [r for r in plan.resources if r["type"] == "aws:iam/rolePolicy:RolePolicy" and r["name"] == resource_name]
    return json.loads(found["inputs"]["policy"])


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_traffic_reaches_the_server_only_through_the_capture_proxy(plans, stack):
    plan = plans[stack]
    service = manifest(plan, "Service", "fraud")["spec"]["ports"]
    assert service[0] == {"name": "http", "port": 8080, "targetPort": capture.PORT, "protocol": "TCP"}, "callers keep port 8080"
    pod = manifest(plan, "Deployment", "fraud")["spec"]["template"]["spec"]
    proxy = pod["initContainers"][-1]
    assert proxy["name"] == "capture-proxy" and proxy["restartPolicy"] == "Always", "a native sidecar: up before the server"
    assert [p["containerPort"] for p in proxy["ports"]] == [capture.PORT, capture.METRICS_PORT]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["CAPTURE_UPSTREAM"] == "http://127.0.0.1:8080" and env["CAPTURE_PREFIX"] == "capture/fraud/unversioned/"
    assert json.loads(env["CAPTURE_REDACT"]) == ["$.customer"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["port"] == 8080, "the server's own probes stay on the server"
    rules = manifest(plan, "NetworkPolicy", "fraud")["spec"]["ingress"]
    callers = [r for r in rules if "matchExpressions" in r["from"][0].get("namespaceSelector", {})]
    assert [p["port"] for r in callers for p in r["ports"]] == [capture.PORT], "no caller reaches the server's port directly"
    scrapes = [r for r in rules if r["from"][0]["namespaceSelector"].get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"}]
    assert sorted(p["port"] for p in scrapes[0]["ports"]) == [8080, capture.METRICS_PORT]
    monitor = manifest(plan, "ServiceMonitor", "fraud")["spec"]["endpoints"]
    assert [e["port"] for e in monitor] == ["server", "capture-metrics"], "scrapes bypass the proxy"
    hpa = manifest(plan, "HorizontalPodAutoscaler", "fraud")["spec"]["metrics"]
    assert hpa[0]["containerResource"]["container"] == "server"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_proxy_may_only_write_its_own_capture_prefix(plans, stack):
    statements = {s["Sid"]: s for s in policy(plans[stack], "model-fraud-model-reader")["Statement"]}
    assert statements["WriteCapturedTraffic"]["Action"] == "s3:PutObject"
    assert statements["WriteCapturedTraffic"]["Resource"] == f"{STORE.format(stack)}/capture/fraud/unversioned/*"
    assert "kms:GenerateDataKey" in statements["UseKeyThroughS3"]["Action"], "writing SSE-KMS objects needs a data key"
    assert not any("capture/" in p for p in statements["ListModelPrefixes"]["Condition"]["StringLike"]["s3:prefix"])
    IAMPolicyDocumentValidator(json.dumps(policy(plans[stack], "model-fraud-model-reader"))).validate()


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_monitor_job_has_its_own_least_privilege_identity(plans, stack):
    document = policy(plans[stack], "model-fraud-monitor")
    IAMPolicyDocumentValidator(json.dumps(document)).validate()
    statements = {s["Sid"]: s for s in document["Statement"]}
    store = STORE.format(stack)
    assert statements["ReadInputs"]["Resource"] == [
        f"{store}/capture/fraud/unversioned/*",
        f"{store}/reference/fraud/v7/*",
        f"{store}/labels/fraud/*",
    ]
    assert statements["WriteReports"]["Resource"] == f"{store}/drift/fraud/unversioned/*"
    assert not any(s["Action"] in ("s3:*", "s3:DeleteObject") for s in document["Statement"])
    (association,) = [
        r for r in plans[stack].resources if r["type"].endswith("PodIdentityAssociation") and r["name"] == "model-fraud-monitor"
    ]
    assert association["inputs"]["serviceAccount"] == "fraud-monitor" and association["inputs"]["namespace"] == "fraud"
    # and the model's own identity reads none of the job's inputs
    reader = json.dumps(policy(plans[stack], "model-fraud-model-reader"))
    assert "reference/" not in reader and "labels/" not in reader


@pytest.mark.parametrize(("stack", "days"), [("staging", 30), ("prod", 90)])
def test_captured_records_expire_with_their_noncurrent_versions(plans, stack, days):
    (lifecycle,) = [r for r in plans[stack].resources if r["type"] == "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"]
    rules = {r["id"]: r for r in lifecycle["inputs"]["rules"]}
    expire = rules["expire-capture/fraud"]
    assert expire["filter"] == {"prefix": "capture/fraud/"} and expire["expiration"] == {"days": days}
    assert expire["noncurrentVersionExpiration"] == {"noncurrentDays": 1}
    assert rules["remove-capture/fraud-delete-markers"]["expiration"] == {"expiredObjectDeleteMarker": True}
    assert rules["expire-drift/fraud"]["expiration"] == {"days": days}, "the reports (a few MB an hour) go with them"
    assert rules["expire-compile-caches"]["filter"] == {"prefix": "compile-cache/"}, "the existing rules keep their ids"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_monitor_cronjob_never_overlaps_and_reads_its_config(plans, stack):
    cronjob = manifest(plans[stack], "CronJob", "fraud-monitor")["spec"]
    assert cronjob["concurrencyPolicy"] == "Forbid" and cronjob["schedule"] == "15 * * * *" and cronjob["timeZone"] == "Etc/UTC"
    job = cronjob["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] < 3600, "a run ends before the next one is due"
    pod = job["template"]["spec"]
    assert pod["serviceAccountName"] == "fraud-monitor" and pod["restartPolicy"] == "Never"
    assert "tolerations" not in pod, "never on a GPU node"
    data = json.loads(manifest(plans[stack], "ConfigMap", "fraud-monitor")["data"]["config.json"])
    assert (
        data["capturePrefix"] == "capture/fraud/unversioned/" and data["pushgateway"] == "http://prometheus-pushgateway.monitoring.svc:9091"
    )
    assert data["drift"]["reportPrefix"] == "drift/fraud/unversioned/" and data["feedback"]["metric"] == "accuracy"
    assert "objective" not in data["feedback"], "the objective is the alert's, not the job's"
    # chargebacks arrive days later: predictions are joined over the feedback window, not the drift window's day
    assert data["feedback"]["windowSeconds"] == {"staging": 14, "prod": 30}[stack] * 86400 and data["windowSeconds"] == 86400


def test_the_pushgateway_keeps_pushed_labels_and_admits_only_monitor_jobs(plans):
    (release,) = [
        r
        for r in plans["prod"].resources
        if r["type"] == "kubernetes:helm.sh/v3:Release" and r["inputs"]["chart"] == "prometheus-pushgateway"
    ]
    values = release["inputs"]["values"]
    assert release["inputs"]["version"] == "3.8.0" and release["inputs"]["namespace"] == "monitoring"
    assert values["serviceMonitor"] == {"enabled": True, "namespace": "monitoring", "honorLabels": True, "interval": "30s"}
    assert values["persistentVolume"]["enabled"] is True and "--persistence.file=/data/pushgateway.data" in values["extraArgs"]
    selectors = values["networkPolicy"]["customSelectors"]
    assert selectors[0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "model-monitor"}}
    job_labels = manifest(plans["prod"], "CronJob", "fraud-monitor")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert job_labels["app.kubernetes.io/component"] == "model-monitor"
    assert not [r for r in plans["dev"].resources if r["inputs"].get("chart") == "prometheus-pushgateway"], "no drift job in dev"


def test_vllm_metric_drift_rules_compare_with_the_same_hour_a_baseline_ago(plans):
    groups = {g["name"]: g for g in manifest(plans["prod"], "PrometheusRule", "chat", namespace="chat")["spec"]["groups"]}
    rules = groups["chat.metric-drift"]["rules"]
    scores = {r["labels"]["signal"]: r["expr"] for r in rules if r.get("record") == "model:vllm_metric_drift:score"}
    assert set(scores) == {"promptTokens", "generationTokens", "finishReason"}
    assert "offset 7d" in scores["promptTokens"] and "vllm:request_prompt_tokens_bucket" in scores["promptTokens"]
    (alert,) = [r for r in rules if r.get("alert")]
    assert "> 0.2" in alert["expr"] and alert["expr"].count(">= 200") == 2, "both hours need prod's minRequests"
    dev = {g["name"]: g for g in manifest(plans["dev"], "PrometheusRule", "chat", namespace="chat")["spec"]["groups"]}
    assert "offset 1d" in json.dumps(dev["chat.metric-drift"]), "dev's 3 days of metrics hold a 1-day baseline"


def test_a_registry_model_captures_under_its_locked_version():
    raw = dict(stack_files.read_stack("staging").values)
    cfg = config.parse(raw, "staging")
    fraud = cfg.models["fraud"]
    locked = fraud.model_copy(
        update={
            "source": fraud.source.model_copy(
                update={
                    "s3Prefix": "registry/fraud-xgb/12/0123456789ab/",
                    "registry": config.models.RegistryRef(model="fraud-xgb", alias="champion"),
                }
            )
        }
    )
    assert models.served_version(locked) == "12"
    assert models.served_version(fraud) == "unversioned"
    spec = models.model_spec("fraud", locked, cfg, "123456789012.dkr.ecr.us-west-2.amazonaws.com", "bucket")
    assert spec.capture.version == spec.monitor.version == "12"
    assert monitor_job.job_config(spec)["capturePrefix"] == "capture/fraud/12/"


def test_a_namespace_preview_captures_nothing():
    cfg = config.parse(dict(stack_files.read_stack("staging").values), "staging")
    spec = models.model_spec("fraud", cfg.models["fraud"], cfg, "r.example", "bucket", shared_namespace="pr-7")
    assert spec.capture is None and spec.monitor is None and spec.metric_drift is None


def test_the_schedule_period_is_the_longest_gap():
    assert models.schedule_period_seconds("15 * * * *") == 3600
    assert models.schedule_period_seconds("0 6,18 * * *") == 12 * 3600
    assert models.schedule_period_seconds("0 3 * * 1-5") == 3 * 86400, "Friday to Monday"


def _with_model(stack: str, name: str, change: dict, **sections) -> dict:
    raw = dict(stack_files.read_stack(stack).values)
    current = raw["ml-platform:models"]
    current = json.loads(current) if isinstance(current, str) else current
    current[name] = {**current[name], **change}
    raw["ml-platform:models"] = json.dumps(current)
    for key, value in sections.items():
        raw[f"ml-platform:{key}"] = json.dumps(value)
    return raw


@pytest.mark.parametrize(
    ("stack", "model", "change", "key", "message"),
    [
        (
            "dev",
            "chat",
            {"metricDrift": {"baseline": "7d"}},
            "models.chat.metricDrift.baseline",
            "raise monitoring.retention to at least 8d",
        ),
        ("dev", "chat", {"metricDrift": {"baseline": "36h"}}, "models.chat.metricDrift.baseline", "not whole days"),
        ("dev", "fraud", {"metricDrift": {}}, "models.fraud.metricDrift", "a custom model has none"),
        (
            "dev",
            "chat",
            {"metricDrift": {"signals": ["promptTokens", "promptTokens"]}},
            "models.chat.metricDrift.signals",
            "each signal once",
        ),
        ("staging", "ranker", {"capture": {"sampleRate": 0.1}}, "models.ranker.capture", "Triton's gRPC"),
        ("staging", "fraud", {"port": 8090}, "models.fraud.port", "capture proxy's"),
        ("staging", "fraud", {"capture": {"sampleRate": 0}}, "models.fraud.capture.sampleRate", "greater than 0"),
        ("staging", "fraud", {"capture": {"sampleRate": 0.1, "redact": ["$.[broken"]}}, "models.fraud.capture.redact", "not a JSONPath"),
        ("staging", "fraud", {"capture": None}, "models.fraud.drift", "set capture too"),
        ("staging", "fraud", {"drift": None}, "models.fraud.feedback", "set drift too"),
        (
            "staging",
            "fraud",
            {"capture": {"sampleRate": 0.1, "retentionDays": 7}, "drift": {"window": "14d", "reference": {"s3Prefix": "r/"}}},
            "models.fraud.drift.window",
            "reaches past capture.retentionDays",
        ),
        ("staging", "fraud", {"drift": {"schedule": "every hour", "reference": {"s3Prefix": "r/"}}}, "models.fraud.drift.schedule", "cron"),
        ("staging", "fraud", {"drift": {"window": "30m", "reference": {"s3Prefix": "r/"}}}, "models.fraud.drift.window", "shorter than 1h"),
        ("staging", "fraud", {"drift": {"method": "magic", "reference": {"s3Prefix": "r/"}}}, "models.fraud.drift.method", "psi"),
        (
            "staging",
            "fraud",
            {"drift": {"reference": {"s3Prefix": "capture/fraud/"}}},
            "models.fraud.drift.reference.s3Prefix",
            "platform's prefixes",
        ),
        (
            "staging",
            "fraud",
            {"feedback": {"labelsPrefix": "l/", "metric": "accuracy", "objective": 1.5}},
            "models.fraud.feedback",
            "0 < objective <= 1",
        ),
        (
            "staging",
            "fraud",
            {"feedback": {"labelsPrefix": "l/", "metric": "accuracy", "objective": 0.9, "window": "45d"}},
            "models.fraud.feedback.window",
            "reaches past capture.retentionDays (30d)",
        ),
        (
            "staging",
            "fraud",
            {"drift": {"schedule": "0 0 * * 7", "reference": {"s3Prefix": "r/"}}},
            "models.fraud.drift.schedule",
            "Sunday is 0",
        ),
        (
            "staging",
            "fraud",
            {"drift": {"schedule": "0 0 L * *", "reference": {"s3Prefix": "r/"}}},
            "models.fraud.drift.schedule",
            "no L, W or #",
        ),
        (
            "staging",
            "fraud",
            {"drift": {"schedule": "0 0 30 2 *", "reference": {"s3Prefix": "r/"}}},
            "models.fraud.drift.schedule",
            "never fires",
        ),
        (
            "staging",
            "fraud",
            {"drift": {"schedule": "*/5 * * * *", "reference": {"s3Prefix": "r/"}}},
            "models.fraud.drift.schedule",
            "every 15 minutes",
        ),
        ("staging", "fraud", {"drift": {"reference": {"s3Prefix": "*/"}}}, "models.fraud.drift.reference.s3Prefix", "IAM wildcard"),
        ("staging", "fraud", {"source": {"s3Prefix": "fraud*/"}}, "models.fraud.source.s3Prefix", "IAM wildcard"),
        ("staging", "fraud", {"drift": {"method": "ks", "threshold": 5, "reference": {"s3Prefix": "r/"}}}, "models.fraud.drift", "p-value"),
        (
            "staging",
            "fraud",
            {"feedback": {"labelsPrefix": "l/", "metric": "accuracy", "objective": 0.9, "labelField": "requestId"}},
            "models.fraud.feedback",
            "also the join key's column",
        ),
        ("staging", "fraud", {"capture": {"sampleRate": 0.1, "redact": ["$.a.`len`"]}}, "models.fraud.capture.redact", "computes a value"),
        (
            "staging",
            "fraud",
            {"feedback": {"labelsPrefix": "l/", "metric": "mae", "objective": 2, "joinKey": "$.a['b','c']"}},
            "models.fraud.feedback.joinKey",
            "single field name",
        ),
        (
            "staging",
            "fraud",
            {"feedback": {"labelsPrefix": "l/", "metric": "rmse", "objective": 2, "joinKey": "id"}},
            "models.fraud.feedback.joinKey",
            "root",
        ),
    ],
)
def test_monitoring_mistakes_are_config_errors(stack, model, change, key, message):
    raw = _with_model(stack, model, {k: v for k, v in change.items() if v is not None})
    if None in change.values():
        current = json.loads(raw["ml-platform:models"])
        for field in [k for k, v in change.items() if v is None]:
            current[model].pop(field, None)
        raw["ml-platform:models"] = json.dumps(current)
    with pytest.raises(config.ConfigError) as caught:
        config.parse(raw, stack)
    found = [m for path, m in caught.value.problems if path == key]
    assert found and any(message in m for m in found), caught.value.problems


def test_the_monitoring_image_is_required_pinned_and_the_platforms():
    raw = dict(stack_files.read_stack("staging").values)
    raw.pop("ml-platform:serving")
    with pytest.raises(config.ConfigError, match=r"serving\.monitoringImage") as caught:
        config.parse(raw, "staging")
    assert "fraud capture(s) traffic" in str(caught.value)
    prod = dict(stack_files.read_stack("prod").values)
    serving = json.loads(prod["ml-platform:serving"]) if isinstance(prod["ml-platform:serving"], str) else prod["ml-platform:serving"]
    serving["monitoringImage"] = {"repository": "platform/model-monitoring", "tag": "0.1.0-abc-20261130"}
    prod["ml-platform:serving"] = json.dumps(serving)
    with pytest.raises(config.ConfigError, match=r"serving\.monitoringImage\.digest"):
        config.parse(prod, "prod")
    serving["monitoringImage"] = {"repository": "docker.io/someone/proxy", "tag": "1"}
    prod["ml-platform:serving"] = json.dumps(serving)
    with pytest.raises(config.ConfigError, match="a repository of the platform's registry"):
        config.parse(prod, "prod")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_model_alert_carries_its_namespace(plans, stack):
    # Alertmanager groups by namespace and ModelServerDown inhibits its model's symptoms on an equal namespace: an
    # alert built on sum(...) loses the label unless the rule sets it.
    rules = [
        r
        for r in plans[stack].by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
        if r["inputs"]["metadata"]["namespace"] in plans[stack].outputs["versions"]["images"]["models"]
    ]
    assert rules
    for rule in rules:
        namespace = rule["inputs"]["metadata"]["namespace"]
        for group in rule["inputs"]["spec"]["groups"]:
            for alert in (r for r in group["rules"] if "alert" in r):
                assert alert["labels"]["namespace"] == namespace, (group["name"], alert["alert"])
                assert "model" in alert["labels"] or "component" in alert["labels"], (group["name"], alert["alert"])


def test_the_proxys_image_pull_counts_in_the_cold_start():
    from ml_platform.infra import coldstart

    cfg = config.parse(dict(stack_files.read_stack("staging").values), "staging")
    fraud = cfg.models["fraud"]
    with_proxy = coldstart.estimate("fraud", fraud)
    without = coldstart.estimate("fraud", fraud.model_copy(update={"capture": None}))
    (term,) = [t for t in with_proxy.terms if t.name == "proxy image"]
    assert term.seconds == pytest.approx(coldstart.MONITORING_IMAGE_GIB / coldstart.PULL_GIB_PER_S)
    assert with_proxy.seconds == pytest.approx(without.seconds + term.seconds)


@pytest.mark.parametrize("schedule", ["0 0 1 * *", "30 2 15 * *", "0 0 29 2 *", "0 3 * * 1-5"])
def test_rare_schedules_plan_with_their_longest_gap(schedule):
    raw = _with_model("staging", "fraud", {"drift": {"schedule": schedule, "reference": {"s3Prefix": "reference/fraud/v7/"}}})
    current = json.loads(raw["ml-platform:models"])
    current["fraud"].pop("feedback")
    raw["ml-platform:models"] = json.dumps(current)
    cfg = config.parse(raw, "staging")
    spec = models.model_spec("fraud", cfg.models["fraud"], cfg, "r.example", "bucket")
    assert spec.monitor.period_seconds >= 3 * 86400
    cronjob = next(o for o in monitor_job.manifests(spec) if o["kind"] == "CronJob")
    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == monitor_job.DEADLINE_SECONDS


def test_a_namespace_preview_says_what_it_turns_off():

    cfg = config.parse(dict(stack_files.read_stack("staging").values), "staging")
    preview = cfg.model_copy(
        update={
            "preview": config.PreviewConfig.model_validate(
                {"pr": 7, "mode": "namespace", "baseStack": "org/ml-platform/staging", "expiresAt": "2026-12-01T00:00:00Z"}
            )
        }
    )
    (warning,) = [w for w in models.start_warnings(preview) if "namespace preview" in w]
    assert warning.startswith("chat, fraud: capture, drift and metricDrift are off")


def test_the_proxys_memory_limit_covers_its_worst_case(plans):
    pod = manifest(plans["prod"], "Deployment", "fraud")["spec"]["template"]["spec"]
    proxy = pod["initContainers"][-1]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["CAPTURE_STORE_QUERY"] == "false", "query strings (keys, identifiers) are never written"
    assert int(env["CAPTURE_QUEUE_BYTES"]) == capture.QUEUE_BYTES and "CAPTURE_QUEUE_RECORDS" not in env
    # 70 MiB + 200 x 0.75 MiB + 2 x 64 MiB queue + 64 MiB in flight + 30 x 1 MiB payloads = 442 MiB, a quarter again
    assert proxy["resources"]["limits"]["memory"] == "576Mi"
    assert capture.memory_limit_mib(16 * 2**20) > capture.memory_limit_mib(2**20) + 450, "large payloads need room"
