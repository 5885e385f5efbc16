"""What the model pods' AWS CLI containers do, run for real: each script of components/model_service/pods.py in
/bin/sh with the real AWS CLI (from venv-tools/) against moto's S3 server, with the container's environment from
the rendered Deployment. The weights' copy lands every object; the compile cache's restore never stops the pod
(an empty or unreadable cache means a compile, not an outage); its save sidecar uploads while the server runs and
once more when the pod stops, and exits at once on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ml_platform.components.model_service import ModelSpec, pods
from tests.helpers import MODEL_SPEC, tool

BUCKET = "store"


def spec(**overrides) -> ModelSpec:
    values = {
        **MODEL_SPEC,
        "model_uri": f"s3://{BUCKET}/llama/",
        "gpus": 1,
        "compile_cache_uri": f"s3://{BUCKET}/compile-cache/chat/chat/",
    }
    values.update(overrides)
    return ModelSpec(**values)


def containers(model: ModelSpec) -> dict[str, dict]:
    return {c["name"]: c for c in pods.init_containers(model)}


def run(container: dict, tmp: Path, paths: dict[str, Path], background: bool = False, stderr_file: Path | None = None):
    """Run a container's command and args in /bin/sh here: its paths under `tmp`, its env from the manifest (HOME,
    AWS_CONFIG_FILE moved under `tmp`), the AWS CLI on PATH, and moto's endpoint and test credentials.
    `stderr_file`: a background run's log goes there, to be read while it runs."""
    args = [str(paths.get(arg, arg)) for arg in container["args"]]
    env = {**os.environ, "PATH": f"{Path(tool('aws')).parent}:{os.environ['PATH']}"}
    for item in container["env"]:
        env[item["name"]] = item["value"].replace("/tmp", str(tmp))
    command = [*container["command"], *args]
    if background:
        err = stderr_file.open("w") if stderr_file else subprocess.PIPE
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def s3(aws_server):
    client = aws_server("s3", "us-west-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return client


def keys(s3, prefix: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])}


@pytest.mark.parametrize("client", ["classic", "crt"])
def test_the_weights_copy_lands_every_object(s3, tmp_path, client):
    for key, body in {"llama/config.json": b"{}", "llama/model-00001.safetensors": os.urandom(9 * 2**20), "llama/sub/t.json": b"t"}.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    models = tmp_path / "models"
    models.mkdir()
    loader = containers(spec(transfer_client=client))["load-weights"]
    assert loader["args"][0] == client
    done = run(loader, tmp_path, {pods.MODELS_DIR: models})
    assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(models)) for p in models.rglob("*") if p.is_file()) == [
        "config.json",
        "model-00001.safetensors",
        "sub/t.json",
    ]
    assert (models / "model-00001.safetensors").stat().st_size == 9 * 2**20
    config = (tmp_path / "load-weights" / "aws-config").read_text()
    assert f"preferred_transfer_client = {client}" in config and "target_bandwidth = 24Gb/s" in config


