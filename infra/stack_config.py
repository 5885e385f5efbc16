"""The stack's config as the program reads it, before any resource is registered: the engine's (or the offline
plan's) raw config, parsed and checked (config.parse), registry models resolved from the lock file, and the checks
that need more than the config's own fields: IAM policies for pinned controller versions, the scheduling contract,
moved chart pins, and a prod stack's example values. Every problem ends the run with its message, no traceback."""

from __future__ import annotations

import pulumi

from ml_platform.components.gpu import GPU_NODE_SELECTOR, GPU_TOLERATIONS
from ml_platform.components.karpenter import POLICY_CHART_VERSIONS as KARPENTER_POLICY_VERSIONS
from ml_platform.components.scheduling import device_plugin_gaps
from ml_platform.components.serving_platform import alb_policy_versions
from ml_platform.infra import config, models, placeholders, pools, versions
from ml_platform.infra.model_registry import lockfile


def raw_config() -> dict[str, str]:
    """The stack's config as the engine (or the offline plan) hands it to the program: full key -> string."""
    return {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}


def load_config() -> config.StackConfig:
    """The stack's typed config from the Pulumi config the engine (or the offline plan) provides."""
    raw = raw_config()
    try:
        secret = [key for key in raw if pulumi.runtime.is_config_secret(key)]
        cfg = lockfile.resolve(config.parse(raw, pulumi.get_stack(), secret))
        check_pins(cfg)
        check_scheduling(cfg)
        return cfg
    except config.ConfigError as err:
        # RunError ends the run with the message alone, no traceback.
        raise pulumi.RunError(err.render()) from None


def check_pins(cfg: config.StackConfig) -> None:
    """IAM policies tied to a controller's version exist for the chart version this stack pins (the load
    balancer controller's and Karpenter's change with their releases). Other facts about a chart (its images,
    pods, values keys) were checked at versions.CHARTS: moving a pin is warned about (warn_moved_charts)."""
    problems = []
    version = cfg.pins.charts.get("aws-load-balancer-controller")
    if version is not None and version not in alb_policy_versions():
        problems.append(
            (
                "pins.charts.aws-load-balancer-controller",
                f"'{version}' has no IAM policy in components/serving_platform/ (have: {', '.join(alb_policy_versions())}); "
                f"add aws-load-balancer-controller-{version}.iam-policy.json from the controller's docs/install/iam_policy.json "
                "at the chart's appVersion",
            )
        )
    version = cfg.pins.charts.get("karpenter")
    if version is not None and version not in KARPENTER_POLICY_VERSIONS:
        problems.append(
            (
                "pins.charts.karpenter",
                f"'{version}': the controller's IAM policies in components/karpenter.py are those of "
                f"{', '.join(KARPENTER_POLICY_VERSIONS)}; take the new release's from its getting-started cloudformation.yaml",
            )
        )
    if problems:
        raise config.ConfigError(problems)


def warn_moved_charts(cfg: config.StackConfig) -> None:
    """Say which chart pins move away from the versions whose images, pods and values keys this program knows."""
    for chart, version in sorted(cfg.pins.charts.items()):
        if version != versions.CHARTS[chart].version:
            pulumi.log.warn(
                f"pins.charts.{chart} is {version}; the platform's facts about it (its images, pods, values keys) were "
                f"checked at {versions.CHARTS[chart].version}: render the new version with this stack's values before deploying"
            )


def check_scheduling(cfg: config.StackConfig) -> None:
    """The scheduling contract over the whole config: the device plugin must run on every GPU pool."""
    gaps = device_plugin_gaps(pools.scheduling_pools(cfg), GPU_NODE_SELECTOR, GPU_TOLERATIONS)
    problems = [(f"nodePools.{pool}.taints", reason) for pool, reason in gaps]
    problems += models.placement_problems(cfg)
    if problems:
        raise config.ConfigError(problems)


def refuse_placeholders(cfg: config.StackConfig) -> None:
    """A prod stack still holding the repository's example values (infra/placeholders.py) is refused before any
    resource is registered: an update would otherwise fail much later, at IAM (the documentation account's
    roles), ECR (made-up digests) or Alertmanager (example secrets). Raises pulumi.RunError listing every one."""
    if cfg.environment != "prod":
        return
    found = placeholders.find(raw_config())
    if found:
        lines = "\n".join(f"  {p.line()}" for p in found)
        raise pulumi.RunError(f"prod stack '{cfg.stack}' still holds example values from this repository:\n{lines}")
