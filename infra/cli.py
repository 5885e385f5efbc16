"""`python -m infra <command>`: the platform's command line.

Exit status: 0 success; 1 a mandatory policy is violated or an object lacks the controller that acts on it
(plan), a preflight check failed (doctor), or an AWS call failed (printed as one line saying what to do); 2 the
stack configuration, its files or the arguments are wrong; 3 a stateful resource would be replaced (diff
with --fail-on-replace); `ci` steps: 0 done, 1 a step they ran failed, 2 bad input, 3 refused by the replacement
gate (infra/delivery/ci/).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pulumi
from botocore.exceptions import BotoCoreError, ClientError

from ml_platform.infra import coldstart, config, models, program
from ml_platform.infra.delivery import (
    aws_errors,
    backend,
    bootstrap_ci,
    cleanup,
    cost,
    diff,
    doctor,
    preview,
    prices,
    pulumi_cli,
    reproduce,
    vulnerabilities,
)
from ml_platform.infra.delivery.ci import CiInputError, comments, plan_diff, steps
from ml_platform.infra.delivery.ci import arguments as ci_arguments
from ml_platform.infra.model_registry import commands as registry_commands
from ml_platform.infra.model_registry import lockfile
from ml_platform.infra.offline import capacity, controllers, stack_files
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.policy import rules

EXIT_POLICY = 1
EXIT_FAILED = 1
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


def _read_config(stack: str, project_dir: str, locked: bool = True) -> tuple[config.StackConfig, stack_files.RawStackConfig]:
    """The stack's typed config and the stack file as read (its placeholders, notes), from one reading; `locked`:
    with its registry models resolved from the lock file, as the program serves them."""
    try:
        raw = stack_files.read_stack(stack, Path(project_dir))
        parsed = config.parse(raw.values, stack)
        return (lockfile.resolve(parsed, Path(project_dir)) if locked else parsed), raw
    except (stack_files.StackFileError, config.ConfigError) as err:
        raise CommandError(str(err)) from None


def _stack_config(stack: str, project_dir: str, locked: bool = True) -> config.StackConfig:
    return _read_config(stack, project_dir, locked)[0]


def _models(args: argparse.Namespace) -> int:
    """models lock|verify|sync (infra/model_registry/commands.py)."""
    cfg = _stack_config(args.stack, args.project_dir, locked=False)
    project_dir = Path(args.project_dir)
    try:
        if args.action == "lock":
            return registry_commands.lock(cfg, project_dir, args.tracking_uri)
        if args.action == "verify":
            return registry_commands.verify(cfg, project_dir, args.tracking_uri)
        if args.wait_for_store < 0:
            raise CommandError(f"--wait-for-store {args.wait_for_store}: give 0 or more seconds")
        return registry_commands.sync(cfg, project_dir, args.bucket, args.dry_run, args.wait_for_store)
    except (registry_commands.ModelsCommandError, lockfile.LockFileError) as err:
        raise CommandError(str(err)) from None
    except (BotoCoreError, ClientError) as err:
        # Exit 1 is the commands' own verdict (an alias moved, artifacts changed); AWS refusing is bad input.
        raise CommandError(aws_errors.explain(err)) from None
    except config.ConfigError as err:
        raise CommandError(f"in stack '{args.stack}':\n{err.render()}") from None


def _checked(plan: offline_plan.Plan, project_dir: str) -> tuple[list[str], list[str], list[capacity.PoolCapacity]]:
    """The policy pack's violations, and the controller contract's gaps with the capacity check's problems,
    of a plan. A namespace preview's controllers are its base stack's, planned from the base's stack file in
    `project_dir`."""
    violations = rules.evaluate(rules.view_from_plan(plan.resources))
    base: list[dict] = []
    preview_output = plan.outputs.get("preview")
    if isinstance(preview_output, dict) and preview_output.get("mode") == "namespace":
        base_stack = str(preview_output["baseStack"]).rsplit("/", 1)[-1]
        if not (Path(project_dir) / f"Pulumi.{base_stack}.yaml").exists():
            return violations, [f"base stack '{base_stack}': no Pulumi.{base_stack}.yaml here, so its controllers cannot be checked"], []
        base = _planned(base_stack, project_dir).resources
    pools, too_small = capacity.check(plan.resources)
    return violations, controllers.gaps(plan.resources, base) + too_small, pools


def _plan(args: argparse.Namespace) -> int:
    out_dir = Path(args.out) if args.out else Path(args.project_dir) / "build" / "plan" / args.stack
    plan = _planned(args.stack, args.project_dir)
    try:
        offline_plan.write(plan, out_dir)
    except OSError as err:
        raise CommandError(f"--out {out_dir}: cannot write the plan there ({err.strerror or err})") from None
    violations, gaps, pools = _checked(plan, args.project_dir)
    print(offline_plan.summary(plan, violations, gaps, pools))
    print(f"\nwrote {out_dir}/plan.json and {out_dir}/manifests/")
    return EXIT_POLICY if violations or gaps else 0


def _session() -> boto3.Session:
    return boto3.Session()


def _bootstrap_backend(args: argparse.Namespace) -> int:
    try:
        result = backend.bootstrap(
            _session(), args.bucket, args.region, args.key_alias, say=lambda line: print(f"  {line}"), force=args.force
        )
    except backend.BackendError as err:
        raise CommandError(str(err)) from None
    print(f"\nstate backend ready:\n  {result.login}\n  pulumi stack init <stack> {result.secrets_provider}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    cfg, raw = _read_config(args.stack, args.project_dir)
    print(f"preflight of stack '{args.stack}' in {cfg.region}:")
    checks = doctor.run(_session(), cfg, args.backend_bucket, raw.placeholders)
    for check in checks:
        print(f"  {check.line()}")
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _images_check(args: argparse.Namespace) -> int:
    try:
        if args.today and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.today):
            raise ValueError(args.today)  # fromisoformat also takes 20261201 and 2026-W49-1
        today = date.fromisoformat(args.today) if args.today else None
    except ValueError:
        raise CommandError(f"--today {args.today}: give a date, YYYY-MM-DD") from None
    return _vulnerability_gate(args.stack, args.project_dir, today=today)


def _vulnerability_gate(stack: str, project_dir: str, plan: offline_plan.Plan | None = None, today: date | None = None) -> int:
    """The vulnerability gate of `stack` (infra/delivery/vulnerabilities.py) on its offline plan's images, in the account
    the caller's credentials reach: 0 passed, 3 refused."""
    plan = plan or _planned(stack, project_dir)
    cfg, _ = _read_config(stack, project_dir)
    session = _session()
    account = session.client("sts", region_name=cfg.region).get_caller_identity()["Account"]
    try:
        images = vulnerabilities.stack_images(plan.outputs, account)
    except KeyError:
        raise CommandError(f"the offline plan of stack '{stack}' names no images (no versions.images output): plan it again") from None
    print(f"vulnerability gate of stack '{stack}' (account {account}, threshold {cfg.vulnerabilities.threshold}):")
    clients: dict[str, object] = {}

    def ecr(region: str):
        if region not in clients:  # one client per region, made on first use
            clients[region] = session.client("ecr", region_name=region)
        return clients[region]

    unscanned = None
    if cfg.vulnerabilities.registryScanning is not None:
        # The owner's first deploy is the one that turns enhanced scanning on: until it has, no image has results.
        scan_type = ecr(cfg.region).get_registry_scanning_configuration()["scanningConfiguration"].get("scanType")
        if scan_type != "ENHANCED":
            unscanned = "warn"
            print(f"note: this stack owns the account's scanning, {scan_type} until this deploy makes it ENHANCED: unscanned images warn")
    return vulnerabilities.check(cfg, images, ecr, today or datetime.now(UTC).date(), unscanned=unscanned)


