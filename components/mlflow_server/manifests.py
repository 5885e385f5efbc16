"""The self-hosted MLflow tracking server's Kubernetes objects, as plain data: namespace, service accounts,
the Deployment, Service, PodDisruptionBudget, NetworkPolicy, optional internal ALB Ingress, ServiceMonitor, and
the schema migration Job with the RBAC it needs to stop the server. Facts about MLflow 3.17's server are from its
source and were tried against it (tests/behaviour/test_mlflow_server.py runs this Deployment's command and
environment against a real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ml_platform.components.pod_defaults import container_security, ingress_policy, pod_security, pull_policy

NAMESPACE = "mlflow"
NAME = "mlflow"
PORT = 5000
"""MLflow's default port; the Service keeps it, so in-cluster clients use `…:5000`."""
METRICS_PORT = 9100
"""The metrics sidecar's port: MLflow's own /metrics sits behind basic auth and, with MLflow 3.17's fail-closed
default (MLFLOW_BASIC_AUTH_FAIL_CLOSED), answers admins only; Prometheus should hold no registry admin."""
CREDENTIALS_SECRET = "mlflow-credentials"
"""Backend store URI, auth config, Flask secret key, the admin's first password."""
ADMIN_USERNAME = "admin"
MIGRATE_NAME = "mlflow-migrate"
AUTH_CONFIG_PATH = "/etc/mlflow/basic_auth.ini"
PROMETHEUS_DIR = "/var/run/mlflow-metrics"
"""prometheus_client's multiprocess directory: the server's workers write their counters there (--expose-prometheus),
the metrics sidecar reads and serves them."""
METRICS_SERVER = (
    "import os, time\n"
    "from prometheus_client import CollectorRegistry, start_http_server\n"
    "from prometheus_client.multiprocess import MultiProcessCollector\n"
    "registry = CollectorRegistry()\n"
    "MultiProcessCollector(registry, path=os.environ['PROMETHEUS_MULTIPROC_DIR'])\n"
    "start_http_server(int(os.environ['METRICS_PORT']), registry=registry)\n"
    "while True:\n"
    "    time.sleep(3600)\n"
)
"""The sidecar's program (prometheus_client, in the server's image): the workers' files aggregated, as MLflow's
own /metrics would serve them, on METRICS_PORT without sign-in (the NetworkPolicy admits Prometheus only)."""
DRAIN_SECONDS = 5
MIGRATION_DEADLINE_SECONDS = 1800
SCRIPT = Path(__file__).with_name("migrate.py")
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "model-registry", "app.kubernetes.io/part-of": "ml-platform"}


@dataclass(frozen=True)
class ServerSpec:
    """The server in Kubernetes' terms. Build one with program-side values (config, bucket, region)."""

    image: str
    """Full image reference (a digest in prod)."""
    mlflow_version: str
    """The image's MLflow release: names the migration Job, and a change restarts the server after it."""
    artifacts_destination: str
    """`s3://<store>/mlflow/`: the server proxies artifacts there (clients need no S3 access)."""
    region: str
    replicas: int = 1
    workers: int = 2
    cpu: str = "1"
    memory: str = "2Gi"
    password_generation: int = 1
    """Changes restart the server, which then reads the new database password."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    monitoring_namespace: str = "monitoring"
    allowed_namespaces: Sequence[str] = ()
    """Namespaces whose pods may call the server (besides Prometheus'; the ALB's when ingress_host is set)."""
    ingress_host: str | None = None
    certificate_arn: str | None = None
    vpc_cidrs: Sequence[str] = ()
    """With an ingress: where the ALB's nodes reach pod IPs from."""
    database_pauses: bool = False
    """The database may pause when idle (minCapacity 0): the server then holds no idle connections."""


def service_url() -> str:
    """How pods in the cluster reach the server."""
    return f"http://{NAME}.{NAMESPACE}.svc.cluster.local:{PORT}"


