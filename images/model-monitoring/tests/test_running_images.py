"""The running-images report end to end: pods from a stand-in Kubernetes API over TLS with the service account's token
(kube_fixtures.py), findings from ECR through botocore's Stubber (ecr_stubs.py), results read back from a real
Pushgateway (monitor_fixtures.py)."""

import datetime as dt
import json
import time

import pytest
from ecr_stubs import ACCOUNT, REGION, Ecr, digest, finding, image_id, index_manifest
from kube_fixtures import TOKEN, make_ca
from model_monitoring import kube
from model_monitoring import pushgateway as pg
from model_monitoring.config import ConfigError
from model_monitoring.image_findings import SEVERITIES
from model_monitoring.job import main as cli
from model_monitoring.running_images import JOB, parse_config, run
from monitor_fixtures import pg_groups, value
from prometheus_client import CollectorRegistry, Gauge

pytest_plugins = ["monitor_fixtures", "kube_fixtures"]  # pushgateway, aws_env; kube_api

TODAY = dt.date(2026, 12, 1)
FRAUD, CHAT = (JOB, "fraud", None, None), (JOB, "chat", None, None)
SERVER, PROXY, VLLM = "prod/models/fraud", "platform/model-monitoring", "prod/serving/vllm"
SERVER_LABEL = f"{SERVER}@sha256:aaaaaaaaaaaa"
VULNERABILITIES = "ml_platform_running_image_vulnerabilities"


def pod(name: str, phase: str = "Running", containers=(), init=(), ephemeral=()) -> dict:
    def statuses(ids):
        return [{"name": f"c{i}", "image": "ignored:tag", "imageID": iid, "ready": True, "restartCount": 0} for i, iid in enumerate(ids)]

    status = {"phase": phase, "containerStatuses": statuses(containers), "initContainerStatuses": statuses(init)}
    if ephemeral:
        status["ephemeralContainerStatuses"] = statuses(ephemeral)
    return {"metadata": {"name": name}, "status": status}


def config(kube_api, pushgateway, namespaces=("chat", "fraud"), **extra) -> dict:
    return {
        "namespaces": {ns: ns for ns in namespaces},
        "region": REGION,
        "registryId": ACCOUNT,
        "pushgateway": pushgateway,
        "kubernetes": kube_api.config(),
        **extra,
    }


def push_other(gateway: str, job: str, key: dict) -> None:
    registry = CollectorRegistry()
    Gauge("some_metric", "x", registry=registry).set(1)
    pg.push(gateway, job, key, registry)