def _cleanup(args: argparse.Namespace) -> int:
    cfg = _stack_config(args.stack, args.project_dir)
    session = _session()
    ec2, elbv2 = session.client("ec2", region_name=cfg.region), session.client("elbv2", region_name=cfg.region)
    iam = session.client("iam", region_name=cfg.region)
    cluster = program.cluster_name(cfg.stack)
    print(f"looking for what controllers of {cluster} created outside Pulumi...")
    found = cleanup.find(ec2, elbv2, cluster, iam)
    for kind, item in found.deletable():
        print(f"  {kind}: {item}")
    for volume in found.volumes:
        print(f"  volume (reported, never deleted): {volume}")
    if found.volumes:
        why = "prod's StorageClass retains them" if cfg.environment == "prod" else "they may hold data"
        print(f"  {len(found.volumes)} volume(s) of persistent volume claims kept: {why}; delete them yourself once not needed")
    if not found.deletable():
        print("  nothing blocks a destroy: the stack can be destroyed")
        return 0
    if not args.apply:
        print(f"\n{len(found.deletable())} leftover(s); run again with --apply to delete them before `pulumi destroy`")
        return 0
    failed = cleanup.delete(ec2, elbv2, found, say=lambda line: print(f"  {line}"), iam=iam)
    if failed:
        print(f"\ncould not delete {len(failed)}:", *(f"  {line}" for line in failed), sep="\n")
        print("run cleanup again later, or delete them in the console; `pulumi destroy` fails while they remain")
        return 1
    return 0


