"""Model quality from feedback: captured predictions joined with labels that clients send later.

The predictions are those captured in the feedback window, (now - feedback.windowSeconds, now] (by default the
drift window), which can be days long so that late labels (fraud chargebacks) still find their prediction; the
labels are every label row under `labelsPrefix`. A captured record's join key is its `requestId` (the
`X-Request-Id` the proxy returned to the client) or the first match of a JSONPath in its request; its prediction is
the first match of `predictionPath` in its response. Label rows (`.jsonl`, `.jsonl.gz`, `.csv` under `labelsPrefix`)
hold the key under `requestId` or the JSONPath's last field name, and the label under `labelField`.

Keys compare as strings (`123`, `123.0` and `"123"` are one key), so a numeric id in a JSON request matches the same
id in a CSV file. Predictions and labels compare as numbers when both are numbers, otherwise as text (JSON for
non-strings: `true` matches the CSV cell `true`).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge

from .config import FeedbackConfig, parse_jsonpath
from .records import parse_time, put_bytes, read_table_rows, report_stamp

log = logging.getLogger(__name__)

JOB = "model-feedback"


def normalize_key(value) -> str | None:
    """A join key as a string; None for a missing key (None or "")."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return json.dumps(value, sort_keys=True)


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _same(prediction, label) -> bool:
    p, lab = _number(prediction), _number(label)
    if p is not None and lab is not None:
        return p == lab
    as_text = [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in (prediction, label)]
    return as_text[0] == as_text[1]


class PredictionCollector:
    """Collects (join key -> prediction) from captured records.

    When several records share a key (a client retrying with the same X-Request-Id), the latest by `time` is kept:
    its answer is the one the client acted on. Records without a key or a prediction are counted and skipped.
    """

    def __init__(self, join_key: str, prediction_path: str):
        self._key_expr = None if join_key == "requestId" else parse_jsonpath(join_key)
        self._prediction_expr = parse_jsonpath(prediction_path)
        self.predictions: dict[str, tuple[datetime, object]] = {}
        self.records = 0
        self.without_key = 0
        self.without_prediction = 0
        self.duplicates = 0

    def add(self, record: dict) -> None:
        self.records += 1
        if self._key_expr is None:
            key = normalize_key(record.get("requestId"))
        else:
            request = record.get("request")
            matches = self._key_expr.find(request) if request is not None else []
            key = normalize_key(matches[0].value) if matches else None
        if key is None:
            self.without_key += 1
            return
        response = record.get("response")
        matches = self._prediction_expr.find(response) if response is not None else []
        if not matches:
            self.without_prediction += 1
            return
        t = parse_time(record["time"])
        if key in self.predictions:
            self.duplicates += 1
            if self.predictions[key][0] > t:
                return
        self.predictions[key] = (t, matches[0].value)


@dataclass
class FeedbackResult:
    """One feedback check. `joined` counts captured predictions that found a usable label; `labels` the distinct
    label keys read. `value` (None when `insufficient`: joined < min_samples) is the metric: accuracy in 0..1,
    mae/rmse in the label's unit."""

    metric: str
    joined: int
    labels: int
    min_samples: int
    insufficient: bool
    value: float | None = None
    summary: dict = field(default_factory=dict)
    report_key: str | None = None


@dataclass
class LabelsRead:
    """What reading the label files found: `labels` maps key -> label; `objects` and `rows` count what was read,
    `skipped` the rows lacking the key or the label."""

    labels: dict[str, object] = field(default_factory=dict)
    objects: int = 0
    rows: int = 0
    skipped: int = 0


def load_labels(s3, bucket: str, prefix: str, key_field: str, label_field: str) -> LabelsRead:
    """Every label under `prefix` (the label files: `.jsonl`, `.jsonl.gz`, `.csv`).

    A later label for a key (newer object, or later row of the same object) replaces an earlier one: a correction.
    """
    # KNOWN GROWTH: every label object under labelsPrefix is listed and read on every run, whatever its age: the
    # prefix is not partitioned by time, and a label may grade a prediction from any day of feedback.windowSeconds.
    # The run's S3 reads and memory therefore grow with all the labels ever written (published as
    # model_feedback_labels, the distinct keys read) until something removes old label files (an S3 lifecycle rule
    # on labelsPrefix longer than feedback.windowSeconds: older labels can no longer join anyway).
    read = LabelsRead()
    seen_objects: set[str] = set()
    for key_name, row in read_table_rows(s3, bucket, prefix, string_fields=[key_field]):
        seen_objects.add(key_name)
        read.rows += 1
        key = normalize_key(row.get(key_field))
        if key is None or row.get(label_field) is None:
            read.skipped += 1
            continue
        read.labels[key] = row[label_field]
    read.objects = len(seen_objects)
    return read


