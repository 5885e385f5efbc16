"""The model-monitoring alerts as the plans declare them (metric drift of vLLM models; the capture proxy; the
monitor job's drift, samples, staleness and quality), each under `promtool test rules`: input series that fire it
with its labels, and near misses that must leave it quiet."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.contract.test_alert_rules import promtool, without_annotations

PROMPTS = 'vllm:request_prompt_tokens_{}{{namespace="chat"{}}}'
FINISHED = 'vllm:request_success_total{{namespace="chat", finished_reason="{}"}}'
WEEK = 7 * 24 * 6  # 10-minute samples in a week


def week_then(before: int, after: int, extra: int = 100) -> str:
    """A counter growing by `before` per 10 minutes for a week, then by `after`."""
    start = before * WEEK + after
    return f"0+{before}x{WEEK} {start}+{after}x{extra}"


def prompt_series(small_before: int, small_after: int, per_ten_minutes: int) -> list[tuple[str, str]]:
    """Prompt-token histogram series: `small_*` of every `per_ten_minutes` requests fall in the le=128 bucket."""
    total = week_then(per_ten_minutes, per_ten_minutes)
    return [
        (PROMPTS.format("bucket", ', le="128"'), week_then(small_before, small_after)),
        (PROMPTS.format("bucket", ', le="+Inf"'), total),
        (PROMPTS.format("count", ""), total),
        (FINISHED.format("stop"), total),
    ]


def groups_of(plan, model: str) -> list[dict]:
    (rule,) = [r for r in plan.by_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule") if r["inputs"]["metadata"]["name"] == model]
    return rule["inputs"]["spec"]["groups"]


def labels_of(groups: list[dict], alert: str) -> dict:
    return next(r["labels"] for g in groups for r in g["rules"] if r.get("alert") == alert)


def run(tmp_path, groups: list[dict], tests: list[dict], interval: str = "1m") -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": without_annotations(groups)}))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": interval, "tests": tests}))
    return subprocess.run([promtool(), "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True, text=True, timeout=600)


def case(series: list[tuple[str, str]], alert: str, at: str, expected: list[dict], interval: str = "1m") -> dict:
    return {
        "interval": interval,
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": e} for e in expected]}],
    }


def test_vllm_metric_drift_fires_on_a_shift_from_the_same_hour_a_week_ago(plans, tmp_path):
    groups = [g for g in groups_of(plans["staging"], "chat") if g["name"] == "chat.metric-drift"]
    labels = {**labels_of(groups, "ModelMetricDrift"), "alertname": "ModelMetricDrift", "signal": "promptTokens", "baseline": "7d"}
    at = "170h"  # a week and two hours: the shifted hour has lasted longer than the alert's `for`
    tests = [
        # 90% short prompts for a week, then 10%: a KS distance of 0.8
        case(prompt_series(90, 10, 100), "ModelMetricDrift", at, [labels], "10m"),
        # the same mix throughout: quiet
        case(prompt_series(90, 90, 100), "ModelMetricDrift", at, [], "10m"),
        # the same shift on 6 requests an hour, below minRequests: never judged
        case(prompt_series(1, 0, 1), "ModelMetricDrift", at, [], "10m"),
    ]
    result = run(tmp_path, groups, tests, interval="5m")
    assert result.returncode == 0, result.stdout + result.stderr


def test_finish_reasons_count_a_reason_seen_in_one_hour_only(plans, tmp_path):
    groups = [g for g in groups_of(plans["staging"], "chat") if g["name"] == "chat.metric-drift"]
    labels = {**labels_of(groups, "ModelMetricDrift"), "alertname": "ModelMetricDrift", "signal": "finishReason", "baseline": "7d"}
    # A week of `stop` only, then a quarter of the answers cut at max_tokens (`length`, a series that did not exist
    # before): a distance of 0.25, above the 0.2 threshold only if the new reason's share counts (stop alone: 0.125).
    series = [
        (FINISHED.format("stop"), week_then(100, 75)),
        (FINISHED.format("length"), f"_x{WEEK} 0+25x100"),
    ]
    result = run(tmp_path, groups, [case(series, "ModelMetricDrift", "170h", [labels], "10m")], interval="5m")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(plans, tmp_path):
    groups = [g for g in groups_of(plans["staging"], "chat") if g["name"] == "chat.metric-drift"]
    result = run(tmp_path, groups, [case(prompt_series(90, 90, 100), "ModelMetricDrift", "170h", [{"model": "chat"}], "10m")], "5m")
    assert result.returncode != 0


FRAUD = 'namespace="fraud"'
DRIFT = 'job="model-drift", namespace="fraud", model="fraud", version="unversioned"'
FEEDBACK = 'job="model-feedback", namespace="fraud", model="fraud", version="unversioned"'
GROUP_LABELS = {"namespace": "fraud", "model": "fraud", "version": "unversioned"}
MODEL_LABELS = {"namespace": "fraud", "model": "fraud"}
# The version served before the last promotion: its group lingers in the Pushgateway until the new version's first run.
OLD_DRIFT = DRIFT.replace('version="unversioned"', 'version="3"')
OLD_FEEDBACK = FEEDBACK.replace('version="unversioned"', 'version="3"')
CRONJOB = 'kube_cronjob_created{namespace="fraud", cronjob="fraud-monitor"}'

# alert -> [(firing series, eval time, extra labels), ...], [(quiet series, eval time), ...]
CASES = {
    "ModelCaptureUploadFailing": (
        [([(f"capture_upload_errors_total{{{FRAUD}}}", "0+3x40"), (f"capture_uploaded_records_total{{{FRAUD}}}", "0x40")], "35m", {})],
        # errors now and then, and records still landing
        [([(f"capture_upload_errors_total{{{FRAUD}}}", "0+3x40"), (f"capture_uploaded_records_total{{{FRAUD}}}", "0+10x40")], "35m")],
    ),
    "ModelCaptureDropping": (
        [
            (
                [(f'capture_dropped_total{{{FRAUD}, reason="queue_full"}}', "0+20x70"), (f"capture_sampled_total{{{FRAUD}}}", "0+100x70")],
                "65m",
                {},
            )
        ],
        # too large payloads are the config's choice, not a failure
        [
            (
                [(f'capture_dropped_total{{{FRAUD}, reason="too_large"}}', "0+50x70"), (f"capture_sampled_total{{{FRAUD}}}", "0+100x70")],
                "65m",
            )
        ],
    ),
    "ModelDataDrift": (
        [([(f"model_drift_detected{{{DRIFT}}}", "1x5")], "2m", GROUP_LABELS)],
        [
            ([(f"model_drift_detected{{{DRIFT}}}", "0x5")], "2m"),
            # the version served before: its verdict is no longer about the model that runs
            ([(f"model_drift_detected{{{OLD_DRIFT}}}", "1x5")], "2m"),
        ],
    ),
    "ModelDriftTooFewSamples": (
        [([(f"model_drift_insufficient_samples{{{DRIFT}}}", "1x200")], "130m", GROUP_LABELS)],
        [([(f"model_drift_insufficient_samples{{{DRIFT}}}", "0x200")], "130m")],
    ),
    "ModelDriftJobStale": (
        [
            # its last success at time 0, four hours ago (three hourly runs missed)
            ([(f"model_drift_last_success_timestamp_seconds{{{DRIFT}}}", "0x300")], "4h", MODEL_LABELS),
            # never published, and its CronJob exists since time 0
            ([(CRONJOB, "0x300")], "4h", {**MODEL_LABELS, "job": "model-drift"}),
        ],
        [
            # succeeding every minute
            ([(f"model_drift_last_success_timestamp_seconds{{{DRIFT}}}", "0+60x300")], "4h"),
            # a CronJob made 40 minutes ago that has not run yet
            ([(CRONJOB, "12000x300")], "4h"),
            # just promoted: the old version succeeded a minute ago, the new one has not run yet
            ([(f"model_drift_last_success_timestamp_seconds{{{OLD_DRIFT}}}", "0+60x300"), (CRONJOB, "0x300")], "4h"),
        ],
    ),
    "ModelQualityBelowObjective": (
        [
            (
                [
                    (f'model_quality{{{FEEDBACK}, metric="accuracy"}}', "0.8x10"),
                    (f"model_feedback_insufficient_samples{{{FEEDBACK}}}", "0x10"),
                ],
                "5m",
                GROUP_LABELS,
            )
        ],
        [
            (
                [
                    (f'model_quality{{{FEEDBACK}, metric="accuracy"}}', "0.95x10"),
                    (f"model_feedback_insufficient_samples{{{FEEDBACK}}}", "0x10"),
                ],
                "5m",
            ),
            # the version served before the promotion
            (
                [
                    (f'model_quality{{{OLD_FEEDBACK}, metric="accuracy"}}', "0.5x10"),
                    (f"model_feedback_insufficient_samples{{{OLD_FEEDBACK}}}", "0x10"),
                ],
                "5m",
            ),
            # a bad figure from too few joined labels is no verdict
            (
                [
                    (f'model_quality{{{FEEDBACK}, metric="accuracy"}}', "0.5x10"),
                    (f"model_feedback_insufficient_samples{{{FEEDBACK}}}", "1x10"),
                ],
                "5m",
            ),
        ],
    ),
}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_capture_and_monitor_job_alerts_fire_and_stay_quiet(plans, stack, tmp_path):
    groups = [g for g in groups_of(plans[stack], "fraud") if g["name"] in ("fraud.capture", "fraud.drift")]
    declared = {r["alert"] for g in groups for r in g["rules"]}
    assert declared == set(CASES)
    tests = []
    for alert, (firing, quiet) in CASES.items():
        labels = {**labels_of(groups, alert), "alertname": alert}
        tests += [case(series, alert, at, [{**labels, **extra}]) for series, at, extra in firing]
        tests += [case(series, alert, at, []) for series, at in quiet]
    result = run(tmp_path, groups, tests)
    assert result.returncode == 0, result.stdout + result.stderr