def _cost(args: argparse.Namespace) -> int:
    args.log_gb_per_day += 0.0  # -0 reads as 0
    if not 0 <= args.log_gb_per_day <= 100_000:
        raise CommandError(f"--log-gb-per-day {args.log_gb_per_day:g}: give the GB of logs ingested per day, 0 to 100000")
    if args.price_region is not None and args.price_region not in prices.REGIONS:
        raise CommandError(f"--price-region {args.price_region}: give one of {', '.join(sorted(prices.REGIONS))}")
    plan = _planned(args.stack, args.project_dir)
    region = cost.plan_region({"outputs": plan.outputs, "resources": plan.resources})
    priced_at = args.price_region or region
    if priced_at not in prices.REGIONS:
        print(
            f"warning: no prices for {region}, the region of stack '{args.stack}': nothing estimated rather than another "
            f"region's rates. Tables: {', '.join(sorted(prices.REGIONS))}; --price-region <one of them> estimates at its rates.",
            file=sys.stderr,
        )
        return 0
    print(
        f"estimated monthly cost of stack '{args.stack}'"
        + (f" at {priced_at}'s prices (it runs in {region})" if priced_at != region else "")
        + ":\n"
    )
    print(cost.render(cost.estimate(plan.resources, args.log_gb_per_day, priced_at), markdown=args.format == "markdown", region=priced_at))
    return 0


def _coldstart(args: argparse.Namespace) -> int:
    cfg = _stack_config(args.stack, args.project_dir)
    if not cfg.models:
        print(f"stack '{args.stack}' serves no model")
        return 0
    try:
        # What the plan would refuse (no pool can place a model, its weights fit no node) is refused here too.
        program.check_scheduling(cfg)
    except config.ConfigError as err:
        raise CommandError(f"in stack '{args.stack}':\n{err.render()}") from None
    starts = [models.cold_start(name, model, cfg) for name, model in sorted(cfg.models.items())]
    print(f"cold start of each model of stack '{args.stack}', from a pending pod on a new node to serving (estimates):\n")
    print(coldstart.render(starts, {name: model.startupSeconds for name, model in cfg.models.items()}))
    return 0


EXIT_REPLACE = 3


