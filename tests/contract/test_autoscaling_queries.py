"""What every KEDA ScaledObject of the plans reads, evaluated by promtool on series shaped as Prometheus scrapes
them: the model's load while it reports it, an empty result (KEDA: an error, so the fallback holds the
replicas) when the series vanish while replicas run, and 0 only when the Deployment has no replica at all.
An empty result read as zero load would drive a model to its minimum during a scrape outage (kedacore/keda
#3064)."""

from __future__ import annotations

import pytest

from tests.contract.test_alert_rules import run_unit_test

# runtime -> series the runtime exports while it serves (labels added by the scrape: namespace, service, pod),
# and the load value the query must return for them at the evaluation time
LOAD_SERIES = {
    "vllm": (
        [('vllm:num_requests_waiting{{{labels}, pod="a"}}', "3x30"), ('vllm:num_requests_waiting{{{labels}, pod="b"}}', "4x30")],
        7,
    ),
    # 60 requests a minute, each queued 0.5 s: 500 ms average queue time
    "triton": (
        [
            ('nv_inference_queue_duration_us{{{labels}, pod="a"}}', "0+30000000x30"),
            ('nv_inference_request_success{{{labels}, pod="a"}}', "0+60x30"),
        ],
        500,
    ),
}


def scaled_objects(plans):
    for stack, plan in sorted(plans.items()):
        for resource in plan.by_type("kubernetes:keda.sh/v1alpha1:ScaledObject"):
            yield stack, resource["inputs"]


def expression_tests(scaled: dict) -> list[dict]:
    namespace, name = scaled["metadata"]["namespace"], scaled["metadata"]["name"]
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    query = trigger["metadata"]["query"]
    replicas = f'kube_deployment_spec_replicas{{namespace="{namespace}", deployment="{name}"}}'
    labels = f'namespace="{namespace}", service="{name}"'
    runtime = "vllm" if "vllm:" in query else "triton"
    series, value = LOAD_SERIES[runtime]
    serving = [{"series": s.format(labels=labels), "values": v} for s, v in series]

    def case(input_series, samples):
        return {
            "interval": "1m",
            "input_series": input_series,
            "promql_expr_test": [{"expr": query, "eval_time": "20m", "exp_samples": samples}],
        }

    return [
        # serving: the runtime's load
        case([*serving, {"series": replicas, "values": "2x30"}], [{"labels": "{}", "value": value}]),
        # replicas run but their series are gone: empty, never 0
        case([{"series": replicas, "values": "2x30"}], []),
        # Prometheus has nothing at all (it restarted, kube-state-metrics too): empty
        case([], []),
        # no replica: nothing can report load, and that is the truth
        case([{"series": replicas, "values": "0x30"}], [{"labels": f"{replicas}", "value": 0}]),
    ]


def test_every_scaled_object_treats_missing_series_as_an_error_not_zero(plans, tmp_path):
    tests = []
    for stack, scaled in scaled_objects(plans):
        (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
        assert trigger["metadata"]["ignoreNullValues"] == "false", (stack, scaled["metadata"]["name"])
        tests += expression_tests(scaled)
    assert len(tests) >= 4 * 4, "expected the GPU models of dev, staging and prod"
    result = run_unit_test(tmp_path, [], tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_models_with_a_minimum_hold_their_replicas_when_the_metric_fails(plans):
    for stack, scaled in scaled_objects(plans):
        spec = scaled["spec"]
        if spec["minReplicaCount"] == 0:
            # A trigger in fallback counts as active: a fallback would wake a scale-to-zero model at night.
            assert "fallback" not in spec, (stack, scaled["metadata"]["name"])
        else:
            assert spec["fallback"] == {"failureThreshold": 3, "replicas": spec["minReplicaCount"], "behavior": "currentReplicasIfHigher"}


@pytest.mark.parametrize("broken", ["ignore_nulls", "no_at_rest_branch"])
def test_the_query_check_fails_on_the_old_behaviour(plans, tmp_path, broken):
    """KEDA's default (ignoreNullValues "true") turns an empty result into 0; so does a query that is 0 when
    series are missing. The promtool expectations must reject such a query."""
    _, scaled = next(scaled_objects(plans))
    trigger = next(t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")
    query = trigger["metadata"]["query"]
    load = query.split(" or on() ")[0]
    bad = f"{load} or on() vector(0)" if broken == "ignore_nulls" else load
    broken_trigger = {**trigger, "metadata": {**trigger["metadata"], "query": bad}}
    tests = expression_tests({**scaled, "spec": {**scaled["spec"], "triggers": [broken_trigger]}})
    assert run_unit_test(tmp_path, [], tests).returncode != 0
