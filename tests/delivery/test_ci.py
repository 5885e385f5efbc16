"""`python -m infra ci`: plan-diff over real plans (the diff, the JSON summary, the replacement gate), and the
stack steps (preview, deploy, preview-stack, sweep, reproduce) in order, driving the stand-in Pulumi CLI
(tests/delivery/fake_pulumi.py) or a recorder of the platform's own commands; bad input is exit 2 with the flag
named, no traceback and nothing done. The comment step's hosts are in test_ci_comments.py."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ml_platform.infra import cli
from ml_platform.infra.delivery.ci import steps

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("dev", "staging", "prod")


@pytest.fixture
def project(tmp_path):
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml", "Pulumi.pr.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "policy").mkdir()
    return tmp_path


class Recorder:
    """Stands in for the command line's main: records each argv, answers 0 unless told which command fails."""

    def __init__(self, fail: str | None = None):
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: list[str]) -> int:
        self.calls.append(argv)
        name = " ".join(a for a in argv[:2] if not a.startswith("-"))
        return 1 if self.fail and name.startswith(self.fail) else 0

    @property
    def commands(self) -> list[str]:
        return [" ".join(a for a in argv[:2] if not a.startswith("-")) for argv in self.calls]


# plan-diff ----------------------------------------------------------------------------------------------------


def write_plans(folder: Path, documents: dict[str, dict]) -> Path:
    for stack, document in documents.items():
        (folder / stack).mkdir(parents=True)
        (folder / stack / "plan.json").write_text(json.dumps(document))
    return folder


@pytest.fixture
def plan_folders(tmp_path, plans):
    """base/ and head/ as `make plans` writes build/plan: head's prod replaces its GPU node group (a stateful replacement)."""
    documents = {stack: json.loads(plans[stack].to_json()) for stack in STACKS}
    head = copy.deepcopy(documents)
    group = next(r for r in head["prod"]["resources"] if r["type"] == "aws:eks/nodeGroup:NodeGroup" and r["name"] == "gpu-ng")
    group["inputs"]["instanceTypes"] = ["g6.2xlarge"]
    return write_plans(tmp_path / "base", documents), write_plans(tmp_path / "head", head)


def plan_diff(base, head, out: Path, *extra) -> int:
    return cli.main(
        [
            "ci",
            "plan-diff",
            "--base",
            str(base),
            "--head",
            str(head),
            "--markdown",
            str(out / "c.md"),
            "--json",
            str(out / "s.json"),
            *extra,
        ]
    )


def test_plan_diff_writes_one_body_and_a_summary_and_refuses_an_unapproved_stateful_replacement(plan_folders, tmp_path, capsys):
    base, head = plan_folders
    assert plan_diff(base, head, tmp_path) == 3
    body, summary = (tmp_path / "c.md").read_text(), json.loads((tmp_path / "s.json").read_text())
    assert body.startswith("<!-- ml-platform-plan-diff -->\n")
    assert [line for line in body.splitlines() if line.startswith("### Plan diff of")] == [
        "### Plan diff of `dev`: 0 to add, 0 to change (0 replaced), 0 to remove",
        "### Plan diff of `staging`: 0 to add, 0 to change (0 replaced), 0 to remove",
        "### Plan diff of `prod`: 0 to add, 1 to change (1 replaced), 0 to remove",
    ]
    assert body.count("**estimated monthly cost:") == 3 and "**Replacement gate: refused.**" in body
    assert summary["gate"] == "refused"
    assert [(e["type"], e["name"]) for e in summary["stacks"]["prod"]["replacements"]] == [("aws:eks/nodeGroup:NodeGroup", "gpu-ng")]
    assert "instanceTypes[0] forces replacement" in summary["stacks"]["prod"]["replacements"][0]["reasons"]
    assert summary["stacks"]["dev"] == {"added": 0, "changed": 0, "removed": 0, "replacements": [], "refused": []}
    out = capsys.readouterr().out
    assert "prod: 0 to add, 1 to change, 0 to remove; 1 stateful replacement(s)" in out and "approve-stateful-replacement" in out


