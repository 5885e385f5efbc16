"""preview-stack: the stack file it writes, what each mode plans, and create/destroy/sweep driving a stand-in
Pulumi CLI (tests/delivery/fake_pulumi.py, whose `up` runs the offline plan), with moto for the cleanup."""

import json
import shutil
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from ml_platform.infra import cli
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-23T10:00:00Z"


@pytest.fixture
def project(tmp_path):
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml", "Pulumi.pr.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "policy").mkdir()
    return tmp_path


def create(project, *extra) -> int:
    return cli.main(["preview-stack", "create", "--project-dir", str(project), "--now", NOW, *extra])


def written(project, pr) -> dict:
    return yaml.safe_load((project / f"Pulumi.pr-{pr}.yaml").read_text())["config"]


def planned(project, stack):
    return offline_plan.run(stack, stack_files.read_stack(stack, project))


def test_a_namespace_preview_is_only_the_models_in_one_namespace_of_dev(project, plans, capsys):
    assert create(project, "--pr", "12", "--offline") == 0
    config = written(project, 12)
    assert config["ml-platform:preview"] == {
        "mode": "namespace",
        "baseStack": "dev",
        "ttlHours": 72,
        "pr": 12,
        "expiresAt": "2026-11-26T10:00:00Z",
    }
    assert config["ml-platform:ephemeral"] is True and config["ml-platform:protectStatefulResources"] is False
    assert config["ml-platform:models"]["chat"]["exposure"] == {"type": "cluster"}
    assert "models.chat.exposure: in-cluster" in capsys.readouterr().out

    plan = planned(project, "pr-12")
    by_urn = {r["urn"]: r for r in plan.resources}
    assert {offline_plan.component_of(r, by_urn) for r in plan.resources if r["custom"]} == {
        "preview (PreviewNamespace)",
        "model-chat (ModelService)",
        "model-fraud (ModelService)",
    }
    assert not [r for r in plan.resources if r["protect"]]
    namespaces = [r for r in plan.resources if r["type"] == "kubernetes:core/v1:Namespace"]
    assert [n["inputs"]["metadata"]["name"] for n in namespaces] == ["pr-12"]
    assert namespaces[0]["inputs"]["metadata"]["annotations"] == {"ml-platform/expires-at": "2026-11-26T10:00:00Z"}
    in_cluster = [r for r in plan.resources if r["type"].startswith("kubernetes:") and "metadata" in r["inputs"]]
    assert {r["inputs"]["metadata"].get("namespace", "pr-12") for r in in_cluster} == {"pr-12"}
    # in dev's cluster, with dev's store and key, and running dev's images
    associations = [r for r in plan.resources if r["type"] == "aws:eks/podIdentityAssociation:PodIdentityAssociation"]
    assert {(a["inputs"]["clusterName"], a["inputs"]["namespace"]) for a in associations} == {("ml-platform-dev", "pr-12")}
    dev = plans["dev"]
    dev_store = dev.outputs["modelStoreBucket"]
    readers = [r for r in plan.resources if r["type"] == "aws:iam/rolePolicy:RolePolicy" and "model-reader" in r["name"]]
    for reader in readers:
        policy = json.loads(reader["inputs"]["policy"])
        assert policy["Statement"][0]["Resource"].startswith(f"arn:aws:s3:::{dev_store}/")
        assert policy["Statement"][2]["Resource"].startswith("arn:aws:kms:")
    deployments = {r["inputs"]["metadata"]["name"]: r for r in plan.resources if r["type"] == "kubernetes:apps/v1:Deployment"}
    for name, image in dev.outputs["versions"]["images"]["models"].items():
        assert deployments[name]["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"] == image
    # two models share the namespace: each one's autoscaling and alerts see only its own series
    scaled = next(r for r in plan.resources if r["type"] == "kubernetes:keda.sh/v1alpha1:ScaledObject")
    assert 'namespace="pr-12", service="chat"' in scaled["inputs"]["spec"]["triggers"][0]["metadata"]["query"]
    group = next(r for r in plan.resources if r["type"] == "aws:cloudwatch/logGroup:LogGroup")
    assert group["inputs"]["name"] == "/ml-platform/ml-platform-dev/pr-12"
    assert group["inputs"]["tags"]["ml-platform/preview-pr"] == "12"