def test_a_failed_weights_copy_fails_the_pod(s3, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    loader = containers(spec(model_uri="s3://no-such-bucket/llama/"))["load-weights"]
    assert run(loader, tmp_path, {pods.MODELS_DIR: models}).returncode != 0, "a pod must never serve without its weights"


def test_the_cache_restore_brings_back_a_saved_cache_and_never_stops_the_pod(s3, tmp_path):
    cache = tmp_path / "cache"
    restore = containers(spec())["restore-compile-cache"]
    first = run(restore, tmp_path, {pods.COMPILE_CACHE_DIR: cache})
    assert first.returncode == 0 and first.stderr == "", "a first replica finds no cache and goes on"
    s3.put_object(Bucket=BUCKET, Key="compile-cache/chat/chat/abc123/rank_0_0/backbone/artifact", Body=b"graph")
    again = run(restore, tmp_path, {pods.COMPILE_CACHE_DIR: cache})
    assert again.returncode == 0 and (cache / "abc123/rank_0_0/backbone/artifact").read_bytes() == b"graph"
    denied = containers(spec(compile_cache_uri="s3://no-such-bucket/c/"))["restore-compile-cache"]
    failed = run(denied, tmp_path, {pods.COMPILE_CACHE_DIR: tmp_path / "other"})
    assert failed.returncode == 0 and "compile cache: restore from s3://no-such-bucket/c/ failed; the server compiles anew" in failed.stderr


def wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_the_save_sidecar_uploads_while_running_and_once_more_on_sigterm(s3, tmp_path):
    cache = tmp_path / "cache"
    sidecar = containers(spec())["save-compile-cache"]
    assert sidecar["restartPolicy"] == "Always" and sidecar["volumeMounts"][0]["readOnly"] is True
    sidecar = {**sidecar, "args": [*sidecar["args"][:2], "1"]}  # a round a second, not SAVE_SECONDS
    process = run(sidecar, tmp_path, {pods.COMPILE_CACHE_DIR: cache}, background=True)
    try:
        time.sleep(1.5)  # a round with no cache directory yet: nothing to upload, nothing said
        (cache / "abc/rank_0_0").mkdir(parents=True)
        (cache / "abc/rank_0_0/first").write_bytes(b"1")
        assert wait_for(lambda: "compile-cache/chat/chat/abc/rank_0_0/first" in keys(s3, "compile-cache/"))
        (cache / "abc/rank_0_0/last").write_bytes(b"2")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert stderr == ""
    assert keys(s3, "compile-cache/") == {"compile-cache/chat/chat/abc/rank_0_0/first", "compile-cache/chat/chat/abc/rank_0_0/last"}


def test_a_failed_upload_is_said_and_the_sidecar_goes_on(s3, tmp_path):
    cache = tmp_path / "cache"
    (cache / "abc").mkdir(parents=True)
    (cache / "abc/entry").write_bytes(b"1")
    sidecar = containers(spec(compile_cache_uri="s3://no-such-bucket/c/"))["save-compile-cache"]
    log = tmp_path / "stderr"
    args = {**sidecar, "args": [*sidecar["args"][:2], "1"]}
    process = run(args, tmp_path, {pods.COMPILE_CACHE_DIR: cache}, background=True, stderr_file=log)
    said = "compile cache: upload to s3://no-such-bucket/c/ failed; retrying in 1 s"
    try:
        # Two failed rounds, however slow the machine: it goes on after a failure.
        assert wait_for(lambda: log.read_text().count(said) >= 2, seconds=60), log.read_text()
        assert process.poll() is None, "a failed upload never stops the pod"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0


def test_a_registry_models_pod_waits_for_the_marker_sync_writes_last(s3, tmp_path):
    model = spec(wait_for_weights=True, compile_cache_uri=None)
    names = [c["name"] for c in pods.init_containers(model)]
    assert names == ["wait-for-weights", "load-weights"], "it waits before it copies"
    waiter = containers(model)["wait-for-weights"]
    assert waiter["args"] == [BUCKET, "llama/" + pods.WEIGHTS_READY_MARKER, str(pods.WAIT_SECONDS)]
    log = tmp_path / "wait.log"
    process = run({**waiter, "args": [*waiter["args"][:2], "1"]}, tmp_path, {}, background=True, stderr_file=log)
    try:
        # The marker goes up only once the pod has said it waits (the AWS CLI's start alone can take seconds on a
        # loaded machine, so a fixed sleep would race it).
        deadline = time.monotonic() + 60
        while "waiting for s3://store/llama/.ml-platform-synced" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, "no marker yet: the pod waits, and says so"
            time.sleep(0.2)
        s3.put_object(Bucket=BUCKET, Key="llama/" + pods.WEIGHTS_READY_MARKER, Body=b"")
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    # the copy leaves the marker behind: the server's directory holds the weights only
    s3.put_object(Bucket=BUCKET, Key="llama/config.json", Body=b"{}")
    models = tmp_path / "models"
    models.mkdir()
    assert run(containers(model)["load-weights"], tmp_path, {pods.MODELS_DIR: models}).returncode == 0
    assert sorted(p.name for p in models.iterdir()) == ["config.json"]
