"""modelRegistry.mode sagemaker: SageMaker's managed MLflow tracking server, declared by staging and prod, its
artifacts under mlflow/ of the model store through a role scoped to that prefix, protected in prod, guarded
against replacement by the diff; and the lock commands' requests signed with SigV4 as SageMaker's own MLflow
plugin signs them."""

from __future__ import annotations

import json

import pytest
import requests
from botocore.credentials import Credentials
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from ml_platform.components import sagemaker_mlflow
from ml_platform.infra import config
from ml_platform.infra.delivery import replacements
from ml_platform.infra.model_registry import lockfile
from ml_platform.infra.model_registry.mlflow import SigV4, sagemaker_endpoint
from ml_platform.infra.offline import stack_files
from ml_platform.policy import rules

SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"


def test_staging_and_prod_declare_the_managed_registry_and_prod_protects_it(plans):
    for stack, protected in (("staging", False), ("prod", True)):
        by_name = {r["name"]: r for r in plans[stack].resources}
        server = by_name["model-registry-server"]
        store = plans[stack].outputs["modelStoreBucket"]
        assert server["type"] == SERVER and server["protect"] is protected
        assert server["inputs"]["trackingServerName"] == f"ml-platform-{stack}" and server["inputs"]["mlflowVersion"] == "3.0"
        assert server["inputs"]["artifactStoreUri"] == f"s3://{store}/mlflow/"
        trust = json.loads(by_name["model-registry-role"]["inputs"]["assumeRolePolicy"])
        (statement,) = trust["Statement"]
        assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}, "the confused-deputy guard"
        policy = by_name["model-registry-artifacts"]["inputs"]["policy"]
        IAMPolicyDocumentValidator(policy).validate()
        writes = [s for s in json.loads(policy)["Statement"] if "s3:PutObject" in s["Action"]]
        assert [w["Resource"] for w in writes] == [f"arn:aws:s3:::{store}/mlflow/*"], "the server writes its prefix only"
        output = plans[stack].outputs["modelRegistry"]
        assert output["trackingServerArn"] == f"arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/ml-platform-{stack}"
        assert output["trackingServerArn"] == sagemaker_mlflow.tracking_server_arn(stack, "us-west-2", "123456789012")
    assert not [r for r in plans["dev"].resources if r["type"] == SERVER]


def test_a_new_mlflow_version_is_a_replacement_the_diff_calls_out():
    assert SERVER in rules.STATEFUL_TYPES
    assert {"mlflowVersion", "trackingServerName", "roleArn"} <= set(replacements.FORCE_NEW[SERVER])


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ({"mode": "sagemaker"}, "mode sagemaker needs sagemaker {mlflowVersion}"),
        ({"mode": "sagemaker", "sagemaker": {"mlflowVersion": "3.0"}, "trackingUri": "https://x.example.com"}, "no trackingUri"),
        ({"mode": "sagemaker", "sagemaker": {}}, "mlflowVersion"),
        ({"mode": "sagemaker", "sagemaker": {"mlflowVersion": "latest"}}, "mlflowVersion"),
        ({"mode": "sagemaker", "sagemaker": {"mlflowVersion": "3.0", "size": "Huge"}}, "size"),
        ({"mode": "sagemaker", "sagemaker": {"mlflowVersion": "3.0", "weeklyMaintenanceWindowStart": "Tue 3am"}}, "weeklyMaintenance"),
        ({"mode": "external"}, "mode external needs trackingUri"),
        ({"mode": "selfhosted", "trackingUri": "https://x.example.com"}, "mode"),
    ],
)
def test_registry_mistakes_are_config_errors(registry, message):
    raw = dict(stack_files.read_stack("staging").values)
    raw["ml-platform:modelRegistry"] = json.dumps(registry)
    with pytest.raises(config.ConfigError, match=message) as caught:
        config.parse(raw, "staging")
    assert "modelRegistry" in str(caught.value)


def test_a_preview_uses_its_base_stacks_server():
    raw = dict(stack_files.read_stack("staging").values)
    raw["ml-platform:preview"] = json.dumps(
        {"mode": "full", "baseStack": "staging", "ttlHours": 24, "pr": 9, "expiresAt": "2026-12-01T00:00:00Z"}
    )
    raw["ml-platform:ephemeral"] = "true"
    preview = config.parse(raw, "pr-9")
    staging = config.parse(stack_files.read_stack("staging").values, "staging")
    assert lockfile.registry_id(preview) == "sagemaker:ml-platform-staging" == lockfile.registry_id(staging)


def test_requests_are_signed_for_sagemaker_mlflow_with_the_servers_arn():
    arn = "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/ml-platform-staging"
    signer = SigV4(Credentials("AKIDEXAMPLE", "secret", "token"), "us-west-2", arn)
    request = requests.Request(
        "GET",
        f"{sagemaker_endpoint('us-west-2')}/api/2.0/mlflow/registered-models/alias",
        params={"name": "chat-llm", "alias": "champion"},
        headers={"Connection": "keep-alive"},
        auth=signer,
    ).prepare()
    assert request.url.startswith("https://us-west-2.experiments.sagemaker.aws/api/2.0/mlflow/registered-models/alias?")
    authorization = request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-west-2/sagemaker-mlflow/aws4_request" in authorization
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-mlflow-sm-tracking-server-arn" in signed and "connection" not in signed and "host" in signed
    assert request.headers["x-mlflow-sm-tracking-server-arn"] == arn and request.headers["X-Amz-Security-Token"] == "token"


def test_a_reproduction_uses_its_sources_server_and_makes_none(plans, tmp_path):
    import shutil

    from ml_platform.infra.delivery import reproduce
    from ml_platform.infra.offline import plan as offline_plan
    from tests.helpers import ROOT

    for name in ("Pulumi.yaml", "Pulumi.staging.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    reproduce.write(tmp_path, "staging", "repro-1", plans["staging"].outputs)
    copy = config.parse(stack_files.read_stack("repro-1", tmp_path).values, "repro-1")
    assert copy.modelRegistry.sagemaker.serverOfStack == "staging"
    assert lockfile.registry_id(copy) == "sagemaker:ml-platform-staging"
    plan = offline_plan.run("repro-1", stack_files.read_stack("repro-1", tmp_path))
    assert not [r for r in plan.resources if r["type"] == SERVER], "no second (paid, empty) tracking server"


def test_a_patch_level_version_is_refused_since_aws_stores_major_minor():
    raw = dict(stack_files.read_stack("staging").values)
    raw["ml-platform:modelRegistry"] = json.dumps({"mode": "sagemaker", "sagemaker": {"mlflowVersion": "3.0.0"}})
    with pytest.raises(config.ConfigError, match="mlflowVersion"):
        config.parse(raw, "staging")


def test_the_server_is_deleted_before_it_is_replaced(plans):
    (server,) = [r for r in plans["staging"].resources if r["type"] == SERVER]
    assert server["deleteBeforeReplace"] is True, "its name is fixed: two cannot exist at once"


def test_the_signature_covers_the_body_hash():
    signer = SigV4(Credentials("AKIDEXAMPLE", "secret"), "us-west-2", "arn:aws:sagemaker:us-west-2:1:mlflow-tracking-server/x")
    url = f"{sagemaker_endpoint('us-west-2')}/api/2.0/mlflow/runs/get"
    request = requests.Request("GET", url, params={"run_id": "r"}, auth=signer).prepare()
    assert request.headers["X-Amz-Content-SHA256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of b""
    assert "x-amz-content-sha256" in request.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
