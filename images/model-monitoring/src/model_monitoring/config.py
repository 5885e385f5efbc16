"""The monitor job's configuration: the JSON document the platform renders into the CronJob's ConfigMap, checked
field by field so that a mistake is reported as `<field path>: <what is wrong>; <what is allowed>` (the job exits 2).

Shape (see the monitoring contract; `drift` and `feedback` are each optional, at least one is present):

    {"model", "namespace", "version", "bucket", "region": non-empty strings,
     "capturePrefix": key prefix ending in "/",
     "windowSeconds": int > 0, "minSamples": int >= 1,
     "pushgateway": "http(s)://host[:port]",
     "drift": {"referencePrefix", "reportPrefix": prefixes ending in "/", "method": an Evidently stattest name,
               "threshold" (optional): number > 0, "driftShare": number in (0, 1], "recordsPath": JSONPath},
     "feedback": {"labelsPrefix", "reportPrefix": prefixes ending in "/", "joinKey": "requestId" or a JSONPath
                  ending in a field name, "predictionPath": JSONPath, "labelField": non-empty string other than the
                  label rows' key field (the one `joinKey` names), "metric": "accuracy" | "mae" | "rmse",
                  "windowSeconds" (optional): int >= 3600, default the top-level windowSeconds}}

`windowSeconds` is the drift window; `feedback.windowSeconds` is how far back captured predictions are kept for the
label join, so that labels arriving days later (chargebacks) still find their prediction. The job reads the captures
of the longer of the two once and gives each check the records inside its own window.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

# The stattest names Evidently 0.7.23 registers (evidently/legacy/calculations/stattests/registry.py,
# `_registered_stat_tests`), with the feature types each accepts. Kept here rather than read from Evidently so that
# validating a config does not pay Evidently's multi-second import; tests/test_drift.py compares this table with the
# installed Evidently's registry, so an Evidently upgrade that changes it fails the tests instead of the CronJob.
# Names are case-sensitive in Evidently ("TVD" is upper case).
STATTESTS: dict[str, frozenset[str]] = {
    "anderson": frozenset({"num"}),
    "chisquare": frozenset({"cat"}),
    "cramer_von_mises": frozenset({"num"}),
    "ed": frozenset({"num"}),
    "es": frozenset({"num"}),
    "fisher_exact": frozenset({"cat"}),
    "g_test": frozenset({"cat"}),
    "hellinger": frozenset({"cat", "num"}),
    "jensenshannon": frozenset({"cat", "num"}),
    "kl_div": frozenset({"cat", "num"}),
    "ks": frozenset({"num"}),
    "mannw": frozenset({"num"}),
    "empirical_mmd": frozenset({"num"}),
    "psi": frozenset({"cat", "num"}),
    "t_test": frozenset({"num"}),
    "perc_text_content_drift": frozenset({"text"}),
    "abs_text_content_drift": frozenset({"text"}),
    "TVD": frozenset({"cat"}),
    "wasserstein": frozenset({"num"}),
    "z": frozenset({"cat"}),
}
# Features are numerical or categorical (see drift.feature_types): a text-only stattest could never apply.
DRIFT_METHODS = tuple(name for name, types in STATTESTS.items() if types & {"num", "cat"})
QUALITY_METRICS = ("accuracy", "mae", "rmse")


class ConfigError(ValueError):
    """A configuration mistake; `field` is the dotted path of the offending field ("" for the whole document)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True)
class DriftConfig:
    reference_prefix: str
    method: str
    threshold: float | None
    """None: Evidently's default for the method (DataDriftPreset's own)."""
    drift_share: float
    records_path: str
    report_prefix: str


@dataclass(frozen=True)
class FeedbackConfig:
    labels_prefix: str
    join_key: str
    prediction_path: str
    label_field: str
    metric: str
    report_prefix: str
    window_seconds: int
    """Predictions captured in (now - window_seconds, now] are joined with the labels (the top-level windowSeconds
    when the config leaves feedback.windowSeconds out)."""

    @property
    def label_key_field(self) -> str:
        """The field of a label row that holds the join key's value: `requestId`, or a JSONPath's last segment."""
        return self.join_key if self.join_key == "requestId" else jsonpath_last_field(self.join_key)


