"""`python -m infra <command>`: the platform's command line.

Exit status: 0 success; 1 a mandatory policy is violated; 2 the stack configuration or its files are wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pulumi

from infra.offline import plan as offline_plan
from infra.offline import stack_files
from policy import rules

EXIT_POLICY = 1
EXIT_CONFIG = 2


def _plan(args: argparse.Namespace) -> int:
    project_dir = Path(args.project_dir)
    out_dir = Path(args.out) if args.out else project_dir / "build" / "plan" / args.stack
    try:
        raw = stack_files.read_stack(args.stack, project_dir)
    except stack_files.StackFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        plan = offline_plan.run(args.stack, raw)
    except pulumi.RunError as err:
        print(f"error in stack '{args.stack}':\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    offline_plan.write(plan, out_dir)
    violations = rules.evaluate(rules.view_from_plan(plan.resources))
    print(offline_plan.summary(plan, violations))
    print(f"\nwrote {out_dir}/plan.json and {out_dir}/manifests/")
    return EXIT_POLICY if violations else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m infra", description="ml-platform: offline plans and platform tooling.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = commands.add_parser(
        "plan",
        help="run the program offline under Pulumi's mock runtime and write the plan",
        description="Run the real program for a stack under Pulumi's mock runtime (no cloud, no Pulumi CLI), "
        "write plan.json and manifests/, print a summary, and check the policy pack.",
    )
    plan.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    plan.add_argument("--out", help="output directory (default: build/plan/<stack>)")
    plan.add_argument(
        "--project-dir",
        default=str(stack_files.ROOT),
        help="directory holding Pulumi.yaml and the stack files (default: this repository)",
    )
    plan.set_defaults(handler=_plan)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)
