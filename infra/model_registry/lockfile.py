"""The lock file `models.<stack>.lock.yaml` beside the stack file: each registry model's alias resolved to a
version, its run or model id, its artifact URI and its files' fingerprint. `models lock` writes it, the pull
request shows it, and the program reads only it (no registry call), serving each model from
`registry/<model>/<version>/` of the stack's store. The name ends in `.lock.yaml`, never `Pulumi.*.yaml`, so
neither the Pulumi CLI nor `stack_names` takes it for a stack file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, ValidationError

from ml_platform.components.sagemaker_mlflow import tracking_server_name
from ml_platform.infra import config
from ml_platform.infra.config.base import _Model
from ml_platform.infra.model_registry.artifacts import ArtifactFile, fingerprint, store_prefix
from ml_platform.infra.offline import stack_files


class LockFileError(Exception):
    """A lock file that cannot be read, or one written for another stack."""


class LockedFile(_Model):
    key: str
    size: Annotated[int, Field(ge=0)]
    etag: str


class LockedModel(_Model):
    registeredModel: str
    """The registered model's name."""
    alias: str
    """The alias that was resolved."""
    version: Annotated[str, Field(pattern=r"^[0-9]+$")]
    """The version it pointed at: what the stack serves."""
    runId: str | None = None
    modelId: str | None = None
    source: str
    """The version's registered source."""
    artifactUri: str
    """Where its files are (s3://), which `models sync` copies from."""
    fingerprint: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    """sha256 over the files' keys, sizes and ETags (artifacts.fingerprint); it names the store prefix, so it
    must be the fingerprint of `files` (resolve checks)."""
    files: list[LockedFile]
    mirrors: list[Annotated[str, Field(pattern=r"^s3://.+/$")]] = []
    """Other copies of the same files, tried in order when artifactUri no longer has them: a reproduction's
    source store (`reproduce` adds it)."""

    @property
    def artifact_files(self) -> list[ArtifactFile]:
        return [ArtifactFile(f.key, f.size, f.etag) for f in self.files]

    @property
    def prefix(self) -> str:
        """Where the stack serves it from: `registry/<model>/<version>/<content>/` of its model store."""
        return store_prefix(self.registeredModel, self.version, self.fingerprint)


class LockFile(_Model):
    stack: str
    """The stack it was written for."""
    trackingUri: str
    """The registry it was resolved against (registry_id)."""
    models: dict[str, LockedModel] = {}
    """By the stack's model name."""


HEADER = """\
# Written by `python -m infra models lock --stack {stack}`: each registry model's alias resolved to a version.
# Commit it and review it in the pull request: a promotion shows here as a changed version. The plan and
# `pulumi up` read only this file; `models verify` says when an alias has moved; `models sync` copies the
# versions into the stack's model store. Do not edit by hand.
"""


def file_name(stack: str) -> str:
    return f"models.{stack}.lock.yaml"


def path(project_dir: Path, stack: str) -> Path:
    return project_dir / file_name(stack)


def lock_stack(cfg: config.StackConfig) -> str:
    """The stack whose lock a stack serves: a preview's is its base stack's (its versions are the base's)."""
    return cfg.preview.base_stack_name if cfg.preview is not None else cfg.stack


def server_stack(cfg: config.StackConfig) -> str:
    """The stack whose tracking server (SageMaker's or self-hosted) a stack uses: serverOfStack (a
    reproduction's source), else the stack whose lock it serves (a preview's base, or itself)."""
    chosen = cfg.modelRegistry.server_of_stack if cfg.modelRegistry is not None else None
    return chosen or lock_stack(cfg)


def registry_id(cfg: config.StackConfig) -> str:
    """What a lock records as its registry (`trackingUri`): an external registry's URL, or for SageMaker's
    managed server `sagemaker:<its name>`, for a self-hosted one `selfHosted:<its stack>` (the server of the stack
    whose lock it is: a preview's base's)."""
    if cfg.modelRegistry is None:
        return ""
    if cfg.modelRegistry.mode == "sagemaker":
        return f"sagemaker:{tracking_server_name(server_stack(cfg))}"
    if cfg.modelRegistry.mode == "selfHosted":
        return f"selfHosted:{server_stack(cfg)}"
    return str(cfg.modelRegistry.trackingUri)


def read(file: Path) -> LockFile:
    """The lock file, strictly read (a repeated key is an error). Raises LockFileError naming file and key."""
    try:
        document = stack_files.load_yaml(file)
    except stack_files.StackFileError as err:
        raise LockFileError(str(err)) from None
    try:
        return LockFile.model_validate(document)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise LockFileError(f"{file.name}: {problems}") from None


