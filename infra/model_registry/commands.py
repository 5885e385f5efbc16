"""`python -m infra models lock|verify|sync`: resolve the stack's registry aliases into its lock file, check
the lock against the registry, and copy the locked versions into the stack's model store.

Exit codes: 0 done (or current); 1 `verify` found a lock entry the registry no longer agrees with (an alias
moved, a version gone or with other files, a model not locked), `sync` found artifacts changed since the lock;
2 bad input: no such stack, no lock or one of another stack, a config error, an unreachable registry or refused
credentials, artifacts outside S3 or unreadable, a model store that does not exist."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ml_platform.components.sagemaker_mlflow import ARTIFACT_PREFIX, tracking_server_arn
from ml_platform.infra import config
from ml_platform.infra.config.model_registry import PASSWORD_VARIABLE, USERNAME_VARIABLE
from ml_platform.infra.delivery import aws_errors
from ml_platform.infra.model_registry import artifacts, lockfile
from ml_platform.infra.model_registry.lockfile import LockedFile, LockedModel, LockFile
from ml_platform.infra.model_registry.mlflow import MlflowRegistry, NotInRegistry, RegistryError, SigV4, credentials, sagemaker_endpoint


class ModelsCommandError(Exception):
    """Bad input for a models command (exit 2), with what to do."""


def _registry(cfg: config.StackConfig, tracking_uri: str | None) -> MlflowRegistry:
    """The registry client: `tracking_uri` (a way to reach the same registry from here, e.g. through a tunnel)
    or modelRegistry.trackingUri, with MLflow's own credential variables; for SageMaker's managed server, its
    regional endpoint with requests signed by the AWS credentials (the server of the lock's stack)."""
    if cfg.modelRegistry is None:
        raise ModelsCommandError(f"stack '{cfg.stack}' has no modelRegistry: set modelRegistry {{mode: external, trackingUri}}")
    if cfg.modelRegistry.mode == "sagemaker":
        session = boto3.Session(region_name=cfg.region)
        aws_credentials = session.get_credentials()
        if aws_credentials is None:
            raise ModelsCommandError("modelRegistry is SageMaker's: requests are signed with AWS credentials, and there are none")
        account = session.client("sts").get_caller_identity()["Account"]
        arn = tracking_server_arn(lockfile.server_stack(cfg), cfg.region, account, session.get_partition_for_region(cfg.region))
        return MlflowRegistry(tracking_uri or sagemaker_endpoint(cfg.region), signer=SigV4(aws_credentials, cfg.region, arn))
    if cfg.modelRegistry.mode == "selfHosted":
        return _self_hosted_registry(cfg, tracking_uri)
    try:
        basic, token = credentials(cfg.modelRegistry, cfg.stack)
    except RegistryError as err:
        raise ModelsCommandError(str(err)) from None
    uri = (tracking_uri or cfg.modelRegistry.trackingUri).rstrip("/")
    return MlflowRegistry(uri, basic, token, artifacts_destination=cfg.modelRegistry.artifactsDestination)


def _self_hosted_registry(cfg: config.StackConfig, tracking_uri: str | None) -> MlflowRegistry:
    """The platform's own MLflow (the server of lockfile.server_stack): reached at `tracking_uri`, else its ALB
    host, else its in-cluster Service URL (from a pod or a runner inside the cluster's network); signed in with
    MLflow's basic-auth variables; artifacts proxied to `mlflow/` of that stack's model store."""
    from ml_platform.components.mlflow_server.manifests import service_url
    from ml_platform.infra.program import model_store_bucket

    settings = cfg.modelRegistry.selfHosted
    user, password = os.environ.get(USERNAME_VARIABLE), os.environ.get(PASSWORD_VARIABLE)
    if not user or not password:
        raise ModelsCommandError(
            f"modelRegistry is self-hosted with basic auth: set {USERNAME_VARIABLE} and {PASSWORD_VARIABLE} to an MLflow user of "
            "the registry (the admin's first password: "
            f"pulumi stack output --stack {lockfile.server_stack(cfg)} --show-secrets modelRegistryAdminPassword)"
        )
    default = f"https://{settings.ingress.host}" if settings.ingress else service_url()
    account = boto3.client("sts", region_name=cfg.region).get_caller_identity()["Account"]
    destination = f"s3://{model_store_bucket(lockfile.server_stack(cfg), account)}/{ARTIFACT_PREFIX.rstrip('/')}"
    return MlflowRegistry((tracking_uri or default).rstrip("/"), (user, password), None, artifacts_destination=destination)


def _resolve(registry: MlflowRegistry, s3, name: str, ref) -> LockedModel:
    """One model's alias resolved to a locked entry. Raises ModelsCommandError naming the model (exit 2)."""
    artifact_uri = "its artifacts"
    try:
        version = registry.version_by_alias(ref.model, ref.alias)
        artifact_uri = registry.download_uri(ref.model, version.version)
        files = artifacts.list_files(s3, artifact_uri)
    except (RegistryError, artifacts.ArtifactError) as err:
        raise ModelsCommandError(f"models.{name} ({ref.model}@{ref.alias}): {err}") from None
    except (BotoCoreError, ClientError) as err:
        raise ModelsCommandError(f"models.{name} ({ref.model}@{ref.alias}): reading {artifact_uri}: {aws_errors.explain(err)}") from None
    return LockedModel(
        registeredModel=ref.model,
        alias=ref.alias,
        version=version.version,
        runId=version.run_id,
        modelId=version.model_id,
        source=version.source,
        artifactUri=artifact_uri,
        fingerprint=artifacts.fingerprint(files),
        files=[LockedFile(key=f.key, size=f.size, etag=f.etag) for f in files],
    )


def lock(cfg: config.StackConfig, project_dir: Path, tracking_uri: str | None = None) -> int:
    """Resolve every registry model's alias and write the lock file (whole, or not at all; not rewritten when
    nothing changed). The lock records modelRegistry.trackingUri, whichever URL reached the registry."""
    wanted = lockfile.registry_models(cfg)
    if cfg.preview is not None:
        raise ModelsCommandError(f"'{cfg.stack}' is a preview: it serves its base stack's lock; lock '{cfg.preview.base_stack_name}'")
    if not wanted:
        print(f"stack '{cfg.stack}' has no model with source.registry: nothing to lock")
        return 0
    registry = _registry(cfg, tracking_uri)
    file = lockfile.path(project_dir, cfg.stack)
    try:
        before = lockfile.read(file).models if file.exists() else {}
    except lockfile.LockFileError as err:
        print(f"  replacing {file.name}, which cannot be read ({err})")
        before = {}
    s3 = boto3.client("s3", region_name=cfg.region)
    entries = {}
    for name, model in wanted.items():
        entry = entries[name] = _resolve(registry, s3, name, model.source.registry)
        was = before.get(name)
        if was is None:
            change = "new"
        elif was.version != entry.version:
            change = f"was version {was.version}"
        elif was.fingerprint != entry.fingerprint:
            change = "same version, other files: the registry's version changed under its number"
        else:
            change = "unchanged"
        files = f"{len(entry.files)} files, {sum(f.size for f in entry.files) / 2**30:.2f} GiB"
        print(f"  {name}: {entry.registeredModel}@{entry.alias} -> version {entry.version} ({files}; {change})")
    written = lockfile.write(file, LockFile(stack=cfg.stack, trackingUri=lockfile.registry_id(cfg), models=entries))
    if written:
        print(f"wrote {file.name}: commit it; `models sync --stack {cfg.stack}` copies the versions into the store")
    else:
        print(f"{file.name} is current: nothing changed")
    return 0


def verify(cfg: config.StackConfig, project_dir: Path, tracking_uri: str | None = None) -> int:
    """1 naming each model whose lock entry no longer says what the registry says: the alias moved, the version
    is gone, it points at other files (a registered model made again), or the lock lacks it; 0 when all are
    current. A lock of another stack or registry, or an unreachable registry, is bad input (2)."""
    wanted = lockfile.registry_models(cfg)
    if not wanted:
        print(f"stack '{cfg.stack}' has no model with source.registry: nothing to verify")
        return 0
    owner = lockfile.lock_stack(cfg)
    file = lockfile.path(project_dir, owner)
    locked = lockfile.load(cfg, project_dir)  # the stack's own lock, against its registry (exit 2 otherwise)
    registry = _registry(cfg, tracking_uri)
    s3 = boto3.client("s3", region_name=cfg.region)
    stale = []
    for name, model in wanted.items():
        ref = model.source.registry
        entry = locked.models.get(name)
        if entry is None or (entry.registeredModel, entry.alias) != (ref.model, ref.alias):
            stale.append(f"{name}: {ref.model}@{ref.alias} is not in {file.name}")
            continue
        try:
            version = registry.version_by_alias(ref.model, ref.alias)
            uri = registry.download_uri(ref.model, version.version)
        except NotInRegistry as err:
            stale.append(f"{name}: gone from the registry: {ref.model}@{ref.alias}: {err}")
            continue
        except RegistryError as err:
            raise ModelsCommandError(f"models.{name} ({ref.model}@{ref.alias}): {err}") from None
        if version.version != entry.version:
            stale.append(f"{name}: {ref.model}@{ref.alias} is version {version.version}; the lock has {entry.version}")
            continue
        if uri != entry.artifactUri:
            stale.append(f"{name}: {ref.model} version {entry.version} is now at {uri}; the lock has {entry.artifactUri}")
            continue
        try:
            files = artifacts.list_files(s3, uri)
        except artifacts.ArtifactError:
            # The source was cleaned up after its copy: the store's copy (checked by sync) still serves.
            print(
                f"  {name}: {ref.model}@{ref.alias} is version {entry.version}, as locked (no files left at {uri}: the store's copy serves)"
            )
            continue
        except (BotoCoreError, ClientError) as err:
            raise ModelsCommandError(f"models.{name}: reading {uri}: {aws_errors.explain(err)}") from None
        if artifacts.fingerprint(files) != entry.fingerprint:
            stale.append(f"{name}: {ref.model} version {entry.version} now has other files than the lock ({uri})")
        else:
            print(f"  {name}: {ref.model}@{ref.alias} is version {entry.version}, as locked")
    for line in stale:
        print(f"  moved: {line}")
    if stale:
        print(f"{len(stale)} model(s) differ from {file.name}: run `python -m infra models lock --stack {owner}` and review the change")
        return 1
    return 0


def sync(cfg: config.StackConfig, project_dir: Path, bucket: str | None = None, dry_run: bool = False, wait_seconds: int = 0) -> int:
    """Copy each locked version into the store its pods read: the stack's, or a preview's base stack's (every
    preview serves from its base's store). `wait_seconds`: wait that long for a store that does not exist yet
    (a first `pulumi up` running beside this command creates it)."""
    locked = lockfile.load(cfg, project_dir)
    if locked is None:
        print(f"stack '{cfg.stack}' has no model with source.registry: nothing to sync")
        return 0
    wanted = lockfile.registry_models(lockfile.resolve(cfg, project_dir, locked))  # whole and current with the config
    own_store = bucket is None
    if bucket is None:
        from ml_platform.infra.program import model_store_bucket

        account = boto3.client("sts", region_name=cfg.region).get_caller_identity()["Account"]
        bucket = model_store_bucket(lockfile.lock_stack(cfg), account)
    s3 = boto3.client("s3", region_name=cfg.region)
    _wait_for_store(s3, bucket, wait_seconds, require_kms=own_store)
    failed = []
    for name in wanted:
        entry = locked.models[name]
        try:
            copied, skipped = artifacts.copy(s3, entry.artifactUri, entry.artifact_files, bucket, entry.prefix, dry_run, entry.mirrors)
        except artifacts.ArtifactError as err:
            failed.append(f"{name} ({entry.registeredModel} version {entry.version}): {err}")
            continue
        verb = "would copy" if dry_run else "copied"
        target = f"s3://{bucket}/{entry.prefix}"
        print(f"  {name}: {entry.registeredModel} version {entry.version} -> {target}: {verb} {len(copied)}, present {len(skipped)}")
    for line in failed:
        print(f"  not copied: {line}", file=sys.stderr)
    return 1 if failed else 0


def _wait_for_store(s3, bucket: str, wait_seconds: int, require_kms: bool) -> None:
    """Return once the bucket exists and (`require_kms`, the stack's own store) encrypts with SSE-KMS by default
    and is versioned: the store's encryption and versioning are resources of their own, created after the
    bucket, and a copy made before them would stay encrypted with S3's key. Raise ModelsCommandError (exit 2)
    when it is not so within wait_seconds."""
    deadline = time.monotonic() + wait_seconds
    while True:
        state = _store_state(s3, bucket, require_kms)
        if state is None:
            return
        if time.monotonic() >= deadline:
            raise ModelsCommandError(
                f"the model store s3://{bucket} {state}: the stack's first `pulumi up` creates it; run `models sync --wait-for-store 1800` "
                "beside that `pulumi up`, or after it"
            )
        time.sleep(min(15, max(1, deadline - time.monotonic())))


def _store_state(s3, bucket: str, require_kms: bool) -> str | None:
    """What the store still lacks (None: nothing)."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return "does not exist"
        raise
    if not require_kms:
        return None
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = []
    if not any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") == "aws:kms" for r in rules):
        return "is not yet encrypted with the stack's key by default"
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        return "is not yet versioned"
    return None
