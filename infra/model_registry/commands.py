"""`python -m infra models lock|verify|sync`: resolve the stack's registry aliases into its lock file, check
the lock against the registry, and copy the locked versions into the stack's model store.

Exit codes: 0 done (or current); 1 `verify` found an alias that moved (or a model not locked), `sync` found
artifacts changed since the lock; 2 bad input: no such stack, no lock, a config error, an unreachable
registry or refused credentials, artifacts outside S3."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import boto3

from ml_platform.infra import config
from ml_platform.infra.model_registry import artifacts, lockfile
from ml_platform.infra.model_registry.lockfile import LockedFile, LockedModel, LockFile
from ml_platform.infra.model_registry.mlflow import MlflowRegistry, RegistryError, credentials


class ModelsCommandError(Exception):
    """Bad input for a models command (exit 2), with what to do."""


def _registry(cfg: config.StackConfig, tracking_uri: str | None) -> tuple[MlflowRegistry, str]:
    if cfg.modelRegistry is None:
        raise ModelsCommandError(f"stack '{cfg.stack}' has no modelRegistry: set modelRegistry {{mode: external, trackingUri}}")
    uri = (tracking_uri or cfg.modelRegistry.trackingUri).rstrip("/")
    try:
        basic, token = credentials(cfg.modelRegistry, cfg.stack)
    except RegistryError as err:
        raise ModelsCommandError(str(err)) from None
    return MlflowRegistry(uri, basic, token), uri


def lock(cfg: config.StackConfig, project_dir: Path, tracking_uri: str | None = None) -> int:
    """Resolve every registry model's alias and write the lock file (whole, or not at all)."""
    wanted = lockfile.registry_models(cfg)
    if cfg.preview is not None:
        raise ModelsCommandError(f"'{cfg.stack}' is a preview: it serves its base stack's lock; lock '{cfg.preview.base_stack_name}'")
    if not wanted:
        print(f"stack '{cfg.stack}' has no model with source.registry: nothing to lock")
        return 0
    registry, uri = _registry(cfg, tracking_uri)
    file = lockfile.path(project_dir, cfg.stack)
    before = lockfile.read(file).models if file.exists() else {}
    s3 = boto3.client("s3", region_name=cfg.region)
    entries = {}
    for name, model in wanted.items():
        ref = model.source.registry
        try:
            version = registry.version_by_alias(ref.model, ref.alias)
            artifact_uri = registry.download_uri(ref.model, version.version)
            files = artifacts.list_files(s3, artifact_uri)
        except (RegistryError, artifacts.ArtifactError) as err:
            raise ModelsCommandError(f"models.{name} ({ref.model}@{ref.alias}): {err}") from None
        entries[name] = LockedModel(
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
        was = before.get(name)
        change = "new" if was is None else ("unchanged" if was.version == version.version else f"was version {was.version}")
        size = sum(f.size for f in files) / 2**30
        print(f"  {name}: {ref.model}@{ref.alias} -> version {version.version} ({len(files)} files, {size:.2f} GiB; {change})")
    lockfile.write(file, LockFile(stack=cfg.stack, trackingUri=uri, models=entries))
    print(f"wrote {file.name} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC): commit it; `models sync --stack {cfg.stack}` copies the versions")
    return 0


def verify(cfg: config.StackConfig, project_dir: Path, tracking_uri: str | None = None) -> int:
    """1 naming each model whose alias moved since the lock (or that the lock lacks); 0 when all are current."""
    wanted = lockfile.registry_models(cfg)
    if not wanted:
        print(f"stack '{cfg.stack}' has no model with source.registry: nothing to verify")
        return 0
    file = lockfile.path(project_dir, lockfile.lock_stack(cfg))
    if not file.exists():
        raise ModelsCommandError(f"no lock file {file.name}: run `python -m infra models lock --stack {lockfile.lock_stack(cfg)}`")
    locked = lockfile.read(file)
    registry, _ = _registry(cfg, tracking_uri)
    stale = []
    for name, model in wanted.items():
        ref = model.source.registry
        entry = locked.models.get(name)
        if entry is None or (entry.registeredModel, entry.alias) != (ref.model, ref.alias):
            stale.append(f"{name}: {ref.model}@{ref.alias} is not in {file.name}")
            continue
        try:
            now = registry.version_by_alias(ref.model, ref.alias)
        except RegistryError as err:
            raise ModelsCommandError(f"models.{name} ({ref.model}@{ref.alias}): {err}") from None
        if now.version != entry.version:
            stale.append(f"{name}: {ref.model}@{ref.alias} is version {now.version}; the lock has {entry.version}")
        else:
            print(f"  {name}: {ref.model}@{ref.alias} is version {entry.version}, as locked")
    for line in stale:
        print(f"  moved: {line}")
    if stale:
        print(
            f"{len(stale)} model(s) differ from {file.name}: run `python -m infra models lock --stack {locked.stack}` and review the change"
        )
        return 1
    return 0


def sync(cfg: config.StackConfig, project_dir: Path, bucket: str | None = None, dry_run: bool = False) -> int:
    """Copy each locked version into the store (default: the stack's, or a namespace preview's base stack's)."""
    resolved = lockfile.resolve(cfg, project_dir)  # the lock must be whole and current with the config
    locked = lockfile.read(lockfile.path(project_dir, lockfile.lock_stack(cfg))) if lockfile.registry_models(cfg) else None
    if locked is None:
        print(f"stack '{cfg.stack}' has no model with source.registry: nothing to sync")
        return 0
    if bucket is None:
        from ml_platform.infra.program import model_store_bucket

        owner = cfg.preview.base_stack_name if cfg.preview is not None and cfg.preview.mode == "namespace" else cfg.stack
        account = boto3.client("sts", region_name=cfg.region).get_caller_identity()["Account"]
        bucket = model_store_bucket(owner, account)
    s3 = boto3.client("s3", region_name=cfg.region)
    failed = []
    for name in lockfile.registry_models(resolved):
        entry = locked.models[name]
        try:
            copied, skipped = artifacts.copy(s3, entry.artifactUri, entry.artifact_files, bucket, entry.prefix, dry_run)
        except artifacts.ArtifactError as err:
            failed.append(f"{name} ({entry.registeredModel} version {entry.version}): {err}")
            continue
        verb = "would copy" if dry_run else "copied"
        target = f"s3://{bucket}/{entry.prefix}"
        print(f"  {name}: {entry.registeredModel} version {entry.version} -> {target}: {verb} {len(copied)}, present {len(skipped)}")
    for line in failed:
        print(f"  not copied: {line}")
    return 1 if failed else 0
