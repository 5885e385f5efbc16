"""The self-hosted registry's server as the plan declares it, run for real: the migration Job's script and the
Deployment's `mlflow server` arguments and environment (components/mlflow_server/manifests.py), in the MLflow,
auth and PostgreSQL packages the image carries (venv-mlflow, same pins), against a real PostgreSQL server and
moto's S3 server on loopback. Two replicas share one database."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from ml_platform.components.mlflow_server import manifests
from ml_platform.components.mlflow_server.manifests import ServerSpec
from tests.delivery.conftest import _free_port

MLFLOW_BIN = Path(os.environ.get("MLFLOW_BIN", "venv-mlflow/bin")).resolve()
DB_PASSWORD = "Pg0password0for0tests0only0000000"
ADMIN_PASSWORD = "Adm1nPasswordForTests0nly"
BUCKET = "ml-platform-test-models-123456789012"
SERVICE_HOST = f"{manifests.NAME}.{manifests.NAMESPACE}.svc.cluster.local:{manifests.PORT}"


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL not found: `make test` installs Debian's postgresql package")
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 with database and user `mlflow`, as components/registry_database.py makes
    them; stopped and removed after the module. As root, it runs as the `postgres` user (it refuses root), in a
    folder of its own outside pytest's (which only root may enter)."""
    bindir = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="ml-platform-pg-"))
    data, socket_dir = folder / "data", folder / "run"
    socket_dir.mkdir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(folder, "postgres")
        shutil.chown(socket_dir, "postgres")
    port = _free_port()
    password_file = folder / "pw"
    password_file.write_text(DB_PASSWORD)
    if as_postgres:
        shutil.chown(password_file, "postgres")
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "mlflow", "--pwfile", str(password_file), "-A", "scram-sha-256"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={socket_dir}"
    subprocess.run(
        [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"), "start"], check=True
    )
    env = {**os.environ, "PGPASSWORD": DB_PASSWORD}
    subprocess.run(
        [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "-d", "postgres", "-c", "CREATE DATABASE mlflow"],
        check=True,
        env=env,
        capture_output=True,
    )
    yield manifests.backend_store_uri("127.0.0.1", DB_PASSWORD, port=port, sslmode="disable")
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], check=False, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def run_migration(uri: str) -> subprocess.CompletedProcess:
    """The Job's container: its script with the Job's environment (STOP_DEPLOYMENT left out: no API server here)."""
    job = manifests.migration_job(spec())
    container = job["spec"]["template"]["spec"]["containers"][0]
    secret = {"backend-store-uri": uri}
    env = {item["name"]: item.get("value") or secret[item["valueFrom"]["secretKeyRef"]["key"]] for item in container["env"]}
    del env["STOP_DEPLOYMENT"]
    env["PATH"] = f"{MLFLOW_BIN}:{os.environ['PATH']}"
    command = [str(MLFLOW_BIN / "python"), str(manifests.SCRIPT)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def spec() -> ServerSpec:
    return ServerSpec(
        image="unused", mlflow_version="3.17.2", artifacts_destination=f"s3://{BUCKET}/mlflow/", region="us-west-2", workers=1
    )


class Server:
    """`mlflow server` with the Deployment's arguments and environment, on a loopback port."""

    def __init__(self, uri: str, folder: Path, moto: str):
        folder.mkdir()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ini = folder / "basic_auth.ini"
        ini.write_text(manifests.auth_config(uri, "READ"))
        secret = {"backend-store-uri": uri, "flask-secret-key": "k" * 48, "admin-password": ADMIN_PASSWORD}
        env = {**os.environ, "PATH": f"{MLFLOW_BIN}:{os.environ['PATH']}", "HOME": str(folder)}
        for item in manifests.server_env(spec()):
            env[item["name"]] = item.get("value") or secret[item["valueFrom"]["secretKeyRef"]["key"]]
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        env.update(AWS_ENDPOINT_URL=moto, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        args = [
            a.replace(manifests.PROMETHEUS_DIR, str(folder / "prometheus"))
            for a in manifests.server_args(spec())
            if not a.startswith(("--host", "--port"))
        ]
        self.log = open(folder / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(MLFLOW_BIN / "mlflow"), *args, "--host=127.0.0.1", f"--port={self.port}"],
            env=env,
            cwd=folder,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = folder / "server.log"
        self.metrics_dir = folder / "prometheus"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mlflow server exited {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"mlflow server did not answer /health:\n{self.log_path.read_text()[-3000:]}")

    def get(self, path: str, auth=None, host: str = SERVICE_HOST, **kwargs) -> requests.Response:
        return requests.get(f"{self.url}{path}", auth=auth, headers={"Host": host}, timeout=30, **kwargs)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="module")
def servers(postgres, moto_server, tmp_path_factory):
    """The migration, then two replicas on the same database (as the Deployment runs them after the Job)."""
    migrated = run_migration(postgres)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    import boto3

    boto3.client(
        "s3", region_name="us-west-2", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    folder = tmp_path_factory.mktemp("mlflow")
    replicas = [Server(postgres, folder / f"replica-{index}", moto_server) for index in range(2)]
    yield migrated, replicas
    for replica in replicas:
        replica.stop()


def test_the_job_creates_both_schemas_and_a_rerun_stops_nothing(servers, postgres):
    migrated, _ = servers
    assert "running mlflow db upgrade" in migrated.stdout and "running mlflow.server.auth db upgrade" in migrated.stdout
    assert DB_PASSWORD not in migrated.stdout + migrated.stderr, "the database URI never reaches the log"
    again = run_migration(postgres)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to migrate, the server keeps running" in again.stdout


def test_the_server_signs_users_in_and_never_knows_a_default_password(servers):
    _, (server, _) = servers
    assert server.get("/health").status_code == 200, "probes need no sign-in"
    search = "/api/2.0/mlflow/registered-models/search"
    assert server.get(search).status_code == 401
    assert server.get(search, auth=("admin", "password1234")).status_code == 401
    assert server.get(search, auth=("admin", ADMIN_PASSWORD)).status_code == 200


def test_only_the_services_names_are_allowed_hosts(servers):
    _, (server, _) = servers
    search = "/api/2.0/mlflow/registered-models/search"
    for host in (SERVICE_HOST, f"{manifests.NAME}:{manifests.PORT}", f"localhost:{server.port}"):
        assert server.get(search, auth=("admin", ADMIN_PASSWORD), host=host).status_code == 200, host
    assert server.get(search, auth=("admin", ADMIN_PASSWORD), host="evil.example.com").status_code == 403


def test_prometheus_scrapes_the_sidecar_since_mlflows_own_metrics_are_for_admins(servers):
    _, (server, _) = servers
    server.get("/api/2.0/mlflow/experiments/search", auth=("admin", ADMIN_PASSWORD), params={"max_results": 1})
    requests.post(
        f"{server.url}/api/2.0/mlflow/users/create",
        json={"username": "viewer", "password": "ViewerPassword123"},
        auth=("admin", ADMIN_PASSWORD),
        headers={"Host": SERVICE_HOST},
        timeout=30,
    )
    assert server.get("/metrics").status_code == 401
    assert server.get("/metrics", auth=("viewer", "ViewerPassword123")).status_code == 403, "fail-closed: admins only"
    sidecar = manifests.metrics_sidecar(spec())
    port = _free_port()
    env = {item["name"]: item["value"] for item in sidecar["env"]} | {
        "PROMETHEUS_MULTIPROC_DIR": str(server.metrics_dir),
        "METRICS_PORT": str(port),
    }
    process = subprocess.Popen([str(MLFLOW_BIN / "python"), *sidecar["command"][1:]], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, "the sidecar did not start"
                time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert metrics.status_code == 200
    assert 'mlflow_http_request_total{method="GET",status="200"}' in metrics.text
    assert "mlflow_http_request_duration_seconds_bucket" in metrics.text


def test_replicas_share_users_and_records_and_artifacts_go_to_the_store(servers, moto_server):
    _, (first, second) = servers
    admin = ("admin", ADMIN_PASSWORD)
    created = requests.post(
        f"{first.url}/api/2.0/mlflow/users/create",
        json={"username": "alice", "password": "AlicePassword123"},
        auth=admin,
        headers={"Host": SERVICE_HOST},
        timeout=30,
    )
    assert created.status_code == 200, created.text
    assert second.get("/api/2.0/mlflow/registered-models/search", auth=("alice", "AlicePassword123")).status_code == 200
    model = requests.post(
        f"{second.url}/api/2.0/mlflow/registered-models/create",
        json={"name": "chat-llm"},
        auth=admin,
        headers={"Host": SERVICE_HOST},
        timeout=30,
    )
    assert model.status_code == 200, model.text
    assert (
        first.get("/api/2.0/mlflow/registered-models/get", auth=admin, params={"name": "chat-llm"}).json()["registered_model"]["name"]
        == "chat-llm"
    )
    upload = requests.put(
        f"{first.url}/api/2.0/mlflow-artifacts/artifacts/0/run/model/weights.bin",
        data=b"weights",
        auth=admin,
        headers={"Host": SERVICE_HOST},
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    import boto3

    s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing")
    assert s3.get_object(Bucket=BUCKET, Key="mlflow/0/run/model/weights.bin")["Body"].read() == b"weights"


def test_a_database_newer_than_the_image_is_refused_before_anything_stops(servers, postgres):
    """A version moved back: the Job must fail before it stops the server, naming the revision it does not know."""

    def set_revision(revision: str) -> str:
        code = (
            "import sqlalchemy, sys\n"
            "engine = sqlalchemy.create_engine(sys.argv[1])\n"
            "with engine.begin() as c:\n"
            "    old = c.execute(sqlalchemy.text('SELECT version_num FROM alembic_version')).scalar()\n"
            "    c.execute(sqlalchemy.text('UPDATE alembic_version SET version_num = :r'), {'r': sys.argv[2]})\n"
            "print(old)\n"
        )
        done = subprocess.run([str(MLFLOW_BIN / "python"), "-c", code, postgres, revision], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    current = set_revision("ffffffffffff")
    try:
        refused = run_migration(postgres)
    finally:
        set_revision(current)
    assert refused.returncode == 1
    assert "revision ffffffffffff, which this image's MLflow does not know" in refused.stdout and "Nothing was stopped" in refused.stdout
    assert "running mlflow db upgrade" not in refused.stdout
