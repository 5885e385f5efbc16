"""`registries` and `modelStore`: the ECR repositories, caches and mirrors, and the model artifact bucket."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ml_platform.components.images import CHART_IMAGES
from ml_platform.infra.config.base import _ECR_NAME, _SECRET_ARN, PULL_THROUGH_UPSTREAMS, _fail, _Model


class PullThroughCacheRule(_Model):
    upstream: Literal[tuple(PULL_THROUGH_UPSTREAMS)]  # type: ignore[valid-type]
    """Which public registry to cache."""
    prefix: str | None = None
    """ECR repository prefix for the cache, below the registries prefix (default: the upstream name)."""
    credentialArn: str | None = None
    """Secrets Manager secret `ecr-pullthroughcache/...` with upstream credentials (docker-hub, github, gitlab need one)."""

    @field_validator("prefix")
    @classmethod
    def _cache_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _ECR_NAME.match(value):
            raise _fail(f"'{value}' is not an ECR repository prefix (lowercase letters, digits, . _ - and / separators)")
        return value

    @field_validator("credentialArn")
    @classmethod
    def _credential(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_ARN.match(value):
            raise _fail(f"'{value}' is not a Secrets Manager ARN whose name starts with ecr-pullthroughcache/")
        return value

    @property
    def key(self) -> str:
        """The rule's prefix within the stack's registry namespace."""
        return self.prefix or self.upstream

    @model_validator(mode="after")
    def _needs_credential(self) -> PullThroughCacheRule:
        if PULL_THROUGH_UPSTREAMS[self.upstream][1] and self.credentialArn is None:
            raise _fail(f"upstream '{self.upstream}' requires credentialArn")
        return self


class RegistriesConfig(_Model):
    prefix: str | None = None
    """Namespace in front of every repository and cache prefix (default: the stack name; "" for none, when
    each stack has its own account)."""
    repositories: list[str] = []
    """ECR repository names to create, below the prefix."""
    untaggedExpiryDays: Annotated[int, Field(ge=1, le=365)] = 14
    """Untagged images are expired after this many days."""
    keepTaggedCount: Annotated[int, Field(ge=1, le=10000)] = 100
    """How many tagged images each repository keeps; older ones are expired."""
    pullThroughCache: list[PullThroughCacheRule] = []
    """Pull-through cache rules for public registries."""
    mirrors: dict[str, str] = {}
    """Chart images served from one of `repositories` instead of their upstream, by image key
    (components/images.py): for nvcr.io, which no pull-through cache serves, or to keep digest-pinned images
    in-account. Copy each image there at its chart's tag first."""

    @model_validator(mode="after")
    def _mirrors(self) -> RegistriesConfig:
        for key, repository in self.mirrors.items():
            if key not in CHART_IMAGES:
                raise _fail(f"mirrors: '{key}' is not a chart image; known: {', '.join(sorted(CHART_IMAGES))}")
            if repository not in self.repositories:
                raise _fail(f"mirrors.{key}: '{repository}' is not in repositories (the mirror is a repository of the platform)")
        return self

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value and not _ECR_NAME.match(value):
            raise _fail(f"'{value}' is not an ECR repository namespace (lowercase letters, digits, . _ - and / separators)")
        return value

    @field_validator("repositories")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not (2 <= len(name) <= 256 and _ECR_NAME.match(name)):
                raise _fail(f"'{name}' is not an ECR repository name (lowercase letters, digits, . _ - and / separators)")
        if len(set(value)) != len(value):
            raise _fail("repository names repeat")
        return value


class ModelStoreConfig(_Model):
    noncurrentVersionExpiryDays: Annotated[int, Field(ge=1, le=3650)] = 30
    """Superseded model artifact versions are deleted after this many days."""
    abortIncompleteUploadDays: Annotated[int, Field(ge=1, le=365)] = 7
    """Unfinished multipart uploads (large weights) are cleaned up after this many days."""
    compileCacheExpiryDays: Annotated[int, Field(ge=1, le=3650)] = 30
    """vLLM compile caches (`compile-cache/`, models' `compileCache: modelStore`) expire this many days after they
    were written; a replica that misses one compiles and saves it again."""
