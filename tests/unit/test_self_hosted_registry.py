"""modelRegistry.mode selfHosted as staging and prod declare it: the Aurora database (private, encrypted with the
data key, protected and deletion-protected in prod, backed up), the server (replicas, disruption budget, restricted
pods, probes, allowed hosts, artifacts through a role scoped to mlflow/), the migration's order (snapshot, Job,
Deployment), config errors, and a reproduction that makes no second server or database."""

from __future__ import annotations

import json

import pytest
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from ml_platform.components.mlflow_server import manifests
from ml_platform.infra import config
from ml_platform.infra.model_registry import lockfile
from ml_platform.infra.offline import stack_files

CLUSTER = "aws:rds/cluster:Cluster"
INSTANCE = "aws:rds/clusterInstance:ClusterInstance"


def by_name(plan) -> dict:
    return {r["name"]: r for r in plan.resources}


def test_prod_declares_a_hardened_database(plans):
    resources = by_name(plans["prod"])
    cluster = resources["model-registry-db-cluster"]
    inputs = cluster["inputs"]
    key = resources["data-key"]["urn"] if "data-key" in resources else None
    assert inputs["storageEncrypted"] is True and inputs["kmsKeyId"].startswith("arn:aws:kms:")
    if key:
        assert key in cluster["propertyDependencies"]["kmsKeyId"]
    assert inputs["deletionProtection"] is True and cluster["protect"] is True
    assert inputs["backupRetentionPeriod"] == 14 and inputs["finalSnapshotIdentifier"] == "ml-platform-prod-registry-final"
    assert inputs["skipFinalSnapshot"] is False
    assert inputs["serverlessv2ScalingConfiguration"] == {"minCapacity": 1, "maxCapacity": 4}
    assert inputs["engine"] == "aurora-postgresql" and inputs["engineMode"] == "provisioned" and inputs["engineVersion"] == "16.6"
    assert "masterPassword" in inputs and inputs["masterPassword"].startswith("[secret"), "the password stays a secret"
    instances = [r for r in plans["prod"].resources if r["type"] == INSTANCE]
    assert len(instances) == 2 and all(i["protect"] and not i["inputs"]["publiclyAccessible"] for i in instances)
    assert {i["inputs"]["instanceClass"] for i in instances} == {"db.serverless"}
    access = resources["model-registry-db-access"]["inputs"]
    (rule,) = access["ingress"]
    assert rule["fromPort"] == rule["toPort"] == 5432 and rule["securityGroups"] and not rule.get("cidrBlocks")
    assert access["egress"] == []
    assert resources["model-registry-db-before-migration"]["retainOnDelete"] is True, "prod keeps its migration snapshots"


def test_staging_may_lose_its_database_with_the_stack_but_never_pauses(plans):
    inputs = by_name(plans["staging"])["model-registry-db-cluster"]["inputs"]
    assert inputs["deletionProtection"] is False and inputs["skipFinalSnapshot"] is True
    assert inputs["serverlessv2ScalingConfiguration"]["minCapacity"] == 0.5
    assert not [r for r in plans["dev"].resources if r["type"].startswith("aws:rds/")]


