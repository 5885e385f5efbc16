"""`python -m infra <command>`: the platform's command line.

Exit status: 0 success; 1 a mandatory policy is violated (plan) or a preflight check failed (doctor); 2 the
stack configuration, its files or the arguments are wrong; 3 a stateful resource would be replaced (diff
with --fail-on-replace).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import boto3
import pulumi

from infra import config
from infra.delivery import backend, cleanup, cost, diff, doctor, reproduce
from infra.offline import plan as offline_plan
from infra.offline import stack_files
from policy import rules

EXIT_POLICY = 1
EXIT_CONFIG = 2


class CommandError(Exception):
    """Bad input: printed without a traceback, exit status 2."""


def _planned(stack: str, project_dir: str) -> offline_plan.Plan:
    try:
        raw = stack_files.read_stack(stack, Path(project_dir))
    except stack_files.StackFileError as err:
        raise CommandError(str(err)) from None
    try:
        return offline_plan.run(stack, raw)
    except pulumi.RunError as err:
        raise CommandError(f"in stack '{stack}':\n{err}") from None


def _stack_config(stack: str, project_dir: str) -> config.StackConfig:
    try:
        return config.parse(stack_files.read_stack(stack, Path(project_dir)).values, stack)
    except (stack_files.StackFileError, config.ConfigError) as err:
        raise CommandError(str(err)) from None


def _plan(args: argparse.Namespace) -> int:
    out_dir = Path(args.out) if args.out else Path(args.project_dir) / "build" / "plan" / args.stack
    plan = _planned(args.stack, args.project_dir)
    offline_plan.write(plan, out_dir)
    violations = rules.evaluate(rules.view_from_plan(plan.resources))
    print(offline_plan.summary(plan, violations))
    print(f"\nwrote {out_dir}/plan.json and {out_dir}/manifests/")
    return EXIT_POLICY if violations else 0


def _session() -> boto3.Session:
    return boto3.Session()


def _bootstrap_backend(args: argparse.Namespace) -> int:
    try:
        result = backend.bootstrap(_session(), args.bucket, args.region, args.key_alias, say=lambda line: print(f"  {line}"))
    except backend.BackendError as err:
        raise CommandError(str(err)) from None
    print(f"\nstate backend ready:\n  {result.login}\n  pulumi stack init <stack> {result.secrets_provider}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    cfg = _stack_config(args.stack, args.project_dir)
    print(f"preflight of stack '{args.stack}' in {cfg.region}:")
    checks = doctor.run(_session(), cfg, args.backend_bucket)
    for check in checks:
        print(f"  {check.line()}")
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _cleanup(args: argparse.Namespace) -> int:
    cfg = _stack_config(args.stack, args.project_dir)
    session = _session()
    ec2, elbv2 = session.client("ec2", region_name=cfg.region), session.client("elbv2", region_name=cfg.region)
    cluster = f"{config.PROJECT}-{cfg.stack}"
    print(f"looking for what controllers of {cluster} created outside Pulumi...")
    found = cleanup.find(ec2, elbv2, cluster)
    for kind, item in found.items():
        print(f"  {kind}: {item}")
    if not found.items():
        print("  nothing: the stack can be destroyed")
        return 0
    if not args.apply:
        print(f"\n{len(found.items())} leftover(s); run again with --apply to delete them before `pulumi destroy`")
        return 0
    cleanup.delete(ec2, elbv2, found, say=lambda line: print(f"  {line}"))
    return 0


def _cost(args: argparse.Namespace) -> int:
    plan = _planned(args.stack, args.project_dir)
    print(f"estimated monthly cost of stack '{args.stack}':\n")
    print(cost.render(cost.estimate(plan.resources, args.log_gb_per_day), markdown=args.format == "markdown"))
    return 0


EXIT_REPLACE = 3


def _diff(args: argparse.Namespace) -> int:
    try:
        base, head = diff.load(args.base), diff.load(args.head)
    except diff.PlanError as err:
        raise CommandError(str(err)) from None
    changes = diff.compare(base, head)
    print(diff.render(base, head, changes, markdown=args.format == "markdown"))
    if args.fail_on_replace and diff.stateful_replacements(changes):
        return EXIT_REPLACE
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    try:
        outputs = json.loads(Path(args.outputs).read_text()) if args.outputs else reproduce.stack_outputs(args.source)
        print(f"reading the versions '{args.source}' runs...")
        path = reproduce.write(Path(args.project_dir), args.source, args.name, outputs)
    except (reproduce.ReproduceError, OSError, json.JSONDecodeError) as err:
        raise CommandError(str(err)) from None
    print(f"wrote {path.name}; check it offline with: python -m infra plan --stack {args.name}")
    return 0


def _project_dir_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--project-dir",
        default=str(stack_files.ROOT),
        help="directory holding Pulumi.yaml and the stack files (default: this repository)",
    )


def _stack_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    _project_dir_argument(command)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m infra", description="ml-platform: offline plans and platform tooling.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = commands.add_parser(
        "plan",
        help="run the program offline under Pulumi's mock runtime and write the plan",
        description="Run the real program for a stack under Pulumi's mock runtime (no cloud, no Pulumi CLI), "
        "write plan.json and manifests/, print a summary, and check the policy pack.",
    )
    _stack_arguments(plan)
    plan.add_argument("--out", help="output directory (default: build/plan/<stack>)")
    plan.set_defaults(handler=_plan)

    boot = commands.add_parser(
        "bootstrap-backend",
        help="create (idempotently) the S3 state bucket and KMS key for Pulumi",
        description="Create or bring up to standard the state bucket (versioned, SSE-KMS, public access blocked, "
        "TLS only) and a rotating KMS key for the secrets provider; print the pulumi login and secrets-provider lines.",
    )
    boot.add_argument("--bucket", required=True, help="state bucket name (globally unique)")
    boot.add_argument("--region", required=True, help="AWS region of the bucket and key")
    boot.add_argument("--key-alias", default=backend.DEFAULT_KEY_ALIAS, help=f"KMS alias (default {backend.DEFAULT_KEY_ALIAS})")
    boot.set_defaults(handler=_bootstrap_backend)

    check = commands.add_parser(
        "doctor",
        help="preflight: credentials, GPU offerings, GPU quotas, state backend",
        description="Check AWS credentials, that every GPU instance type of the stack is offered in its zones, the GPU "
        "vCPU quotas against the pools' limits, and the state backend. Exit 1 if anything fails.",
    )
    _stack_arguments(check)
    check.add_argument("--backend-bucket", help="state bucket to check")
    check.set_defaults(handler=_doctor)

    clean = commands.add_parser(
        "cleanup",
        help="before a destroy: find (and with --apply delete) what controllers created outside Pulumi",
        description="Find load balancers, target groups and security groups of the AWS Load Balancer Controller, "
        "network interfaces the VPC CNI left, and Karpenter instances, by the cluster's tags. Dry run by default.",
    )
    _stack_arguments(clean)
    clean.add_argument("--apply", action="store_true", help="delete what was found")
    clean.set_defaults(handler=_cleanup)

    price = commands.add_parser(
        "cost",
        help="estimated monthly cost of a stack: idle floor and ceiling, itemised",
        description="Plan the stack offline and estimate its monthly cost: the idle floor (every pool at its minimum) "
        "and the ceiling (every pool at its limits), itemised, from the dated price table in infra/delivery/prices.py.",
    )
    _stack_arguments(price)
    price.add_argument("--format", choices=("text", "markdown"), default="text")
    price.add_argument("--log-gb-per-day", type=float, default=5.0, help="assumed log volume (default 5)")
    price.set_defaults(handler=_cost)

    compare = commands.add_parser(
        "diff",
        help="what a change does: resources added, changed, removed, replacements and cost, from two plans",
        description="Compare two offline plans (directories or plan.json files): changes grouped by component, "
        "replacements of stateful resources called out, and the change in estimated cost.",
    )
    compare.add_argument("--base", required=True, help="plan directory or plan.json before the change")
    compare.add_argument("--head", required=True, help="plan directory or plan.json after the change")
    compare.add_argument("--format", choices=("text", "markdown"), default="text", help="markdown fits a pull-request comment")
    compare.add_argument("--fail-on-replace", action="store_true", help="exit 3 when a stateful resource would be replaced")
    compare.set_defaults(handler=_diff)

    copy = commands.add_parser(
        "reproduce",
        help="write an ephemeral copy of a stack with exactly its versions and images",
        description="Write Pulumi.NAME.yaml from a stack's file with every pin (Kubernetes, add-ons, AMI release, "
        "charts, images) taken from its `versions` output, nothing protected and everything deletable.",
    )
    copy.add_argument("--from", dest="source", required=True, help="stack to copy, e.g. staging")
    copy.add_argument("--as", dest="name", required=True, help="name of the copy")
    copy.add_argument("--outputs", help="saved `pulumi stack output --json` of the source (default: ask pulumi)")
    _project_dir_argument(copy)
    copy.set_defaults(handler=_reproduce)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