def test_a_full_preview_is_a_whole_throwaway_platform(project, plans):
    assert create(project, "--pr", "13", "--mode", "full", "--ttl-hours", "8", "--offline") == 0
    config = written(project, 13)
    assert config["ml-platform:preview"]["expiresAt"] == "2026-11-23T18:00:00Z"
    assert config["ml-platform:registries"]["prefix"] == "pr-13"
    plan = planned(project, "pr-13")
    dev = plans["dev"]
    assert {r["type"] for r in plan.resources} == {r["type"] for r in dev.resources}
    assert not [r for r in plan.resources if r["protect"] or r["retainOnDelete"]]
    repositories = [r for r in plan.resources if r["type"] == "aws:ecr/repository:Repository"]
    assert repositories and all(r["inputs"]["forceDelete"] and r["inputs"]["name"].startswith("pr-13/") for r in repositories)
    bucket = next(r for r in plan.resources if r["type"] == "aws:s3/bucket:Bucket")
    assert bucket["inputs"]["forceDestroy"] is True
    cluster = next(r for r in plan.resources if r["type"] == "aws:eks/cluster:Cluster")
    assert cluster["inputs"]["tags"]["ml-platform/expires-at"] == "2026-11-23T18:00:00Z"
    # its own store starts empty: the models read dev's weights and run dev's images
    for kind in ("models", "loader"):
        assert plan.outputs["versions"]["images"][kind] == dev.outputs["versions"]["images"][kind]
    # chart images pull through the preview's own caches, deleted with it
    assert plan.outputs["versions"]["images"]["charts"]["prometheus"].endswith(".amazonaws.com/pr-13/quay/prometheus/prometheus")
    readers = [r for r in plan.resources if r["type"] == "aws:iam/rolePolicy:RolePolicy" and "model-reader" in r["name"]]
    assert readers and all(dev.outputs["modelStoreBucket"] in r["inputs"]["policy"] for r in readers)
    assert plan.outputs["preview"] == {"pr": 13, "mode": "full", "baseStack": "dev", "expiresAt": "2026-11-23T18:00:00Z"}


def test_a_full_preview_keeps_no_idle_gpu_node(project):
    base = yaml.safe_load((project / "Pulumi.dev.yaml").read_text())
    base["config"]["ml-platform:nodePools"]["gpu-managed"] = {"instanceTypes": ["g5.xlarge"], "minSize": 1, "maxSize": 2}
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(base))
    assert create(project, "--pr", "14", "--mode", "full", "--offline") == 0
    pool = written(project, 14)["ml-platform:nodePools"]["gpu-managed"]
    assert (pool["minSize"], pool["desiredSize"]) == (0, 0)


def secret_model_argument(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    document["config"]["ml-platform:models"]["fraud"]["args"] = [{"secure": "v1:abc"}]
    path.write_text(yaml.safe_dump(document))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: (p / "Pulumi.pr.yaml").unlink(), "no template Pulumi.pr.yaml"),
        (
            lambda p: (p / "Pulumi.pr.yaml").write_text("config:\n  ml-platform:preview: {baseStack: qa}\n"),
            "has no stack file Pulumi.qa.yaml",
        ),
        (lambda p: (p / "Pulumi.pr.yaml").write_text("config:\n  ml-platform:preview: {pr: 3}\n"), "set per pull request"),
        (lambda p: (p / "Pulumi.pr.yaml").write_text("config:\n  ml-platform:preview: {mode: big}\n"), "preview.mode"),
        (
            lambda p: (p / "Pulumi.pr.yaml").write_text("config:\n  ml-platform:preview: {baseStack: prod}\n"),
            "a preview stack cannot be prod",
        ),
        (lambda p: secret_model_argument(p / "Pulumi.dev.yaml"), "ml-platform:models.fraud.args[0]: secret values of 'dev' are encrypted"),
        (lambda p: (p / "Pulumi.pr.yaml").write_text("config: [unclosed\n"), "Pulumi.pr.yaml is not valid YAML"),
    ],
    ids=["no template", "unknown base", "pr in template", "bad mode", "prod base", "secret in base", "broken template"],
)
def test_bad_input_is_refused_and_leaves_no_stack_file(project, capsys, change, message):
    change(project)
    assert create(project, "--pr", "5", "--offline") == 2
    assert message in capsys.readouterr().err
    assert not (project / "Pulumi.pr-5.yaml").exists()