@dataclass(frozen=True)
class MonitorConfig:
    model: str
    namespace: str
    version: str
    bucket: str
    region: str
    capture_prefix: str
    window_seconds: int
    """The drift window (and the feedback window unless feedback.windowSeconds is set)."""
    min_samples: int
    """The minimum for both checks: feature records for drift, joined predictions for feedback."""
    pushgateway: str
    drift: DriftConfig | None
    feedback: FeedbackConfig | None


_TOP = {
    "model",
    "namespace",
    "version",
    "bucket",
    "region",
    "capturePrefix",
    "windowSeconds",
    "minSamples",
    "pushgateway",
    "drift",
    "feedback",
}
_DRIFT = {"referencePrefix", "method", "threshold", "driftShare", "recordsPath", "reportPrefix"}
_FEEDBACK = {"labelsPrefix", "joinKey", "predictionPath", "labelField", "metric", "reportPrefix", "windowSeconds"}
# A feedback window shorter than an hour could not wait for any label that is not written at once.
FEEDBACK_MIN_WINDOW_SECONDS = 3600


def load_config(path: str) -> MonitorConfig:
    """Read and validate the config file at `path` (UTF-8 JSON).

    Raises ConfigError (naming the field and what is allowed) for an unreadable file, invalid JSON, a missing,
    unknown or ill-typed field, or a value outside its allowed set.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("", f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError("", f"config file {path} is not valid JSON: {e}") from None
    return parse_config(doc)


def parse_config(doc: Any) -> MonitorConfig:
    """Validate a decoded config document and return it typed. Raises ConfigError (see load_config)."""
    _object(doc, "", _TOP)
    window_seconds = _integer(doc, "windowSeconds", minimum=1)
    drift = _parse_drift(doc["drift"]) if "drift" in doc else None
    feedback = _parse_feedback(doc["feedback"], window_seconds) if "feedback" in doc else None
    if drift is None and feedback is None:
        raise ConfigError("", "at least one of `drift` and `feedback` must be present")
    return MonitorConfig(
        model=_string(doc, "model"),
        namespace=_string(doc, "namespace"),
        version=_string(doc, "version"),
        bucket=_string(doc, "bucket"),
        region=_string(doc, "region"),
        capture_prefix=_prefix(doc, "capturePrefix"),
        window_seconds=window_seconds,
        min_samples=_integer(doc, "minSamples", minimum=1),
        pushgateway=_url(doc, "pushgateway"),
        drift=drift,
        feedback=feedback,
    )


def _parse_drift(d: Any) -> DriftConfig:
    _object(d, "drift", _DRIFT)
    method = d.get("method")
    if method not in DRIFT_METHODS:
        raise ConfigError(
            "drift.method",
            f"{json.dumps(method)} is not a stattest Evidently 0.7.23 accepts for "
            f"numerical or categorical features; allowed: {', '.join(DRIFT_METHODS)}",
        )
    share = _number(d, "driftShare", "drift")
    if not 0 < share <= 1:
        raise ConfigError("drift.driftShare", f"{share} is out of range; allowed: 0 < driftShare <= 1")
    # Optional: without one, Evidently takes its default for the method.
    threshold = _number(d, "threshold", "drift") if "threshold" in d else None
    if threshold is not None and threshold <= 0:
        raise ConfigError(
            "drift.threshold",
            f"{threshold} is out of range; allowed: a number > 0 "
            "(a p-value for ks, chisquare, z, ...; a distance for psi, wasserstein, ...)",
        )
    return DriftConfig(
        reference_prefix=_prefix(d, "referencePrefix", "drift"),
        method=method,
        threshold=threshold,
        drift_share=share,
        records_path=_jsonpath(d, "recordsPath", "drift"),
        report_prefix=_prefix(d, "reportPrefix", "drift"),
    )


def _parse_feedback(d: Any, default_window_seconds: int) -> FeedbackConfig:
    _object(d, "feedback", _FEEDBACK)
    join_key = _string(d, "joinKey", "feedback")
    if join_key != "requestId":
        if not join_key.startswith("$"):
            raise ConfigError(
                "feedback.joinKey",
                f'{json.dumps(join_key)}: allowed: "requestId" or a JSONPath into the captured request starting with "$"',
            )
        _jsonpath(d, "joinKey", "feedback")
        try:
            jsonpath_last_field(join_key)
        except ValueError as e:
            raise ConfigError("feedback.joinKey", str(e)) from None
    metric = d.get("metric")
    if metric not in QUALITY_METRICS:
        raise ConfigError("feedback.metric", f"{json.dumps(metric)}: allowed: {', '.join(QUALITY_METRICS)}")
    window_seconds = (
        _integer(d, "windowSeconds", "feedback", minimum=FEEDBACK_MIN_WINDOW_SECONDS) if "windowSeconds" in d else default_window_seconds
    )
    cfg = FeedbackConfig(
        labels_prefix=_prefix(d, "labelsPrefix", "feedback"),
        join_key=join_key,
        prediction_path=_jsonpath(d, "predictionPath", "feedback"),
        label_field=_string(d, "labelField", "feedback"),
        metric=metric,
        report_prefix=_prefix(d, "reportPrefix", "feedback"),
        window_seconds=window_seconds,
    )
    # A label row holds the key and the label in two fields: one field cannot be both (every label would be its own key).
    if cfg.label_field == cfg.label_key_field:
        raise ConfigError(
            "feedback.labelField",
            f"{json.dumps(cfg.label_field)} is the label rows' join column (the field joinKey {json.dumps(join_key)} names); "
            f"allowed: any other field name",
        )
    return cfg


def jsonpath_last_field(expression: str) -> str:
    """The field name a JSONPath ends in (`$.meta.txnId` -> `txnId`); ValueError when it ends in anything else."""
    from jsonpath_ng import Child, Descendants, Fields

    node = parse_jsonpath(expression)
    last = node.right if isinstance(node, (Child, Descendants)) else node
    if isinstance(last, Fields) and len(last.fields) == 1 and last.fields[0] != "*":
        return last.fields[0]
    raise ValueError(
        f"{json.dumps(expression)} does not end in a single field name (e.g. $.meta.txnId), so the label rows' key field cannot be named"
    )


def parse_jsonpath(expression: str):
    """Parse with jsonpath-ng's extended grammar (filters such as `[?(@.kind == "a")]`); raises its parse errors."""
    from jsonpath_ng.ext import parse

    return parse(expression)