def test_every_running_digest_is_reported_per_model_and_severity(kube_api, pushgateway):
    server, proxy = image_id(SERVER, digest("a")), image_id(PROXY, digest("c"))
    loader, busybox = f"public.ecr.aws/aws-cli/aws-cli@{digest('b')}", f"docker.io/library/busybox@{digest('d')}"
    kube_api.pods = {
        "fraud": [
            pod("fraud-1", containers=[server], init=[loader, proxy]),
            pod("fraud-2", containers=[server], init=[loader, proxy]),
            pod("fraud-old", phase="Succeeded", containers=[image_id(SERVER, digest("9"))]),  # finished: runs nothing
            pod("fraud-3", phase="Pending", containers=[""]),  # still pulling: runs nothing yet
            pod("fraud-debug", containers=[server], ephemeral=[busybox]),
        ],
        "chat": [pod("chat-1", containers=[image_id(VLLM, digest("e"))])],
    }
    ecr = Ecr()
    amd64, arm64 = digest("1"), digest("2")
    ecr.describe(VLLM, digest("e"), media_type="application/vnd.oci.image.index.v1+json")
    ecr.index(VLLM, digest("e"), index_manifest((amd64, "linux", "amd64"), (arm64, "linux", "arm64")))
    ecr.findings(VLLM, amd64, [finding("CVE-2026-0001", "CRITICAL")])
    ecr.findings(VLLM, arm64, [finding("CVE-2026-0001", "CRITICAL"), finding("CVE-2026-0002", "LOW")])
    ecr.describe(PROXY, digest("c"))
    ecr.findings(PROXY, digest("c"))
    ecr.describe(SERVER, digest("a"))
    two_pages = [finding("CVE-2026-0003", "HIGH")], [finding("CVE-2026-0004", "HIGH"), finding("CVE-2026-0005", "CRITICAL")]
    ecr.findings(SERVER, digest("a"), *two_pages)
    # A namespace no longer configured, and another job's group of a configured one.
    push_other(pushgateway, JOB, {"namespace": "retired"})
    push_other(pushgateway, "model-drift", {"namespace": "fraud", "model": "fraud", "version": "3"})

    before = time.time()
    assert run(parse_config(config(kube_api, pushgateway)), ecr.client, TODAY) == 0
    ecr.done()

    groups = pg_groups(pushgateway)
    assert set(groups) == {FRAUD, CHAT, ("model-drift", "fraud", "fraud", "3")}, "the retired namespace's group is gone"
    fraud = groups[FRAUD]
    for severity, expected in {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 0, "LOW": 0, "INFORMATIONAL": 0, "UNTRIAGED": 0}.items():
        assert value(fraud, VULNERABILITIES, model="fraud", image=SERVER_LABEL, severity=severity) == expected
    clean = {lab["severity"] for lab, v in fraud[VULNERABILITIES] if lab["image"].startswith(PROXY) and v == 0}
    assert clean == set(SEVERITIES)
    assert value(fraud, "ml_platform_running_images_unscanned", model="fraud", reason="outside_ecr") == 2
    assert len(fraud["ml_platform_running_images_unscanned"]) == 1
    assert value(fraud, "ml_platform_running_images", model="fraud") == 4
    assert before <= value(fraud, "ml_platform_running_images_last_success_timestamp_seconds", model="fraud") <= time.time()
    chat = groups[CHAT]
    vllm = f"{VLLM}@sha256:eeeeeeeeeeee"
    assert value(chat, "ml_platform_running_image_vulnerabilities", model="chat", image=vllm, severity="CRITICAL") == 1
    assert value(chat, "ml_platform_running_image_vulnerabilities", model="chat", image=vllm, severity="LOW") == 1
    assert "ml_platform_running_images_unscanned" not in chat

    # The API was read as the service account, every page of fraud's five pods (two a page).
    assert {token for _, _, token in kube_api.requests} == {TOKEN}
    fraud_pages = [query for path, query, _ in kube_api.requests if path == "/api/v1/namespaces/fraud/pods"]
    assert [q.get("continue") for q in fraud_pages] == [None, "2", "4"] and fraud_pages[0]["limit"] == "250"


def test_a_namespace_that_cannot_be_read_keeps_its_last_report_and_the_others_publish(kube_api, pushgateway):
    kube_api.pods = {
        "fraud": [pod("fraud-1", containers=[image_id(SERVER, digest("a"))])],
        "chat": [pod("chat-1", containers=[f"docker.io/vllm/vllm-openai@{digest('e')}"])],
    }
    cfg = parse_config(config(kube_api, pushgateway))
    ecr = Ecr()
    ecr.describe(SERVER, digest("a"))
    ecr.findings(SERVER, digest("a"), [finding("CVE-2026-0005", "CRITICAL")])
    assert run(cfg, ecr.client, TODAY, clock=lambda: 1000.0) == 0

    kube_api.forbidden = {"chat"}
    ecr.describe(SERVER, digest("a"))
    ecr.findings(SERVER, digest("a"))
    assert run(cfg, ecr.client, TODAY, clock=lambda: 5000.0) == 1
    ecr.done()
    groups = pg_groups(pushgateway)
    chat = groups[CHAT]
    assert value(chat, "ml_platform_running_images_last_success_timestamp_seconds", model="chat") == 1000
    assert value(chat, "ml_platform_running_images_last_failure_timestamp_seconds") == 5000
    assert value(chat, "ml_platform_running_images_unscanned", model="chat", reason="outside_ecr") == 1, "its last numbers stay"
    fraud = groups[FRAUD]
    assert value(fraud, "ml_platform_running_images_last_success_timestamp_seconds", model="fraud") == 5000
    assert value(fraud, VULNERABILITIES, model="fraud", image=SERVER_LABEL, severity="CRITICAL") == 0
    assert "ml_platform_running_images_last_failure_timestamp_seconds" not in fraud


