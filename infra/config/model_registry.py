"""`modelRegistry`: the model registry a stack's models may name instead of an S3 prefix (MLflow's)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ml_platform.infra.config.base import _fail, _Model

# MLflow's environment variables for its own client's credentials (mlflow/environment_variables.py): the
# commands that talk to the registry read them, since an offline command cannot decrypt `secure:` values.
USERNAME_VARIABLE = "MLFLOW_TRACKING_USERNAME"
PASSWORD_VARIABLE = "MLFLOW_TRACKING_PASSWORD"
TOKEN_VARIABLE = "MLFLOW_TRACKING_TOKEN"


class RegistryAuth(_Model):
    type: Literal["none", "basic", "bearer"] = "none"
    """How the registry's REST API authenticates: `basic` (MLflow's basic-auth app: username and password),
    `bearer` (a token, e.g. from a proxy in front of the server) or `none`."""
    username: str | None = None
    """The basic-auth user (or MLFLOW_TRACKING_USERNAME)."""
    password: str | None = None
    """The basic-auth password, encrypted in the stack file (`pulumi config set --secret --path`); the commands
    read MLFLOW_TRACKING_PASSWORD."""
    token: str | None = None
    """The bearer token, encrypted in the stack file; the commands read MLFLOW_TRACKING_TOKEN."""

    @model_validator(mode="after")
    def _fields(self) -> RegistryAuth:
        given = {name for name in ("username", "password", "token") if getattr(self, name) is not None}
        allowed = {"none": set(), "basic": {"username", "password"}, "bearer": {"token"}}[self.type]
        if given - allowed:
            raise _fail(f"{', '.join(sorted(given - allowed))} do(es) not go with type {self.type}")
        return self


class SageMakerConfig(_Model):
    mlflowVersion: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+$")]
    """The MLflow version SageMaker runs, major.minor as it stores it (`3.0`; the AWS provider normalises a
    patch level away, so `3.0.0` would differ from the stored value at every update), one it offers (SageMaker
    developer guide, "Integrate MLflow with your environment"); required, never SageMaker's default, so the
    version is pinned. Changing it replaces the server and its records."""
    serverOfStack: str | None = None
    """Use the tracking server of this stack (`ml-platform-<stack>`) and make none: a reproduction serves its
    source's registry (`reproduce` sets it). Unset: this stack's own server."""
    size: Literal["Small", "Medium", "Large"] = "Small"
    """The tracking server's size."""
    weeklyMaintenanceWindowStart: Annotated[str, Field(pattern=r"^(MON|TUE|WED|THU|FRI|SAT|SUN):([01][0-9]|2[0-3]):[0-5][0-9]$")] | None = (
        None
    )
    """When SageMaker may patch it, UTC, e.g. `TUE:03:30`; unset: SageMaker's choice."""


class ModelRegistryConfig(_Model):
    mode: Literal["external", "sagemaker"]
    """`external`: a registry the team already runs, reached at trackingUri. `sagemaker`: Amazon SageMaker's
    managed MLflow tracking server, declared by the stack (components/sagemaker_mlflow.py); clients sign their
    requests with AWS credentials."""
    trackingUri: str | None = None
    """external: the MLflow tracking server's URL (http:// or https://), e.g. `https://mlflow.internal.example.com`."""
    auth: RegistryAuth = RegistryAuth()
    """external: how its REST API authenticates."""
    artifactsDestination: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")] | None = None
    """external: the server's `--artifacts-destination` (s3://bucket/prefix) when it proxies artifacts (MLflow's
    default, `--serve-artifacts`): a version's `mlflow-artifacts:/<path>` location is then read from S3 at
    `<artifactsDestination>/<path>`. Unset: such locations are refused."""
    sagemaker: SageMakerConfig | None = None
    """sagemaker: the managed server's settings."""

    @field_validator("trackingUri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or len(value) < 10):
            raise _fail(f"'{value}' is not an http(s) URL of an MLflow tracking server")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _mode(self) -> ModelRegistryConfig:
        if self.mode == "external" and (self.trackingUri is None or self.sagemaker is not None):
            raise _fail("mode external needs trackingUri (the registry's URL) and no sagemaker settings")
        if self.mode == "sagemaker" and (
            self.sagemaker is None or self.trackingUri is not None or self.auth.type != "none" or self.artifactsDestination is not None
        ):
            raise _fail("mode sagemaker needs sagemaker {mlflowVersion} and no trackingUri or auth: clients sign with AWS credentials")
        return self


SECRET_AUTH_FIELDS = ("password", "token")
