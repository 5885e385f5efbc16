"""`modelRegistry`: the model registry a stack's models may name instead of an S3 prefix (MLflow's)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

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


class ModelRegistryConfig(_Model):
    mode: Literal["external"]
    """`external`: a registry the team already runs, reached at trackingUri."""
    trackingUri: str
    """The MLflow tracking server's URL (http:// or https://), e.g. `https://mlflow.internal.example.com`."""
    auth: RegistryAuth = RegistryAuth()

    @field_validator("trackingUri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise _fail(f"'{value}' is not an http(s) URL of an MLflow tracking server")
        return value.rstrip("/")


SECRET_AUTH_FIELDS = ("password", "token")
