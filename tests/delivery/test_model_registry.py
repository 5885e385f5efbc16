"""Model versions from a registry, end to end against a real MLflow tracking server (venv-mlflow/, SQLite
backend) started here on 127.0.0.1, with the artifacts in moto's S3 server: register versions by reference to
their S3 location, set an alias, `models lock`, `models verify`, move the alias, verify again, `models sync`,
then plan the locked stack offline. Config mistakes exit 2 naming the key."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from ml_platform.infra import cli, config
from ml_platform.infra.model_registry import artifacts, lockfile
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files
from tests.delivery.conftest import _free_port

ROOT = Path(__file__).resolve().parents[2]
SOURCE_BUCKET = "team-models"
ACCOUNT = "123456789012"  # moto's
STORE = f"ml-platform-dev-models-{ACCOUNT}"
PROXIED = f"s3://{SOURCE_BUCKET}/proxied"


def _mlflow_binary() -> str:
    directory = os.environ.get("MLFLOW_BIN") or str(ROOT / "venv-mlflow" / "bin")
    binary = Path(directory) / "mlflow"
    if not binary.exists():
        pytest.fail(f"{binary} not found: run through `make test` (installs venv-mlflow/ from requirements-mlflow.txt)")
    return str(binary)


def _start_mlflow(moto_server: str, work: Path, artifacts: list[str]):
    """A real MLflow tracking server on 127.0.0.1 (SQLite backend, artifacts in moto's S3); yields its URL and
    stops it afterwards."""
    port = _free_port()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "MLFLOW_S3_ENDPOINT_URL": moto_server,
    }
    command = [
        _mlflow_binary(),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{work / 'mlflow.db'}",
        *artifacts,
        "--workers",
        "1",
    ]
    log = (work / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the MLflow server did not start: {(work / 'server.log').read_text()[-2000:]}")
        time.sleep(0.3)
    yield url
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="session")
def mlflow_server(moto_server, tmp_path_factory):
    """The registry as the README asks teams to run it: clients write artifacts to S3 themselves."""
    artifacts = ["--default-artifact-root", f"s3://{SOURCE_BUCKET}/mlflow", "--no-serve-artifacts"]
    yield from _start_mlflow(moto_server, tmp_path_factory.mktemp("mlflow"), artifacts)


@pytest.fixture(scope="session")
def proxied_mlflow_server(moto_server, tmp_path_factory):
    """MLflow's default setup: the server proxies artifacts (mlflow-artifacts:/) into its destination in S3."""
    yield from _start_mlflow(moto_server, tmp_path_factory.mktemp("mlflow-proxied"), ["--artifacts-destination", PROXIED])


class Registry:
    """What a data scientist does in MLflow, through its REST API: register versions, point aliases."""

    def __init__(self, url: str):
        self.api = f"{url}/api/2.0/mlflow"

    def call(self, path: str, body: dict) -> dict:
        response = requests.post(f"{self.api}/{path}", json=body, timeout=30)
        assert response.ok, response.text
        return response.json()

    def register(self, name: str, source: str) -> str:
        return self.call("model-versions/create", {"name": name, "source": source})["model_version"]["version"]

    def alias(self, name: str, alias: str, version: str) -> None:
        self.call("registered-models/alias", {"name": name, "alias": alias, "version": version})


@pytest.fixture
def registry(mlflow_server, aws_server):
    """A fresh registered model (a unique name: the server lives for the session) with two versions whose
    weights were uploaded to S3 and registered by reference, `champion` on version 1."""
    s3 = aws_server("s3", "us-west-2")
    for bucket in (SOURCE_BUCKET, STORE):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    # The store as the ModelStore component makes it: SSE-KMS by default, versioned (sync checks both).
    key = aws_server("kms", "us-west-2").create_key()["KeyMetadata"]["Arn"]
    default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    s3.put_bucket_encryption(Bucket=STORE, ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": default}]})
    s3.put_bucket_versioning(Bucket=STORE, VersioningConfiguration={"Status": "Enabled"})
    name = f"chat-llm-{uuid.uuid4().hex[:8]}"
    for version in ("v1", "v2"):
        for key, body in {"config.json": b'{"v": "%s"}' % version.encode(), "model.safetensors": os.urandom(2**20)}.items():
            s3.put_object(Bucket=SOURCE_BUCKET, Key=f"weights/{name}/{version}/{key}", Body=body)
    client = Registry(mlflow_server)
    client.call("registered-models/create", {"name": name})
    first = client.register(name, f"s3://{SOURCE_BUCKET}/weights/{name}/v1/")
    second = client.register(name, f"s3://{SOURCE_BUCKET}/weights/{name}/v2/")
    client.alias(name, "champion", first)
    return {"client": client, "name": name, "versions": (first, second), "s3": s3, "url": mlflow_server}


def project(tmp_path: Path, url: str, name: str, stack: str = "dev", **registry) -> Path:
    """A project directory with the repository's Pulumi.yaml and a copy of its dev stack whose `chat` names
    the registered model by alias (and `modelRegistry` points at the test server)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    settings = document["config"]
    chat = settings["ml-platform:models"]["chat"]
    chat["source"] = {"registry": {"model": name, "alias": "champion"}, "sizeGiB": 1}
    settings["ml-platform:modelRegistry"] = {"mode": "external", "trackingUri": url, **registry}
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def test_lock_verify_move_verify_sync_and_plan(registry, tmp_path, capsys):
    name, (first, second) = registry["name"], registry["versions"]
    where = project(tmp_path, registry["url"], name)
    args = ["--stack", "dev", "--project-dir", str(where)]

    assert cli.main(["models", "lock", *args]) == 0
    assert f"chat: {name}@champion -> version {first} (2 files" in capsys.readouterr().out
    lock = lockfile.read(where / "models.dev.lock.yaml")
    entry = lock.models["chat"]
    assert (lock.stack, lock.trackingUri, entry.version, entry.artifactUri) == (
        "dev",
        registry["url"],
        first,
        f"s3://{SOURCE_BUCKET}/weights/{name}/v1/",
    )
    listing = artifacts.list_files(registry["s3"], entry.artifactUri)
    assert [f.key for f in entry.files] == ["config.json", "model.safetensors"] and entry.fingerprint == artifacts.fingerprint(listing)
    assert not list(where.glob("Pulumi.models*")), "the lock file is never named like a stack file"
    assert stack_files.stack_names(where) == ["dev"]

    assert cli.main(["models", "verify", *args]) == 0
    registry["client"].alias(name, "champion", second)
    capsys.readouterr()
    assert cli.main(["models", "verify", *args]) == 1
    assert f"moved: chat: {name}@champion is version {second}; the lock has {first}" in capsys.readouterr().out

    # The lock still serves version 1 until it is locked again and reviewed.
    assert cli.main(["models", "sync", *args]) == 0
    prefix = f"registry/{name}/{first}/{entry.fingerprint.removeprefix('sha256:')[:12]}/"
    assert entry.prefix == prefix
    copied = registry["s3"].list_objects_v2(Bucket=STORE, Prefix=prefix)["Contents"]
    assert sorted(o["Key"] for o in copied) == [prefix + ".ml-platform-synced", prefix + "config.json", prefix + "model.safetensors"]
    head = registry["s3"].head_object(Bucket=STORE, Key=prefix + "config.json")
    assert head["Metadata"][artifacts.SOURCE_ETAG] == entry.files[0].etag and head["ServerSideEncryption"] == "aws:kms"
    registry["s3"].head_object(Bucket=STORE, Key=prefix + ".ml-platform-synced")  # what the pods wait for, written last
    capsys.readouterr()
    assert cli.main(["models", "sync", *args]) == 0
    assert "copied 0, present 2" in capsys.readouterr().out, "a second sync copies nothing"

    plan = offline_plan.run("dev", stack_files.read_stack("dev", where))
    deployment = next(r for r in plan.resources if r["type"] == "kubernetes:apps/v1:Deployment" and r["name"] == "model-chat-deployment")
    (loader,) = [c for c in deployment["inputs"]["spec"]["template"]["spec"]["initContainers"] if c["name"] == "load-weights"]
    assert loader["args"][1].endswith(f"/{prefix}")
    policy = next(r for r in plan.resources if r["type"] == "aws:iam/rolePolicy:RolePolicy" and r["name"] == "model-chat-model-reader")
    statements = yaml.safe_load(policy["inputs"]["policy"])["Statement"]
    reads = [s["Resource"] for s in statements if s["Sid"] == "ReadModelObjects"]
    assert reads == [f"arn:aws:s3:::{STORE}/{prefix}*"], "the model reads exactly its locked version's prefix"

    # Promotion: lock again, and the plan serves version 2.
    assert cli.main(["models", "lock", *args]) == 0
    assert f"version {second}" in capsys.readouterr().out and lockfile.read(where / "models.dev.lock.yaml").models["chat"].version == second
    assert cli.main(["models", "verify", *args]) == 0


def test_sync_refuses_artifacts_changed_since_the_lock(registry, tmp_path, capsys):
    name = registry["name"]
    where = project(tmp_path, registry["url"], name)
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "lock", *args]) == 0
    registry["s3"].put_object(Bucket=SOURCE_BUCKET, Key=f"weights/{name}/v1/model.safetensors", Body=b"retrained in place")
    capsys.readouterr()
    assert cli.main(["models", "sync", *args]) == 1
    err = capsys.readouterr().err
    assert "model.safetensors: changed (size or ETag)" in err and "not copied" in err
    assert "Contents" not in registry["s3"].list_objects_v2(Bucket=STORE, Prefix=f"registry/{name}/"), "nothing half-copied"


def test_registry_mistakes_exit_2_naming_what_is_wrong(registry, tmp_path, capsys):
    name = registry["name"]
    where = project(tmp_path, registry["url"], name)
    args = ["--stack", "dev", "--project-dir", str(where)]
    # no lock yet: the plan and verify say which command writes it
    assert cli.main(["plan", *args]) == 2
    assert "models.chat.source.registry: no lock file models.dev.lock.yaml: run `python -m infra models lock --stack dev`" in (
        capsys.readouterr().err
    )
    assert cli.main(["models", "verify", *args]) == 2
    # an alias the registry does not have
    document = yaml.safe_load((where / "Pulumi.dev.yaml").read_text())
    document["config"]["ml-platform:models"]["chat"]["source"]["registry"]["alias"] = "nosuch"
    (where / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    capsys.readouterr()
    assert cli.main(["models", "lock", *args]) == 2
    assert f"models.chat ({name}@nosuch):" in capsys.readouterr().err and not (where / "models.dev.lock.yaml").exists()
    # an unreachable registry
    assert cli.main(["models", "lock", *args, "--tracking-uri", f"http://127.0.0.1:{_free_port()}"]) == 2
    assert "cannot reach the registry" in capsys.readouterr().err


def test_basic_auth_reads_mlflows_own_variables(registry, tmp_path, capsys, monkeypatch):
    where = project(tmp_path, registry["url"], registry["name"], auth={"type": "basic", "username": "ci"})
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert cli.main(["models", "lock", "--stack", "dev", "--project-dir", str(where)]) == 2
    err = capsys.readouterr().err
    assert "set MLFLOW_TRACKING_USERNAME (or modelRegistry.auth.username) and MLFLOW_TRACKING_PASSWORD" in err
    assert "pulumi config get --path modelRegistry.auth.password --stack dev" in err


def test_a_lock_of_another_stack_and_a_missing_entry_are_config_errors(registry, tmp_path, capsys):
    name = registry["name"]
    where = project(tmp_path, registry["url"], name)
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "lock", *args]) == 0
    file = where / "models.dev.lock.yaml"
    text = file.read_text()
    file.write_text(text.replace("stack: dev", "stack: staging"))
    capsys.readouterr()
    assert cli.main(["plan", *args]) == 2
    assert "models.dev.lock.yaml: stack: written for stack 'staging', not 'dev'" in capsys.readouterr().err
    document = yaml.safe_load(text.split("\n", 4)[4])
    document["models"] = {}
    file.write_text(yaml.safe_dump(document))
    assert cli.main(["plan", *args]) == 2
    assert "models.chat.source.registry: no entry in models.dev.lock.yaml" in capsys.readouterr().err


def test_a_registry_source_without_a_registry_is_a_config_error(tmp_path, capsys):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["ml-platform:models"]["chat"]["source"] = {"registry": {"model": "chat-llm", "alias": "champion"}}
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    assert cli.main(["plan", "--stack", "dev", "--project-dir", str(tmp_path)]) == 2
    assert "models.chat.source.registry: names a registered model, but the stack has no modelRegistry" in capsys.readouterr().err


def test_previews_serve_their_base_stacks_lock_and_reproduce_copies_it(registry, tmp_path, capsys, plans):
    import json

    name, (first, _) = registry["name"], registry["versions"]
    where = project(tmp_path, registry["url"], name)
    shutil.copy(ROOT / "Pulumi.pr.yaml", where / "Pulumi.pr.yaml")
    assert cli.main(["models", "lock", "--stack", "dev", "--project-dir", str(where)]) == 0
    assert cli.main(["preview-stack", "create", "--pr", "7", "--offline", "--project-dir", str(where)]) == 0
    assert not (where / "models.pr-7.lock.yaml").exists(), "a preview has no lock of its own"
    plan = offline_plan.run("pr-7", stack_files.read_stack("pr-7", where))
    (deployment,) = [r for r in plan.resources if r["type"] == "kubernetes:apps/v1:Deployment" and r["name"] == "model-chat-deployment"]
    (loader,) = [c for c in deployment["inputs"]["spec"]["template"]["spec"]["initContainers"] if c["name"] == "load-weights"]
    entry = lockfile.read(where / "models.dev.lock.yaml").models["chat"]
    assert loader["args"][1].endswith(f"/{entry.prefix}") and f"/registry/{name}/{first}/" in loader["args"][1], "the base's version"
    capsys.readouterr()
    assert cli.main(["models", "lock", "--stack", "pr-7", "--project-dir", str(where)]) == 2
    assert "serves its base stack's lock; lock 'dev'" in capsys.readouterr().err

    # reproduce: the copy gets dev's lock with its versions, under its own name
    outputs = where / "outputs.json"
    outputs.write_text(json.dumps(plans["dev"].outputs))
    assert cli.main(["reproduce", "--from", "dev", "--as", "repro-1", "--outputs", str(outputs), "--project-dir", str(where)]) == 0
    copy = lockfile.read(where / "models.repro-1.lock.yaml")
    source = lockfile.read(where / "models.dev.lock.yaml")
    entry = source.models["chat"]
    assert copy.stack == "repro-1" and copy.models["chat"].model_copy(update={"mirrors": []}) == entry
    assert copy.models["chat"].mirrors == [f"s3://{STORE}/{entry.prefix}"], "dev's store holds the same files"
    assert "models sync --stack repro-1" in capsys.readouterr().out

    # dev synced the version; the registry's files are cleaned up; the copy still gets them, from dev's store
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "sync", *args]) == 0
    s3 = registry["s3"]
    for item in s3.list_objects_v2(Bucket=SOURCE_BUCKET, Prefix=f"weights/{name}/v1/")["Contents"]:
        s3.delete_object(Bucket=SOURCE_BUCKET, Key=item["Key"])
    s3.create_bucket(Bucket="copy-store", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    capsys.readouterr()
    repro = ["--stack", "repro-1", "--project-dir", str(where), "--bucket", "copy-store"]
    assert cli.main(["models", "sync", *repro]) == 0, capsys.readouterr()
    assert "copied 2, present 0" in capsys.readouterr().out
    assert {o["Key"] for o in s3.list_objects_v2(Bucket="copy-store")["Contents"]} >= {entry.prefix + f.key for f in entry.files}


def test_a_version_made_again_with_other_files_is_caught_and_lands_apart(registry, tmp_path, capsys):
    name, (first, _) = registry["name"], registry["versions"]
    where = project(tmp_path, registry["url"], name)
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "lock", *args]) == 0
    assert cli.main(["models", "sync", *args]) == 0
    old = lockfile.read(where / "models.dev.lock.yaml").models["chat"]
    # The registered model is deleted and made again: its version 1 now holds other files.
    requests.delete(f"{registry['url']}/api/2.0/mlflow/registered-models/delete", json={"name": name}, timeout=30).raise_for_status()
    registry["client"].call("registered-models/create", {"name": name})
    again = registry["client"].register(name, f"s3://{SOURCE_BUCKET}/weights/{name}/v2/")
    registry["client"].alias(name, "champion", again)
    assert again == first
    capsys.readouterr()
    assert cli.main(["models", "verify", *args]) == 1
    assert f"{name} version {first} is now at s3://{SOURCE_BUCKET}/weights/{name}/v2/" in capsys.readouterr().out
    assert cli.main(["models", "lock", *args]) == 0
    assert "same version, other files" in capsys.readouterr().out
    new = lockfile.read(where / "models.dev.lock.yaml").models["chat"]
    assert new.version == old.version and new.prefix != old.prefix, "other files never land among the old ones"
    assert cli.main(["models", "sync", *args]) == 0
    keys = {o["Key"] for o in registry["s3"].list_objects_v2(Bucket=STORE, Prefix=f"registry/{name}/")["Contents"]}
    assert {k.rsplit("/", 1)[0] + "/" for k in keys} == {old.prefix, new.prefix}


def test_lock_records_the_configured_registry_and_is_stable(registry, tmp_path, capsys):
    where = project(tmp_path, registry["url"], registry["name"])
    args = ["--stack", "dev", "--project-dir", str(where)]
    tunnel = registry["url"].replace("127.0.0.1", "localhost")
    assert cli.main(["models", "lock", *args, "--tracking-uri", tunnel]) == 0
    file = where / "models.dev.lock.yaml"
    assert lockfile.read(file).trackingUri == registry["url"], "the configured URI, whichever URL reached the registry"
    assert cli.main(["plan", *args]) == 0
    before = file.stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main(["models", "lock", *args]) == 0
    assert "is current: nothing changed" in capsys.readouterr().out and file.stat().st_mtime_ns == before
    assert file.stat().st_mode & 0o044, "readable like any file the user writes"
    file.write_text("<<<<<<< HEAD\nmodels: {}\n=======\n")  # a merge conflict
    assert cli.main(["models", "lock", *args]) == 0, "lock repairs a lock it cannot read"
    assert lockfile.read(file).models["chat"].version == registry["versions"][0]


def test_sync_needs_no_source_once_the_store_has_everything_and_says_when_the_store_is_missing(registry, tmp_path, capsys):
    name = registry["name"]
    where = project(tmp_path, registry["url"], name)
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "lock", *args]) == 0
    assert cli.main(["models", "sync", *args]) == 0
    s3 = registry["s3"]
    # A bucket given by name is the user's to judge; the stack's own store must be the component's (SSE-KMS, versioned).
    s3.create_bucket(Bucket="plain-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    capsys.readouterr()
    assert cli.main(["models", "sync", *args, "--bucket", "plain-bucket", "--dry-run"]) == 0
    assert "would copy 2, present 0" in capsys.readouterr().out
    for item in s3.list_objects_v2(Bucket=SOURCE_BUCKET, Prefix=f"weights/{name}/v1/")["Contents"]:
        s3.delete_object(Bucket=SOURCE_BUCKET, Key=item["Key"])
    capsys.readouterr()
    assert cli.main(["models", "sync", *args]) == 0, "the source was cleaned up after its copy: deploys go on"
    assert "copied 0, present 2" in capsys.readouterr().out
    assert cli.main(["models", "verify", *args]) == 0
    assert "no files left at" in capsys.readouterr().out
    s3.delete_bucket_encryption(Bucket=STORE)
    capsys.readouterr()
    assert cli.main(["models", "sync", *args]) == 2
    assert f"the model store s3://{STORE} is not yet encrypted with the stack's key by default" in capsys.readouterr().err
    assert cli.main(["models", "sync", *args, "--bucket", "not-created-yet", "--dry-run"]) == 2
    assert "the model store s3://not-created-yet does not exist" in capsys.readouterr().err


def test_a_hand_edited_fingerprint_is_refused(registry, tmp_path, capsys):
    where = project(tmp_path, registry["url"], registry["name"])
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "lock", *args]) == 0
    file = where / "models.dev.lock.yaml"
    entry = lockfile.read(file).models["chat"]
    file.write_text(file.read_text().replace(entry.fingerprint, "sha256:" + "0" * 64))
    capsys.readouterr()
    assert cli.main(["plan", *args]) == 2, "the fingerprint names the prefix the model may read"
    assert "the fingerprint is not its files'" in capsys.readouterr().err
    file.write_text(file.read_text().replace("sha256:" + "0" * 64, "sha256:*"))
    assert cli.main(["plan", *args]) == 2
    assert "String should match pattern" in capsys.readouterr().err


def test_a_run_artifact_source_and_a_removed_alias(registry, tmp_path, capsys):
    name = registry["name"]
    client = registry["client"]
    run = client.call("runs/create", {"experiment_id": "0"})["run"]["info"]
    bucket, _, key = run["artifact_uri"].removeprefix("s3://").partition("/")
    registry["s3"].put_object(Bucket=bucket, Key=f"{key}/model/weights.bin", Body=b"w" * 1000)
    version = client.call("model-versions/create", {"name": name, "source": f"runs:/{run['run_id']}/model", "run_id": run["run_id"]})
    client.alias(name, "champion", version["model_version"]["version"])
    where = project(tmp_path, registry["url"], name)
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "lock", *args]) == 0
    entry = lockfile.read(where / "models.dev.lock.yaml").models["chat"]
    assert entry.artifactUri == f"{run['artifact_uri']}/model" and entry.runId == run["run_id"]
    assert [f.key for f in entry.files] == ["weights.bin"]
    requests.delete(
        f"{registry['url']}/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "champion"}, timeout=30
    ).raise_for_status()
    capsys.readouterr()
    assert cli.main(["models", "verify", *args]) == 1, "a removed alias is the registry moving away from the lock"
    assert "chat: gone from the registry" in capsys.readouterr().out


def test_prod_without_a_lock_entry_is_a_config_error(tmp_path, capsys):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    settings = document["config"]
    settings["ml-platform:modelRegistry"] = {"mode": "external", "trackingUri": "https://mlflow.internal.example.com"}
    settings["ml-platform:models"]["chat"]["source"] = {"registry": {"model": "chat-llm", "alias": "champion"}}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    lock = lockfile.LockFile(stack="prod", trackingUri="https://mlflow.internal.example.com", models={})
    lockfile.write(lockfile.path(tmp_path, "prod"), lock)
    assert cli.main(["plan", "--stack", "prod", "--project-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "models.chat.source.registry: no entry in models.prod.lock.yaml: run `python -m infra models lock --stack prod`" in err
    assert "Traceback" not in err


def test_sagemaker_mode_signs_its_requests_and_locks_against_the_stacks_server(registry, tmp_path, capsys, monkeypatch):
    """SageMaker's endpoint is not reachable here: --tracking-uri sends the same signed requests to the real
    MLflow server (which ignores the signature), so the lock flow runs as it would against SageMaker."""
    where = project(tmp_path, registry["url"], registry["name"])
    document = yaml.safe_load((where / "Pulumi.dev.yaml").read_text())
    document["config"]["ml-platform:modelRegistry"] = {"mode": "sagemaker", "sagemaker": {"mlflowVersion": "3.0"}}
    (where / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    seen = []
    original = requests.Session.send

    def send(session, request, **kwargs):
        seen.append(request.headers)
        return original(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "lock", *args, "--tracking-uri", registry["url"]]) == 0
    assert lockfile.read(where / "models.dev.lock.yaml").trackingUri == "sagemaker:ml-platform-dev"
    assert seen and all("sagemaker-mlflow/aws4_request" in headers["Authorization"] for headers in seen)
    assert {headers["x-mlflow-sm-tracking-server-arn"] for headers in seen} == {
        "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/ml-platform-dev"
    }
    assert cli.main(["plan", *args]) == 0


def test_a_proxying_registrys_artifacts_are_read_at_its_destination(registry, proxied_mlflow_server, tmp_path, capsys):
    client = Registry(proxied_mlflow_server)
    name = registry["name"]
    client.call("registered-models/create", {"name": name})
    run = client.call("runs/create", {"experiment_id": "0"})["run"]["info"]
    assert run["artifact_uri"].startswith("mlflow-artifacts:")
    # A data scientist logs the model through the server, which writes it into its destination in S3.
    path = run["artifact_uri"].split(":", 1)[1].lstrip("/")
    upload = f"{proxied_mlflow_server}/api/2.0/mlflow-artifacts/artifacts/{path}/model/weights.bin"
    requests.put(upload, data=b"w" * 2048, timeout=30).raise_for_status()
    version = client.call("model-versions/create", {"name": name, "source": f"runs:/{run['run_id']}/model", "run_id": run["run_id"]})
    client.alias(name, "champion", version["model_version"]["version"])
    where = project(tmp_path, proxied_mlflow_server, name)
    args = ["--stack", "dev", "--project-dir", str(where)]
    assert cli.main(["models", "lock", *args]) == 2
    assert "the registry proxies artifacts; set modelRegistry.artifactsDestination" in capsys.readouterr().err
    document = yaml.safe_load((where / "Pulumi.dev.yaml").read_text())
    document["config"]["ml-platform:modelRegistry"]["artifactsDestination"] = PROXIED
    (where / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    assert cli.main(["models", "lock", *args]) == 0
    entry = lockfile.read(where / "models.dev.lock.yaml").models["chat"]
    assert entry.artifactUri == f"{PROXIED}/{path}/model" and [(f.key, f.size) for f in entry.files] == [("weights.bin", 2048)]
    assert cli.main(["models", "sync", *args]) == 0


def test_a_self_hosted_registry_is_reached_at_its_service_with_mlflow_users(aws_server, tmp_path, capsys, monkeypatch):
    """selfHosted: no URL or credentials in the stack file. The commands sign in with MLflow's variables, reach the
    Service (or the ALB host, or --tracking-uri), and read proxied artifacts from mlflow/ of the server stack's store."""
    from ml_platform.components.mlflow_server.manifests import service_url
    from ml_platform.infra.model_registry import commands

    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    document = yaml.safe_load((ROOT / "Pulumi.staging.yaml").read_text())
    document["config"]["ml-platform:models"]["chat"]["source"] = {"registry": {"model": "chat-llm", "alias": "champion"}, "sizeGiB": 15}
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(document))
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["models", "lock", "--stack", "staging", "--project-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in err and "modelRegistryAdminPassword" in err
    assert "Traceback" not in err

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ci")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-long-password")
    cfg = config.parse(stack_files.read_stack("staging", tmp_path).values, "staging")
    client = commands._registry(cfg, None)
    account = aws_server("sts", "us-west-2").get_caller_identity()["Account"]
    assert client.api == f"{service_url()}/api/2.0/mlflow" and client.session.auth == ("ci", "a-long-password")
    assert client.artifacts_destination == f"s3://ml-platform-staging-models-{account}/mlflow"
    assert commands._registry(cfg, "http://localhost:5000/").api == "http://localhost:5000/api/2.0/mlflow"
