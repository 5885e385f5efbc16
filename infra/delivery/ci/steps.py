"""The steps of `python -m infra ci` that act on stacks: preview, deploy, preview-stack, sweep, reproduce.

Each runs the platform's own commands in order (`plan`, `doctor`, `models`, `preview-stack`, `reproduce`, through
`run`, the command line's main function, in this process) and the Pulumi CLI (infra/delivery/pulumi_cli.py),
stopping at the first failure: 0 when every part succeeded, 1 when one failed (its own message shown above).
Bad input raises CiInputError (exit 2) before anything runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ml_platform.infra.delivery import pulumi_cli, reproduce
from ml_platform.infra.delivery.ci import EXIT_DONE, EXIT_FAILED, CiInputError
from ml_platform.infra.offline import stack_files

Run = Callable[[list[str]], int]
"""The platform's command line (`python -m infra` without the program name): argv -> exit status."""

EVENTS = ("open", "update", "close")
LABEL_FULL, LABEL_NAMESPACE = "preview-full", "preview"
SYNC_WAIT_SECONDS = 1800
"""How long a reproduction's `models sync` waits for the store its first `pulumi up` is making."""
MAX_OUTPUT = 50_000
"""Characters of `pulumi preview`'s output kept in the markdown (its end: the summary and any error)."""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def say(line: str) -> None:
    print(line, flush=True)


def stack_names(project_dir: Path) -> list[str]:
    """The stacks that have a stack file in `project_dir` (Pulumi.<stack>.yaml, not the preview template)."""
    files = project_dir.glob("Pulumi.*.yaml")
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in files if p.name != stack_files.PREVIEW_TEMPLATE)


def check_stack(project_dir: Path, stack: str) -> None:
    """CiInputError naming --stack when `project_dir` has no Pulumi.<stack>.yaml."""
    if not (project_dir / f"Pulumi.{stack}.yaml").is_file():
        raise CiInputError(f"--stack {stack}: no Pulumi.{stack}.yaml in {project_dir}; give one of: {', '.join(stack_names(project_dir))}")


def _in_order(parts: list[tuple[str, list[str]]], run: Run, then: tuple[str, ...] = ()) -> int:
    """Run each (title, argv) in order; 1 at the first that fails, naming it and what was not run (the rest, and
    `then`: what the caller would have done after them)."""
    for index, (title, argv) in enumerate(parts):
        say(f"\n==> {title}")
        status = run(argv)
        if status != 0:
            skipped = [t for t, _ in parts[index + 1 :]] + list(then)
            say(f"\n{title} failed (exit {status}){'; not run: ' + ', '.join(skipped) if skipped else ''}")
            return EXIT_FAILED
    return EXIT_DONE


def preview_marker(stack: str) -> str:
    """The marker of a stack's preview comment: `ml-platform-preview-<stack>`."""
    return f"ml-platform-preview-{stack}"


def preview_markdown(stack: str, status: int, output: str) -> str:
    """A comment body for `pulumi preview` of `stack`: its marker line, the verdict and the output's last
    MAX_OUTPUT characters (colours stripped) in a folded code block."""
    text = _ANSI.sub("", output).replace("```", "'''")
    if len(text) > MAX_OUTPUT:
        text = "…\n" + text[-MAX_OUTPUT:]
    verdict = "succeeded" if status == 0 else f"failed (exit {status})"
    return (
        f"<!-- {preview_marker(stack)} -->\n### `pulumi preview` of `{stack}` with the policy pack: {verdict}\n\n"
        f"<details><summary>output</summary>\n\n```text\n{text.rstrip()}\n```\n\n</details>\n"
    )


