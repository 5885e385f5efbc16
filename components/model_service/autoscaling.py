"""How the model scales: KEDA on the runtime's load in Prometheus for GPU models (an empty result an error,
never zero load), an HPA on CPU for CPU models, and a disruption budget."""

from __future__ import annotations

from ml_platform.components.model_service.spec import ModelSpec, meta


def load_expression(spec: ModelSpec) -> tuple[str, str]:
    """(PromQL, KEDA metric type) of the model's load as its runtime reports it: waiting requests per replica
    for vLLM, average queue time in ms for Triton (a value, not a sum over replicas), the configured query
    for custom models. Empty when the series are missing."""
    selector = spec.selector
    if spec.runtime == "vllm":
        return f"sum(vllm:num_requests_waiting{{{selector}}})", "AverageValue"
    if spec.runtime == "triton":
        return (
            f"sum(rate(nv_inference_queue_duration_us{{{selector}}}[2m])) / 1000"
            # 1e-3, not 1: clamping to one request a second would understate queue time under light traffic.
            f" / clamp_min(sum(rate(nv_inference_request_success{{{selector}}}[2m])), 1e-3)",
            "Value",
        )
    return f"({spec.scale_query})", "AverageValue"


def load_query(spec: ModelSpec) -> tuple[str, str]:
    """(PromQL, KEDA metric type) the autoscaler reads: the load expression, or 0 when the Deployment has no
    replica at all, the one case where no series is the truth (a scale-to-zero model at rest).

    Whenever the model has replicas but its series are missing (a Prometheus restart, a scrape outage, a
    relabelling change) the result is empty, which the trigger treats as an error, never as "no load" that
    would drive the model to its minimum (kedacore/keda #3064)."""
    load, metric_type = load_expression(spec)
    at_rest = f'kube_deployment_spec_replicas{{namespace="{spec.namespace}", deployment="{spec.name}"}} == 0'
    return f"{load} or on() ({at_rest})", metric_type


# A prometheus trigger failing this many polls in a row hands over to the fallback (KEDA counts strictly more
# than failureThreshold, pkg/fallback/fallback.go at v2.20.2): about a minute at the 15 s polling interval.
FALLBACK_FAILURES = 3


def fallback(spec: ModelSpec) -> dict | None:
    """What KEDA does once the load query keeps failing (empty or unreachable): hold the current replicas,
    never fewer than the minimum (`currentReplicasIfHigher` with `replicas: min`). Without it the HPA already
    refuses to scale down on an invalid metric; the fallback makes the state explicit (the ScaledObject's
    `Fallback` condition, `kubectl get scaledobject`'s FALLBACK column) and lets KEDA keep a Value-type
    trigger's HPA at a defined size.

    None for models that scale to zero: a trigger in fallback counts as active, so a Prometheus outage at
    night would wake the model outside its active hours (pkg/scaling/executor/scale_scaledobjects.go at
    v2.20.2). Without a fallback KEDA keeps the current replicas on a failing trigger, and the cron trigger
    keeps working on its own (fallback is per metric)."""
    if spec.min_replicas == 0:
        return None
    return {"failureThreshold": FALLBACK_FAILURES, "replicas": spec.min_replicas, "behavior": "currentReplicasIfHigher"}


def scaled_object(spec: ModelSpec) -> dict:
    query, metric_type = load_query(spec)
    triggers: list[dict] = [
        {
            "type": "prometheus",
            "metricType": metric_type,
            # An empty result is an error, not zero load (KEDA's default is "true"); see load_query.
            "metadata": {
                "serverAddress": spec.prometheus_url,
                "query": query,
                "threshold": f"{spec.target:g}",
                "ignoreNullValues": "false",
            },
        }
    ]
    if spec.active_hours is not None:
        triggers.append(
            {
                "type": "cron",
                "metadata": {
                    "timezone": spec.active_hours["timezone"],
                    "start": spec.active_hours["start"],
                    "end": spec.active_hours["end"],
                    "desiredReplicas": "1",
                },
            }
        )
    on_failure = fallback(spec)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(spec),
        "spec": {
            "scaleTargetRef": {"name": spec.name},
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                # Scale up at once; scale down slowly: a replica takes minutes to load its weights again.
                "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}
            },
            "triggers": triggers,
            **({"fallback": on_failure} if on_failure else {}),
        },
    }


def cpu_autoscaler(spec: ModelSpec) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            # The server container's CPU, not the pod's: a sidecar (the capture proxy, the compile cache's save)
            # would otherwise dilute or inflate the utilisation the target is about (ContainerResource, GA in 1.30).
            "metrics": [
                {
                    "type": "ContainerResource",
                    "containerResource": {
                        "name": "cpu",
                        "container": "server",
                        "target": {"type": "Utilization", "averageUtilization": int(spec.target)},
                    },
                }
            ],
        },
    }


def disruption_budget(spec: ModelSpec) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(spec),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}}},
    }