def allowed_hosts(spec: ServerSpec) -> list[str]:
    """MLflow's --allowed-hosts (MLFLOW_SERVER_ALLOWED_HOSTS). Setting it replaces MLflow's default list (localhost
    and private IPs), and a Host header must match exactly, port included (mlflow/server/security_utils.py): every
    form of the Service's name with :5000, localhost for `kubectl port-forward`, and the ALB's host (TLS on 443:
    no port). /health is exempt, so probes and ALB health checks pass whatever they send."""
    names = [f"{NAME}.{NAMESPACE}.svc.cluster.local", f"{NAME}.{NAMESPACE}.svc", f"{NAME}.{NAMESPACE}", NAME]
    hosts = [f"{name}:{PORT}" for name in names] + ["localhost:*", "127.0.0.1:*"]
    if spec.ingress_host:
        hosts.append(spec.ingress_host)
    return hosts


def backend_store_uri(
    host: str, password: str, port: int = 5432, database: str = "mlflow", username: str = "mlflow", sslmode: str = "require"
) -> str:
    """SQLAlchemy URI with psycopg 3 named explicitly (SQLAlchemy 2.0 would pick psycopg2 for a bare
    `postgresql://`, which the image does not carry). `sslmode=require`: RDS accepts TLS, and nothing else should
    cross the VPC in the clear. The password is letters and digits only (components/registry_database.py)."""
    return f"postgresql+psycopg://{username}:{password}@{host}:{port}/{database}?sslmode={sslmode}"


def auth_config(database_uri: str, default_permission: str) -> str:
    """basic_auth.ini for MLflow's basic-auth app: its user store in the same PostgreSQL database (its tables and its
    Alembic table `alembic_version_auth` do not clash with the tracking ones), so every replica shares users.
    No admin_password: the first one comes from MLFLOW_AUTH_ADMIN_PASSWORD (MLflow 3.16.1+ ships no default and
    refuses `password1234`). Cache TTLs stay 0: a changed password or grant holds on every replica at once."""
    return (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {ADMIN_USERNAME}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
    )


# checkov's CKV_K8S_35 prefers secrets as files: MLflow reads its backend store URI, Flask secret key and first
# admin password from environment variables only (mlflow/environment_variables.py); a file would be read back
# into the same environment by a shell wrapper, so the env var from the Secret is the honest form.
SECRETS_AS_ENV = {"checkov.io/skip1": "CKV_K8S_35=MLflow reads these settings from environment variables only"}


def _secret_env(name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": key}}}


def _meta(name: str = NAME, **extra) -> dict:
    return {"name": name, "namespace": NAMESPACE, "labels": dict(LABELS), **extra}


def namespace(alb: bool = False) -> dict:
    """Restricted pod security; with an ALB, the controller's readiness gates, so a rollout waits until a new pod
    is a healthy target before an old one goes (as the model namespaces do)."""
    labels = {"pod-security.kubernetes.io/enforce": "restricted", "ml-platform/monitoring": "true"}
    if alb:
        labels["elbv2.k8s.aws/pod-readiness-gate-inject"] = "enabled"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}