def test_the_override_label_approves_and_an_unchanged_plan_passes(plan_folders, tmp_path):
    base, head = plan_folders
    assert plan_diff(base, head, tmp_path, "--approved-replacement") == 0
    assert json.loads((tmp_path / "s.json").read_text())["gate"] == "approved"
    assert "**Replacement gate: approved** by the label `approve-stateful-replacement`." in (tmp_path / "c.md").read_text()
    assert plan_diff(base, base, tmp_path, "--stacks", "prod") == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["gate"], list(summary["stacks"])) == ("pass", ["prod"])
    assert "Replacement gate" not in (tmp_path / "c.md").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda base, head: ["--head", str(head.parent / "nowhere")], "--head {tmp}/nowhere: not a directory"),
        (lambda base, head: ["--stacks", "dev,Prod!"], "--stacks 'dev,Prod!': give stack names separated by commas"),
        (
            lambda base, head: ["--stacks", "dev,qa"],
            "--base {tmp}/base: no plan of stack 'qa' (no folder qa/ there); `make plans` writes them",
        ),
        (lambda base, head: shutil.copytree(base / "dev", base / "qa") and ["--stacks", "qa"], "qa/plan.json is a plan of stack 'dev'"),
        (
            lambda base, head: ["--markdown", str(head.parent / "no" / "c.md")],
            "--markdown {tmp}/no/c.md: the folder {tmp}/no does not exist",
        ),
    ],
    ids=["missing-folder", "bad-stacks", "missing-plan", "other-stacks-plan", "unwritable-output"],
)
def test_plan_diff_bad_input_exits_2_naming_the_flag_and_writes_nothing(plan_folders, tmp_path, capsys, change, message):
    base, head = plan_folders
    argv = ["ci", "plan-diff", "--base", str(base), "--head", str(head), "--json", str(tmp_path / "s.json"), *change(base, head)]
    assert cli.main(argv) == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_bad_input_is_one_line_without_traceback_in_a_real_process(tmp_path):
    command = [sys.executable, "-m", "ml_platform.infra", "ci", "plan-diff", "--base", str(tmp_path), "--head", str(tmp_path / "x")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == f"error: --head {tmp_path / 'x'}: not a directory; give the build/plan folder `make plans` wrote in that checkout"
    )


# preview and deploy ---------------------------------------------------------------------------------------------


def test_preview_plans_offline_then_previews_with_the_policy_pack_and_writes_a_comment_body(project, pulumi, tmp_path, monkeypatch):
    pulumi.seed({"dev": {"outputs": {}, "lastUpdate": None}})
    body = tmp_path / "preview.md"
    assert cli.main(["ci", "preview", "--stack", "dev", "--project-dir", str(project), "--markdown", str(body)]) == 0
    assert (project / "build" / "plan" / "dev" / "plan.json").is_file(), "the offline plan ran first"
    assert pulumi.calls == [["preview", "--stack", "dev", "--policy-pack", "policy", "--diff"]]
    text = body.read_text()
    assert text.startswith("<!-- ml-platform-preview-dev -->\n### `pulumi preview` of `dev` with the policy pack: succeeded")
    assert "Previewing update (dev)" in text and "policy: passed" in text

    monkeypatch.setenv("FAKE_PULUMI_FAIL", "preview")
    assert cli.main(["ci", "preview", "--stack", "dev", "--project-dir", str(project), "--markdown", str(body)]) == 1
    assert "failed (exit 1)" in body.read_text() and "preview failed on purpose" in body.read_text()


def test_a_failed_offline_plan_replaces_the_last_preview_comment(project, pulumi, tmp_path):
    body = tmp_path / "preview.md"
    body.write_text("<!-- ml-platform-preview-dev -->\n... succeeded")
    assert steps.preview(project, "dev", Recorder(fail="plan"), body) == 1
    assert "failed (exit 1)" in body.read_text() and "the offline plan failed" in body.read_text()
    assert pulumi.calls == [], "no preview without a plan"


def test_a_stack_without_its_file_is_exit_2_and_nothing_runs(project, pulumi, capsys):
    for step in ("preview", "deploy"):
        assert cli.main(["ci", step, "--stack", "qa", "--project-dir", str(project)]) == 2
        assert f"--stack qa: no Pulumi.qa.yaml in {project}; give one of: dev, prod, staging" in capsys.readouterr().err
    assert pulumi.calls == []