def _diff(args: argparse.Namespace) -> int:
    try:
        base, head = diff.load(args.base), diff.load(args.head)
    except diff.PlanError as err:
        raise CommandError(str(err)) from None
    if base.get("stack") != head.get("stack") and not args.allow_stack_mismatch:
        raise CommandError(
            f"the base plan is of stack '{base.get('stack')}' and the head plan of '{head.get('stack')}': a diff across stacks "
            "shows their differences, not a change's; pass --allow-stack-mismatch to compare them anyway"
        )
    changes = diff.compare(base, head)
    print(diff.render(base, head, changes, markdown=args.format == "markdown"))
    if args.fail_on_replace and diff.blocking(changes):
        return EXIT_REPLACE
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    try:
        print(f"reading the versions '{args.source}' runs...")
        if args.outputs:
            outputs = json.loads(Path(args.outputs).read_text())
        else:
            outputs = pulumi_cli.stack_outputs(args.source, Path(args.project_dir))
        path = reproduce.write(Path(args.project_dir), args.source, args.name, outputs)
    except (reproduce.ReproduceError, pulumi_cli.PulumiError, OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CommandError(str(err)) from None
    print(f"wrote {path.name}; check it offline with: python -m infra plan --stack {args.name}")
    if lockfile.path(Path(args.project_dir), args.name).exists():
        print(
            f"wrote models.{args.name}.lock.yaml with the registry versions of '{args.source}'; beside the first `pulumi up`, "
            f"`python -m infra models sync --stack {args.name} --wait-for-store 1800` copies them into the copy's model store"
        )
    return 0


def _now(args: argparse.Namespace) -> datetime:
    if not args.now:
        return datetime.now(UTC)
    try:
        return preview.parse_time(args.now)
    except ValueError:
        raise CommandError(f"--now: '{args.now}' is not a time like 2026-11-23T18:00:00Z") from None


def _preview_create(args: argparse.Namespace) -> int:
    project, stack = Path(args.project_dir), preview.stack_name(args.pr)
    target = project / f"Pulumi.{stack}.yaml"
    before = target.read_text() if target.exists() else None
    try:
        # An update keeps the preview's expiry (counted from its creation) unless told to restart the clock.
        restart = args.offline or args.extend or args.ttl_hours is not None
        keep = None if restart else preview.current_expiry(project, stack)
        path, settings, notes = preview.write(project, args.pr, _now(args), args.mode, args.ttl_hours, keep)
    except (preview.PreviewError, pulumi_cli.PulumiError, stack_files.StackFileError) as err:
        raise CommandError(str(err)) from None
    print(f"wrote {path.name}: {settings.mode} preview of pull request {args.pr}, based on '{settings.baseStack}'")
    for note in notes:
        print(f"  {note}")
    try:
        plan = _planned(stack, args.project_dir)
    except CommandError:
        # Nothing half-made: the previous stack file (or none) stays.
        target.write_text(before) if before is not None else target.unlink()
        raise
    violations, gaps, pools = _checked(plan, args.project_dir)
    print(offline_plan.summary(plan, violations, gaps, pools))
    if violations or gaps:
        return EXIT_POLICY
    if args.offline:
        print(f"\noffline: checked only. Deploy with: pulumi up --stack {stack} --policy-pack policy")
        return 0
    refused = _vulnerability_gate(stack, args.project_dir, plan)
    if refused:
        return refused
    print(f"\ndeploying {stack} (pulumi up with the policy pack)...")
    try:
        preview.deploy(project, stack, args.secrets_provider, project / "policy")
    except pulumi_cli.PulumiError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"preview {stack} is up")
    return 0


def _boto_session(region: str) -> boto3.Session:
    return _session()


def _preview_destroy(args: argparse.Namespace) -> int:
    stack = preview.stack_name(args.pr)
    try:
        live = preview.live_previews(Path(args.project_dir), only=stack)
        if not live:
            print(f"no preview stack {stack}: nothing to destroy")
            return 0
        preview.remove(Path(args.project_dir), live[0], _boto_session, say=print)
    except (preview.PreviewError, pulumi_cli.PulumiError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _preview_sweep(args: argparse.Namespace) -> int:
    project = Path(args.project_dir)
    now = _now(args)
    try:
        _, settings = preview.read_template(project)
        stacks = preview.live_previews(project)
    except (preview.PreviewError, pulumi_cli.PulumiError) as err:
        raise CommandError(str(err)) from None
    due = [stack for stack in stacks if preview.expired(stack, now, settings.ttlHours)]
    print(f"{len(stacks)} preview stack(s), {len(due)} past their time to live at {now.strftime(preview.TIME_FORMAT)}")
    for stack in stacks:
        expires = (stack.outputs.get("preview") or {}).get("expiresAt") or f"last update {stack.last_update or 'never'}"
        print(f"  {stack.name}: {'EXPIRED' if stack in due else 'keeps'} ({expires})")
    if not args.apply:
        if due:
            print("\ndry run: run again with --apply to remove the expired ones")
        return 0
    failed = []
    for stack in due:
        try:
            preview.remove(project, stack, _boto_session, say=print)
        except (preview.PreviewError, pulumi_cli.PulumiError) as err:
            # One stuck preview must not keep the others alive.
            print(f"error: {stack.name}: {err}", file=sys.stderr)
            failed.append(stack.name)
    return EXIT_FAILED if failed else 0


def _ci(args: argparse.Namespace) -> int:
    """`ci <step>` (infra/delivery/ci/): each step's flags to its function; its bad input is exit 2."""
    project = Path(args.project_dir) if "project_dir" in args else Path()
    try:
        if args.step == "plan-diff":
            stacks = plan_diff.parse_stacks(args.stacks)
            out = (Path(args.markdown) if args.markdown else None, Path(args.json) if args.json else None)
            return plan_diff.run(Path(args.base), Path(args.head), stacks, args.approved_replacement, *out)
        if args.step == "comment":
            target = comments.target(args.host, args.api_url, args.project, args.change, args.token_scheme)
            token = os.environ.get(comments.TOKEN_ENV)
            return comments.post(target, Path(args.body), args.marker, token, args.optional)
        if args.step == "preview":
            return steps.preview(project, args.stack, main, Path(args.markdown) if args.markdown else None)
        if args.step == "deploy":
            return steps.deploy(project, args.stack, main)
        if args.step == "preview-stack":
            return steps.preview_stack(project, args.change, args.event, steps.parse_labels(args.labels), main, args.secrets_provider)
        if args.step == "sweep":
            return steps.sweep(project, args.apply, main)
        return steps.reproduce_copy(project, args.name, main, args.source, args.deploy, args.secrets_provider)
    except CiInputError as err:
        raise CommandError(str(err)) from None


def _project_dir_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--project-dir",
        help="directory holding Pulumi.yaml and the stack files (default: as the Pulumi CLI finds it, the working "
        "directory or its nearest parent with a Pulumi.yaml)",
    )