def service_accounts() -> list[dict]:
    """The server's (Pod Identity gives it the artifact role; it never calls the Kubernetes API) and the
    migration Job's (which stops the server through the API)."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(), "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(MIGRATE_NAME), "automountServiceAccountToken": True},
    ]


def server_args(spec: ServerSpec) -> list[str]:
    """`mlflow server` arguments: basic auth, artifacts proxied to the store, Prometheus metrics. The backend
    store comes from MLFLOW_BACKEND_STORE_URI (the Secret), never from argv."""
    return [
        "server",
        "--host=0.0.0.0",
        f"--port={PORT}",
        f"--workers={spec.workers}",
        "--app-name=basic-auth",
        f"--artifacts-destination={spec.artifacts_destination}",
        f"--expose-prometheus={PROMETHEUS_DIR}",
    ]


def server_env(spec: ServerSpec) -> list[dict]:
    return [
        _secret_env("MLFLOW_BACKEND_STORE_URI", "backend-store-uri"),
        _secret_env("MLFLOW_FLASK_SERVER_SECRET_KEY", "flask-secret-key"),
        # Read only while the admin does not exist yet; later password changes go through MLflow's API.
        _secret_env("MLFLOW_AUTH_ADMIN_PASSWORD", "admin-password"),
        {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": AUTH_CONFIG_PATH},
        {"name": "MLFLOW_SERVER_ALLOWED_HOSTS", "value": ",".join(allowed_hosts(spec))},
        # With a database backend MLflow starts a job runner and ~7 huey consumers per replica for features the
        # registry does not use (MLFLOW_SERVER_ENABLE_JOB_EXECUTION, default true).
        {"name": "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "value": "false"},
        # Aurora pauses only with no connection open; SQLAlchemy's default pool keeps some. NullPool (MLflow's
        # MLFLOW_SQLALCHEMYSTORE_POOLCLASS, read by the tracking and the auth store alike) closes each after use.
        *([{"name": "MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "value": "NullPool"}] if spec.database_pauses else []),
        {"name": "AWS_REGION", "value": spec.region},
        {"name": "AWS_DEFAULT_REGION", "value": spec.region},
    ]


def _probe(period: int, failures: int) -> dict:
    # /health answers without the database, Host check or sign-in (mlflow/server/__init__.py, auth's
    # _UNPROTECTED_PATH_PREFIXES): it says the process serves, not that PostgreSQL answers; the server exits at
    # start when the database is unreachable or its schema is old.
    return {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": 5}


def _volumes() -> list[dict]:
    return [
        {
            "name": "auth-config",
            "secret": {"secretName": CREDENTIALS_SECRET, "items": [{"key": "basic_auth.ini", "path": "basic_auth.ini"}]},
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "home", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "metrics", "emptyDir": {"sizeLimit": "64Mi"}},
    ]


def metrics_sidecar(spec: ServerSpec) -> dict:
    """A native sidecar (starts before the server, stops after it) that serves the workers' metrics."""
    resources = {"cpu": "50m", "memory": "128Mi"}
    return {
        "name": "metrics",
        "image": spec.image,
        "imagePullPolicy": pull_policy(spec.image),
        "restartPolicy": "Always",
        "command": ["python", "-c", METRICS_SERVER],
        "env": [{"name": "PROMETHEUS_MULTIPROC_DIR", "value": PROMETHEUS_DIR}, {"name": "METRICS_PORT", "value": str(METRICS_PORT)}],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "metrics", "mountPath": PROMETHEUS_DIR, "readOnly": True}],
        "readinessProbe": {"tcpSocket": {"port": "metrics"}, "periodSeconds": 10},
    }


def deployment(spec: ServerSpec) -> dict:
    resources = {"cpu": spec.cpu, "memory": spec.memory}
    server = {
        "name": "mlflow",
        "image": spec.image,
        "imagePullPolicy": pull_policy(spec.image),
        "args": server_args(spec),
        "env": server_env(spec),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "auth-config", "mountPath": str(Path(AUTH_CONFIG_PATH).parent), "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "home", "mountPath": "/home/mlflow"},
            {"name": "metrics", "mountPath": PROMETHEUS_DIR},
        ],
        "startupProbe": _probe(5, 36),
        "readinessProbe": _probe(10, 3),
        "livenessProbe": _probe(20, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
    }
    pod = {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        # uvicorn finishes in-flight requests on SIGTERM, which `mlflow server` forwards to it.
        "terminationGracePeriodSeconds": 60,
        "nodeSelector": dict(spec.node_selector),
        "initContainers": [metrics_sidecar(spec)],
        "containers": [server],
        "volumes": _volumes(),
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        # The migration Job scales the server to 0 through the scale subresource, which makes it the owner of
        # spec.replicas; pulumi-kubernetes applies without force by default, and the update that brings the new
        # version would fail with a field conflict (pulumi-kubernetes #2569). Force takes replicas back.
        "metadata": _meta(annotations={"pulumi.com/patchForce": "true", **SECRETS_AS_ENV}),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            # A version change is handled by the migration Job (server stopped, then started on the new schema);
            # any other change rolls one new pod in before an old one goes.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": dict(LABELS),
                    "annotations": {
                        "ml-platform/mlflow-version": spec.mlflow_version,
                        "ml-platform/password-generation": str(spec.password_generation),
                    },
                },
                "spec": pod,
            },
        },
    }


