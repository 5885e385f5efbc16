"""`python -m infra preview-stack create|destroy|sweep`: pull-request preview stacks, as Pulumi's review
stacks make them: stack `pr-<number>` gets its config from the template `Pulumi.pr.yaml` laid over the base
stack's file (dev's, by default), so a preview runs what the pull request changed.

- `namespace` mode (default): only the models, in namespace `pr-<number>` of the base stack's cluster.
- `full` mode: a whole platform of its own, ephemeral (nothing protected, registries and store
  force-deleted, no idle GPU node), tagged with its pull request and when it expires.

Both pull images and weights from the base stack (same account). A preview expires `ttlHours` after it was
created; updating it keeps that time unless asked to extend it. `sweep` removes the expired ones."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ml_platform.infra import config
from ml_platform.infra.config import PROJECT
from ml_platform.infra.delivery import cleanup, pulumi_cli
from ml_platform.infra.delivery.reproduce import without_alert_receivers
from ml_platform.infra.offline import stack_files

TEMPLATE = stack_files.PREVIEW_TEMPLATE
PREVIEW_STACK = re.compile(r"^pr-([1-9][0-9]*)\Z")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class PreviewError(Exception):
    """The preview stack cannot be written, made or removed."""


def stack_name(pr: int) -> str:
    return f"pr-{pr}"


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def read_template(project_dir: Path) -> tuple[dict[str, Any], config.PreviewConfig]:
    """(the template's other config keys, its preview section), checked like any stack's preview section."""
    path = project_dir / TEMPLATE
    if not path.exists():
        raise PreviewError(f"no template {TEMPLATE} in {project_dir}")
    template = dict(_load(path).get("config") or {})
    section = template.pop(_key("preview"), None) or {}
    try:
        checked = config.PreviewConfig.model_validate(section)
    except ValidationError as err:
        problems = [(f"{TEMPLATE}: preview.{'.'.join(str(p) for p in e['loc'])}", e["msg"]) for e in err.errors()]
        raise PreviewError(config.ConfigError(problems).render()) from None
    if checked.pr is not None or checked.expiresAt is not None:
        raise PreviewError(f"{TEMPLATE}: preview.pr and preview.expiresAt are set per pull request by preview-stack create")
    return template, checked


def _load(path: Path) -> dict[str, Any]:
    try:
        return stack_files.load_yaml(path)
    except stack_files.StackFileError as err:
        raise PreviewError(str(err)) from None


def expiry(now: datetime, ttl_hours: int) -> str:
    return (now.astimezone(UTC) + timedelta(hours=ttl_hours)).strftime(TIME_FORMAT)


def compose(
    template: dict[str, Any], settings: config.PreviewConfig, base: dict[str, Any], base_cfg: config.StackConfig, pr: int, expires_at: str
) -> tuple[dict[str, Any], list[str]]:
    """(the preview stack's config, notes on what was changed from the base and why)."""
    notes: list[str] = []
    merged = without_alert_receivers(dict(base))
    merged.update(template)  # like Pulumi: a key the template sets replaces the base's whole value
    merged[_key("ephemeral")] = True
    merged[_key("protectStatefulResources")] = False
    # The base's registry holds the images the models run; the preview's own (full mode) starts empty.
    merged[_key("serving")] = {**(merged.get(_key("serving")) or {}), "imageRegistryPrefix": base_cfg.image_registry_prefix}
    # One stack owns the account's scanning: a preview of the owner must not rewrite it (and keep it on destroy).
    vulnerabilities = dict(merged.get(_key("vulnerabilities")) or {})
    if vulnerabilities.pop("registryScanning", None) is not None:
        merged[_key("vulnerabilities")] = vulnerabilities
        notes.append("vulnerabilities.registryScanning: left to the base stack (one stack owns the account's scanning)")

    if settings.mode == "namespace":
        model_configs = {name: dict(model) for name, model in (merged.get(_key("models")) or {}).items()}
        for name, model in sorted(model_configs.items()):
            if (model.get("exposure") or {}).get("type") == "alb":
                model["exposure"] = {"type": "cluster"}
                notes.append(f"models.{name}.exposure: in-cluster (a namespace preview creates no load balancer; use --mode full)")
        if model_configs:
            merged[_key("models")] = model_configs
    else:
        # Its own repositories, apart from the base's even where the base uses no prefix (one account per stack).
        merged[_key("registries")] = {**(merged.get(_key("registries")) or {}), "prefix": stack_name(pr)}
        node_pools = {name: dict(pool) for name, pool in (merged.get(_key("nodePools")) or {}).items()}
        for name, pool in sorted(base_cfg.nodePools.items()):
            if name in node_pools and pool.gpu is not None and isinstance(pool, config.ManagedPoolConfig) and pool.minSize > 0:
                node_pools[name].update(minSize=0, desiredSize=0)
                notes.append(f"nodePools.{name}: minSize 0 (a preview keeps no idle GPU node)")
        merged[_key("nodePools")] = node_pools

    merged[_key("preview")] = settings.model_copy(update={"pr": pr, "expiresAt": expires_at}).model_dump()
    secure = [path for key, value in merged.items() for path in stack_files.mask_secure(value, key)[1]]
    if secure:
        raise PreviewError(
            f"{', '.join(secure)}: secret values of '{settings.base_stack_name}' are encrypted for it alone; "
            f"override them in {TEMPLATE} or leave them out"
        )
    return merged, notes


def write(
    project_dir: Path, pr: int, now: datetime, mode: str | None = None, ttl_hours: int | None = None, expires_at: str | None = None
) -> tuple[Path, config.PreviewConfig, list[str]]:
    """Write Pulumi.pr-<pr>.yaml (generated: rewritten on every create, keeping Pulumi's own secrets-provider keys)."""
    if pr < 1:
        raise PreviewError(f"--pr: expected a pull request number, got {pr}")
    if ttl_hours is not None and not 1 <= ttl_hours <= 720:
        raise PreviewError(f"--ttl-hours: expected 1 to 720 hours, got {ttl_hours}")
    template, settings = read_template(project_dir)
    overrides = {"mode": mode, "ttlHours": ttl_hours}
    settings = settings.model_copy(update={key: value for key, value in overrides.items() if value is not None})
    base_file = project_dir / f"Pulumi.{settings.base_stack_name}.yaml"
    if not base_file.exists():
        raise PreviewError(f"{TEMPLATE}: preview.baseStack '{settings.baseStack}' has no stack file {base_file.name}")
    try:
        base_cfg = config.parse(stack_files.read_stack(settings.base_stack_name, project_dir).values, settings.base_stack_name)
    except (stack_files.StackFileError, config.ConfigError) as err:
        raise PreviewError(f"the base stack '{settings.base_stack_name}' is not valid:\n{err}") from None
    base = _load(base_file).get("config") or {}
    merged, notes = compose(template, settings, base, base_cfg, pr, expires_at or expiry(now, settings.ttlHours))

    target = project_dir / f"Pulumi.{stack_name(pr)}.yaml"
    kept = {}
    if target.exists():
        kept = {key: value for key, value in _load(target).items() if key != "config"}
    header = (
        f"# Generated by `python -m infra preview-stack create --pr {pr}` from {TEMPLATE} over {base_file.name};\n"
        f"# rewritten on every create: change those files instead. Mode {settings.mode}, expires {merged[_key('preview')]['expiresAt']}.\n"
    )
    target.write_text(header + yaml.safe_dump({**kept, "config": merged}, sort_keys=True))
    return target, settings, notes


def deploy(project_dir: Path, stack: str, secrets_provider: str | None, policy_pack: Path) -> None:
    """Create the stack if needed and `pulumi up` it with the policy pack; Pulumi's progress goes to the terminal."""
    select = ["stack", "select", "--create", stack]
    if secrets_provider:
        select += ["--secrets-provider", secrets_provider]
    pulumi_cli.run(select, project_dir)
    pulumi_cli.run(["up", "--yes", "--stack", stack, "--policy-pack", str(policy_pack)], project_dir, capture=False)


@dataclass(frozen=True)
class LiveStack:
    name: str
    outputs: dict[str, Any]
    last_update: str | None


def live_previews(project_dir: Path, only: str | None = None) -> list[LiveStack]:
    """The project's preview stacks (named `pr-<number>`), or just `only`, with their outputs."""
    found = []
    for entry in pulumi_cli.stacks(project_dir):
        name = pulumi_cli.short_name(entry.get("name", ""))
        if PREVIEW_STACK.match(name) and only in (None, name):
            found.append(LiveStack(name, pulumi_cli.stack_outputs(name, project_dir), entry.get("lastUpdate")))
    return sorted(found, key=lambda stack: int(stack.name[3:]))


def current_expiry(project_dir: Path, stack: str) -> str | None:
    """The expiry a live preview stack exported, or None when it does not exist (or never finished an update)."""
    live = live_previews(project_dir, only=stack)
    return (live[0].outputs.get("preview") or {}).get("expiresAt") if live else None


def remove(project_dir: Path, stack: LiveStack, session_factory: Callable[[str], Any], say: Callable[[str], None]) -> None:
    """Cleanup (full mode: what controllers made outside Pulumi), destroy, and remove the stack."""
    preview = stack.outputs.get("preview") or {}
    if preview.get("mode") == "full" and stack.outputs.get("clusterName"):
        region = stack.outputs.get("region")
        if not region:
            raise PreviewError(f"{stack.name} exports no region; cannot look for what its controllers left")
        session = session_factory(region)
        ec2, elbv2 = session.client("ec2", region_name=region), session.client("elbv2", region_name=region)
        iam = session.client("iam", region_name=region)
        say(f"looking for what the controllers of {stack.outputs['clusterName']} left outside Pulumi...")
        found = cleanup.find(ec2, elbv2, stack.outputs["clusterName"], iam)
        failed = cleanup.delete(ec2, elbv2, found, say=lambda line: say(f"  {line}"), iam=iam)
        if failed:
            # A destroy would fail on them (the VPC cannot go while a group or interface remains); keep the stack.
            raise PreviewError(f"{stack.name}: could not delete what its controllers left: {'; '.join(failed)}; the stack is kept")
    say(f"destroying {stack.name}...")
    pulumi_cli.run(["destroy", "--yes", "--stack", stack.name], project_dir, capture=False)
    pulumi_cli.run(["stack", "rm", "--yes", stack.name], project_dir)
    say(f"removed {stack.name}")


def parse_time(text: str) -> datetime:
    """`2026-11-23T18:00:00Z` or Pulumi's `lastUpdate` (`2026-11-23T18:00:00.000Z`) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def expired(stack: LiveStack, now: datetime, default_ttl_hours: int) -> bool:
    """Past its exported expiry; a preview that never finished an update counts from its last update."""
    expires = (stack.outputs.get("preview") or {}).get("expiresAt")
    if expires:
        return parse_time(expires) <= now
    if stack.last_update:
        return parse_time(stack.last_update) + timedelta(hours=default_ttl_hours) <= now
    return True  # never updated: an empty stack, nothing to lose