def _stack_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    _project_dir_argument(command)


def parser() -> argparse.ArgumentParser:
    # The installed command is `ml-platform`; in a checkout the same command line is `python -m infra`.
    prog = "ml-platform" if os.path.basename(sys.argv[0]) == "ml-platform" else "python -m infra"
    top = argparse.ArgumentParser(prog=prog, description="ml-platform: offline plans and platform tooling.")
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
    boot.add_argument(
        "--force", action="store_true", help="apply changes to an existing bucket or key (without it they are listed and nothing changes)"
    )
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

    images = commands.add_parser("images", help="the stack's images: check them against their scan findings")
    image_actions = images.add_subparsers(dest="action", required=True, metavar="ACTION")
    gate = image_actions.add_parser(
        "check",
        help="the vulnerability gate: every image the stack runs, resolved to its digest, judged by its ECR scan findings",
        description="Resolve every image the stack will run (models, loader, platform and chart images, from its offline "
        "plan) to its ECR digest, read its scan findings, and refuse (exit 3) an active finding at or above "
        "vulnerabilities.threshold that no unexpired vulnerabilities.allow entry covers, an expired entry, and, as "
        "configured, images not scanned or outside ECR.",
    )
    _stack_arguments(gate)
    gate.add_argument("--today", help="judge allow-list expiry on this date (YYYY-MM-DD) instead of today (UTC)")
    gate.set_defaults(handler=_images_check)

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
        description="Plan the stack offline and estimate its monthly cost: the idle floor (every pool at its minimum, "
        "and the nodes the models' minimum replicas need) and the ceiling (every pool at its limits, at its dearest "
        "type), itemised, from the stack's region's dated price table in infra/delivery/prices.py.",
    )
    _stack_arguments(price)
    price.add_argument("--format", choices=("text", "markdown"), default="text")
    price.add_argument("--log-gb-per-day", type=float, default=5.0, help="assumed log volume, GB ingested per day (default 5)")
    price.add_argument(
        "--price-region",
        help="estimate at this region's prices (default: the stack's region; one without a table is not estimated)",
    )
    price.set_defaults(handler=_cost)

    start = commands.add_parser(
        "coldstart",
        help="estimated time from a pending pod to a serving model, term by term, per model",
        description="For each model of the stack: node launch, image pull, weights, load, compile and initialisation "
        "from documented figures (infra/coldstart.py), the total, and the startup probe's budget it gives.",
    )
    _stack_arguments(start)
    start.set_defaults(handler=_coldstart)

    registry = commands.add_parser(
        "models",
        help="registry models: lock aliases to versions, verify the lock, sync versions into the store",
        description="Models whose source is a registry alias (source.registry): `lock` resolves each alias to a version "
        "and writes models.<stack>.lock.yaml beside the stack file; `verify` exits 1 when an alias moved since; `sync` "
        "copies the locked versions into the stack's model store under registry/<model>/<version>/.",
    )
    registry_actions = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("lock", "resolve every registry alias to a version and write the lock file"),
        ("verify", "exit 1 naming each model whose alias moved since the lock; 0 when current"),
        ("sync", "copy each locked version's files into the stack's model store"),
    ):
        sub = registry_actions.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        _stack_arguments(sub)
        if action in ("lock", "verify"):
            sub.add_argument(
                "--tracking-uri",
                help="the registry's URL (default: modelRegistry.trackingUri; selfHosted: its ALB host, else its in-cluster "
                "Service, e.g. http://localhost:5000 through `kubectl -n mlflow port-forward svc/mlflow 5000`)",
            )
        else:
            sub.add_argument("--bucket", help="copy into this bucket instead of the stack's model store")
            sub.add_argument("--dry-run", action="store_true", help="say what would be copied; copy nothing")
            sub.add_argument(
                "--wait-for-store", type=int, default=0, metavar="SECONDS", help="wait this long for a store a first pulumi up is creating"
            )
        sub.set_defaults(handler=_models)

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
    compare.add_argument(
        "--allow-stack-mismatch", action="store_true", help="compare plans of two different stacks (refused by default, exit 2)"
    )
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

    previews = commands.add_parser(
        "preview-stack",
        help="pull-request preview stacks: create, destroy, sweep the expired",
        description=f"Preview stacks pr-<number> from the template {preview.TEMPLATE} over its base stack's file: "
        "'namespace' mode puts only the models in namespace pr-<number> of the base stack's cluster; 'full' mode "
        "makes a whole ephemeral platform. Needs the Pulumi CLI, logged in, and AWS credentials (except --offline).",
    )
    actions = previews.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="write Pulumi.pr-<number>.yaml, check it offline, and pulumi up it with the policy pack",
        description="Write Pulumi.pr-<number>.yaml, plan it offline (config, scheduling and policy checks), then "
        "create or update the stack with `pulumi up --policy-pack policy`. An update keeps the expiry.",
    )
    create.add_argument("--pr", type=int, required=True, help="pull request number")
    create.add_argument("--mode", choices=("namespace", "full"), help=f"default: the template's ({preview.TEMPLATE})")
    create.add_argument("--ttl-hours", type=int, help="time to live from now, also for an existing preview (default: the template's)")
    create.add_argument("--extend", action="store_true", help="restart the time to live of an existing preview")
    create.add_argument("--secrets-provider", help="for a new stack, e.g. awskms://alias/ml-platform-pulumi-secrets?region=us-west-2")
    create.add_argument("--offline", action="store_true", help="write and check the stack file only; no Pulumi CLI, no AWS")
    create.add_argument("--now", help=argparse.SUPPRESS)
    _project_dir_argument(create)
    create.set_defaults(handler=_preview_create)
    destroy = actions.add_parser(
        "destroy",
        help="cleanup (full mode), pulumi destroy and stack rm of pr-<number>; nothing to do if it is gone",
        description="Remove a preview: in full mode first what its controllers made outside Pulumi (as `cleanup "
        "--apply`), then `pulumi destroy` and `pulumi stack rm`. Exits 0 when the stack does not exist.",
    )
    destroy.add_argument("--pr", type=int, required=True, help="pull request number")
    _project_dir_argument(destroy)
    destroy.set_defaults(handler=_preview_destroy)
    sweep = actions.add_parser(
        "sweep",
        help="list (and with --apply remove) preview stacks past their time to live",
        description="Find the project's pr-<number> stacks whose exported expiry has passed (or, never fully "
        "updated, whose last update is older than the template's ttlHours); --apply removes them as destroy does.",
    )
    sweep.add_argument("--apply", action="store_true", help="remove the expired previews")
    sweep.add_argument("--now", help="judge expiry at this UTC time instead of now (2026-11-23T18:00:00Z)")
    _project_dir_argument(sweep)
    sweep.set_defaults(handler=_preview_sweep)

    ci_arguments.add_arguments(commands, _ci, _stack_arguments, _project_dir_argument)
    bootstrap_ci.add_parser(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if "project_dir" in args and args.project_dir is None:
            try:
                args.project_dir = str(stack_files.find_project_dir())
            except stack_files.StackFileError as err:
                raise CommandError(str(err)) from None
        elif "project_dir" in args and not (Path(args.project_dir) / "Pulumi.yaml").is_file():
            what = "has no Pulumi.yaml" if Path(args.project_dir).is_dir() else "is not a directory"
            raise CommandError(f"--project-dir {args.project_dir} {what}; give the directory holding Pulumi.yaml and the stack files")
        return args.handler(args)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except (BotoCoreError, ClientError) as err:
        # Any AWS call of any command: one line saying what to do, exit 1 (aws_errors.explain).
        print(f"error: {aws_errors.explain(err)}", file=sys.stderr)
        return 1
