"""Fixtures and helpers of the monitor job's tests: S3 on conftest.py's moto server (`moto_s3`), a real Pushgateway
on 127.0.0.1, and writers of capture objects (the contract's format), reference and label files.

Imported by the monitor tests (`from monitor_fixtures import ...`) rather than added to conftest.py, which the
capture proxy's tests own.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime

import boto3
import pytest

PUSHGATEWAY_BINARY = "/usr/bin/prometheus-pushgateway"
REGION = "us-west-2"  # the configs' region; conftest.py's server answers for any


@pytest.fixture
def aws_env(moto_s3, monkeypatch):
    """boto3's environment pointed at conftest.py's moto server for one test (restored after it), so that the job,
    which makes its own client from the environment, reaches it when run in-process."""
    for k, v in moto_s3.env.items():
        monkeypatch.setenv(k, v)
    return moto_s3.env


@pytest.fixture
def s3(moto_s3, aws_env):
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION).client(
        "s3", endpoint_url=moto_s3.endpoint_url
    )


@pytest.fixture
def bucket(s3):
    """A new, empty bucket for each test (no state shared between tests)."""
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pushgateway_server(tmp_path_factory):
    """URL of a real Pushgateway (the Debian package's binary) on a free loopback port, stopped after the session."""
    if not shutil.which(PUSHGATEWAY_BINARY):
        pytest.fail(f"{PUSHGATEWAY_BINARY} is missing: apt-get install -y prometheus-pushgateway")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                PUSHGATEWAY_BINARY,
                f"--web.listen-address=127.0.0.1:{port}",
                "--persistence.file=",
                "--web.enable-admin-api",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 10
            while not _ready(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Pushgateway did not start (exit {proc.poll()}); see {log_path}")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def pushgateway(pushgateway_server):
    """The session's Pushgateway, emptied before each test (admin API wipe)."""
    req = urllib.request.Request(pushgateway_server + "/api/v1/admin/wipe", method="PUT")
    with urllib.request.urlopen(req, timeout=5):
        pass
    return pushgateway_server


def pg_groups(url: str) -> dict[tuple[str, str, str, str], dict[str, list[tuple[dict, float]]]]:
    """Everything on the Pushgateway: (job, namespace, model, version) -> metric name -> [(labels, value)], from
    GET /api/v1/metrics, without the Pushgateway's own push_time/push_failure_time series."""
    with urllib.request.urlopen(url + "/api/v1/metrics", timeout=5) as r:
        data = json.load(r)["data"]
    out = {}
    for group in data:
        labels = group["labels"]
        gid = (labels.get("job"), labels.get("namespace"), labels.get("model"), labels.get("version"))
        metrics = {}
        for name, family in group.items():
            if name in ("labels", "last_push_successful", "push_time_seconds", "push_failure_time_seconds"):
                continue
            metrics[name] = [
                ({k: v for k, v in m["labels"].items() if k not in (*labels, "instance")}, float(m["value"])) for m in family["metrics"]
            ]
        out[gid] = metrics
    return out


def value(metrics: dict, name: str, **labels) -> float:
    """The one value of `name` with `labels` in a group from pg_groups (KeyError/AssertionError when absent)."""
    found = [v for lab, v in metrics[name] if all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, (name, labels, metrics.get(name))
    return found[0]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def capture_record(t: datetime, request: dict, response, request_id: str | None = None, model: str = "fraud", version: str = "3") -> dict:
    """One capture record in the contract's shape."""
    return {
        "requestId": request_id or uuid.uuid4().hex,
        "time": iso(t),
        "model": model,
        "version": version,
        "method": "POST",
        "path": "/v1/predict",
        "status": 200,
        "latencyMs": 12.5,
        "request": request,
        "response": response,
    }


_seq = iter(range(10**9))


def put_capture(s3, bucket: str, prefix: str, records: list[dict], pod: str = "fraud-7d9f-abc12", hour: datetime | None = None) -> str:
    """Write `records` as one capture object: gzip JSON lines under the hour partition of the first record (or of
    `hour`, to place an object in a partition on purpose). Returns the key."""
    first = hour or datetime.fromisoformat(records[0]["time"])
    first = first.astimezone(UTC)
    key = f"{prefix}dt={first:%Y-%m-%d}/hr={first:%H}/{pod}-{int(first.timestamp() * 1000)}-{next(_seq)}.jsonl.gz"
    body = gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def put_jsonl(s3, bucket: str, key: str, rows: list[dict]) -> None:
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if key.endswith(".gz") else body)


def put_csv(s3, bucket: str, key: str, rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    s3.put_object(Bucket=bucket, Key=key, Body=out.getvalue().encode())


def monitor_config(
    bucket: str,
    pushgateway: str,
    *,
    model: str = "fraud",
    namespace: str = "fraud",
    version: str = "3",
    drift: bool = True,
    feedback: bool = False,
    **overrides,
) -> dict:
    """A config in the contract's shape; `overrides` replace top-level fields, `drift_<field>`/`feedback_<field>`
    replace fields of those sections."""
    cfg = {
        "model": model,
        "namespace": namespace,
        "version": version,
        "bucket": bucket,
        "region": REGION,
        "capturePrefix": f"capture/{model}/{version}/",
        "windowSeconds": 3600,
        "minSamples": 200,
        "pushgateway": pushgateway,
    }
    if drift:
        cfg["drift"] = {
            "referencePrefix": f"reference/{model}/",
            "method": "psi",
            "threshold": 0.1,
            "driftShare": 0.5,
            "recordsPath": "$.instances[*]",
            "reportPrefix": f"drift/{model}/{version}/",
        }
    if feedback:
        cfg["feedback"] = {
            "labelsPrefix": f"feedback/{model}/",
            "joinKey": "requestId",
            "predictionPath": "$.predictions[0]",
            "labelField": "label",
            "metric": "accuracy",
            "reportPrefix": f"feedback/reports/{model}/{version}/",
        }
    for k, v in overrides.items():
        section, _, name = k.partition("_")
        if section in ("drift", "feedback") and name:
            cfg[section][name] = v
        else:
            cfg[k] = v
    return cfg


def write_config(tmp_path, cfg: dict) -> str:
    path = tmp_path / f"monitor-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def feature_rows(rng, n: int, shifted: bool = False) -> list[dict]:
    """Synthetic feature records: `amount` and `score` numerical, `channel` categorical. `shifted` moves all three."""
    amount = rng.normal(160 if shifted else 100, 20, n)
    score = rng.normal(1.5 if shifted else 0.0, 1.0, n)
    channel = rng.choice(["web", "app", "pos"], n, p=[0.1, 0.2, 0.7] if shifted else [0.5, 0.3, 0.2])
    return [
        {"amount": round(float(a), 3), "score": round(float(s), 4), "channel": str(c)}
        for a, s, c in zip(amount, score, channel, strict=True)
    ]
