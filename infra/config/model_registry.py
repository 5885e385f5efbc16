"""`modelRegistry`: the model registry a stack's models may name instead of an S3 prefix (MLflow's)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ml_platform.infra.config.base import _fail, _Model
from ml_platform.infra.config.models import ImageRef, Resources

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


# Aurora PostgreSQL releases from which Serverless v2 may pause at 0 ACUs (aws/aws-cdk's
# aws-rds/test/cluster-engine.test.ts, "serverlessV2AutoPauseSupported": 13.15, 14.12, 15.7, 16.3 and every 17+).
AUTO_PAUSE_FROM = {13: 15, 14: 12, 15: 7, 16: 3}
_HALF_STEPS = "a multiple of 0.5"


def pauses(engine_version: str) -> bool:
    """Whether an Aurora PostgreSQL `major.minor` release supports a minimum capacity of 0 ACUs (auto-pause)."""
    major, minor = (int(part) for part in engine_version.split("."))
    return major >= 17 or (major in AUTO_PAUSE_FROM and minor >= AUTO_PAUSE_FROM[major])


class RegistryDatabaseConfig(_Model):
    engineVersion: Annotated[str, Field(pattern=r"^1[3-9]\.[0-9]+$")] = "16.6"
    """Aurora PostgreSQL `major.minor` (pinned; a minor upgrade is applied in place by `pulumi up`, with a short
    outage; `aws rds describe-db-engine-versions --engine aurora-postgresql` lists them)."""
    minCapacity: Annotated[float, Field(ge=0, le=256)] = 0.5
    """Serverless v2 minimum, in ACUs (0.5 steps; an ACU is about 2 GiB of memory). 0 lets an idle database pause
    (dev: billed for storage only; the first connection after a pause waits about 15 s while it resumes)."""
    maxCapacity: Annotated[float, Field(ge=1, le=256)] = 2
    """Serverless v2 maximum, in ACUs (1 to 256, 0.5 steps)."""
    secondsUntilAutoPause: Annotated[int, Field(ge=300, le=86400)] | None = None
    """With minCapacity 0: idle seconds before it pauses (default 3600)."""
    instances: Annotated[int, Field(ge=1, le=4)] = 1
    """db.serverless instances: the writer, and readers in other zones that one fails over to (prod: at least 2)."""
    backupRetentionDays: Annotated[int, Field(ge=7, le=35)] = 7
    """Automated backups kept, in days (point-in-time restore within them; at least 7)."""
    passwordGeneration: Annotated[int, Field(ge=1)] = 1
    """Bump it to rotate the database password: `pulumi up` then sets a new one on the cluster and in the
    server's Secret, and restarts the server (README "The model registry on the platform", Rotating secrets)."""

    @model_validator(mode="after")
    def _capacity(self) -> RegistryDatabaseConfig:
        for name in ("minCapacity", "maxCapacity"):
            if getattr(self, name) * 2 != int(getattr(self, name) * 2):
                raise _fail(f"{name} {getattr(self, name)} is not {_HALF_STEPS}")
        if self.minCapacity > self.maxCapacity:
            raise _fail(f"minCapacity {self.minCapacity} is above maxCapacity {self.maxCapacity}")
        if self.minCapacity == 0 and not pauses(self.engineVersion):
            raise _fail(
                "minCapacity 0 (auto-pause) needs Aurora PostgreSQL 13.15, 14.12, 15.7, 16.3 or later; "
                f"engineVersion is {self.engineVersion}"
            )
        if self.secondsUntilAutoPause is not None and self.minCapacity != 0:
            raise _fail("secondsUntilAutoPause applies only with minCapacity 0")
        return self