def text(lock: LockFile) -> str:
    return HEADER.format(stack=lock.stack) + yaml.safe_dump(lock.model_dump(exclude_none=True), sort_keys=False, width=120)


def write(file: Path, lock: LockFile) -> bool:
    """Write atomically (beside it, then renamed), so a failed run leaves the earlier lock whole; a lock equal
    to the file's text is not rewritten. Returns whether the file changed. Readable like any file the user
    writes (the umask's mode, not mkstemp's 0600)."""
    content = text(lock)
    if file.exists() and file.read_text() == content:
        return False
    handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(content)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def registry_models(cfg: config.StackConfig) -> dict[str, config.ModelConfig]:
    return {name: model for name, model in sorted(cfg.models.items()) if model.source.registry is not None}


def load(cfg: config.StackConfig, project_dir: Path | None = None) -> LockFile | None:
    """The lock a stack serves (lock_stack(cfg)'s), read from `project_dir` (default: the Pulumi project around
    the working directory, as the engine runs the program) and checked to be that stack's, resolved against
    its registry; None for a stack without registry models, which reads nothing.

    Raises config.ConfigError naming the key for a missing or unreadable lock file, or one written for another
    stack or registry."""
    wanted = registry_models(cfg)
    if not wanted:
        return None
    owner = lock_stack(cfg)
    command = _command(owner)
    try:
        directory = project_dir or stack_files.find_project_dir()
    except stack_files.StackFileError as err:
        raise config.ConfigError([("models", f"registry models need their lock file: {err}")]) from None
    file = path(directory, owner)
    if not file.exists():
        fix = f"no lock file {file.name}: run `{command}` where the registry is reachable, and commit it"
        raise config.ConfigError([(f"models.{name}.source.registry", fix) for name in wanted])
    try:
        lock = read(file)
    except LockFileError as err:
        raise config.ConfigError([(file.name, f"{str(err).removeprefix(file.name + ': ')}: run `{command}`")]) from None
    problems = []
    if lock.stack != owner:
        problems.append((f"{file.name}: stack", f"written for stack '{lock.stack}', not '{owner}': run `{command}`"))
    if cfg.modelRegistry is not None and lock.trackingUri != registry_id(cfg):
        problems.append(("modelRegistry", f"{file.name} was resolved against {lock.trackingUri}, not {registry_id(cfg)}: run `{command}`"))
    if problems:
        raise config.ConfigError(problems)
    return lock


def _command(owner: str) -> str:
    return f"python -m infra models lock --stack {owner}"


def resolve(cfg: config.StackConfig, project_dir: Path | None = None, lock: LockFile | None = None) -> config.StackConfig:
    """The stack config with each registry model's `source.s3Prefix` set to its locked version's store prefix,
    from `lock` (default: load(cfg, project_dir)). A stack without registry models reads nothing.

    Raises config.ConfigError naming the key for what load refuses, a missing entry, an entry whose
    fingerprint is not its files', or one for another registered model or alias than the config names."""
    wanted = registry_models(cfg)
    if not wanted:
        return cfg
    lock = lock or load(cfg, project_dir)
    lock_name = file_name(lock_stack(cfg))
    command = _command(lock_stack(cfg))
    problems = []
    models = dict(cfg.models)
    for name, model in wanted.items():
        ref = model.source.registry
        entry = lock.models.get(name)
        if entry is None:
            problems.append((f"models.{name}.source.registry", f"no entry in {lock_name}: run `{command}` and commit it"))
        elif fingerprint(entry.artifact_files) != entry.fingerprint:
            problems.append((f"models.{name}.source.registry", f"{lock_name}: the fingerprint is not its files': run `{command}`"))
        elif (entry.registeredModel, entry.alias) != (ref.model, ref.alias):
            problems.append(
                (
                    f"models.{name}.source.registry",
                    f"{lock_name} holds {entry.registeredModel}@{entry.alias}, the config names {ref.model}@{ref.alias}: run `{command}`",
                )
            )
        else:
            # The lock knows the version's size: it sizes the pod's storage when the config does not.
            size = model.source.sizeGiB or max(0.1, round(sum(f.size for f in entry.files) / 2**30, 1))
            source = model.source.model_copy(update={"s3Prefix": entry.prefix, "sizeGiB": size})
            models[name] = model.model_copy(update={"source": source})
    if problems:
        raise config.ConfigError(problems)
    return cfg.model_copy(update={"models": models})
