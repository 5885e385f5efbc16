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

import functools
from datetime import UTC, datetime
from itertools import pairwise
from typing import Annotated, Literal

from croniter import croniter
from jsonpath_ng import Child, Descendants, Fields, JSONPath, Root, This
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext import parse as parse_json_path
from jsonpath_ng.ext.filter import Filter
from pydantic import Field, field_validator, model_validator

from ml_platform.components.model_service import capture, monitor_job
from ml_platform.infra.config.base import _fail, _Model, check_cron, check_store_prefix

_DURATION = r"^[1-9][0-9]*(m|h|d|w)$"
_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
# Where capture proxies write (`capture/<model>/<version>/dt=<day>/hr=<hour>/`) and monitor jobs their reports
# (`drift/<model>/<version>/`): the components' own constants.
CAPTURE_PREFIX = capture.STORE_PREFIX
DRIFT_PREFIX = monitor_job.REPORT_PREFIX
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
P_VALUE_METHODS = (
    "anderson",
    "chisquare",
    "cramer_von_mises",
    "empirical_mmd",
    "es",
    "fisher_exact",
    "g_test",
    "ks",
    "mannw",
    "t_test",
    "TVD",
    "z",
)
"""Evidently 0.7.23's tests that judge a p-value (drift below the threshold; each module's `return p_value, p_value <
threshold`): a threshold of 1 or more would call every feature drifted."""
QUALITY_METRICS = {"accuracy": "higher", "mae": "lower", "rmse": "lower"}
"""Realised-quality metrics the feedback join computes, and which direction is better."""


MIN_PERIOD_SECONDS = 900


# Pure and a few thousand croniter steps: the config check and the monitor job's spec ask for the same schedule.
@functools.cache
def schedule_period_seconds(schedule: str) -> int:
    """The longest gap between two runs of a five-field cron schedule (UTC), seconds: the runs of eight years from
    a fixed date (croniter, a maintained parser), so a monthly or a leap-day schedule has gaps to measure. A schedule
    that fires once in that span or never (which check_cron refuses first) counts as that span."""
    start, horizon = datetime(2026, 1, 1, tzinfo=UTC), datetime(2034, 1, 1, tzinfo=UTC)
    runs = croniter(schedule, start)
    times = [start]
    while times[-1] < horizon and len(times) < 5000:
        times.append(runs.get_next(datetime))
    gaps = [(b - a).total_seconds() for a, b in pairwise(times[1:])]
    return int(max(gaps)) if gaps else int((horizon - start).total_seconds())


def _last_field(path: JSONPath) -> str | None:
    """The single field name `path` ends in (`$.meta.txnId` -> `txnId`), None when it ends in anything else (the
    job's jsonpath_last_field)."""
    last = path.right if isinstance(path, (Child, Descendants)) else path
    if isinstance(last, Fields) and len(last.fields) == 1 and last.fields[0] != "*":
        return last.fields[0]
    return None


def duration_seconds(value: str) -> int:
    """`30m`, `24h`, `7d`, `2w` (Prometheus's duration units the config takes) in seconds."""
    return int(value[:-1]) * _SECONDS[value[-1]]


def _json_path(value: str, what: str) -> JSONPath:
    # jsonpath-ng (maintained, the same library and version the proxy and the job run) parses it here, so a typo
    # fails the plan instead of crash-looping every replica of the model.
    try:
        path = parse_json_path(value)
    except JSONPathError as error:
        raise _fail(f"'{value}' is not a JSONPath expression ({what}), e.g. '$.messages[*].content': {error}") from None
    if not value.startswith("$"):
        raise _fail(f"'{value}' must start at the document's root '$' ({what}), e.g. '$.messages[*].content'")
    if computed := _computed_step(path):
        raise _fail(f"'{value}' uses {computed}, which computes a value rather than locating one ({what})")
    return path


def _computed_step(path: JSONPath) -> str | None:
    """The first jsonpath-ng ext operator in `path` that computes a value (`len`, `sorted`, `str()`, arithmetic),
    None if every step locates data; filter conditions may compute (they only select). The image's rule
    (images/model-monitoring redact.py), kept in step by tests/contract/test_model_monitoring_contract.py."""
    if isinstance(path, Filter):
        return None
    if type(path).__module__.startswith("jsonpath_ng.ext."):
        return type(path).__name__
    for value in vars(path).values():
        for child in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(child, JSONPath) and (found := _computed_step(child)):
                return found
    return None


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
            if isinstance(_json_path(path, "redact"), (Root, This)):
                raise _fail(f"'{path}' would remove the whole document; name the fields, e.g. '$.user'")
        return value


