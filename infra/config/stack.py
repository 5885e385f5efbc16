"""The whole stack's config, one frozen object."""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import field_validator

from ml_platform.infra import versions
from ml_platform.infra.config.base import _POOL_NAME, MAX_USER_TAGS, RESERVED_TAG_KEYS, RESERVED_TAG_PREFIXES, _fail, _Model
from ml_platform.infra.config.cluster import ClusterConfig
from ml_platform.infra.config.model_registry import ModelRegistryConfig
from ml_platform.infra.config.models import ModelConfig
from ml_platform.infra.config.monitoring import MonitoringConfig
from ml_platform.infra.config.network import NetworkConfig
from ml_platform.infra.config.pins import PinsConfig
from ml_platform.infra.config.pools import NodePoolConfig
from ml_platform.infra.config.preview import PreviewConfig
from ml_platform.infra.config.registries import ModelStoreConfig, PullThroughCacheRule, RegistriesConfig
from ml_platform.infra.config.serving import ServingConfig
from ml_platform.infra.config.vulnerabilities import VulnerabilitiesConfig


class StackConfig(_Model):
    """The whole stack's configuration. Keys mirror the `ml-platform:*` Pulumi config keys."""

    stack: str
    """Pulumi stack name (not a config key; given by Pulumi)."""
    region: str
    """AWS region, from `aws:region`."""
    environment: Literal["dev", "staging", "prod"]
    """Which environment this stack is; prod turns on the hardening checks below."""
    protectStatefulResources: bool = False
    """Protect and retain the cluster, KMS keys, registries and model store (prod must)."""
    ephemeral: bool = False
    """A throwaway stack: registries and the model store may be deleted with their contents."""
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    registries: RegistriesConfig = RegistriesConfig()
    modelStore: ModelStoreConfig = ModelStoreConfig()
    modelRegistry: ModelRegistryConfig | None = None
    """The model registry models may name (`source.registry`); None: none."""
    nodePools: dict[str, NodePoolConfig]
    """Node pools by name; `system` (CPU, on-demand) is required and runs the platform's controllers."""
    tags: dict[str, str] = {}
    """Tags added to every AWS resource."""
    models: dict[str, ModelConfig] = {}
    """Models to serve, by name (also their namespace)."""
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    pins: PinsConfig = PinsConfig()
    vulnerabilities: VulnerabilitiesConfig = VulnerabilitiesConfig()
    preview: PreviewConfig | None = None
    """Set on pull-request preview stacks only."""

    @property
    def registry_prefix(self) -> str:
        """Namespace of the stack's ECR repositories and caches: the configured one, else the stack name."""
        return self.stack if self.registries.prefix is None else self.registries.prefix

    @property
    def image_registry_prefix(self) -> str:
        """Prefix of the repositories the models' platform images come from."""
        return self.registry_prefix if self.serving.imageRegistryPrefix is None else self.serving.imageRegistryPrefix

    @property
    def unscanned_verdict(self) -> str:
        """The gate's verdict on an ECR image without scan results: `vulnerabilities.unscanned`, else fail in prod."""
        return self.vulnerabilities.unscanned or ("fail" if self.environment == "prod" else "warn")

    @property
    def prometheus_retention(self) -> str:
        """How long Prometheus keeps samples: `monitoring.retention`, else 3d in dev and 15d elsewhere."""
        return self.monitoring.retention or ("3d" if self.environment == "dev" else "15d")

    def cache_prefix(self, rule: PullThroughCacheRule) -> str:
        """The ECR repository prefix of a pull-through cache rule, below the registry prefix."""
        return "/".join(part for part in (self.registry_prefix, rule.key) if part)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        regions = versions.eks_regions()
        if value not in regions:
            hint = difflib.get_close_matches(value, regions, n=1)
            raise _fail(f"'{value}' is not an AWS region with EKS" + (f"; did you mean '{hint[0]}'?" if hint else ""))
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_USER_TAGS:
            raise _fail(f"{len(value)} tags; at most {MAX_USER_TAGS} (AWS allows 50 per resource, the platform adds its own)")
        for key, tag in value.items():
            if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
                raise _fail(f"tag key '{key}' must be 1-128 characters and not start with 'aws:'")
            if key in RESERVED_TAG_KEYS or key.startswith(RESERVED_TAG_PREFIXES):
                raise _fail(f"tag key '{key}' is set by the platform, EKS or Karpenter and cannot be set here")
            if len(tag) > 256:
                raise _fail(f"tag '{key}' value is longer than 256 characters")
            if not all(ch.isalnum() or ch.isspace() or ch in "_.:/=+-@" for ch in key + tag):
                raise _fail(f"tag '{key}' uses characters AWS does not allow (letters, digits, spaces and _ . : / = + - @)")
        return value

    @field_validator("nodePools")
    @classmethod
    def _pool_names(cls, value: dict[str, NodePoolConfig]) -> dict[str, NodePoolConfig]:
        for name in value:
            if not _POOL_NAME.match(name):
                raise _fail(f"pool name '{name}' must be 2-20 lowercase letters, digits or '-', starting with a letter")
            if name == "default":
                raise _fail("pool name 'default' is taken by the device plugin's default config; choose another")
        return value