def quality(metric: str, pairs: list[tuple[object, object]]) -> float:
    """accuracy (share of pairs whose prediction equals the label), mae or rmse over (prediction, label) pairs.

    For mae and rmse every pair must be numeric (see `numeric_pairs`). Raises ValueError for an empty list.
    """
    if not pairs:
        raise ValueError("no pairs")
    if metric == "accuracy":
        return sum(_same(p, lab) for p, lab in pairs) / len(pairs)
    errors = [float(p) - float(lab) for p, lab in pairs]
    if metric == "mae":
        return sum(abs(e) for e in errors) / len(errors)
    if metric == "rmse":
        return math.sqrt(sum(e * e for e in errors) / len(errors))
    raise ValueError(f"unknown metric {metric!r}")


def run_feedback(
    cfg: FeedbackConfig,
    s3,
    bucket: str,
    collector: PredictionCollector,
    min_samples: int,
    now: datetime,
    window: tuple[datetime, datetime],
    identity: dict[str, str],
) -> FeedbackResult:
    """Join the collected predictions with the labels, compute `cfg.metric` and write the summary JSON to
    `<reportPrefix><yyyy-mm-ddTHHMMSSZ>/report.json` (UTC `now`; written with too few samples too).

    For mae/rmse, pairs whose prediction or label is not a number are left out (counted in the summary as
    `unusablePairs`). Raises boto3/botocore errors (S3 access) and ValueError (a label file that is not JSON lines).
    """
    # Every label under labelsPrefix, each run (see load_labels: this read grows with all the labels ever written).
    read = load_labels(s3, bucket, cfg.labels_prefix, cfg.label_key_field, cfg.label_field)
    labels = read.labels
    pairs: list[tuple[object, object]] = []
    unusable = 0
    for key, (_, prediction) in collector.predictions.items():
        if key not in labels:
            continue
        label = labels[key]
        if cfg.metric != "accuracy":
            p, lab = _number(prediction), _number(label)
            if p is None or lab is None:
                unusable += 1
                continue
            prediction, label = p, lab
        pairs.append((prediction, label))
    result = FeedbackResult(
        metric=cfg.metric, joined=len(pairs), labels=len(labels), min_samples=min_samples, insufficient=len(pairs) < min_samples
    )
    if not result.insufficient:
        result.value = quality(cfg.metric, pairs)
    if unusable:
        log.warning("feedback: %d joined pairs had a non-numeric prediction or label and were left out of %s", unusable, cfg.metric)
    result.summary = {
        **identity,
        "window": {"start": window[0].isoformat(), "end": window[1].isoformat(), "seconds": cfg.window_seconds},
        "metric": cfg.metric,
        "value": result.value,
        "insufficientSamples": result.insufficient,
        "joinedSamples": result.joined,
        "minSamples": min_samples,
        "labels": result.labels,
        "capturedRecords": collector.records,
        "capturedPredictions": len(collector.predictions),
        "recordsWithoutKey": collector.without_key,
        "recordsWithoutPrediction": collector.without_prediction,
        "duplicateKeys": collector.duplicates,
        "unusablePairs": unusable,
        "labelObjectsRead": read.objects,
        "labelRowsRead": read.rows,
        "labelRowsSkipped": read.skipped,
        "joinKey": cfg.join_key,
        "labelKeyField": cfg.label_key_field,
        "labelField": cfg.label_field,
    }
    if cfg.metric == "accuracy" and pairs:
        by_label: dict[str, Counter] = {}
        for p, lab in pairs:
            counts = by_label.setdefault(lab if isinstance(lab, str) else json.dumps(lab), Counter())
            counts["samples"] += 1
            counts["correct"] += _same(p, lab)
        result.summary["byLabel"] = {k: dict(v) for k, v in sorted(by_label.items())}
    result.report_key = f"{cfg.report_prefix}{report_stamp(now)}/report.json"
    put_bytes(s3, bucket, result.report_key, json.dumps(result.summary, indent=2).encode(), "application/json")
    log.info(
        "feedback: %s=%s over %d joined samples (%d labels from %d rows in %d objects under s3://%s/%s, "
        "%d captured predictions in the last %ds); summary s3://%s/%s",
        cfg.metric,
        result.value,
        result.joined,
        result.labels,
        read.rows,
        read.objects,
        bucket,
        cfg.labels_prefix,
        len(collector.predictions),
        cfg.window_seconds,
        bucket,
        result.report_key,
    )
    return result


def feedback_registry(result: FeedbackResult, success_time: float) -> CollectorRegistry:
    """The metrics of a successful feedback check (contract names), `success_time` in unix seconds. With too few
    joined samples there is no `model_quality` series."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, registry=registry).set(value)

    if not result.insufficient:
        Gauge(
            "model_quality",
            "Model quality on joined feedback (accuracy 0..1; mae, rmse in the label's unit).",
            ["metric"],
            registry=registry,
        ).labels(metric=result.metric).set(result.value)
    gauge("model_feedback_joined_samples", "Predictions captured in the feedback window joined with a label.", result.joined)
    gauge("model_feedback_labels", "Distinct label keys under labelsPrefix.", result.labels)
    gauge("model_feedback_min_samples", "Joined samples needed to compute quality (minSamples).", result.min_samples)
    gauge("model_feedback_insufficient_samples", "1 when fewer than minSamples predictions were joined.", 1 if result.insufficient else 0)
    gauge("model_feedback_last_success_timestamp_seconds", "Unix time of the last successful feedback check.", success_time)
    return registry
