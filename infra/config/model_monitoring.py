"""`models.<name>.metricDrift`, `capture`, `drift` and `feedback`: whether a model is still right, not only up.

- metricDrift (vLLM): Prometheus compares the last hour of the model's prompt- and generation-token histograms and
  finish reasons with the same hour `baseline` ago (components/model_service/metric_drift.py); no payloads.
- capture: a proxy in the model's pod samples request/response pairs into the model store
  (`capture/<model>/<version>/`, images/model-monitoring).
- drift: a CronJob compares the captured window's inputs with reference data (Evidently) and publishes the result
  through the Pushgateway.
- feedback: the same job joins captured predictions with labels that arrive later and publishes realised quality.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from croniter import croniter
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext import parse as parse_json_path
from pydantic import Field, field_validator, model_validator

from ml_platform.infra.config.base import _fail, _Model

_DURATION = r"^[1-9][0-9]*(m|h|d|w)$"
_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_PREFIX = r"^[A-Za-z0-9!_.*'()/-]+/$"
CAPTURE_PREFIX = "capture/"
"""Where capture proxies write (`capture/<model>/<version>/dt=<day>/hr=<hour>/`)."""
DRIFT_PREFIX = "drift/"
"""Where the monitor job writes its reports (`drift/<model>/<version>/` and `drift/<model>/<version>/feedback/`)."""
METRIC_DRIFT_SIGNALS = ("promptTokens", "generationTokens", "finishReason")
# Evidently 0.7.23's stattests (evidently/legacy/calculations/stattests/*.py `name=`). Tests on p-values find drift
# below the threshold, distances above it; the job reads the direction from Evidently, the alerts read its verdict.
DRIFT_METHODS = (
    "anderson",
    "chisquare",
    "cramer_von_mises",
    "ed",
    "empirical_mmd",
    "es",
    "fisher_exact",
    "g_test",
    "hellinger",
    "jensenshannon",
    "kl_div",
    "ks",
    "mannw",
    "psi",
    "t_test",
    "TVD",
    "wasserstein",
    "z",
)
QUALITY_METRICS = {"accuracy": "higher", "mae": "lower", "rmse": "lower"}
"""Realised-quality metrics the feedback join computes, and which direction is better."""


def duration_seconds(value: str) -> int:
    """`30m`, `24h`, `7d`, `2w` (Prometheus's duration units the config takes) in seconds."""
    return int(value[:-1]) * _SECONDS[value[-1]]


def _json_path(value: str, what: str) -> str:
    # jsonpath-ng (maintained, the same library and version the proxy and the job run) parses it here, so a typo
    # fails the plan instead of crash-looping every replica of the model.
    try:
        parse_json_path(value)
    except JSONPathError as error:
        raise _fail(f"'{value}' is not a JSONPath expression ({what}), e.g. '$.messages[*].content': {error}") from None
    if not value.startswith("$"):
        raise _fail(f"'{value}' must start at the document's root '$' ({what}), e.g. '$.messages[*].content'")
    return value


class MetricDrift(_Model):
    signals: Annotated[list[Literal["promptTokens", "generationTokens", "finishReason"]], Field(min_length=1)] = list(METRIC_DRIFT_SIGNALS)
    """Distributions compared: vLLM's `vllm:request_prompt_tokens` and `vllm:request_generation_tokens` histograms
    (Kolmogorov-Smirnov distance between the bucketed distributions) and the shares of `vllm:request_success_total`'s
    finish reasons (total variation distance). Each score is 0 (same) to 1 (disjoint)."""
    baseline: Annotated[str, Field(pattern=_DURATION)] = "7d"
    """How far back the hour compared with lies, in whole days (`7d`: the same hour of the same weekday). It and the
    hour before it must lie within Prometheus's retention (`monitoring.retention`)."""
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """Score above which ModelMetricDrift fires (after an hour)."""
    minRequests: Annotated[int, Field(ge=1)] = 100
    """Requests each hour must hold for its distribution to be judged; thinner hours never alert."""

    @field_validator("signals")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise _fail("each signal once")
        return value

    @field_validator("baseline")
    @classmethod
    def _whole_days(cls, value: str) -> str:
        if duration_seconds(value) % 86400:
            raise _fail(f"'{value}' is not whole days: the same hour of another day is compared (traffic follows the clock), e.g. 1d or 7d")
        return value


class Capture(_Model):
    sampleRate: Annotated[float, Field(gt=0, le=1)]
    """Share of POST requests whose request/response pair is written (0 < rate <= 1)."""
    maxPayloadBytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 1024 * 1024
    """Largest request or response body captured; larger pairs are proxied whole and counted as dropped."""
    retentionDays: Annotated[int, Field(ge=1, le=3650)] = 30
    """Days captured objects are kept (noncurrent versions a day longer): a lifecycle rule on `capture/<model>/`."""
    redact: list[str] = []
    """JSONPath expressions (jsonpath-ng) removed from every captured request and response (and from each event of a
    streamed response) before anything is written, e.g. `$.messages[*].content`, `$.user`."""

    @field_validator("redact")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            _json_path(path, "redact")
            if path.strip() == "$":
                raise _fail("'$' would remove the whole document; name the fields, e.g. '$.user'")
        return value


class DriftReference(_Model):
    s3Prefix: Annotated[str, Field(pattern=_PREFIX)]
    """Prefix in the model store holding the reference data (`.jsonl`, `.jsonl.gz` or `.csv`, one row per record,
    a column per feature), usually a sample of the training data, ending in `/`."""


class Drift(_Model):
    schedule: str = "0 * * * *"
    """Cron expression (minute hour day-of-month month day-of-week, UTC) of the CronJob; a run never overlaps the last."""
    window: Annotated[str, Field(pattern=_DURATION)] = "24h"
    """Captured records of this long before each run are compared (at least 1h, at most capture.retentionDays)."""
    minSamples: Annotated[int, Field(ge=1)] = 200
    """Fewer captured records than this is "too few samples" (its own state and alert), not "no drift"."""
    reference: DriftReference
    method: Literal[DRIFT_METHODS] = "psi"  # type: ignore[valid-type]
    """Evidently's statistical test per feature. psi, jensenshannon, kl_div and hellinger take numerical and
    categorical features; ks, wasserstein, anderson, cramer_von_mises, ed, es, mannw, t_test, empirical_mmd numerical
    only; chisquare, z, fisher_exact, g_test, TVD categorical only."""
    threshold: Annotated[float, Field(gt=0)] | None = None
    """The test's threshold (a p-value or a distance); default: Evidently's for the method."""
    driftShare: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Share of drifted features at which the data counts as drifted (ModelDataDrift)."""
    recordsPath: str = "$.instances[*]"
    """JSONPath selecting the feature records in each captured request (each a flat object of features);
    `$` when the request body is itself one record."""

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        # croniter (maintained) parses it; Kubernetes' CronJob takes five standard fields.
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise _fail(f"'{value}' is not a five-field cron expression (minute hour day-of-month month day-of-week), e.g. '0 * * * *'")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if duration_seconds(value) < 3600:
            raise _fail(f"'{value}' is shorter than 1h: captures are partitioned by hour")
        return value

    @field_validator("recordsPath")
    @classmethod
    def _records(cls, value: str) -> str:
        return _json_path(value, "recordsPath")


class Feedback(_Model):
    labelsPrefix: Annotated[str, Field(pattern=_PREFIX)]
    """Prefix in the model store where labels arrive (`.jsonl`, `.jsonl.gz` or `.csv` rows with the join key and
    `labelField`), ending in `/`."""
    joinKey: str = "requestId"
    """`requestId` (the proxy's X-Request-Id, returned to every client) or a JSONPath into the captured request
    (e.g. `$.metadata.transaction_id`); the labels' column is `requestId` or the path's last name."""
    predictionPath: str = "$.predictions[0]"
    """JSONPath of the prediction in the captured response."""
    labelField: Annotated[str, Field(min_length=1)] = "label"
    """Column of the labels holding the outcome."""
    metric: Literal["accuracy", "mae", "rmse"]
    """Realised quality: accuracy (prediction equals label), mean absolute or root mean squared error."""
    objective: float
    """Quality the model must keep: accuracy at least this, mae/rmse at most this (ModelQualityBelowObjective)."""

    @field_validator("joinKey")
    @classmethod
    def _join_key(cls, value: str) -> str:
        if value == "requestId":
            return value
        _json_path(value, "joinKey")
        # The labels' column is the path's last name, so the path must end in one (the job refuses `$.ids[0]`).
        if not re.search(r"[A-Za-z_][\w-]*['\"]?\]?$", value) or re.search(r"\[[0-9*:]+\]$", value):
            raise _fail(f"'{value}' must end in a field name (the labels' column), e.g. '$.metadata.transaction_id'")
        return value

    @field_validator("predictionPath")
    @classmethod
    def _prediction(cls, value: str) -> str:
        return _json_path(value, "predictionPath")

    @model_validator(mode="after")
    def _objective(self) -> Feedback:
        if self.metric == "accuracy" and not 0 < self.objective <= 1:
            raise _fail("an accuracy objective is a share: 0 < objective <= 1")
        if self.metric != "accuracy" and self.objective <= 0:
            raise _fail(f"a {self.metric} objective is an error no larger than this: objective > 0")
        return self

    @property
    def label_column(self) -> str:
        """The labels' column holding the join key's value."""
        return "requestId" if self.joinKey == "requestId" else re.split(r"[.\[\]'\"]+", self.joinKey.strip(".[]'\""))[-1]
