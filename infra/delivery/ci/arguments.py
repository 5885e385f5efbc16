"""The `python -m infra ci` command's arguments: one sub-command per delivery step, each documented flag by flag
(the handler that runs them is infra/cli.py's `_ci`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ml_platform.infra.delivery.ci import comments, plan_diff, steps


def add_arguments(
    commands: argparse._SubParsersAction,
    handler: Callable[[argparse.Namespace], int],
    stack_arguments: Callable[[argparse.ArgumentParser], None],
    project_dir_argument: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The `ci` command and its steps on the CLI's subparsers, each step handled by `handler` (infra/cli.py `_ci`),
    with the CLI's own `--stack` and `--project-dir` arguments."""
    ci = commands.add_parser(
        "ci",
        help="what CI jobs do, one step a command: plan-diff, comment, preview, deploy, preview-stack, sweep, reproduce",
        description="The delivery steps every CI system runs (GitHub Actions, GitLab CI, Azure Pipelines, Jenkins), each "
        "configured by flags only. Exit status: 0 done; 1 a step it ran failed (that tool's message shown); 2 bad input "
        "(the flag named, nothing done); 3 refused by the replacement gate.",
    )
    ci_steps = ci.add_subparsers(dest="step", required=True, metavar="STEP")

    def step(name: str, text: str) -> argparse.ArgumentParser:
        sub = ci_steps.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.set_defaults(handler=handler)
        return sub

    diffs = step("plan-diff", "diff the base and head offline plans of each stack, write a comment body and a summary, gate replacements")
    diffs.add_argument("--base", required=True, help="the base checkout's build/plan folder (make -C <base> plans)")
    diffs.add_argument("--head", required=True, help="the head checkout's build/plan folder (make -C <head> plans)")
    diffs.add_argument(
        "--stacks", default=",".join(plan_diff.DEFAULT_STACKS), help="stacks to diff, separated by commas (default: dev,staging,prod)"
    )
    diffs.add_argument(
        "--approved-replacement",
        action="store_true",
        help=f"the change carries the label {plan_diff.OVERRIDE_LABEL}: a stateful replacement passes the gate (else exit 3)",
    )
    diffs.add_argument("--markdown", metavar="FILE", help=f"write the comment body there (starts with <!-- {plan_diff.MARKER} -->)")
    diffs.add_argument("--json", metavar="FILE", help='write the summary there: {"stacks": {...}, "gate": "pass"|"approved"|"refused"}')

    post = step("comment", "post one comment per change, or update the earlier one found by its marker")
    post.add_argument("--host", required=True, choices=comments.HOSTS, help="the hosting service whose API takes the comment")
    post.add_argument(
        "--api-url",
        help="the API's base URL (default: https://api.github.com for github, https://gitlab.com/api/v4 for gitlab; "
        "azure needs it: https://dev.azure.com/<org>)",
    )
    post.add_argument(
        "--project",
        required=True,
        help="github: owner/repo; gitlab: the project's id or group/project; azure: project/repositoryId",
    )
    post.add_argument("--change", type=int, required=True, help="the pull request, merge request (iid) or pull request id")
    post.add_argument("--body", required=True, metavar="FILE", help="the comment's markdown (the marker line is added when it lacks it)")
    post.add_argument(
        "--marker", default=plan_diff.MARKER, help=f"finds the comment: <!-- TEXT --> at its start (default {plan_diff.MARKER})"
    )
    post.add_argument(
        "--token-scheme",
        default="bearer",
        choices=comments.TOKEN_SCHEMES,
        help="azure: how the token is sent: bearer (System.AccessToken, default) or basic (a personal access token, as Jenkins holds)",
    )
    post.add_argument(
        "--optional",
        action="store_true",
        help=f"without a token in {comments.TOKEN_ENV} say 'no token: not posted' and exit 0 (a fork's change), instead of exit 2",
    )

    look = step("preview", "offline plan, then pulumi preview with the policy pack")
    stack_arguments(look)
    look.add_argument("--markdown", metavar="FILE", help="also write the preview's output there as a comment body, passed or not")

    ship = step("deploy", "offline plan, doctor, models verify and sync, then pulumi up with the policy pack; stops at the first failure")
    stack_arguments(ship)

    stacks = step("preview-stack", "create or update the change's preview stack pr-<change> from its labels, or remove it")
    stacks.add_argument("--change", type=int, required=True, help="the pull or merge request's number: the stack is pr-<change>")
    stacks.add_argument(
        "--event", required=True, choices=steps.EVENTS, help="open or update: create or update with a preview label; close: remove"
    )
    stacks.add_argument(
        "--labels",
        default="",
        help=f"the change's labels, separated by commas: {steps.LABEL_NAMESPACE} (namespace mode) or {steps.LABEL_FULL} (full "
        "mode); neither removes the stack (default: none)",
    )
    stacks.add_argument("--secrets-provider", help="for a new stack, e.g. awskms://alias/ml-platform-pulumi-secrets?region=us-west-2")
    project_dir_argument(stacks)

    sweeping = step("sweep", "list (and with --apply remove) preview stacks past their time to live")
    sweeping.add_argument("--apply", action="store_true", help="remove the expired previews (default: a dry run)")
    project_dir_argument(sweeping)

    copy = step("reproduce", "write and plan a copy of a stack with its exact versions; with --deploy, up it and sync its models")
    copy.add_argument("--as", dest="name", required=True, help="name of the copy (1-30 lowercase letters, digits or '-')")
    copy.add_argument("--from", dest="source", default="staging", help="stack to copy (default: staging)")
    copy.add_argument("--deploy", action="store_true", help="also create the stack and pulumi up it, with models sync beside it")
    copy.add_argument("--secrets-provider", help="for the new stack, e.g. awskms://alias/ml-platform-pulumi-secrets?region=us-west-2")
    project_dir_argument(copy)
