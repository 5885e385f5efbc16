"""`preview`: the settings of a pull-request preview stack."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ml_platform.infra.config.base import _fail, _Model

_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


class PreviewConfig(_Model):
    """A pull-request preview stack (written by `python -m infra preview-stack create`)."""

    mode: Literal["namespace", "full"] = "namespace"
    """namespace: only the models, in namespace `pr-<pr>` of the base stack's cluster; full: a whole platform."""
    baseStack: str = "dev"
    """The stack whose config the preview starts from and, in namespace mode, whose cluster it runs in
    (a StackReference name: `dev`, or `<org>/ml-platform/dev`)."""
    ttlHours: int = Field(default=72, ge=1, le=720)
    """How long a preview lives after its last create or update before the sweep removes it."""
    pr: int | None = Field(default=None, ge=1)
    """The pull request's number (set by preview-stack create)."""
    expiresAt: str | None = None
    """UTC time (`YYYY-MM-DDTHH:MM:SSZ`) after which the sweep removes the stack (set by preview-stack create)."""

    @field_validator("baseStack")
    @classmethod
    def _base_stack(cls, value: str) -> str:
        if not re.fullmatch(r"(?:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/)?[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?", value):
            raise _fail(f"'{value}' is not a stack name (`dev`) or a fully qualified one (`<org>/ml-platform/dev`)")
        return value

    @field_validator("expiresAt")
    @classmethod
    def _expires_at(cls, value: str | None) -> str | None:
        if value is not None and not _ISO_UTC.match(value):
            raise _fail(f"'{value}' is not a UTC time like 2026-11-23T18:00:00Z")
        return value

    @property
    def base_stack_name(self) -> str:
        """The base stack's own name (the last part of a fully qualified reference)."""
        return self.baseStack.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        """Namespace of a namespace-mode preview in the base cluster."""
        return f"pr-{self.pr}"
