"""The running-images report's alerts (components/running_images.py) under `promtool`: the group passes `check
rules`, and each alert has `test rules` cases with the series the report pushes (through the Pushgateway, whose
ServiceMonitor keeps the pushed `job`, `namespace` and `model`) that fire it with its labels, and near misses that must
leave it quiet."""

from __future__ import annotations

import subprocess

import yaml

from ml_platform.components import running_images as ri
from tests.contract.test_alert_rules import promtool
from tests.contract.test_model_monitoring_alerts import case, run

SPEC = ri.RunningImagesSpec(
    image="123456789012.dkr.ecr.us-west-2.amazonaws.com/platform/model-monitoring:0.1.0",
    namespaces={"fraud": "fraud", "chat": "chat"},
    region="us-west-2",
    account_id="123456789012",
    schedule="23 * * * *",
    period_seconds=3600,
    pushgateway_url="http://prometheus-pushgateway.monitoring.svc:9091",
)
GROUPS = [ri.rule_group(SPEC)]
IMAGE = "prod/models/fraud@sha256:aaaaaaaaaaaa"
FRAUD = 'job="running-images", namespace="fraud", model="fraud"'
CHAT = 'job="running-images", namespace="chat", model="chat"'
VULNERABLE = f'ml_platform_running_image_vulnerabilities{{{FRAUD}, image="{IMAGE}", severity="%s"}}'
UNSCANNED = f'ml_platform_running_images_unscanned{{{FRAUD}, reason="outside_ecr"}}'
SUCCESS = "ml_platform_running_images_last_success_timestamp_seconds{%s}"
CRONJOB = 'kube_cronjob_created{namespace="monitoring", cronjob="running-images"}'
FRAUD_LABELS = {"namespace": "fraud", "model": "fraud"}
CHAT_LABELS = {"namespace": "chat", "model": "chat"}

# alert -> [(firing series, eval time, [labels of each alert expected]), ...], [(quiet series, eval time), ...]
CASES = {
    "ModelImageVulnerable": (
        [([(VULNERABLE % "CRITICAL", "2x30"), (VULNERABLE % "HIGH", "3x30")], "20m", [{**FRAUD_LABELS, "image": IMAGE}])],
        [
            # high findings only
            ([(VULNERABLE % "CRITICAL", "0x30"), (VULNERABLE % "HIGH", "3x30")], "20m"),
            # a critical finding published 9 minutes ago: not yet for 15 minutes (one run's numbers may be corrected)
            ([(VULNERABLE % "CRITICAL", "0x10 1x20")], "20m"),
            # a namespace the report does not cover (a removed model's lingering group), another job's series
            ([(VULNERABLE.replace('namespace="fraud"', 'namespace="retired"') % "CRITICAL", "2x30")], "20m"),
            ([(VULNERABLE.replace('job="running-images"', 'job="other"') % "CRITICAL", "2x30")], "20m"),
        ],
    ),
    "RunningImagesUnscanned": (
        [([(UNSCANNED, "1x300")], "4h", [{**FRAUD_LABELS, "reason": "outside_ecr"}])],
        # an image without results for 2 hours so far (a new digest's first scan can take a run or two)
        [([(UNSCANNED, "_x60 1x240")], "3h"), ([(UNSCANNED, "0x300")], "4h")],
    ),
    "RunningImagesReportStale": (
        [
            # fraud's last success at time 0, four hours ago; chat's a minute ago
            ([(SUCCESS % FRAUD, "0x300"), (SUCCESS % CHAT, "0+60x300")], "4h", [FRAUD_LABELS]),
            # never published, and the CronJob has existed since time 0: every namespace is named
            ([(CRONJOB, "0x300")], "4h", [FRAUD_LABELS, CHAT_LABELS]),
        ],
        [
            # succeeding every minute
            ([(SUCCESS % FRAUD, "0+60x300"), (SUCCESS % CHAT, "0+60x300"), (CRONJOB, "0x300")], "4h"),
            # two hours since the last success: not yet three runs missed
            ([(SUCCESS % FRAUD, "7200x300"), (SUCCESS % CHAT, "7200x300"), (CRONJOB, "0x300")], "4h"),
            # a CronJob made 40 minutes ago that has not run yet
            ([(CRONJOB, "12000x300")], "4h"),
        ],
    ),
}


def promtool_cases(alert: str) -> list[dict]:
    firing, quiet = CASES[alert]
    labels = next(r["labels"] for g in GROUPS for r in g["rules"] if r["alert"] == alert)
    tests = [case(series, alert, at, [{**labels, **e, "alertname": alert} for e in expected]) for series, at, expected in firing]
    return tests + [case(series, alert, at, []) for series, at in quiet]


def test_every_alert_has_cases_and_model_labels():
    rules = {r["alert"]: r for g in GROUPS for r in g["rules"]}
    assert set(rules) == set(CASES)
    assert {a: r["labels"]["severity"] for a, r in rules.items()} == {
        "ModelImageVulnerable": "critical",
        "RunningImagesUnscanned": "info",
        "RunningImagesReportStale": "warning",
    }
    assert all("Vulnerabilities" in r["annotations"]["runbook"] for a, r in rules.items() if a != "RunningImagesReportStale")


def test_the_group_passes_promtool_check(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": GROUPS}))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_critical_finding_in_a_running_image_fires(tmp_path):
    result = run(tmp_path, GROUPS, promtool_cases("ModelImageVulnerable"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_without_scan_results_are_reported(tmp_path):
    result = run(tmp_path, GROUPS, promtool_cases("RunningImagesUnscanned"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_report_that_stopped_or_never_started_fires(tmp_path):
    result = run(tmp_path, GROUPS, promtool_cases("RunningImagesReportStale"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(tmp_path):
    quiet_series, at = CASES["ModelImageVulnerable"][1][0]
    wrong = case(quiet_series, "ModelImageVulnerable", at, [{**FRAUD_LABELS, "image": IMAGE, "alertname": "ModelImageVulnerable"}])
    assert run(tmp_path, GROUPS, [wrong]).returncode != 0