def test_an_ecr_error_fails_the_namespace_instead_of_calling_its_image_unscanned(kube_api, pushgateway, caplog):
    kube_api.pods = {"fraud": [pod("fraud-1", containers=[image_id(SERVER, digest("a"))])], "chat": []}
    ecr = Ecr()
    ecr.describe(SERVER, digest("a"))
    ecr.error("describe_image_scan_findings", "AccessDeniedException", 403)
    assert run(parse_config(config(kube_api, pushgateway)), ecr.client, TODAY) == 1
    groups = pg_groups(pushgateway)
    assert set(groups[FRAUD]) == {"ml_platform_running_images_last_failure_timestamp_seconds"}
    assert value(groups[CHAT], "ml_platform_running_images", model="chat") == 0
    assert "fraud: report failed: ClientError" in caplog.text and "AccessDenied" in caplog.text


def test_the_api_server_must_present_a_certificate_of_the_cluster_ca(kube_api, pushgateway, tmp_path, caplog):
    other_ca, _, _ = make_ca(tmp_path, "another-ca")
    cfg = config(kube_api, pushgateway, namespaces=("fraud",))
    cfg["kubernetes"]["caFile"] = str(other_ca)
    assert run(parse_config(cfg), Ecr().client, TODAY) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert not kube_api.requests


def test_the_cli_runs_the_report_from_a_file_or_the_environment(kube_api, pushgateway, aws_env, tmp_path, monkeypatch, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(kube_api, pushgateway, namespaces=("fraud",))))
    assert cli(["running-images", "--config", str(path)]) == 0
    assert value(pg_groups(pushgateway)[FRAUD], "ml_platform_running_images", model="fraud") == 0
    monkeypatch.setenv("RUNNING_IMAGES_CONFIG", json.dumps(config(kube_api, pushgateway, namespaces=("chat",))))
    assert cli(["running-images", "--config-env", "RUNNING_IMAGES_CONFIG"]) == 0
    assert set(pg_groups(pushgateway)) == {CHAT}, "fraud is no longer configured"
    assert cli(["running-images", "--config-env", "UNSET_VARIABLE"]) == 2
    assert "environment variable UNSET_VARIABLE is not set" in capsys.readouterr().err
    assert cli(["running-images"]) == 2, "one of --config and --config-env"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"namespaces": {}}, "namespaces: {}: allowed: an object of namespace -> model name"),
        ({"namespaces": {"Fraud": "fraud"}}, "namespaces.Fraud:"),
        ({"registryId": "12345"}, 'registryId: "12345": allowed: the registry\'s 12-digit AWS account id'),
        ({"allow": [{"cve": "CVE-2026-1", "image": "*", "expires": "soon"}]}, 'allow[0].expires: "soon": allowed: a date, YYYY-MM-DD'),
        ({"allow": [{"cve": "CVE-2026-1", "image": "*"}]}, "allow[0].expires: required field is missing"),
        ({"pushgateway": "prometheus-pushgateway:9091"}, "pushgateway:"),
        ({"schedule": "0 * * * *"}, "schedule: unknown field"),
    ],
)
def test_bad_config_exits_2_naming_the_field(tmp_path, capsys, change, message):
    cfg = {"namespaces": {"fraud": "fraud"}, "region": REGION, "registryId": ACCOUNT, "pushgateway": "http://127.0.0.1:9", **change}
    with pytest.raises(ConfigError):
        parse_config(cfg)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert cli(["running-images", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"bad configuration: {message}" in err and "Traceback" not in err


def test_the_api_server_is_found_as_client_go_finds_it(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert kube.in_cluster_url() == "https://kubernetes.default.svc"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "172.20.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert kube.in_cluster_url() == "https://172.20.0.1:443"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    assert kube.in_cluster_url() == "https://[fd00:10:96::1]:443"
    cfg = parse_config({"namespaces": {"fraud": "fraud"}, "region": REGION, "registryId": ACCOUNT, "pushgateway": "http://pg:9091"})
    assert cfg.kube == kube.KubeApi("https://[fd00:10:96::1]:443", kube.TOKEN_FILE, kube.CA_FILE)
