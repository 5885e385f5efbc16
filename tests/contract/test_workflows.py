"""The CI workflows and the composite action are valid for GitHub (its schemas, through check-jsonschema) and
pass zizmor's security audits (pinned actions, least-privilege tokens, no template injection); AWS is reached
through OIDC only, and stack operations are never cancelled mid-way."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
ZIZMOR_CONFIG = ROOT / ".github" / "zizmor.yml"
OIDC_ACTION = "aws-actions/configure-aws-credentials"
SETUP_ACTION = "./.github/actions/platform-setup"


def check_schema(path: Path, schema: str = "vendor.github-workflows") -> subprocess.CompletedProcess:
    command = [tool("check-jsonschema"), "--builtin-schema", schema, str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def audit(path: Path) -> subprocess.CompletedProcess:
    command = [tool("zizmor"), "--offline", "--no-progress", "--config", str(ZIZMOR_CONFIG), str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def steps_of(document: dict) -> list[dict]:
    """Every step of a workflow's jobs, or of a composite action."""
    if "runs" in document:
        return document["runs"]["steps"]
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def test_there_are_workflows():
    assert [p.name for p in WORKFLOWS] == [
        "deploy.yml",
        "platform-images.yml",
        "preview-sweep.yml",
        "preview.yml",
        "pull-request.yml",
        "reproduce.yml",
    ]
    assert [p.parent.name for p in ACTIONS] == ["platform-setup"]


@pytest.mark.parametrize("path", ACTIONS, ids=[p.parent.name for p in ACTIONS])
def test_composite_action_matches_githubs_schema_and_passes_zizmor(path):
    result = check_schema(path, "vendor.github-actions")
    assert result.returncode == 0, result.stdout + result.stderr
    result = audit(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_githubs_schema(path):
    result = check_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_passes_zizmor(path):
    result = audit(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit():
    for path in [*WORKFLOWS, *ACTIONS]:
        for step in steps_of(yaml.safe_load(path.read_text())):
            if step.get("uses", "").startswith("./"):
                assert (ROOT / step["uses"] / "action.yml").exists(), step["uses"]
            elif "uses" in step:
                ref = step["uses"].split("@", 1)[1]
                assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), step["uses"]


def aws_access_problems(workflow: dict) -> list[str]:
    """Jobs reaching AWS must do it through OIDC: an id-token, a role to assume, no stored keys; the workflow
    grants nothing by default."""
    problems = [] if workflow.get("permissions") == {} else ["the workflow must grant no permissions by default"]
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            uses, given = step.get("uses", ""), step.get("with", {})
            if uses == SETUP_ACTION or uses.startswith(OIDC_ACTION):
                if job.get("permissions", {}).get("id-token") != "write":
                    problems.append(f"{name}: reaches AWS without `id-token: write`")
                if not given.get("role-to-assume") or "aws-access-key-id" in given or "aws-secret-access-key" in given:
                    problems.append(f"{name}: AWS credentials must come from a role through OIDC, not keys")
    return problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_aws_is_reached_through_oidc_only(path):
    assert aws_access_problems(yaml.safe_load(path.read_text())) == []


def test_the_setup_action_assumes_a_role_and_pins_pulumi():
    steps = steps_of(yaml.safe_load(ACTIONS[0].read_text()))
    credentials = next(s for s in steps if s.get("uses", "").startswith(OIDC_ACTION))
    assert set(credentials["with"]) == {"role-to-assume", "aws-region", "role-session-name", "role-duration-seconds"}
    # the roles' MaxSessionDuration (bootstrap-ci): a deploy outlasts STS's default hour
    assert credentials["with"]["role-duration-seconds"] == 14400
    pulumi = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"] == {"pulumi-version-file": ".pulumi.version"}
    assert (ROOT / ".pulumi.version").read_text().strip().count(".") == 2


def test_the_oidc_check_catches_stored_keys():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    step = next(s for s in workflow["jobs"]["prod"]["steps"] if s.get("uses") == SETUP_ACTION)
    step["with"] = {"aws-access-key-id": "${{ secrets.KEY }}", "aws-region": "us-west-2"}
    del workflow["jobs"]["staging"]["permissions"]["id-token"]
    assert aws_access_problems(workflow) == [
        "staging: reaches AWS without `id-token: write`",
        "prod: AWS credentials must come from a role through OIDC, not keys",
    ]


@pytest.mark.parametrize("name", ["deploy.yml", "preview.yml", "preview-sweep.yml", "reproduce.yml"])
def test_stack_operations_queue_and_are_never_cancelled(name):
    # A cancelled `pulumi up` or `destroy` leaves the stack locked and half-changed.
    concurrency = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())["concurrency"]
    assert concurrency["cancel-in-progress"] is False


def test_prod_is_deployed_after_staging_behind_its_environment():
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]
    assert jobs["staging"]["environment"] == "staging"
    assert (jobs["prod"]["needs"], jobs["prod"]["environment"]) == ("staging", "prod")
    for name, job in jobs.items():
        # plan, doctor, models verify and sync, then `pulumi up --policy-pack policy` (infra/delivery/ci/steps.py)
        assert job["steps"][-1]["run"] == f"venv/bin/python -m infra ci deploy --stack {name}"


