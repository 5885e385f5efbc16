"""The self-hosted registry's alert rules: server down, metrics not scraped, error ratio, latency. Each has
promtool unit tests that fire it and keep it quiet (tests/contract/test_alert_rules.py).

MLflow's exporter (prometheus_flask_exporter, `--expose-prometheus`) counts requests the Flask app serves as
`mlflow_http_request_total{method,status}` and `mlflow_http_request_duration_seconds` (grouped by MLflow version,
no path label). Artifact transfers are FastAPI routes it does not count, so the ratios cover the tracking and
registry API, which is what `models lock|verify` and training jobs call."""

from __future__ import annotations

from ml_platform.components.alerts import alert
from ml_platform.components.mlflow_server.manifests import NAME, NAMESPACE, _meta

ERROR_RATIO = 0.05
LATENCY_P95_SECONDS = 2.0
MIN_REQUESTS_PER_SECOND = 0.05
"""Below this rate (3 a minute), a ratio of a few requests is noise: the error and latency alerts stay quiet."""


def _alert(name: str, expr: str, duration: str, severity: str, summary: str, runbook: str) -> dict:
    # `namespace`: Alertmanager groups by it (sum(...) expressions drop it).
    return alert(name, expr, duration, severity, summary, runbook, component="model-registry", namespace=NAMESPACE)


def rule_group() -> dict:
    scope = f'namespace="{NAMESPACE}", deployment="{NAME}"'
    requests = f'sum(rate(mlflow_http_request_total{{namespace="{NAMESPACE}"}}[5m]))'
    busy = f"{requests} > {MIN_REQUESTS_PER_SECOND}"
    return {
        "name": "ml-platform.model-registry",
        "rules": [
            _alert(
                "ModelRegistryDown",
                # Quiet while the migration Job has scaled the server to 0 on purpose (spec replicas 0).
                f"kube_deployment_status_replicas_available{{{scope}}} == 0 and on() kube_deployment_spec_replicas{{{scope}}} > 0",
                "5m",
                "critical",
                "The model registry (MLflow) has no available replica: models lock/verify and deploys that run them fail",
                f"kubectl -n {NAMESPACE} get pods,jobs; kubectl -n {NAMESPACE} logs deploy/{NAME}: an old schema or an "
                "unreachable database makes the server exit at start",
            ),
            _alert(
                "ModelRegistryMetricsMissing",
                f'up{{namespace="{NAMESPACE}", job="{NAME}"}} == 0',
                "15m",
                "warning",
                "Prometheus cannot scrape the model registry's metrics sidecar ({{ $labels.instance }})",
                f"kubectl -n {NAMESPACE} logs deploy/{NAME} -c metrics: the metrics sidecar serves the server's counters",
            ),
            _alert(
                "ModelRegistryErrors",
                f'sum(rate(mlflow_http_request_total{{namespace="{NAMESPACE}", status=~"5.."}}[5m])) / {requests}'
                f" > {ERROR_RATIO} and {busy}",
                "10m",
                "warning",
                "More than 5% of the model registry's API requests fail with a server error",
                f"kubectl -n {NAMESPACE} logs deploy/{NAME}; check the database's capacity (maxCapacity) and connections",
            ),
            _alert(
                "ModelRegistrySlow",
                "histogram_quantile(0.95, sum by (le) (rate(mlflow_http_request_duration_seconds_bucket"
                f'{{namespace="{NAMESPACE}"}}[5m]))) > {LATENCY_P95_SECONDS} and {busy}',
                "15m",
                "warning",
                "The model registry's 95th-percentile API latency is above 2 s",
                "A paused database resumes in about 15 s (minCapacity 0); otherwise raise maxCapacity, workers or replicas",
            ),
        ],
    }


def prometheus_rule() -> dict:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": _meta(), "spec": {"groups": [rule_group()]}}