def preview(project_dir: Path, stack: str, run: Run, markdown_path: Path | None = None) -> int:
    """The offline plan of `stack`, then `pulumi preview --stack <stack> --policy-pack policy --diff`; with
    `markdown_path`, a comment body (preview_markdown) written there whether the preview passed or not."""
    check_stack(project_dir, stack)
    if markdown_path is not None and not markdown_path.parent.is_dir():
        raise CiInputError(f"--markdown {markdown_path}: the folder {markdown_path.parent} does not exist")
    if _in_order([(f"offline plan of {stack}", ["plan", "--stack", stack, "--project-dir", str(project_dir)])], run):
        # The comment says so too: the last push's "succeeded" must not stay on the pull request.
        if markdown_path is not None:
            output = "the offline plan failed, so pulumi preview did not run: see the job's log for the plan's problems"
            markdown_path.write_text(preview_markdown(stack, EXIT_FAILED, output), encoding="utf-8")
        return EXIT_FAILED
    say(f"\n==> pulumi preview of {stack} with the policy pack")
    try:
        status, output = pulumi_cli.stream(["preview", "--stack", stack, "--policy-pack", "policy", "--diff"], project_dir)
    except pulumi_cli.PulumiError as err:
        status, output = EXIT_FAILED, f"error: {err}"
        print(output, file=sys.stderr)
    if markdown_path is not None:
        markdown_path.write_text(preview_markdown(stack, status, output), encoding="utf-8")
    return EXIT_DONE if status == 0 else EXIT_FAILED


def deploy(project_dir: Path, stack: str, run: Run) -> int:
    """In order, stopping at the first failure: offline plan (config, policy pack, controllers, capacity), doctor
    (AWS preflight), models verify, the vulnerability gate (`images check`), models sync (registry models; nothing to
    do without them), then
    `pulumi up --stack <stack> --policy-pack policy --yes --skip-preview=false`, streaming Pulumi's progress."""
    check_stack(project_dir, stack)
    where = ["--stack", stack, "--project-dir", str(project_dir)]
    parts = [
        (f"offline plan of {stack}", ["plan", *where]),
        (f"doctor (preflight) of {stack}", ["doctor", *where]),
        (f"models verify of {stack}", ["models", "verify", *where]),
        (f"vulnerability gate of {stack}", ["images", "check", *where]),
        (f"models sync of {stack}", ["models", "sync", *where]),
    ]
    if _in_order(parts, run, then=(f"pulumi up of {stack}",)):
        return EXIT_FAILED
    say(f"\n==> pulumi up of {stack} with the policy pack")
    try:
        pulumi_cli.run(["up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview=false"], project_dir, capture=False)
    except pulumi_cli.PulumiError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    say(f"\n{stack} is deployed")
    return EXIT_DONE


def parse_labels(text: str) -> list[str]:
    """`Preview, other` -> ["preview", "other"]: the change's labels, separated by commas (empty: none), in lower case:
    hosts match label names without case (GitHub's contains() does), so `Preview` must count as `preview`."""
    return [label.strip().lower() for label in text.split(",") if label.strip()]


def preview_mode(labels: list[str]) -> str | None:
    """`full` with the label preview-full, else `namespace` with the label preview, else None (no preview)."""
    if LABEL_FULL in labels:
        return "full"
    return "namespace" if LABEL_NAMESPACE in labels else None


def preview_stack(project_dir: Path, change: int, event: str, labels: list[str], run: Run, secrets_provider: str | None = None) -> int:
    """The change's preview stack pr-<change> follows its event and labels: on `open` or `update` with the label
    preview (namespace mode) or preview-full (full mode), `preview-stack create` (an update keeps the expiry); on
    `close`, or without either label, `preview-stack destroy` (nothing to do when there is none)."""
    if change < 1:
        raise CiInputError(f"--change {change}: give the pull or merge request's number (1 or more)")
    if event not in EVENTS:
        raise CiInputError(f"--event {event}: give one of {', '.join(EVENTS)}")
    mode = preview_mode(labels)
    where = ["--pr", str(change), "--project-dir", str(project_dir)]
    if event == "close" or mode is None:
        why = "the change is closed" if event == "close" else f"the change has neither label {LABEL_NAMESPACE} nor {LABEL_FULL}"
        return _in_order([(f"remove preview stack pr-{change} ({why})", ["preview-stack", "destroy", *where])], run)
    create = ["preview-stack", "create", *where, "--mode", mode]
    if secrets_provider:
        create += ["--secrets-provider", secrets_provider]
    return _in_order([(f"create or update preview stack pr-{change} ({mode} mode)", create)], run)