def test_previews_run_with_the_policy_pack_and_only_where_credentials_exist():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    jobs = workflow["jobs"]
    for job in jobs.values():
        # forks have no OIDC token and no variables: their jobs are skipped, not failed
        assert "vars.AWS_PREVIEW_ROLE_ARN != ''" in job["if"]
        assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    runs = [step.get("run", "") for step in jobs["pulumi-preview"]["steps"]]
    assert 'venv/bin/python -m infra ci preview --stack "$STACK" --markdown preview.md' in runs
    assert any("ci comment --host github" in run and '--marker "ml-platform-preview-$STACK"' in run for run in runs)
    assert jobs["pulumi-preview"]["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    assert "ci preview-stack --change" in jobs["preview-stack"]["steps"][-1]["run"]
    assert jobs["destroy-preview-stack"]["steps"][-1]["run"].endswith('ci preview-stack --change "$PR" --event close')
    sweep = yaml.safe_load((ROOT / ".github" / "workflows" / "preview-sweep.yml").read_text())
    assert sweep[True]["schedule"] and "ci sweep --apply" in sweep["jobs"]["sweep"]["steps"][-1]["run"]


CORE_WORKFLOWS = ["deploy.yml", "preview.yml", "preview-sweep.yml", "pull-request.yml", "reproduce.yml"]


@pytest.mark.parametrize("name", CORE_WORKFLOWS)
def test_every_delivery_step_calls_the_ci_core(name):
    # Issue #20: the logic lives in `python -m infra ci` (tested in tests/delivery/test_ci*.py), the workflow only
    # maps GitHub's variables to its flags. The Pulumi CLI is installed by the setup action and run by the core.
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    calls = [line.strip() for step in steps for line in step.get("run", "").splitlines() if "python -m infra" in line]
    assert calls and all("python -m infra ci " in call for call in calls), calls
    assert not [step["uses"] for step in steps if step.get("uses", "").startswith("pulumi/actions@")]
    commands = [line.split()[0] for step in steps for line in step.get("run", "").splitlines() if line.strip()]
    assert not {"pulumi", "gh"} & set(commands), "the core calls Pulumi and the host's API"


def test_the_plan_diff_gate_fails_the_job_after_the_comment_and_forks_post_nothing():
    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())["jobs"]["plan-diff"]["steps"]
    diff = next(step for step in steps if "ci plan-diff" in step.get("run", ""))
    post = next(step for step in steps if "ci comment" in step.get("run", ""))
    assert "approve-stateful-replacement" in diff["env"]["APPROVED"] and "--approved-replacement" in diff["run"]
    assert post["if"] == "${{ !cancelled() && hashFiles('comment.md') != '' }}", "the comment is posted when the gate refused (exit 3)"
    token = post["env"]["CI_COMMENT_TOKEN"]
    assert token.startswith("${{ github.event.pull_request.head.repo.full_name == github.repository && github.token")
    assert "--optional" in post["run"]


def test_the_checks_catch_a_broken_or_unsafe_workflow(tmp_path):
    # Edited as text: a YAML round trip would turn `on:` into `true:` and fail for the wrong reason.
    text = (ROOT / ".github" / "workflows" / "pull-request.yml").read_text()
    safe = tmp_path / "safe.yml"
    safe.write_text(text)
    assert audit(safe).returncode == 0 and check_schema(safe).returncode == 0
    unsafe = tmp_path / "unsafe.yml"
    unsafe.write_text(text + "\n      - name: Echo the title\n        run: echo ${{ github.event.pull_request.title }}\n")
    assert check_schema(unsafe).returncode == 0
    result = audit(unsafe)
    assert result.returncode != 0 and "template-injection" in result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("    runs-on: ubuntu-24.04\n", ""))
    assert check_schema(broken).returncode != 0, "the schema requires runs-on"


def test_zizmor_catches_a_checkout_that_keeps_its_token(tmp_path):
    text = (ROOT / ".github" / "workflows" / "preview.yml").read_text()
    leaky = tmp_path / "leaky.yml"
    leaky.write_text(text.replace("        with:\n          persist-credentials: false\n", "", 1))
    assert leaky.read_text() != text
    result = audit(leaky)
    assert result.returncode != 0 and "artipacked" in result.stdout + result.stderr


def test_platform_images_are_built_for_every_environment_and_fail_on_a_blocking_finding():
    import subprocess

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "platform-images.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["staging"]["environment"] == "staging" and jobs["prod"]["environment"] == "prod"
    assert "staging" in jobs["prod"]["needs"], "prod takes only what passed staging's scan"
    assert jobs["check"]["if"].startswith("github.event_name == 'pull_request'") and "id-token" not in jobs["check"]["permissions"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    for job in ("staging", "prod"):
        assert jobs[job]["steps"][-1]["run"] == "bash .github/scripts/publish-image.sh"
    script = ROOT / ".github" / "scripts" / "publish-image.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "COMPLETE | ACTIVE) break" in text and "start-image-scan" in text and "(.CRITICAL // 0) + (.HIGH // 0)" in text
    assert "grep -q ImageNotFoundException" in text, "only a missing image is built again; other errors stop"
    # the images the workflow finds are the folders the Dockerfile checks cover
    assert "images -mindepth 2 -maxdepth 2 -name Dockerfile" in jobs["list"]["steps"][-1]["run"]