class DriftReference(_Model):
    s3Prefix: str
    """Prefix in the model store holding the reference data (`.jsonl`, `.jsonl.gz` or `.csv`, one row per record,
    a column per feature), usually a sample of the training data, ending in `/`."""

    @field_validator("s3Prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_store_prefix(value)


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
        # Kubernetes' CronJob controller parses it with robfig/cron v3's standard parser, as KEDA does.
        check_cron(value, "Kubernetes' CronJob parser", "the job would never run")
        if schedule_period_seconds(value) < MIN_PERIOD_SECONDS:
            raise _fail(
                f"'{value}' runs more often than every {MIN_PERIOD_SECONDS // 60} minutes: a run reads a whole window and takes minutes"
            )
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if duration_seconds(value) < 3600:
            raise _fail(f"'{value}' is shorter than 1h: captures are partitioned by hour")
        return value

    @model_validator(mode="after")
    def _threshold(self) -> Drift:
        if self.method in P_VALUE_METHODS and self.threshold is not None and self.threshold >= 1:
            raise _fail(
                f"{self.method} judges a p-value: a threshold of {self.threshold:g} calls every feature drifted; use one below 1, e.g. 0.05"
            )
        return self

    @field_validator("recordsPath")
    @classmethod
    def _records(cls, value: str) -> str:
        _json_path(value, "recordsPath")
        return value


class Feedback(_Model):
    labelsPrefix: str
    """Prefix in the model store where labels arrive (`.jsonl`, `.jsonl.gz` or `.csv` rows with the join key and
    `labelField`), ending in `/`."""
    joinKey: str = "requestId"
    """`requestId` (the proxy's X-Request-Id, returned to every client) or a JSONPath into the captured request
    (e.g. `$.metadata.transaction_id`); the labels' column is `requestId` or the path's last name."""
    predictionPath: str = "$.predictions[0]"
    """JSONPath of the prediction in the captured response."""
    window: Annotated[str, Field(pattern=_DURATION)] | None = None
    """How far back captured predictions are joined with the labels (labels arrive late: a chargeback after days);
    default: drift.window. At most capture.retentionDays."""
    labelField: Annotated[str, Field(min_length=1)] = "label"
    """Column of the labels holding the outcome."""
    metric: Literal["accuracy", "mae", "rmse"]
    """Realised quality: accuracy (prediction equals label), mean absolute or root mean squared error."""
    objective: float
    """Quality the model must keep: accuracy at least this, mae/rmse at most this (ModelQualityBelowObjective)."""

    @field_validator("labelsPrefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_store_prefix(value)

    @field_validator("joinKey")
    @classmethod
    def _join_key(cls, value: str) -> str:
        if value == "requestId":
            return value
        # The labels' column is the path's last name, so the path must end in a single one (as the job reads it).
        if _last_field(_json_path(value, "joinKey")) is None:
            raise _fail(f"'{value}' must end in a single field name (the labels' column), e.g. '$.metadata.transaction_id'")
        return value

    @field_validator("predictionPath")
    @classmethod
    def _prediction(cls, value: str) -> str:
        _json_path(value, "predictionPath")
        return value

    @model_validator(mode="after")
    def _objective(self) -> Feedback:
        if self.metric == "accuracy" and not 0 < self.objective <= 1:
            raise _fail("an accuracy objective is a share: 0 < objective <= 1")
        if self.metric != "accuracy" and self.objective <= 0:
            raise _fail(f"a {self.metric} objective is an error no larger than this: objective > 0")
        return self

    @model_validator(mode="after")
    def _columns(self) -> Feedback:
        if self.labelField == self.label_column:
            raise _fail(f"labelField '{self.labelField}' is also the join key's column: name the outcome's own column")
        return self

    @property
    def label_column(self) -> str:
        """The labels' column holding the join key's value: `requestId`, or the joinKey path's last field."""
        return self.joinKey if self.joinKey == "requestId" else str(_last_field(parse_json_path(self.joinKey)))
