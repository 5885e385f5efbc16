"""The self-hosted registry's schema migration, run by the Job `mlflow-migrate-<version>` in the server's own
image (components/mlflow_server/manifests.py mounts this file from a ConfigMap). It imports nothing of
ml-platform: only MLflow, requests (MLflow's dependency) and the standard library.

Steps, each safe to repeat (the Job retries, and a new MLflow version runs it again). When both schemas are at
this image's heads already, 1 and 2 are skipped and the server keeps running.
1. Stop the running server: scale its Deployment to 0 and wait until no pod of it is left. MLflow does not
   support migrating under a running server (mlflow.org, "Upgrading MLflow server": stop it, migrate,
   restart). A missing Deployment (the first deploy) is nothing to stop. Pulumi then updates the Deployment to
   the new version, which sets its replicas again.
2. `mlflow db upgrade` (the tracking and model-registry schema; a no-op at head, and on an empty database it
   creates the tables) and `python -m mlflow.server.auth db upgrade` (basic auth's user store, its own Alembic
   lineage, which `mlflow db upgrade` does not touch).

Environment: MLFLOW_BACKEND_STORE_URI (tracking and auth store); STOP_NAMESPACE
and STOP_DEPLOYMENT (unset: step 1 is skipped); STOP_TIMEOUT_SECONDS (default 300). Exit 0 on success, 1 on
failure with the reason (never the database URI, which holds the password).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
API_SERVER = "https://kubernetes.default.svc"
FIELD_MANAGER = "ml-platform-migrate"


def log(message: str) -> None:
    print(f"migrate: {message}", flush=True)


class MigrationError(Exception):
    """A step failed; the message says which and why."""


def stop_server(namespace: str, deployment: str, timeout: float, api: str = API_SERVER, credentials: str = SERVICE_ACCOUNT) -> None:
    """Scale `deployment` to 0 through its scale subresource and wait until no pod its selector matches is left
    (terminating ones included). Needs get and patch on deployments/scale and list on pods in `namespace`."""
    import requests

    session = requests.Session()
    with open(f"{credentials}/token", encoding="utf-8") as token:
        session.headers["Authorization"] = f"Bearer {token.read().strip()}"
    session.verify = f"{credentials}/ca.crt"
    scale_url = f"{api}/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale"
    response = session.get(scale_url, timeout=30)
    if response.status_code == 404:
        log(f"no Deployment {namespace}/{deployment} yet: nothing to stop")
        return
    if not response.ok:
        raise MigrationError(f"reading {namespace}/{deployment}'s scale: HTTP {response.status_code} {response.text[:300]}")
    selector = response.json().get("status", {}).get("selector")
    if not selector:
        raise MigrationError(f"{namespace}/{deployment}'s scale has no selector: cannot tell when its pods are gone")
    response = session.patch(
        scale_url,
        json={"spec": {"replicas": 0}},
        headers={"Content-Type": "application/merge-patch+json"},
        params={"fieldManager": FIELD_MANAGER},
        timeout=30,
    )
    if not response.ok:
        raise MigrationError(f"scaling {namespace}/{deployment} to 0: HTTP {response.status_code} {response.text[:300]}")
    log(f"scaled {namespace}/{deployment} to 0; waiting for its pods ({selector}) to stop")
    deadline = time.monotonic() + timeout
    while True:
        response = session.get(f"{api}/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}, timeout=30)
        if not response.ok:
            raise MigrationError(f"listing {namespace}'s pods: HTTP {response.status_code} {response.text[:300]}")
        # Finished pods (an evicted one stays behind as Failed until garbage-collected) serve nothing; a terminating
        # pod is still Running and still counts.
        items = response.json().get("items", [])
        left = [item["metadata"]["name"] for item in items if (item.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        if not left:
            log("the server is stopped")
            return
        if time.monotonic() > deadline:
            raise MigrationError(f"{len(left)} server pod(s) still running after {timeout:.0f} s: {', '.join(left)}")
        time.sleep(2)


def upgrade_schemas(uri: str) -> None:
    """Both Alembic lineages to head. The URI goes in argv (both CLIs take it only there) but never into a message."""
    steps = (
        ("mlflow db upgrade", ["mlflow", "db", "upgrade", uri]),
        ("mlflow.server.auth db upgrade", [sys.executable, "-m", "mlflow.server.auth", "db", "upgrade", "--url", uri]),
    )
    for label, command in steps:
        log(f"running {label}")
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            raise MigrationError(
                f"{label} failed (exit {result.returncode}); the database is as the last snapshot left it or partly migrated"
            )


def schemas_current(uri: str) -> bool:
    """Whether both schemas are at this image's heads already (raises MigrationError, before anything is stopped,
    when the database holds a revision this image does not know: a downgrade), so a rerun of the Job (recreated after a refresh, or
    with a new image of the same version) stops nothing. Reads the Alembic version tables against the heads of
    MLflow's migration scripts, found through its `_get_alembic_config` functions (private, so any failure here
    counts as "migration needed": the server is stopped rather than migrated under)."""
    try:
        import sqlalchemy
        from alembic.script import ScriptDirectory
        from mlflow.server.auth.db.utils import _get_alembic_config as auth_alembic_config
        from mlflow.store.db.utils import _get_alembic_config as tracking_alembic_config

        tracking_script = ScriptDirectory.from_config(tracking_alembic_config(uri))
        auth_script = ScriptDirectory.from_config(auth_alembic_config(uri))
        tracking_head, auth_head = tracking_script.get_current_head(), auth_script.get_current_head()
        engine = sqlalchemy.create_engine(uri)
        try:
            with engine.connect() as connection:
                tables = set(sqlalchemy.inspect(connection).get_table_names())
                if not {"alembic_version", "alembic_version_auth"} <= tables:
                    return False
                tracking = connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalars().all()
                auth = connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version_auth")).scalars().all()
        finally:
            engine.dispose()
        for revisions, directory, label in ((tracking, tracking_script, "tracking"), (auth, auth_script, "auth")):
            for revision in revisions:
                try:
                    known = directory.get_revision(revision) is not None
                except Exception:
                    known = False
                if not known:
                    raise MigrationError(
                        f"the database's {label} schema is at revision {revision}, which this image's MLflow does not know: a newer "
                        "MLflow migrated it (a version downgrade?). Nothing was stopped; run the newer image, or restore the "
                        "snapshot taken before that migration"
                    )
        return tracking == [tracking_head] and auth == [auth_head]
    except MigrationError:
        raise
    except Exception as err:
        log(f"cannot tell the schema versions ({type(err).__name__}); migrating")
        return False


def main(environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    uri = env.get("MLFLOW_BACKEND_STORE_URI")
    if not uri:
        log("missing environment: MLFLOW_BACKEND_STORE_URI")
        return 1
    try:
        if schemas_current(uri):
            log("both schemas are at this version's heads: nothing to migrate, the server keeps running")
        else:
            if env.get("STOP_DEPLOYMENT"):
                stop_server(env.get("STOP_NAMESPACE", "mlflow"), env["STOP_DEPLOYMENT"], float(env.get("STOP_TIMEOUT_SECONDS", "300")))
            upgrade_schemas(uri)
    except MigrationError as err:
        log(f"failed: {err}")
        return 1
    except Exception as err:
        log(f"failed: {type(err).__name__}: {str(err).replace(uri, '<database uri>')[:500]}")
        return 1
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
