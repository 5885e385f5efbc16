"""The MLflow tracking server's model registry, through its REST API (`/api/2.0/mlflow/...`, the same calls
MLflow's own client makes; mlflow/protos/model_registry.proto). The platform needs three reads, so it speaks
HTTP with `requests` (a well-kept HTTP client) rather than install MLflow, whose dependencies would move the
program's pins; the tests run a real MLflow server against it."""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass

import requests

from ml_platform.infra.config.model_registry import PASSWORD_VARIABLE, TOKEN_VARIABLE, USERNAME_VARIABLE, ModelRegistryConfig

TIMEOUT_SECONDS = 30


class RegistryError(Exception):
    """The registry could not answer: unreachable, refused the credentials, or not an MLflow server."""


class NotInRegistry(RegistryError):
    """The registry answered that the model, alias, version or run does not exist (any more)."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version, as the registry gives it."""

    name: str
    version: str
    source: str
    """Where the version was registered from (`s3://...`, `runs:/<run>/<path>`, `models:/<model id>`)."""
    run_id: str | None
    model_id: str | None
    """MLflow 3's logged model id, when the version came from one."""


def credentials(registry: ModelRegistryConfig, stack: str) -> tuple[tuple[str, str] | None, str | None]:
    """(basic auth, bearer token) for the registry from MLflow's own environment variables: an offline command
    cannot decrypt the stack file's `secure:` values. Raises RegistryError naming the variable to set."""
    auth = registry.auth
    fetch = f"$(pulumi config get --path modelRegistry.auth.{{}} --stack {stack})"
    if auth.type == "basic":
        user = os.environ.get(USERNAME_VARIABLE) or auth.username
        password = os.environ.get(PASSWORD_VARIABLE)
        if not user or not password:
            raise RegistryError(
                f"modelRegistry.auth is basic: set {USERNAME_VARIABLE} (or modelRegistry.auth.username) and {PASSWORD_VARIABLE}, "
                f"e.g. export {PASSWORD_VARIABLE}={fetch.format('password')}"
            )
        return (user, password), None
    if auth.type == "bearer":
        token = os.environ.get(TOKEN_VARIABLE)
        if not token:
            raise RegistryError(f"modelRegistry.auth is bearer: set {TOKEN_VARIABLE}, e.g. export {TOKEN_VARIABLE}={fetch.format('token')}")
        return None, token
    return None, None


SAGEMAKER_SERVICE = "sagemaker-mlflow"


def sagemaker_endpoint(region: str) -> str:
    """Where SageMaker's managed MLflow answers the MLflow REST API (aws/sagemaker-mlflow's auth plugin)."""
    return f"https://{region}.experiments.sagemaker.aws"


class SigV4(requests.auth.AuthBase):
    """Signs each request with AWS Signature Version 4 for SageMaker's managed MLflow, as its own client plugin
    (aws/sagemaker-mlflow) does: service `sagemaker-mlflow`, the tracking server's ARN in the
    `x-mlflow-sm-tracking-server-arn` header, the body's SHA-256 signed in `X-Amz-Content-SHA256`, the
    `Connection` header left out of the signature. (The plugin also rewrites `+` to `%20` in query strings;
    registered model names and aliases here have no spaces, so no `+` occurs.) The credentials are boto3's
    default chain (the same the S3 calls use)."""

    def __init__(self, credentials, region: str, server_arn: str):
        self.credentials = credentials
        self.region = region
        self.server_arn = server_arn

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request.headers["x-mlflow-sm-tracking-server-arn"] = self.server_arn
        body = request.body or b""
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body.encode() if isinstance(body, str) else body).hexdigest()
        headers = {key: value for key, value in request.headers.items() if key.lower() != "connection"}
        signed = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
        SigV4Auth(self.credentials.get_frozen_credentials(), SAGEMAKER_SERVICE, self.region).add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        return request


class MlflowRegistry:
    """The reads the lock commands make, against one tracking server."""

    def __init__(
        self,
        tracking_uri: str,
        basic: tuple[str, str] | None = None,
        token: str | None = None,
        signer: SigV4 | None = None,
        artifacts_destination: str | None = None,
    ):
        self.api = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow"
        self.artifacts_destination = artifacts_destination.rstrip("/") if artifacts_destination else None
        self.session = requests.Session()
        self.session.auth = signer or basic
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _get(self, path: str, params: dict[str, str]) -> dict:
        try:
            response = self.session.get(f"{self.api}/{path}", params=params, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as err:
            raise RegistryError(f"cannot reach the registry at {self.api}: {type(err).__name__}") from None
        if response.status_code in (401, 403):
            raise RegistryError(f"the registry refused the credentials (HTTP {response.status_code}) for {path}")
        try:
            body = response.json()
        except ValueError:
            raise RegistryError(f"{self.api}/{path} answered HTTP {response.status_code} with no JSON: is it an MLflow server?") from None
        if not response.ok:
            message = f"{body.get('error_code', response.status_code)}: {body.get('message', response.text[:200])}"
            # MLflow answers a missing model with 404 RESOURCE_DOES_NOT_EXIST, a missing alias with 400
            # INVALID_PARAMETER_VALUE (mlflow/store/model_registry/sqlalchemy_store.py).
            if body.get("error_code") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise NotInRegistry(message)
            raise RegistryError(message)
        return body

    def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version `alias` points at. Raises RegistryError (no such model, no such alias, or unreachable)."""
        body = self._get("registered-models/alias", {"name": name, "alias": alias})["model_version"]
        source = body.get("source", "")
        # MLflow 3 registers a logged model as `models:/<model id>`; its REST answer has no separate field.
        model_id = body.get("model_id") or (source.removeprefix("models:/") if re.fullmatch(r"models:/m-[0-9a-f]+", source) else None)
        return ModelVersion(
            name=body["name"],
            version=str(body["version"]),
            source=source,
            run_id=body.get("run_id") or None,
            model_id=model_id,
        )

    def download_uri(self, name: str, version: str) -> str:
        """Where the version's artifacts are stored. The server resolves most sources; a `runs:/<run>/<path>` it
        returns as given (MLflow 3.17), so that one is resolved here through the run's artifact location, and a
        `models:/<model id>` through the logged model's."""
        uri = self._get("model-versions/get-download-uri", {"name": name, "version": version})["artifact_uri"]
        run = re.fullmatch(r"runs:/([0-9a-f]+)/?(.*)", uri)
        if run:
            root = self._get("runs/get", {"run_id": run.group(1)})["run"]["info"]["artifact_uri"]
            return self.in_storage(f"{root.rstrip('/')}/{run.group(2)}".rstrip("/"))
        logged = re.fullmatch(r"models:/(m-[0-9a-f]+)", uri)
        if logged:
            uri = self._get(f"logged-models/{logged.group(1)}", {})["model"]["info"]["artifact_uri"]
        return self.in_storage(uri)

    def in_storage(self, uri: str) -> str:
        """An `mlflow-artifacts:` location (a server that proxies artifacts hands these out) as the object store
        location it stands for: the server keeps `mlflow-artifacts:/<path>` at `<artifacts destination>/<path>`
        (mlflow/server/handlers.py, _get_artifact_repo_mlflow_artifacts). Any other URI is returned as it is."""
        if not uri.startswith("mlflow-artifacts:") or self.artifacts_destination is None:
            return uri
        path = urllib.parse.urlparse(uri).path.lstrip("/")
        return f"{self.artifacts_destination}/{path}"