def test_deploy_runs_plan_doctor_models_then_pulumi_up_in_order(project, pulumi):
    pulumi.seed({"staging": {"outputs": {}, "lastUpdate": None}})
    run = Recorder()
    assert steps.deploy(project, "staging", run) == 0
    assert run.commands == ["plan", "doctor", "models verify", "images check", "models sync"]
    assert all(argv[-4:] == ["--stack", "staging", "--project-dir", str(project)] for argv in run.calls)
    assert pulumi.calls == [["up", "--stack", "staging", "--policy-pack", "policy", "--yes", "--skip-preview=false"]]
    assert pulumi.stacks["staging"]["outputs"]["environment"] == "staging", "the stand-in's up ran the program"


@pytest.mark.parametrize("failing", ["plan", "doctor", "models verify", "images check", "models sync"])
def test_deploy_stops_at_the_first_failure(project, pulumi, capsys, failing):
    run = Recorder(fail=failing)
    assert steps.deploy(project, "staging", run) == 1
    order = ["plan", "doctor", "models verify", "images check", "models sync"]
    assert run.commands == order[: order.index(failing) + 1]
    assert pulumi.calls == [], "no pulumi up after a failed step"
    assert "failed (exit 1)" in capsys.readouterr().out


def test_deploy_through_the_command_line_stops_at_doctor_without_credentials(project, pulumi, no_credentials, capsys):
    pulumi.seed({"dev": {"outputs": {}, "lastUpdate": None}})
    assert cli.main(["ci", "deploy", "--stack", "dev", "--project-dir", str(project)]) == 1
    out = capsys.readouterr().out
    assert "==> offline plan of dev" in out and "==> doctor (preflight) of dev" in out
    not_run = "models verify of dev, vulnerability gate of dev, models sync of dev, pulumi up of dev"
    assert f"doctor (preflight) of dev failed (exit 1); not run: {not_run}" in out
    assert pulumi.calls == []


def test_a_failed_pulumi_up_is_exit_1_with_its_message(project, pulumi, monkeypatch, capsys):
    pulumi.seed({"dev": {"outputs": {}, "lastUpdate": None}})
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "up")
    assert steps.deploy(project, "dev", Recorder()) == 1
    assert "`pulumi up --stack dev --policy-pack policy --yes --skip-preview=false` failed with exit status 1" in capsys.readouterr().err


# preview-stack, sweep, reproduce ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "labels", "expected"),
    [
        ("open", "preview", ["preview-stack", "create", "--pr", "7", "--mode", "namespace"]),
        ("update", "bug, preview-full,preview", ["preview-stack", "create", "--pr", "7", "--mode", "full"]),
        ("update", "bug", ["preview-stack", "destroy", "--pr", "7"]),
        ("close", "preview-full", ["preview-stack", "destroy", "--pr", "7"]),
    ],
)
def test_the_preview_stack_follows_the_event_and_labels(project, event, labels, expected):
    run = Recorder()
    assert steps.preview_stack(project, 7, event, steps.parse_labels(labels), run, secrets_provider="") == 0
    (argv,) = run.calls
    assert [a for a in argv if a not in ("--project-dir", str(project))] == expected


def test_a_preview_stack_is_created_then_removed_through_the_stand_in(project, pulumi, gate, capsys):
    where = ["--project-dir", str(project)]
    secrets = "awskms://alias/x?region=us-west-2"
    argv = ["ci", "preview-stack", "--change", "12", "--event", "open", "--labels", "preview", "--secrets-provider", secrets, *where]
    assert cli.main(argv) == 0
    assert pulumi.stacks["pr-12"]["secretsProvider"] == secrets
    assert pulumi.stacks["pr-12"]["outputs"]["preview"]["mode"] == "namespace"
    assert cli.main(["ci", "preview-stack", "--change", "12", "--event", "close", *where]) == 0
    assert "pr-12" not in pulumi.stacks
    assert "removed pr-12" in capsys.readouterr().out


