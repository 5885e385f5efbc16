"""`model-monitor running-images --config FILE | --config-env NAME`: one run of the running-images report (issue #21).

Lists the pods of each configured model namespace through the Kubernetes API (kube.py, the job's own service
account: get/list pods in those namespaces only), takes the digest every container, init container and ephemeral
container runs (`status.*ContainerStatuses[].imageID`; finished pods and containers not pulled yet run nothing),
looks up each digest's scan findings in ECR (image_findings.py), and replaces the namespace's group on the Pushgateway
(job `running-images`, grouping key {namespace}):

    ml_platform_running_image_vulnerabilities{model, image, severity}           ACTIVE findings no allow-list entry covers,
                                                                                 every severity, per scanned image
    ml_platform_running_image_allowed_vulnerabilities{model, image, severity}   those an unexpired entry covers (when any)
    ml_platform_running_images_unscanned{model, reason}                         images without scan results, by reason
    ml_platform_running_images{model}                                           distinct images running
    ml_platform_running_images_last_success_timestamp_seconds{model}            this run's time

`image` is `<repository>@sha256:<12 hex>`. A namespace whose pods or findings cannot be read keeps its previous
group (its numbers, so a firing alert stays firing) and gets `ml_platform_running_images_last_failure_timestamp_seconds`
added; the stale alert reads the last success. Groups of namespaces no longer configured are deleted.

Config (JSON, in a file or an environment variable: components/running_images.py renders it into the CronJob's
environment, where a change updates the CronJob in place, as a ConfigMap's could not):

    {"namespaces": {"<namespace>": "<model>", ...}   at least one,
     "region": "us-west-2", "registryId": "<12 digits>"   the ECR registry whose images are looked up,
     "pushgateway": "http(s)://host[:port]",
     "allow": [{"cve": "CVE-...", "image": "<repository>[@sha256:...]" | "*", "expires": "YYYY-MM-DD"}]   optional,
     "kubernetes": {"url", "tokenFile", "caFile"}   optional; default in-cluster (kube.py)}

Exit codes: 0 every namespace published; 1 a namespace failed (the others were still published); 2 bad config.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import time
import urllib.error
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry, Gauge

from . import kube
from . import pushgateway as pg
from .config import ConfigError, _object, _string, _url
from .image_findings import SEVERITIES, AllowRule, FindingsLookup, ImageReport, RunningImage, parse_image_id

log = logging.getLogger("model_monitoring.running_images")

JOB = "running-images"
FAILURE_METRIC = "ml_platform_running_images_last_failure_timestamp_seconds"
EXIT_OK, EXIT_FAILED, EXIT_BAD_CONFIG = 0, 1, 2
# Failures whose message says it all (the API refused, ECR refused, the Pushgateway is unreachable); anything else
# is logged with its traceback (a bug to fix).
_EXPECTED = (kube.KubeError, ClientError, BotoCoreError, urllib.error.URLError, OSError)
_STATUS_KEYS = ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")
_FINISHED = ("Succeeded", "Failed")
_TOP = {"namespaces", "region", "registryId", "pushgateway", "allow", "kubernetes"}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


@dataclass(frozen=True)
class RunningImagesConfig:
    namespaces: dict[str, str]
    """namespace -> model, sorted by namespace."""
    region: str
    registry_id: str
    pushgateway: str
    allow: list[AllowRule]
    kube: kube.KubeApi


def parse_config(doc: object) -> RunningImagesConfig:
    """Check a decoded config document (shape in the module docstring). Raises ConfigError naming the field."""
    _object(doc, "", _TOP)
    assert isinstance(doc, dict)
    namespaces = doc.get("namespaces")
    if not isinstance(namespaces, dict) or not namespaces:
        raise ConfigError("namespaces", f"{json.dumps(namespaces)}: allowed: an object of namespace -> model name, at least one")
    for namespace, model in namespaces.items():
        if not _NAME.match(namespace) or not isinstance(model, str) or not model:
            raise ConfigError(f"namespaces.{namespace}", f"{json.dumps(model)}: allowed: a namespace name (RFC 1123) -> a model name")
    registry_id = _string(doc, "registryId")
    if not re.match(r"^\d{12}\Z", registry_id):
        raise ConfigError("registryId", f"{json.dumps(registry_id)}: allowed: the registry's 12-digit AWS account id")
    api = doc.get("kubernetes", {})
    _object(api, "kubernetes", {"url", "tokenFile", "caFile"})
    return RunningImagesConfig(
        namespaces=dict(sorted(namespaces.items())),
        region=_string(doc, "region"),
        registry_id=registry_id,
        pushgateway=_url(doc, "pushgateway"),
        allow=[_allow_rule(entry, f"allow[{i}]") for i, entry in enumerate(_list(doc, "allow"))],
        kube=kube.KubeApi(
            _url(api, "url", "kubernetes") if "url" in api else kube.in_cluster_url(),
            _string(api, "tokenFile", "kubernetes") if "tokenFile" in api else kube.TOKEN_FILE,
            _string(api, "caFile", "kubernetes") if "caFile" in api else kube.CA_FILE,
        ),
    )


def _list(doc: dict, name: str) -> list:
    value = doc.get(name, [])
    if not isinstance(value, list):
        raise ConfigError(name, f"must be a JSON array, got {type(value).__name__}")
    return value


def _allow_rule(entry: object, where: str) -> AllowRule:
    _object(entry, where, {"cve", "image", "expires"})
    assert isinstance(entry, dict)
    text = _string(entry, "expires", where)
    try:
        expires = dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{where}.expires", f"{json.dumps(text)}: allowed: a date, YYYY-MM-DD") from None
    return AllowRule(_string(entry, "cve", where), _string(entry, "image", where), expires)


def load(path: str | None = None, env: str | None = None) -> RunningImagesConfig:
    """Read and check the config from the file at `path`, or from the environment variable `env`. Raises ConfigError
    naming the field."""
    where = f"config file {path}" if path is not None else f"environment variable {env}"
    try:
        if path is not None:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        else:
            text = os.environ[str(env)]
    except OSError as e:
        raise ConfigError("", f"cannot read {where}: {e.strerror or e}") from None
    except KeyError:
        raise ConfigError("", f"{where} is not set") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError("", f"{where} is not valid JSON: {e}") from None
    return parse_config(doc)


def running_images(pods: list[dict]) -> list[RunningImage]:
    """The distinct images the pods' containers run (pods not finished; containers with an imageID), in order."""
    found: dict[str, RunningImage] = {}
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in _FINISHED:
            continue
        for key in _STATUS_KEYS:
            for container in status.get(key) or []:
                image = parse_image_id(container.get("imageID") or "")
                if image is not None:
                    found.setdefault(image.image_id, image)
    return list(found.values())