def sweep(project_dir: Path, apply: bool, run: Run) -> int:
    """`preview-stack sweep`: list the preview stacks past their time to live, and with `apply` remove them."""
    argv = ["preview-stack", "sweep", "--project-dir", str(project_dir), *(["--apply"] if apply else [])]
    return _in_order([("preview stacks past their time to live" + ("" if apply else " (dry run)"), argv)], run)


def reproduce_copy(
    project_dir: Path, name: str, run: Run, source: str = "staging", deploy: bool = False, secrets_provider: str | None = None
) -> int:
    """Write Pulumi.<name>.yaml as a copy of `source` (`reproduce`) and plan it offline; with `deploy`, create the
    stack and `pulumi up` it with the policy pack while `models sync --wait-for-store SYNC_WAIT_SECONDS` copies the
    registry models into its store as soon as that up has made it (the sync is stopped when the up fails), after the
    vulnerability gate has passed the copy's images."""
    try:
        reproduce.check_name(name)
    except reproduce.ReproduceError as err:
        raise CiInputError(f"--as {name}: {err}") from None
    if not (project_dir / f"Pulumi.{source}.yaml").is_file():
        raise CiInputError(f"--from {source}: no Pulumi.{source}.yaml in {project_dir}; give one of: {', '.join(stack_names(project_dir))}")
    if (project_dir / f"Pulumi.{name}.yaml").exists():
        raise CiInputError(f"--as {name}: Pulumi.{name}.yaml exists; choose another name")
    parts = [
        (f"reproduce {source} as {name}", ["reproduce", "--from", source, "--as", name, "--project-dir", str(project_dir)]),
        (f"offline plan of {name}", ["plan", "--stack", name, "--project-dir", str(project_dir)]),
    ]
    if deploy:
        parts.append((f"vulnerability gate of {name}", ["images", "check", "--stack", name, "--project-dir", str(project_dir)]))
    if _in_order(parts, run):
        return EXIT_FAILED
    return _deploy_copy(project_dir, name, secrets_provider) if deploy else EXIT_DONE


def _deploy_copy(project_dir: Path, name: str, secrets_provider: str | None) -> int:
    say(f"\n==> pulumi up of {name} with the policy pack, and models sync beside it")
    select = ["stack", "select", "--create", name, *(["--secrets-provider", secrets_provider] if secrets_provider else [])]
    try:
        pulumi_cli.run(select, project_dir)
    except pulumi_cli.PulumiError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    sync_command = [sys.executable, "-m", "ml_platform.infra", "models", "sync", "--stack", name]
    sync = subprocess.Popen([*sync_command, "--wait-for-store", str(SYNC_WAIT_SECONDS), "--project-dir", str(project_dir)])
    up_failed = None
    try:
        pulumi_cli.run(["up", "--yes", "--stack", name, "--policy-pack", "policy"], project_dir, capture=False)
    except pulumi_cli.PulumiError as err:
        up_failed = str(err)
        sync.terminate()  # an up that failed may never make the store; a sync is safe to stop and rerun
    synced = sync.wait()
    if up_failed:
        print(f"error: {up_failed}", file=sys.stderr)
        return EXIT_FAILED
    if synced != 0:
        say(f"models sync of {name} failed (exit {synced}); rerun: python -m infra models sync --stack {name}")
        return EXIT_FAILED
    say(f"\n{name} is up; remove it with: python -m infra cleanup --stack {name} --apply, pulumi destroy, pulumi stack rm")
    return EXIT_DONE