def test_preview_stack_and_sweep_bad_input_and_failures(project, pulumi, monkeypatch, capsys):
    assert cli.main(["ci", "preview-stack", "--change", "0", "--event", "open", "--project-dir", str(project)]) == 2
    assert "--change 0: give the pull or merge request's number (1 or more)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ci", "preview-stack", "--change", "3", "--event", "reopen"])
    assert exit_info.value.code == 2
    assert "argument --event: invalid choice: 'reopen'" in capsys.readouterr().err
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "stack ls")
    assert cli.main(["ci", "sweep", "--project-dir", str(project)]) == 1
    assert "preview stacks past their time to live (dry run) failed (exit 2)" in capsys.readouterr().out


def test_sweep_passes_apply_on(project):
    run = Recorder()
    assert steps.sweep(project, False, run) == 0 and steps.sweep(project, True, run) == 0
    assert [argv[-1] for argv in run.calls] == [str(project), "--apply"]


def test_reproduce_writes_plans_and_deploys_the_copy_with_models_sync_beside_it(project, pulumi, plans, gate, capfd):
    pulumi.seed({"staging": {"outputs": plans["staging"].outputs, "lastUpdate": "2026-11-23T10:00:00.000Z"}})
    where = ["--project-dir", str(project)]
    assert cli.main(["ci", "reproduce", "--as", "repro-1", *where]) == 0
    assert (project / "Pulumi.repro-1.yaml").is_file() and (project / "build" / "plan" / "repro-1" / "plan.json").is_file()
    assert "repro-1" not in pulumi.stacks, "not deployed unless asked"

    assert cli.main(["ci", "reproduce", "--as", "repro-2", "--deploy", "--secrets-provider", "awskms://alias/k", *where]) == 0
    assert pulumi.calls[-2:] == [
        ["stack", "select", "--create", "repro-2", "--secrets-provider", "awskms://alias/k"],
        ["up", "--yes", "--stack", "repro-2", "--policy-pack", "policy"],
    ]
    assert pulumi.stacks["repro-2"]["outputs"]["clusterName"] == "ml-platform-repro-2"
    out = capfd.readouterr().out  # models sync ran in its own process
    assert "stack 'repro-2' has no model with source.registry: nothing to sync" in out and "repro-2 is up" in out
    assert gate.stacks == ["repro-2"], "the copy's images were judged before its up (and the plan-only copy's were not)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--as", "Repro_1"], "--as Repro_1: 'Repro_1' must be 1-30 lowercase letters"),
        (["--as", "staging"], "--as staging: Pulumi.staging.yaml exists; choose another name"),
        (["--as", "r1", "--from", "qa"], "--from qa: no Pulumi.qa.yaml in"),
    ],
)
def test_reproduce_bad_input_exits_2_before_anything(project, pulumi, capsys, argv, message):
    assert cli.main(["ci", "reproduce", *argv, "--project-dir", str(project)]) == 2
    assert message in capsys.readouterr().err
    assert pulumi.calls == [] and not (project / "Pulumi.r1.yaml").exists()


# the command line ---------------------------------------------------------------------------------------------


def test_every_ci_step_and_flag_has_help_text():
    top = cli.parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    ci = commands.choices["ci"]
    ci_steps = next(a for a in ci._actions if isinstance(a, argparse._SubParsersAction))
    assert list(ci_steps.choices) == ["plan-diff", "comment", "preview", "deploy", "preview-stack", "sweep", "reproduce"]
    for name, parser in ci_steps.choices.items():
        assert parser.description, name
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and action.help != argparse.SUPPRESS, f"ci {name} {action.option_strings[0]}"


def test_a_copy_may_not_take_a_preview_stacks_name(project, capsys):
    from ml_platform.infra.delivery import preview, reproduce

    assert reproduce.PREVIEW_NAME.pattern == preview.PREVIEW_STACK.pattern
    assert cli.main(["ci", "reproduce", "--as", "pr-12", "--project-dir", str(project)]) == 2
    assert "'pr-12' is a preview stack's name" in capsys.readouterr().err
    assert not (project / "Pulumi.pr-12.yaml").exists()


def test_labels_count_whatever_their_case():
    assert steps.preview_mode(steps.parse_labels(" Preview ,bug")) == "namespace"
    assert steps.preview_mode(steps.parse_labels("PREVIEW-FULL")) == "full"