def registry(model: str, reports: list[tuple[RunningImage, ImageReport]], success_time: float) -> CollectorRegistry:
    """A namespace's group: the metrics in the module docstring, for `model`."""
    out = CollectorRegistry()
    vulnerabilities = Gauge(
        "ml_platform_running_image_vulnerabilities",
        "ACTIVE scan findings of a running image that no allow-list entry covers, by severity.",
        ["model", "image", "severity"],
        registry=out,
    )
    allowed = Gauge(
        "ml_platform_running_image_allowed_vulnerabilities",
        "ACTIVE scan findings of a running image that an unexpired allow-list entry covers, by severity.",
        ["model", "image", "severity"],
        registry=out,
    )
    unscanned = Gauge(
        "ml_platform_running_images_unscanned",
        "Running images without (complete) scan results, by reason.",
        ["model", "reason"],
        registry=out,
    )
    reasons: dict[str, int] = {}
    for image, report in reports:
        if report.counts is not None:
            for severity in SEVERITIES:
                vulnerabilities.labels(model=model, image=image.label, severity=severity).set(report.counts[severity])
        for severity, count in report.allowed.items():
            allowed.labels(model=model, image=image.label, severity=severity).set(count)
        if report.unscanned is not None:
            reasons[report.unscanned] = reasons.get(report.unscanned, 0) + 1
    for reason, count in sorted(reasons.items()):
        unscanned.labels(model=model, reason=reason).set(count)
    Gauge("ml_platform_running_images", "Distinct images running in the model's namespace.", ["model"], registry=out).labels(
        model=model
    ).set(len(reports))
    Gauge(
        "ml_platform_running_images_last_success_timestamp_seconds", "Unix time of the last complete report.", ["model"], registry=out
    ).labels(model=model).set(success_time)
    return out