class RegistryIngress(_Model):
    host: Annotated[str, Field(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")]
    """The registry's DNS name on the internal load balancer, e.g. `mlflow.internal.example.com` (point it at
    the ALB's address, output `modelRegistry.url`'s host); its certificate must cover it."""
    certificateArn: Annotated[str, Field(pattern=r"^arn:aws(-cn|-us-gov)?:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$")]
    """An ACM certificate in the stack's region for `host` (HTTPS only; port 80 is not opened)."""


class SelfHostedConfig(_Model):
    mlflowVersion: Annotated[str, Field(pattern=r"^3\.[0-9]+\.[0-9]+$")]
    """The MLflow release the image carries (3.x). A change runs the schema migration Job, after a database
    snapshot and with the old server stopped (README "The model registry on the platform", Upgrading)."""
    image: ImageRef
    """The tracking server's image, built by .github/workflows/platform-images.yml from images/mlflow into a
    platform repository (`platform/mlflow`); a tag starts with mlflowVersion (`<version>-<commit>-<date>`);
    prod runs it by digest."""
    replicas: Annotated[int, Field(ge=1, le=10)] = 1
    """Server replicas (prod: at least 2, with a PodDisruptionBudget)."""
    workers: Annotated[int, Field(ge=1, le=16)] = 2
    """uvicorn worker processes per replica (MLflow's --workers)."""
    resources: Resources = Resources(cpu="1", memory="2Gi")
    """CPU and memory per replica (request and limit)."""
    defaultPermission: Literal["READ", "NO_PERMISSIONS"] = "READ"
    """What a signed-in user may do with experiments and models nobody granted them (MLflow basic auth's
    default_permission): `READ` lets every user read the registry; `NO_PERMISSIONS` needs a grant for each."""
    allowedNamespaces: list[Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]] = []
    """Namespaces whose pods may call the server (its NetworkPolicy; Prometheus' is always allowed), e.g. where
    training pipelines log runs and register models."""
    ingress: RegistryIngress | None = None
    """Also serve the registry on an internal ALB with TLS (e.g. for the runner that runs `models lock`). Unset:
    cluster-internal only, `http://mlflow.mlflow.svc.cluster.local:5000`."""
    database: RegistryDatabaseConfig = RegistryDatabaseConfig()
    """The backend store: Aurora PostgreSQL Serverless v2."""
    serverOfStack: str | None = None
    """Use the server of this stack and make none: a reproduction serves its source's registry (`reproduce` sets
    it). Unset: this stack's own server."""

    @model_validator(mode="after")
    def _image(self) -> SelfHostedConfig:
        if self.image.upstream:
            raise _fail(f"image '{self.image.repository}' must be a repository of the platform's registry (platform/mlflow)")
        if self.image.tag is not None and not self.image.tag.startswith(f"{self.mlflowVersion}-"):
            raise _fail(f"image tag '{self.image.tag}' is not a build of MLflow {self.mlflowVersion} (tags are <version>-<commit>-<date>)")
        return self


class ModelRegistryConfig(_Model):
    mode: Literal["external", "sagemaker", "selfHosted"]
    """`external`: a registry the team already runs, reached at trackingUri. `sagemaker`: Amazon SageMaker's
    managed MLflow tracking server, declared by the stack (components/sagemaker_mlflow.py); clients sign their
    requests with AWS credentials. `selfHosted`: an MLflow tracking server on the cluster with an Aurora
    PostgreSQL backend store and basic auth (components/mlflow_server); clients sign in as MLflow users."""
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
    selfHosted: SelfHostedConfig | None = None
    """selfHosted: the server's and its database's settings."""

    @field_validator("trackingUri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or len(value) < 10):
            raise _fail(f"'{value}' is not an http(s) URL of an MLflow tracking server")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _mode(self) -> ModelRegistryConfig:
        if self.mode == "external" and (self.trackingUri is None or self.sagemaker is not None or self.selfHosted is not None):
            raise _fail("mode external needs trackingUri (the registry's URL) and no sagemaker or selfHosted settings")
        platform_fields = self.trackingUri is not None or self.auth.type != "none" or self.artifactsDestination is not None
        if self.mode == "sagemaker" and (self.sagemaker is None or self.selfHosted is not None or platform_fields):
            raise _fail("mode sagemaker needs sagemaker {mlflowVersion} and no trackingUri or auth: clients sign with AWS credentials")
        if self.mode == "selfHosted" and (self.selfHosted is None or self.sagemaker is not None or platform_fields):
            raise _fail(
                "mode selfHosted needs selfHosted {mlflowVersion, image} and no trackingUri, auth or artifactsDestination: "
                "the platform knows its server's address, and clients sign in with MLFLOW_TRACKING_USERNAME/PASSWORD"
            )
        return self

    @property
    def server_of_stack(self) -> str | None:
        """sagemaker or selfHosted: the stack whose server this one uses instead of its own (a reproduction's source)."""
        settings = self.sagemaker or self.selfHosted
        return settings.serverOfStack if settings is not None else None


SECRET_AUTH_FIELDS = ("password", "token")
