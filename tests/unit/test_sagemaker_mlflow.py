"""modelRegistry.mode sagemaker: SageMaker's managed MLflow tracking server (planned here as prod's registry; the
example stacks run selfHosted), its
artifacts under mlflow/ of the model store through a role scoped to that prefix, protected in prod, guarded
against replacement by the diff; and the lock commands' requests signed with SigV4 as SageMaker's own MLflow
plugin signs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
import yaml
from botocore.credentials import Credentials
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from ml_platform.components import sagemaker_mlflow
from ml_platform.infra import config
from ml_platform.infra.delivery import replacements
from ml_platform.infra.model_registry import lockfile
from ml_platform.infra.model_registry.mlflow import SigV4, sagemaker_endpoint
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files
from ml_platform.policy import rules
from tests.helpers import ROOT

SERVER = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
MANAGED = {"mode": "sagemaker", "sagemaker": {"mlflowVersion": "3.0", "size": "Medium", "weeklyMaintenanceWindowStart": "TUE:03:30"}}


def managed_project(folder: Path, stack: str) -> Path:
    """The project with `stack`'s registry switched to SageMaker's managed server."""
    shutil.copy(ROOT / "Pulumi.yaml", folder / "Pulumi.yaml")
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    document["config"]["ml-platform:modelRegistry"] = MANAGED
    (folder / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def managed(tmp_path_factory):
    """(project folder, plan) of prod with SageMaker's managed server as its registry."""
    folder = managed_project(tmp_path_factory.mktemp("managed"), "prod")
    return folder, offline_plan.run("prod", stack_files.read_stack("prod", folder))


def test_a_stack_declares_the_managed_registry_and_prod_protects_it(managed, plans):
    _, plan = managed
    for stack, protected in (("prod", True),):
        by_name = {r["name"]: r for r in plan.resources}
        server = by_name["model-registry-server"]
        store = plan.outputs["modelStoreBucket"]
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
        output = plan.outputs["modelRegistry"]
        assert output["trackingServerArn"] == f"arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/ml-platform-{stack}"
        assert output["trackingServerArn"] == sagemaker_mlflow.tracking_server_arn(stack, "us-west-2", "123456789012")
    assert not [r for r in plans["dev"].resources if r["type"] == SERVER]
    assert not [r for r in plan.resources if r["type"].startswith("aws:rds/")], "no database for a managed registry"


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
        (
            {
                "mode": "sagemaker",
                "sagemaker": {"mlflowVersion": "3.0"},
                "selfHosted": {"mlflowVersion": "3.17.2", "image": {"repository": "platform/mlflow", "tag": "3.17.2-a-b"}},
            },
            "mode sagemaker needs",
        ),
    ],
)
def test_registry_mistakes_are_config_errors(registry, message):
    raw = dict(stack_files.read_stack("staging").values)
    raw["ml-platform:modelRegistry"] = json.dumps(registry)
    with pytest.raises(config.ConfigError, match=message) as caught:
        config.parse(raw, "staging")
    assert "modelRegistry" in str(caught.value)


def test_a_preview_uses_its_base_stacks_server(tmp_path):
    folder = managed_project(tmp_path, "staging")
    raw = dict(stack_files.read_stack("staging", folder).values)
    raw["ml-platform:preview"] = json.dumps(
        {"mode": "full", "baseStack": "staging", "ttlHours": 24, "pr": 9, "expiresAt": "2026-12-01T00:00:00Z"}
    )
    raw["ml-platform:ephemeral"] = "true"
    preview = config.parse(raw, "pr-9")
    staging = config.parse(stack_files.read_stack("staging", folder).values, "staging")
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
    from ml_platform.infra.delivery import reproduce

    folder = managed_project(tmp_path, "staging")
    reproduce.write(folder, "staging", "repro-1", plans["staging"].outputs)
    copy = config.parse(stack_files.read_stack("repro-1", folder).values, "repro-1")
    assert copy.modelRegistry.sagemaker.serverOfStack == "staging"
    assert lockfile.registry_id(copy) == "sagemaker:ml-platform-staging"
    reproduction = offline_plan.run("repro-1", stack_files.read_stack("repro-1", folder))
    assert not [r for r in reproduction.resources if r["type"] == SERVER], "no second (paid, empty) tracking server"


def test_a_patch_level_version_is_refused_since_aws_stores_major_minor():
    raw = dict(stack_files.read_stack("staging").values)
    raw["ml-platform:modelRegistry"] = json.dumps({"mode": "sagemaker", "sagemaker": {"mlflowVersion": "3.0.0"}})
    with pytest.raises(config.ConfigError, match="mlflowVersion"):
        config.parse(raw, "staging")


def test_the_server_is_deleted_before_it_is_replaced(managed):
    (server,) = [r for r in managed[1].resources if r["type"] == SERVER]
    assert server["deleteBeforeReplace"] is True, "its name is fixed: two cannot exist at once"


def test_the_signature_covers_the_body_hash():
    signer = SigV4(Credentials("AKIDEXAMPLE", "secret"), "us-west-2", "arn:aws:sagemaker:us-west-2:1:mlflow-tracking-server/x")
    url = f"{sagemaker_endpoint('us-west-2')}/api/2.0/mlflow/runs/get"
    request = requests.Request("GET", url, params={"run_id": "r"}, auth=signer).prepare()
    assert request.headers["X-Amz-Content-SHA256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of b""
    assert "x-amz-content-sha256" in request.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
