"""The few Pulumi CLI calls the delivery commands make (`stack output`, `stack ls`, `stack select`, `preview`, `up`,
`destroy`, `stack rm`). Long operations stream Pulumi's own progress to the terminal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


class PulumiError(Exception):
    """The CLI is missing or a command failed."""


def run(arguments: list[str], cwd: Path, capture: bool = True) -> str:
    """Run `pulumi <arguments>` non-interactively; the output when captured, else Pulumi prints as it goes."""
    command = ["pulumi", *arguments, "--non-interactive"]
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=capture, text=True, check=False)
    except FileNotFoundError:
        raise PulumiError("the pulumi CLI is not installed (https://www.pulumi.com/docs/install/)") from None
    if result.returncode != 0:
        detail = f": {result.stderr.strip()}" if capture and result.stderr else ""
        raise PulumiError(f"`pulumi {' '.join(arguments)}` failed with exit status {result.returncode}{detail}")
    return result.stdout if capture else ""


def stack_outputs(stack: str, cwd: Path) -> dict[str, Any]:
    """`pulumi stack output --json` of a live stack."""
    text = run(["stack", "output", "--json", "--stack", stack], cwd)
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError:
        raise PulumiError(f"`pulumi stack output --stack {stack}` did not print JSON") from None


def stacks(cwd: Path) -> list[dict[str, Any]]:
    """`pulumi stack ls --json`: the project's stacks, each with at least `name` (and `lastUpdate` once updated)."""
    text = run(["stack", "ls", "--json"], cwd)
    try:
        return json.loads(text or "[]")
    except json.JSONDecodeError:
        raise PulumiError("`pulumi stack ls` did not print JSON") from None


def short_name(stack: str) -> str:
    """`org/project/pr-12` -> `pr-12`."""
    return stack.rsplit("/", 1)[-1]


def stream(arguments: list[str], cwd: Path) -> tuple[int, str]:
    """Run `pulumi <arguments> --non-interactive`, printing its output (stdout and stderr, merged) line by line as it
    comes, and return (its exit status, that output). Raises PulumiError only when the CLI is missing."""
    command = ["pulumi", *arguments, "--non-interactive"]
    lines = []
    try:
        with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
            assert process.stdout is not None
            for line in process.stdout:
                print(line, end="", flush=True)
                lines.append(line)
    except FileNotFoundError:
        raise PulumiError("the pulumi CLI is not installed (https://www.pulumi.com/docs/install/)") from None
    return process.returncode, "".join(lines)
