"""`monitoring`: Prometheus, alert routing and log retention."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from ml_platform.infra.config.base import _K8S_NAMESPACE, _check_memory, _check_retention, _fail, _Model

# Receiver fields that hold secrets: the stack file must keep them encrypted (`secure:`). `hubTokenSecret` of a
# model names a Kubernetes Secret and is not itself one.
SECRET_RECEIVER_FIELDS = ("slackWebhookUrl", "pagerdutyRoutingKey", "webhookUrl")


class Receiver(_Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")]
    """Receiver name, used by routes."""
    slackWebhookUrl: str | None = None
    """Slack incoming-webhook URL (keep it a Pulumi secret: `pulumi config set --secret --path ...`)."""
    slackChannel: str | None = None
    """Slack channel, e.g. #ml-oncall."""
    pagerdutyRoutingKey: str | None = None
    """PagerDuty Events v2 routing key (a Pulumi secret)."""
    webhookUrl: str | None = None
    """Any Alertmanager webhook receiver URL (a Pulumi secret)."""

    @model_validator(mode="after")
    def _one(self) -> Receiver:
        kinds = [k for k in (self.slackWebhookUrl, self.pagerdutyRoutingKey, self.webhookUrl) if k is not None]
        if len(kinds) != 1:
            raise _fail("set exactly one of slackWebhookUrl, pagerdutyRoutingKey or webhookUrl")
        return self


class AlertRoute(_Model):
    receiver: str
    """Receiver of the alerts this route matches."""
    matchers: Annotated[list[Annotated[str, Field(pattern=r'^[a-zA-Z_][a-zA-Z0-9_]*(=|!=|=~|!~)"[^"]*"$')]], Field(min_length=1)]
    """Alertmanager matchers, e.g. `severity="critical"`."""


class MonitoringConfig(_Model):
    retention: Annotated[str, Field(pattern=r"^[0-9]+(h|d|w)$")] | None = None
    """How long Prometheus keeps samples (default 3d in dev, 15d elsewhere)."""
    storageGiB: Annotated[int, Field(ge=10, le=16384)] | None = None
    """Persistent gp3 volume for Prometheus (default none in dev, 100 elsewhere; required outside dev)."""
    prometheusMemory: str = "4Gi"
    """Memory limit of Prometheus."""
    receivers: list[Receiver] = []
    """Where alerts go."""
    routes: list[AlertRoute] = []
    """Which alerts go where (first match wins); unmatched alerts go to defaultReceiver."""
    defaultReceiver: str | None = None
    """Receiver of every alert no route takes (required once receivers exist)."""
    ampRemoteWrite: bool = False
    """Also write metrics to Amazon Managed Service for Prometheus (a workspace, SigV4, Pod Identity)."""
    logRetentionDays: int = 30
    """Retention of the container log groups; a CloudWatch retention period."""
    logNamespaces: list[str] = []
    """Namespaces besides the platform's and the models' whose container logs are shipped, each to a declared
    log group (a team's `apps`); logs of any other namespace stay on the nodes."""

    @field_validator("prometheusMemory")
    @classmethod
    def _prometheus_memory(cls, value: str) -> str:
        return _check_memory(value)

    @field_validator("logRetentionDays")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @field_validator("logNamespaces")
    @classmethod
    def _log_namespaces(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not _K8S_NAMESPACE.match(n) or n == "unlabelled" or re.fullmatch(r"pr-[0-9]+", n)]
        if bad:
            raise _fail(
                f"{', '.join(repr(n) for n in bad)}: not a namespace name, or one whose group another owns "
                "('unlabelled' is the platform's; pr-<number> namespaces are previews', which declare their own)"
            )
        if len(set(value)) != len(value):
            raise _fail("a namespace is listed twice")
        return value

    @model_validator(mode="after")
    def _routing(self) -> MonitoringConfig:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise _fail("receiver names repeat")
        for receiver in [r.receiver for r in self.routes] + ([self.defaultReceiver] if self.defaultReceiver else []):
            if receiver not in names:
                raise _fail(f"receiver '{receiver}' is not defined in receivers")
        if self.receivers and self.defaultReceiver is None:
            raise _fail("set defaultReceiver: every alert must go somewhere")
        return self