def service() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(),
        "spec": {
            "selector": {"app.kubernetes.io/name": NAME},
            "ports": [
                {"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def disruption_budget() -> dict:
    """One replica at a time may be evicted: with 2 or more, a node drain never takes the registry down."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}}},
    }


def network_policy(spec: ServerSpec) -> dict:
    # ALB targets are pod IPs (target type ip): the load balancer reaches them from inside the VPC.
    cidrs = spec.vpc_cidrs if spec.ingress_host else ()
    return ingress_policy(_meta(), NAME, spec.monitoring_namespace, [METRICS_PORT], [PORT], spec.allowed_namespaces, cidrs)


def ingress(spec: ServerSpec) -> dict | None:
    """An internal ALB with TLS only (HTTPS on 443, a TLS 1.3/1.2 policy); the AWS Load Balancer Controller acts
    on it (annotation keys: its 3.x documentation, "Ingress annotations")."""
    if not spec.ingress_host:
        return None
    annotations = {
        "alb.ingress.kubernetes.io/scheme": "internal",
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
        "alb.ingress.kubernetes.io/certificate-arn": spec.certificate_arn,
        "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "alb.ingress.kubernetes.io/healthcheck-path": "/health",
        "alb.ingress.kubernetes.io/group.name": f"{NAMESPACE}-{NAME}",
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(annotations=annotations),
        "spec": {
            "ingressClassName": "alb",
            "rules": [
                {
                    "host": spec.ingress_host,
                    "http": {
                        "paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": NAME, "port": {"name": "http"}}}}]
                    },
                }
            ],
        },
    }


def service_monitor() -> dict:
    """Prometheus scrapes the metrics sidecar (METRICS_PORT), not MLflow's own /metrics (see METRICS_PORT)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
        },
    }


def migration_job_name(mlflow_version: str) -> str:
    """`mlflow-migrate-3-17-2`: one Job per MLflow version, so a new version runs a new Job."""
    return f"{MIGRATE_NAME}-{mlflow_version.replace('.', '-')}"


def migration_rbac() -> list[dict]:
    """What the Job needs to stop the server: read and patch the Deployment's scale, list the namespace's pods."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(MIGRATE_NAME),
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": [NAME], "verbs": ["get", "patch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(MIGRATE_NAME),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": MIGRATE_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": MIGRATE_NAME, "namespace": NAMESPACE}],
        },
    ]


def migration_network_policy() -> dict:
    """The Job's pod serves nothing: no ingress at all (it only connects out, to PostgreSQL and the API server)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(MIGRATE_NAME),
        "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": MIGRATE_NAME}}, "policyTypes": ["Ingress"], "ingress": []},
    }


def migration_script() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(MIGRATE_NAME),
        "data": {"migrate.py": SCRIPT.read_text(encoding="utf-8")},
    }


def migration_job(spec: ServerSpec) -> dict:
    """Stops the server and migrates both schemas (migrate.py). Pulumi waits for it to
    succeed before it updates the Deployment; it is kept (no TTL), since a Job Pulumi finds deleted it recreates."""
    container = {
        "name": "migrate",
        "image": spec.image,
        "imagePullPolicy": pull_policy(spec.image),
        "command": ["python", "/opt/migrate/migrate.py"],
        "env": [
            _secret_env("MLFLOW_BACKEND_STORE_URI", "backend-store-uri"),
            {"name": "STOP_NAMESPACE", "value": NAMESPACE},
            {"name": "STOP_DEPLOYMENT", "value": NAME},
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "script", "mountPath": "/opt/migrate", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "home", "mountPath": "/home/mlflow"},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(
            migration_job_name(spec.mlflow_version),
            annotations={
                **SECRETS_AS_ENV,
                "checkov.io/skip2": "CKV_K8S_38=the Job stops the server through the Kubernetes API (migration_rbac)",
            },
        ),
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": MIGRATION_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": MIGRATE_NAME, "app.kubernetes.io/part-of": "ml-platform"}},
                "spec": {
                    "serviceAccountName": MIGRATE_NAME,
                    "restartPolicy": "Never",
                    "securityContext": pod_security(),
                    "nodeSelector": dict(spec.node_selector),
                    "containers": [container],
                    "volumes": [
                        {"name": "script", "configMap": {"name": MIGRATE_NAME}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "home", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                },
            },
        },
    }