def _where(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _object(value: Any, where: str, allowed: set[str]) -> None:
    if not isinstance(value, dict):
        raise ConfigError(where, f"must be a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(_where(where, unknown[0]), f"unknown field; allowed here: {', '.join(sorted(allowed))}")


def _get(d: dict, name: str, parent: str) -> Any:
    if name not in d:
        raise ConfigError(_where(parent, name), "required field is missing")
    return d[name]


def _string(d: dict, name: str, parent: str = "") -> str:
    value = _get(d, name, parent)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(_where(parent, name), f"must be a non-empty string, got {json.dumps(value)}")
    return value


def _prefix(d: dict, name: str, parent: str = "") -> str:
    value = _string(d, name, parent)
    # Without the slash `capture/fraud/3` would also list `capture/fraud/30/`.
    if not value.endswith("/") or value.startswith("/"):
        raise ConfigError(
            _where(parent, name), f'{json.dumps(value)}: allowed: an S3 key prefix that ends in "/" and does not start with one'
        )
    return value


def _integer(d: dict, name: str, parent: str = "", minimum: int = 0) -> int:
    value = _get(d, name, parent)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(_where(parent, name), f"{json.dumps(value)}: allowed: an integer >= {minimum}")
    return value


def _number(d: dict, name: str, parent: str = "") -> float:
    value = _get(d, name, parent)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(_where(parent, name), f"{json.dumps(value)}: allowed: a number")
    return float(value)


def _url(d: dict, name: str, parent: str = "") -> str:
    value = _string(d, name, parent)
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(_where(parent, name), f"{json.dumps(value)}: allowed: an http:// or https:// URL")
    return value.rstrip("/")


def _jsonpath(d: dict, name: str, parent: str = "") -> str:
    value = _string(d, name, parent)
    try:
        parse_jsonpath(value)
    except Exception as e:  # jsonpath-ng raises several unrelated exception types for bad input
        raise ConfigError(_where(parent, name), f"{json.dumps(value)} is not a valid JSONPath: {e}") from None
    return value