def report_namespace(cfg: RunningImagesConfig, namespace: str, lookup: FindingsLookup) -> list[tuple[RunningImage, ImageReport]]:
    """Every image running in `namespace` with its report. Raises kube.KubeError or botocore errors."""
    reports = [(image, lookup.report(image)) for image in running_images(cfg.kube.list_pods(namespace))]
    for image, report in reports:
        if report.unscanned is not None:
            log.warning("%s: %s has no (complete) scan results: %s", namespace, image.image_id, report.unscanned)
        if report.counts is not None and report.counts["CRITICAL"]:
            log.warning("%s: %s has %d CRITICAL findings", namespace, image.image_id, report.counts["CRITICAL"])
    return reports


def run(cfg: RunningImagesConfig, ecr, today: dt.date, clock=time.time) -> int:
    """Report every configured namespace and publish it; delete the groups of namespaces no longer configured.
    Returns EXIT_OK or EXIT_FAILED; never raises for one namespace's failure."""
    lookup = FindingsLookup(ecr, cfg.registry_id, cfg.region, cfg.allow, today)
    failed = []
    for namespace, model in cfg.namespaces.items():
        key = {"namespace": namespace}
        try:
            reports = report_namespace(cfg, namespace, lookup)
            pg.push(cfg.pushgateway, JOB, key, registry(model, reports, clock()))
            unscanned = sum(1 for _, r in reports if r.unscanned is not None)
            log.info("%s: %d running images published (%d without scan results)", namespace, len(reports), unscanned)
        except Exception as e:  # one namespace's failure must not stop the others
            if isinstance(e, _EXPECTED):
                log.error("%s: report failed: %s: %s", namespace, type(e).__name__, e)
            else:
                log.exception("%s: report failed unexpectedly", namespace)
            failed.append(namespace)
            try:
                pg.push_failure(cfg.pushgateway, JOB, key, FAILURE_METRIC, clock())
            except Exception as push_error:
                log.error("%s: could not push %s: %s", namespace, FAILURE_METRIC, push_error)
    try:
        for labels in pg.list_groups(cfg.pushgateway):
            if labels.get("job") == JOB and labels.get("namespace") not in cfg.namespaces:
                pg.delete(cfg.pushgateway, JOB, {k: v for k, v in labels.items() if k != "job"})
                log.info("deleted the group of namespace %s, no longer configured", labels.get("namespace"))
    except Exception as e:  # housekeeping: the namespaces' reports decide the exit code
        log.warning("could not delete groups of namespaces no longer configured: %s", e)
    if failed:
        log.error("namespaces not reported: %s", ", ".join(failed))
        return EXIT_FAILED
    return EXIT_OK


def main(config_path: str | None, config_env: str | None = None, ecr=None) -> int:
    """`model-monitor running-images --config FILE | --config-env NAME`. `ecr` defaults to a boto3 ECR client for the
    config's region (credentials from the environment: EKS Pod Identity on the cluster)."""
    try:
        cfg = load(config_path, config_env)
    except ConfigError as e:
        print(f"model-monitor: bad configuration: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if ecr is None:
        import boto3

        ecr = boto3.client("ecr", region_name=cfg.region)
    log.info("reporting images running in %s (registry %s, %s)", ", ".join(cfg.namespaces), cfg.registry_id, cfg.region)
    return run(cfg, ecr, dt.datetime.now(dt.UTC).date())