@pytest.mark.parametrize(
    ("argument", "message"), [("--pr=0", "--pr: expected a pull request number"), ("--ttl-hours=0", "--ttl-hours: expected 1 to 720")]
)
def test_bad_arguments_are_refused(project, capsys, argument, message):
    assert create(project, "--pr", "5", argument, "--offline") == 2
    assert message in capsys.readouterr().err
    assert not list(project.glob("Pulumi.pr-*.yaml"))


def test_the_template_is_not_a_stack(project, capsys):
    assert cli.main(["plan", "--stack", "pr", "--project-dir", str(project)]) == 2
    assert "template of preview stacks" in capsys.readouterr().err
    assert "pr" not in stack_files.stack_names(project)


def test_create_makes_the_stack_and_deploys_it_with_the_policy_pack(project, pulumi, gate):
    provider = "awskms://alias/pulumi-secrets?region=us-west-2"
    assert create(project, "--pr", "12", "--secrets-provider", provider) == 0
    assert ["stack", "select", "--create", "pr-12", "--secrets-provider", provider] in pulumi.calls
    assert ["up", "--yes", "--stack", "pr-12", "--policy-pack", str(project / "policy")] in pulumi.calls
    assert pulumi.stacks["pr-12"]["outputs"]["preview"]["expiresAt"] == "2026-11-26T10:00:00Z"
    assert pulumi.stacks["pr-12"]["outputs"]["namespace"] == "pr-12"
    assert gate.stacks == ["pr-12"], "the vulnerability gate judged the preview's images before its up"

    # a push a day later updates it and keeps its expiry; --extend restarts the clock
    later = ["--pr", "12"]
    assert cli.main(["preview-stack", "create", "--project-dir", str(project), "--now", "2026-11-24T10:00:00Z", *later]) == 0
    assert pulumi.stacks["pr-12"]["outputs"]["preview"]["expiresAt"] == "2026-11-26T10:00:00Z"
    assert cli.main(["preview-stack", "create", "--project-dir", str(project), "--now", "2026-11-24T10:00:00Z", "--extend", *later]) == 0
    assert pulumi.stacks["pr-12"]["outputs"]["preview"]["expiresAt"] == "2026-11-27T10:00:00Z"


def test_a_refusing_vulnerability_gate_stops_the_create_before_any_up(project, pulumi, gate):
    gate.status = 3
    assert create(project, "--pr", "12") == 3
    assert not [c for c in pulumi.calls if c[0] == "up"] and gate.stacks == ["pr-12"]


def test_a_failed_up_fails_the_command(project, pulumi, gate, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "up")
    assert create(project, "--pr", "12") == 1
    assert "`pulumi up --yes --stack pr-12" in capsys.readouterr().err


