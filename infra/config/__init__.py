"""The stack's configuration: one frozen, typed object, checked whole before any resource is declared.

Lookup order for every setting: an explicit component Args value (set by `infra/program.py`), then this
stack config (`Pulumi.<stack>.yaml` over the project defaults in `Pulumi.yaml`), then the defaults
declared on the models below.

Pulumi hands structured config values to the program as JSON, so object keys (`network`, `cluster`,
...) keep their YAML types and a string where a number belongs is an error, never a coercion. Every
problem is collected and reported at once as `<key path>: <what is wrong>`.

The models live by area, mirroring components/: base (constants, the base model, ConfigError), network,
cluster, registries (and modelStore), pools, models, monitoring, pins, serving, preview, stack (the whole),
checks (cross-section rules) and rendering (pydantic errors as key paths); this module parses.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from ml_platform.infra.config.base import (
    GPU_TAINT_KEY,
    INTERFACE_ENDPOINTS,
    LOG_RETENTION_DAYS,
    PLATFORM_LABELS,
    PLATFORM_NAMESPACES,
    PROJECT,
    PULL_THROUGH_UPSTREAMS,
    RESERVED_NAMESPACES,
    ConfigError,
)
from ml_platform.infra.config.checks import _cross_checks, _plain_secrets
from ml_platform.infra.config.cluster import AdminAccess, ClusterConfig
from ml_platform.infra.config.model_monitoring import Capture, Drift, Feedback, MetricDrift
from ml_platform.infra.config.models import ALLOWED_UPSTREAM_IMAGES, ImageRef, ModelConfig
from ml_platform.infra.config.monitoring import MonitoringConfig
from ml_platform.infra.config.network import NetworkConfig
from ml_platform.infra.config.pins import PinsConfig
from ml_platform.infra.config.pools import POOL_MODELS, KarpenterPoolConfig, ManagedPoolConfig
from ml_platform.infra.config.preview import PreviewConfig
from ml_platform.infra.config.registries import ModelStoreConfig, PullThroughCacheRule, RegistriesConfig
from ml_platform.infra.config.rendering import _describe_all
from ml_platform.infra.config.serving import ServingConfig
from ml_platform.infra.config.stack import StackConfig
from ml_platform.infra.config.vulnerabilities import AllowEntry, RegistryScanning, VulnerabilitiesConfig

# Config namespaces the program reads (its own, and those of the providers and Pulumi settings it uses).
CONFIG_NAMESPACES = (PROJECT, "aws", "kubernetes", "random", "pulumi")
# Top-level config keys, in the `ml-platform` namespace, and whether Pulumi hands them over as JSON objects.
OBJECT_KEYS = (
    "network",
    "cluster",
    "registries",
    "modelStore",
    "modelRegistry",
    "nodePools",
    "tags",
    "models",
    "serving",
    "monitoring",
    "pins",
    "vulnerabilities",
    "preview",
)
SCALAR_KEYS = ("environment", "protectStatefulResources", "ephemeral")
BOOLEAN_KEYS = ("protectStatefulResources", "ephemeral")


# Cross-section checks whose problem is reported at one key path but reads another: with that other field
# broken (and so left at its default for the second pass), the check's finding would be about the default, not
# the user's stack, and is dropped. `""` means any broken field.
_READS_ELSEWHERE = {
    "cluster.privateAccessCidrs": ("network.cidr",),
    "cluster.publicAccessCidrs": ("network.cidr",),
    "models.": ("registries.repositories",),
    "nodePools.": ("network.availabilityZones",),
    "pins.amiRelease": ("cluster.version",),
    "preview": ("",),
}
# Without these nothing across sections can be judged.
_ESSENTIAL = ("stack", "region", "environment", "nodePools")


def _validate(data: dict[str, Any], environment: Any) -> StackConfig:
    """The typed stack; the environment goes in as context so per-model rules that depend on it (prod's) run
    in the same pass as the fields. Raises ValidationError."""
    return StackConfig.model_validate(data, context={"environment": environment})


def _cross_checks_despite(data: dict[str, Any], err: ValidationError, secret_keys: Collection[str]) -> list[tuple[str, str]]:
    """The cross-section checks in the same pass as field errors. Each broken field (`network.azCount`, or a
    whole entry such as `models.chat`) is left out and the stack validated again (a few rounds, as leaving one out
    can break another); the checks then run on the rest, and any finding at a broken path, or one that reads a
    broken field (_READS_ELSEWHERE), is dropped: a check over a default would report what is not wrong. When an
    essential key is broken nothing is checked."""
    rest = copy.deepcopy(data)
    broken: set[str] = set()
    errors = err.errors()
    for _ in range(4):
        for error in errors:
            loc = [str(part) for part in error["loc"][:2]]
            if loc[0] in _ESSENTIAL and (loc[0] != "nodePools" or len(loc) < 2):
                return []
            section = rest.get(loc[0])
            if len(loc) == 2 and isinstance(section, dict):
                section.pop(loc[1], None)
            else:
                rest.pop(loc[0], None)
            broken.add(".".join(loc))
        try:
            cfg = _validate(rest, data.get("environment"))
            break
        except ValidationError as again:
            errors = again.errors()
    else:
        return []

    def trusted(path: str) -> bool:
        if any(path == b or path.startswith(f"{b}.") or path.startswith(f"{b}[") for b in broken):
            return False
        for prefix, reads in _READS_ELSEWHERE.items():
            if path.startswith(prefix) and any(r == "" or r in broken or r.split(".")[0] in broken for r in reads):
                return False
        return True

    return [problem for problem in _cross_checks(cfg) + _plain_secrets(cfg, secret_keys) if trusted(problem[0])]


def parse(raw: Mapping[str, str], stack: str, secret_keys: Collection[str] = ()) -> StackConfig:
    """Build the typed config from raw Pulumi config (`namespace:key` -> string, as the engine passes it;
    `secret_keys`: the keys the engine marks secret, which tells plain-text secrets apart under `pulumi up`).

    Raises ConfigError listing every problem.
    """
    problems: list[tuple[str, str]] = []
    data: dict[str, Any] = {"stack": stack}
    allowed = set(OBJECT_KEYS) | set(SCALAR_KEYS)

    region = raw.get("aws:region")
    if region is None:
        problems.append(("aws:region", "required: set it with `pulumi config set aws:region <region>`"))
    else:
        data["region"] = region

    for full_key, text in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace not in CONFIG_NAMESPACES:
            # A misspelt namespace (`ml-platfrom:models`) would silently drop the whole value.
            hint = difflib.get_close_matches(namespace, CONFIG_NAMESPACES, n=1)
            guess = f"did you mean '{hint[0]}:{key}'? " if hint else ""
            read = ", ".join(CONFIG_NAMESPACES)
            problems.append((full_key, f"'{namespace}' is not a config namespace this program reads; {guess}(read: {read})"))
            continue
        if namespace != PROJECT:
            continue
        if key not in allowed:
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            problems.append((key, "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(sorted(allowed))}")))
        elif key in OBJECT_KEYS:
            try:
                data[key] = json.loads(text)
            except json.JSONDecodeError:
                problems.append((key, f"expected an object, got the string {text!r}"))
                continue
            if key in ("preview", "modelRegistry") and data[key] == {}:
                del data[key]  # Pulumi.yaml's default: not a preview stack, no model registry
        elif key in BOOLEAN_KEYS:
            if text not in ("true", "false"):
                problems.append((key, f"expected true or false, got {text!r}"))
            else:
                data[key] = text == "true"
        else:
            data[key] = text

    try:
        cfg = _validate(data, data.get("environment"))
    except ValidationError as err:
        problems += [found for error in err.errors() for found in _describe_all(error)]
        problems += _cross_checks_despite(data, err, secret_keys)
        raise ConfigError(problems) from None
    problems += _cross_checks(cfg) + _plain_secrets(cfg, secret_keys)
    if problems:
        raise ConfigError(problems)
    return cfg


__all__ = [
    "ALLOWED_UPSTREAM_IMAGES",
    "BOOLEAN_KEYS",
    "GPU_TAINT_KEY",
    "INTERFACE_ENDPOINTS",
    "LOG_RETENTION_DAYS",
    "OBJECT_KEYS",
    "PLATFORM_LABELS",
    "PLATFORM_NAMESPACES",
    "POOL_MODELS",
    "PROJECT",
    "PULL_THROUGH_UPSTREAMS",
    "RESERVED_NAMESPACES",
    "SCALAR_KEYS",
    "AdminAccess",
    "AllowEntry",
    "Capture",
    "ClusterConfig",
    "ConfigError",
    "Drift",
    "Feedback",
    "ImageRef",
    "KarpenterPoolConfig",
    "ManagedPoolConfig",
    "MetricDrift",
    "ModelConfig",
    "ModelStoreConfig",
    "MonitoringConfig",
    "NetworkConfig",
    "PinsConfig",
    "PreviewConfig",
    "PullThroughCacheRule",
    "RegistriesConfig",
    "RegistryScanning",
    "ServingConfig",
    "StackConfig",
    "VulnerabilitiesConfig",
    "parse",
]
