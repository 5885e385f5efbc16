"""Publishing to the Prometheus Pushgateway.

Pushing uses prometheus_client's push_to_gateway / pushadd_to_gateway / delete_from_gateway (the Prometheus
project's own, well-kept client library) rather than hand-built requests, so the text format and the escaping of
grouping-key values are theirs. Listing groups uses the Pushgateway's JSON API (`GET /api/v1/metrics`) with the
standard library, which prometheus_client does not wrap.

A group is (job, namespace, model, version). A successful check PUTs its group (push_to_gateway): every series of the
previous run is replaced, so a series the new run does not publish (the drift score with too few samples, an old
last_failure) disappears. A failed check POSTs (pushadd) only its last_failure timestamp, so the last success and
its numbers stay for alerts to read.
"""

from __future__ import annotations

import json
import logging
import urllib.request

from prometheus_client import CollectorRegistry, Gauge, delete_from_gateway, push_to_gateway, pushadd_to_gateway

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15


def grouping_key(namespace: str, model: str, version: str) -> dict[str, str]:
    """The grouping key (besides `job`) of a model version's group."""
    return {"namespace": namespace, "model": model, "version": version}


def push(gateway: str, job: str, key: dict[str, str], registry: CollectorRegistry) -> None:
    """Replace the group (`job`, `key`) with `registry`'s metrics (HTTP PUT). Raises urllib errors on failure."""
    push_to_gateway(gateway, job=job, registry=registry, grouping_key=key, timeout=TIMEOUT_SECONDS)


def pushadd(gateway: str, job: str, key: dict[str, str], registry: CollectorRegistry) -> None:
    """Replace only the metrics named in `registry` within the group (HTTP POST), keeping the group's others."""
    pushadd_to_gateway(gateway, job=job, registry=registry, grouping_key=key, timeout=TIMEOUT_SECONDS)


def delete(gateway: str, job: str, key: dict[str, str]) -> None:
    """Delete the group (`job`, `key`) (HTTP DELETE; deleting a group that does not exist succeeds)."""
    delete_from_gateway(gateway, job=job, grouping_key=key, timeout=TIMEOUT_SECONDS)


def push_failure(gateway: str, job: str, key: dict[str, str], metric_name: str, when: float) -> None:
    """POST the one gauge `metric_name` = `when` (unix seconds) into the group, keeping its other series."""
    registry = CollectorRegistry()
    Gauge(metric_name, "Unix time of the last failed check.", registry=registry).set(when)
    pushadd(gateway, job, key, registry)


def list_groups(gateway: str) -> list[dict[str, str]]:
    """The grouping labels (including `job`) of every group on the Pushgateway, from `GET /api/v1/metrics`.

    Raises urllib errors, and ValueError when the answer is not the API's `{"status": "success", "data": [...]}`.
    """
    url = gateway.rstrip("/") + "/api/v1/metrics"
    if "://" not in url:
        url = "http://" + url
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        body = json.load(response)
    if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), list):
        raise ValueError(f"unexpected answer from {url}: {str(body)[:200]}")
    return [dict(group.get("labels", {})) for group in body["data"]]


def _others(gateway: str, job: str, namespace: str, model: str, keep_version: str | None) -> list[dict[str, str]]:
    found = []
    for labels in list_groups(gateway):
        if (
            labels.get("job") == job
            and labels.get("namespace") == namespace
            and labels.get("model") == model
            and labels.get("version") != keep_version
        ):
            found.append({k: v for k, v in labels.items() if k != "job"})
    return found


def delete_stale_groups(gateway: str, job: str, namespace: str, model: str, version: str) -> list[dict[str, str]]:
    """Delete every group of `job` for `namespace`/`model` whose version is not `version` (the model's earlier
    versions, whose series would otherwise stay on the Pushgateway, and in Prometheus, for ever).

    Groups are matched on namespace too: the same model name can run in another namespace (a pull-request preview's
    `pr-<n>` namespace shares a cluster, and so a Pushgateway, with its base stack). Returns the grouping keys
    deleted (without `job`). Raises urllib errors.
    """
    stale = _others(gateway, job, namespace, model, keep_version=version)
    for key in stale:
        delete(gateway, job, key)
        log.info("deleted stale Pushgateway group job=%s %s", job, key)
    return stale


def delete_model_groups(gateway: str, job: str, namespace: str, model: str) -> list[dict[str, str]]:
    """Delete every group of `job` for `namespace`/`model`, whatever the version (a check no longer configured)."""
    groups = _others(gateway, job, namespace, model, keep_version=None)
    for key in groups:
        delete(gateway, job, key)
        log.info("deleted Pushgateway group of an unconfigured check: job=%s %s", job, key)
    return groups