def test_the_migration_runs_after_the_snapshot_and_before_the_new_server(plans):
    for stack in ("staging", "prod"):
        resources = by_name(plans[stack])
        snapshot, job, server = (
            resources[n] for n in ("model-registry-db-before-migration", "model-registry-migrate", "model-registry-server")
        )
        assert snapshot["inputs"]["dbClusterSnapshotIdentifier"] == f"ml-platform-{stack}-registry-before-mlflow-3-17-2"
        assert all(i["urn"] in snapshot["dependencies"] for i in plans[stack].resources if i["type"] == INSTANCE)
        assert snapshot["urn"] in job["dependencies"] and job["urn"] in server["dependencies"]
        assert job["inputs"]["metadata"]["name"] == "mlflow-migrate-3-17-2" and job["deleteBeforeReplace"] is True
        assert job["customTimeouts"]["create"] == "35m"
        env = {e["name"]: e for e in job["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["STOP_DEPLOYMENT"]["value"] == "mlflow", "the old server is stopped before the migration"
        template = server["inputs"]["spec"]["template"]
        assert template["metadata"]["annotations"]["ml-platform/mlflow-version"] == "3.17.2", "a new version restarts the server"
        assert server["inputs"]["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"


def test_the_server_runs_hardened_with_auth_and_its_own_hosts(plans):
    resources = by_name(plans["prod"])
    server = resources["model-registry-server"]["inputs"]
    assert server["spec"]["replicas"] == 2
    pod = server["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].endswith("/prod/platform/mlflow@sha256:5d1f0c3e2b4a69788f7e6d5c4b3a2918e7f6d5c4b3a29180f7e6d5c4b3a29180")
    assert (
        "--app-name=basic-auth" in container["args"]
        and "--artifacts-destination=s3://ml-platform-prod-models-123456789012/mlflow/" in container["args"]
    )
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == manifests.CREDENTIALS_SECRET
    assert "value" not in env["MLFLOW_BACKEND_STORE_URI"], "the database URI comes from the Secret only"
    hosts = env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    assert "mlflow.mlflow.svc.cluster.local:5000" in hosts and "mlflow.prod.internal.example.com" in hosts
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    namespace = resources["model-registry-namespace"]["inputs"]["metadata"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled", "ALB rollouts wait for healthy targets"
    assert "MLFLOW_SQLALCHEMYSTORE_POOLCLASS" not in env, "prod's database never pauses: keep the pool"
    assert resources["model-registry-disruption-budget"]["inputs"]["spec"]["maxUnavailable"] == 1
    ingress = resources["model-registry-ingress"]["inputs"]
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/scheme"] == "internal"
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTPS": 443}]'
    assert plans["prod"].outputs["modelRegistry"]["url"] == "https://mlflow.prod.internal.example.com"
    assert plans["staging"].outputs["modelRegistry"]["url"] == "http://mlflow.mlflow.svc.cluster.local:5000"


def test_the_server_reaches_only_its_prefix_of_the_store(plans):
    for stack in ("staging", "prod"):
        store = plans[stack].outputs["modelStoreBucket"]
        policy = by_name(plans[stack])["model-registry-artifacts"]["inputs"]["policy"]
        IAMPolicyDocumentValidator(policy).validate()
        writes = [s for s in json.loads(policy)["Statement"] if "s3:PutObject" in s["Action"]]
        assert [w["Resource"] for w in writes] == [f"arn:aws:s3:::{store}/mlflow/*"]
        association = by_name(plans[stack])["model-registry-artifacts"]
        assert association["type"] in ("aws:iam/rolePolicy:RolePolicy", "aws:eks/podIdentityAssociation:PodIdentityAssociation")
        pairs = [r["inputs"] for r in plans[stack].resources if r["type"] == "aws:eks/podIdentityAssociation:PodIdentityAssociation"]
        assert {"namespace": "mlflow", "serviceAccount": "mlflow"} in [{k: p[k] for k in ("namespace", "serviceAccount")} for p in pairs]


SELF_HOSTED = {"mlflowVersion": "3.17.2", "image": {"repository": "platform/mlflow", "digest": "sha256:" + "a" * 64}, "replicas": 2}


@pytest.mark.parametrize(
    ("stack", "change", "message"),
    [
        ("prod", {"replicas": 1}, "selfHosted.replicas: prod runs at least 2"),
        (
            "prod",
            {"image": {"repository": "platform/mlflow", "tag": "3.17.2-abc-20261130"}},
            "selfHosted.image.digest: prod runs images by digest",
        ),
        ("prod", {"database": {"instances": 1}}, "selfHosted.database.instances: prod runs at least 2"),
        ("staging", {"database": {"minCapacity": 0}}, "only dev may pause"),
        ("staging", {"database": {"minCapacity": 0, "engineVersion": "16.2"}}, "needs Aurora PostgreSQL 13.15, 14.12, 15.7, 16.3"),
        ("staging", {"database": {"secondsUntilAutoPause": 600}}, "secondsUntilAutoPause applies only with minCapacity 0"),
        ("staging", {"database": {"minCapacity": 4, "maxCapacity": 2}}, "minCapacity 4.0 is above maxCapacity"),
        ("staging", {"database": {"maxCapacity": 2.3}}, "not a multiple of 0.5"),
        ("staging", {"database": {"backupRetentionDays": 3}}, "backupRetentionDays"),
        ("staging", {"image": {"repository": "platform/mlflow", "tag": "3.16.0-abc-20261130"}}, "not a build of MLflow 3.17.2"),
        (
            "staging",
            {"image": {"repository": "ghcr.io/mlflow/mlflow", "tag": "v3.17.2"}},
            "must be a repository of the platform's registry",
        ),
        ("staging", {"image": {"repository": "platform/other", "tag": "3.17.2-a-b"}}, "is not in registries.repositories"),
        ("staging", {"mlflowVersion": "2.22.0"}, "mlflowVersion"),
        ("staging", {"defaultPermission": "EDIT"}, "defaultPermission"),
        ("staging", {"ingress": {"host": "mlflow.example.com", "certificateArn": "arn:aws:iam::1:cert/x"}}, "certificateArn"),
        ("staging", {"allowedNamespaces": ["Training"]}, "allowedNamespaces"),
        (
            "prod",
            {"ingress": {"host": "mlflow.example.com", "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0b7a4c6e"}},
            "the certificate is in eu-west-1; the ALB needs one in us-west-2",
        ),
    ],
)
def test_self_hosted_mistakes_are_config_errors(stack, change, message):
    raw = dict(stack_files.read_stack(stack).values)
    current = (
        json.loads(raw["ml-platform:modelRegistry"])
        if isinstance(raw["ml-platform:modelRegistry"], str)
        else raw["ml-platform:modelRegistry"]
    )
    settings = {**current["selfHosted"], **{k: v for k, v in change.items() if k != "database"}}
    if "database" in change:
        settings["database"] = {**current["selfHosted"].get("database", {}), **change["database"]}
    raw["ml-platform:modelRegistry"] = json.dumps({"mode": "selfHosted", "selfHosted": settings})
    with pytest.raises(config.ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")) as caught:
        config.parse(raw, stack)
    assert "modelRegistry" in str(caught.value)


@pytest.mark.parametrize(
    "extra",
    [{"trackingUri": "https://x.example.com"}, {"auth": {"type": "basic", "username": "u"}}, {"sagemaker": {"mlflowVersion": "3.0"}}],
)
def test_self_hosted_takes_no_external_settings(extra):
    raw = dict(stack_files.read_stack("staging").values)
    raw["ml-platform:modelRegistry"] = json.dumps({"mode": "selfHosted", "selfHosted": SELF_HOSTED, **extra})
    with pytest.raises(config.ConfigError, match="mode selfHosted needs"):
        config.parse(raw, "staging")


def test_a_reproduction_serves_its_sources_registry_and_makes_no_database(plans, tmp_path):
    import shutil

    from ml_platform.infra.delivery import reproduce
    from ml_platform.infra.offline import plan as offline_plan
    from tests.helpers import ROOT

    for name in ("Pulumi.yaml", "Pulumi.staging.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    reproduce.write(tmp_path, "staging", "repro-2", plans["staging"].outputs)
    copy = config.parse(stack_files.read_stack("repro-2", tmp_path).values, "repro-2")
    assert copy.modelRegistry.selfHosted.serverOfStack == "staging"
    assert lockfile.registry_id(copy) == "selfHosted:staging"
    plan = offline_plan.run("repro-2", stack_files.read_stack("repro-2", tmp_path))
    assert not [r for r in plan.resources if r["type"].startswith("aws:rds/") or r["name"].startswith("model-registry")]


def test_a_pausing_database_gets_no_idle_connections():
    spec = manifests.ServerSpec(
        image="i", mlflow_version="3.17.2", artifacts_destination="s3://b/mlflow/", region="us-west-2", database_pauses=True
    )
    assert {"name": "MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "value": "NullPool"} in manifests.server_env(spec)


def test_the_capacity_check_counts_the_registry_server_on_the_system_pool(plans):
    from ml_platform.infra.offline import capacity

    pods, problems = capacity.platform_pods(plans["staging"].resources)
    (server,) = [p for p in pods if p.name == "mlflow"]
    assert (server.cpu_m, server.memory_mi, server.pool, server.replicas, server.surge) == (550, 1664, "system", 2, True), (
        "server + sidecar"
    )
    assert problems == []