def test_without_the_pulumi_cli_create_says_so(project, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert create(project, "--pr", "12") == 2
    assert "the pulumi CLI is not installed" in capsys.readouterr().err


def test_destroy_of_a_missing_preview_is_a_no_op(project, pulumi, capsys):
    assert cli.main(["preview-stack", "destroy", "--pr", "99", "--project-dir", str(project)]) == 0
    assert "nothing to destroy" in capsys.readouterr().out
    assert not [c for c in pulumi.calls if c[0] == "destroy"]


def test_destroy_removes_the_stack_and_its_file(project, pulumi, gate):
    assert create(project, "--pr", "12") == 0
    assert cli.main(["preview-stack", "destroy", "--pr", "12", "--project-dir", str(project)]) == 0
    assert ["destroy", "--yes", "--stack", "pr-12"] in pulumi.calls and ["stack", "rm", "--yes", "pr-12"] in pulumi.calls
    assert "pr-12" not in pulumi.stacks and not (project / "Pulumi.pr-12.yaml").exists()


def full_preview(pr: int, expires: str) -> dict:
    return {
        "outputs": {
            "preview": {"pr": pr, "mode": "full", "baseStack": "dev", "expiresAt": expires},
            "clusterName": f"ml-platform-pr-{pr}",
            "region": "us-west-2",
        },
        "lastUpdate": "2026-11-20T10:00:00.000Z",
    }


def test_destroying_a_full_preview_first_removes_what_its_controllers_left(project, pulumi):
    pulumi.seed({"pr-13": full_preview(13, "2026-11-24T00:00:00Z")})
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-west-2")
        for cluster in ("ml-platform-pr-13", "ml-platform-dev"):
            ec2.run_instances(
                ImageId="ami-12c6146b",
                MinCount=1,
                MaxCount=1,
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"},
                            {"Key": "karpenter.sh/nodepool", "Value": "gpu"},
                        ],
                    }
                ],
            )
        assert cli.main(["preview-stack", "destroy", "--pr", "13", "--project-dir", str(project)]) == 0
        states = {
            next(t["Key"] for t in i["Tags"] if t["Key"].startswith("kubernetes.io/cluster/")): i["State"]["Name"]
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
        }
    assert states == {"kubernetes.io/cluster/ml-platform-pr-13": "terminated", "kubernetes.io/cluster/ml-platform-dev": "running"}
    assert "pr-13" not in pulumi.stacks


def test_sweep_removes_only_expired_previews(project, pulumi, capsys, monkeypatch):
    never_finished = {"outputs": {}, "lastUpdate": "2026-11-01T10:00:00.000Z"}
    pulumi.seed(
        {
            "dev": {"outputs": {"environment": "dev"}, "lastUpdate": "2026-01-01T00:00:00.000Z"},
            "pr-1": {"outputs": {"preview": {"mode": "namespace", "expiresAt": "2026-11-22T00:00:00Z"}}, "lastUpdate": None},
            "pr-2": {"outputs": {"preview": {"mode": "namespace", "expiresAt": "2026-11-30T00:00:00Z"}}, "lastUpdate": None},
            "pr-3": never_finished,
        }
    )
    sweep = ["preview-stack", "sweep", "--project-dir", str(project), "--now", NOW]
    assert cli.main(sweep) == 0
    out = capsys.readouterr().out
    assert "3 preview stack(s), 2 past their time to live" in out and "pr-2: keeps" in out and "--apply" in out
    assert set(pulumi.stacks) == {"dev", "pr-1", "pr-2", "pr-3"}

    # one preview that cannot be destroyed does not keep the others alive
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "destroy:pr-1")
    assert cli.main([*sweep, "--apply"]) == 1
    assert set(pulumi.stacks) == {"dev", "pr-1", "pr-2"}
    monkeypatch.delenv("FAKE_PULUMI_FAIL")
    assert cli.main([*sweep, "--apply"]) == 0
    assert set(pulumi.stacks) == {"dev", "pr-2"}


def test_sweep_refuses_a_bad_time(project, pulumi, capsys):
    assert cli.main(["preview-stack", "sweep", "--project-dir", str(project), "--now", "soon"]) == 2
    assert "--now: 'soon' is not a time" in capsys.readouterr().err


def test_the_preview_namespace_goes_before_its_log_group(project):
    assert create(project, "--pr", "12", "--offline") == 0
    plan = planned(project, "pr-12")
    logs = next(r for r in plan.resources if r["type"] == "aws:cloudwatch/logGroup:LogGroup")
    namespace = next(r for r in plan.resources if r["type"] == "kubernetes:core/v1:Namespace")
    assert logs["urn"] in namespace["dependencies"]
