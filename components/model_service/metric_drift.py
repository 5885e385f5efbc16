"""Metric drift of a vLLM model, from vLLM's own metrics: no payloads, no job.

Each hour is compared with the same hour `baseline` ago (Prometheus's `offset`):
- promptTokens, generationTokens: the Kolmogorov-Smirnov distance between the two hours' bucketed distributions
  of `vllm:request_prompt_tokens` / `vllm:request_generation_tokens` (histograms; vLLM docs/design/metrics.md):
  the largest gap between their cumulative shares at any bucket bound `le`. Cumulative buckets are exactly what a
  Prometheus histogram holds, so no bucket arithmetic is needed.
- finishReason: the total variation distance between the two hours' shares of each `finished_reason` of
  `vllm:request_success_total` (stop, length, abort, ...): half the sum of the shares' absolute differences; a
  reason seen in one hour only counts in full.
Scores run from 0 (the same distribution) to 1 (disjoint). Hours with fewer than `min_requests` finished requests,
on either side, are never judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ml_platform.components.alerts import alert

if TYPE_CHECKING:
    from ml_platform.components.model_service.spec import ModelSpec

SIGNALS = {"promptTokens": "vllm:request_prompt_tokens", "generationTokens": "vllm:request_generation_tokens", "finishReason": None}
SCORE = "model:vllm_metric_drift:score"
"""Recorded drift score per model and signal (labels model, signal, baseline)."""
REQUESTS = "model:vllm_metric_drift_requests:increase1h"
"""Recorded finished requests in the compared hours (labels model, window=current|baseline)."""
FOR = "1h"


@dataclass(frozen=True)
class MetricDriftSpec:
    """What a vLLM model's metric drift compares. Raises ValueError naming the field when a value is not allowed."""

    signals: tuple[str, ...]
    """Keys of SIGNALS: promptTokens, generationTokens, finishReason."""
    baseline: str
    """Prometheus duration of whole days (`7d`) back to the hour compared with; Prometheus must keep that long."""
    threshold: float = 0.2
    """Score (0-1) above which ModelMetricDrift fires after FOR."""
    min_requests: int = 100
    """Finished requests each compared hour needs to be judged."""

    def __post_init__(self) -> None:
        unknown = [s for s in self.signals if s not in SIGNALS]
        if not self.signals or unknown:
            raise ValueError(f"MetricDriftSpec.signals: {unknown or 'none'}; allowed: {', '.join(SIGNALS)}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"MetricDriftSpec.threshold {self.threshold}: a distance between 0 and 1")
        if self.min_requests < 1:
            raise ValueError(f"MetricDriftSpec.min_requests {self.min_requests}: at least 1")


def _window(expr: str, baseline: str | None) -> str:
    """`increase(<expr>[1h])`, shifted back by `baseline`."""
    return f"increase({expr}[1h]{f' offset {baseline}' if baseline else ''})"


def _cdf(metric: str, selector: str, baseline: str | None) -> str:
    """The hour's cumulative share of requests at each bucket bound (labels: le)."""
    return (
        f"sum by (le) ({_window(f'{metric}_bucket{{{selector}}}', baseline)})"
        f" / on() group_left() sum({_window(f'{metric}_count{{{selector}}}', baseline)})"
    )


def _shares(selector: str, baseline: str | None) -> str:
    """The hour's share of each finish reason (labels: finished_reason)."""
    counter = f"vllm:request_success_total{{{selector}}}"
    return f"(sum by (finished_reason) ({_window(counter, baseline)}) / on() group_left() sum({_window(counter, baseline)}))"


def score_expression(signal: str, selector: str, baseline: str) -> str:
    """PromQL of one signal's score (no labels), for series matching `selector`."""
    metric = SIGNALS[signal]
    if metric is not None:
        return f"max(abs({_cdf(metric, selector, None)} - {_cdf(metric, selector, baseline)}))"
    now, then = _shares(selector, None), _shares(selector, baseline)
    # `or`: a reason present in one hour only is a whole share of difference, not a missing series.
    return f"0.5 * sum(abs({now} - {then}) or {now} or {then})"


def rule_group(spec: ModelSpec) -> dict:
    """The model's metric-drift group: recording rules (SCORE per signal, REQUESTS per window) and the alert."""
    drift = spec.metric_drift
    assert drift is not None
    requests = f"sum({_window(f'vllm:request_success_total{{{spec.selector}}}', None)})"
    rules: list[dict] = [
        {"record": REQUESTS, "expr": requests, "labels": {"model": spec.name, "window": "current"}},
        {
            "record": REQUESTS,
            "expr": f"sum({_window(f'vllm:request_success_total{{{spec.selector}}}', drift.baseline)})",
            "labels": {"model": spec.name, "window": "baseline"},
        },
    ]
    rules += [
        {
            "record": SCORE,
            "expr": score_expression(signal, spec.selector, drift.baseline),
            "labels": {"model": spec.name, "signal": signal, "baseline": drift.baseline},
        }
        for signal in drift.signals
    ]
    judged = " ".join(
        f'and on(model) {REQUESTS}{{model="{spec.name}", window="{window}"}} >= {drift.min_requests}' for window in ("current", "baseline")
    )
    rules.append(
        alert(
            "ModelMetricDrift",
            f'{SCORE}{{model="{spec.name}"}} > {drift.threshold:g} {judged}',
            FOR,
            "warning",
            f"{spec.name}'s {{{{ $labels.signal }}}} moved {{{{ $value | humanize }}}} from the same hour {drift.baseline} ago",
            "Compare the two hours on the model's dashboard (Drift row): a new client, prompt template or max_tokens "
            "default changes lengths; more `length` finishes mean truncated answers. Retrain or re-tune if it persists.",
            model=spec.name,
            namespace=spec.namespace,
        )
    )
    return {"name": f"{spec.name}.metric-drift", "rules": rules}
