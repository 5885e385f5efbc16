"""`python -m infra reproduce --from staging --as NAME`: a throwaway copy of a stack, to chase a problem
without touching it. Writes Pulumi.NAME.yaml from the source stack's file with every version taken from the
source's `versions` output (Kubernetes, add-ons, AMI release, charts, the exact images it runs), made
ephemeral: nothing protected, registries and model store deletable with their contents."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml_platform.infra import config as stack_config
from ml_platform.infra import program
from ml_platform.infra.config import PROJECT
from ml_platform.infra.model_registry import lockfile
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files

_STACK_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,28}[a-z0-9])?\Z")


class ReproduceError(Exception):
    """The copy cannot be written (bad name, existing file, unreadable outputs)."""


class _Eks(BaseModel):
    model_config = ConfigDict(extra="ignore")
    kubernetes: str = Field(pattern=r"^1\.\d+$")
    addons: dict[str, str]
    ami_release: str = Field(min_length=1)


class _Chart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: str = Field(min_length=1)


class _Images(BaseModel):
    model_config = ConfigDict(extra="ignore")
    charts: dict[str, str] = {}
    loader: str | None = None
    models: dict[str, str] = {}


class _Versions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    eks: _Eks
    charts: dict[str, _Chart]
    images: _Images = _Images()


class SourceOutputs(BaseModel):
    """The outputs `reproduce` reads (`pulumi stack output --json`), as the README's "Reproducing staging"
    documents them; other outputs are ignored."""

    model_config = ConfigDict(extra="ignore")
    environment: str
    clusterName: str
    versions: _Versions


def check_outputs(outputs: Any, source_stack: str, source: dict[str, Any]) -> SourceOutputs:
    """`outputs` against the documented shape, and as the outputs of `source_stack`: its environment the one
    its stack file sets, its cluster the one this program names for it. Raises ReproduceError naming every
    missing or malformed field (`versions.eks.kubernetes: ...`) or the mismatch."""
    if not isinstance(outputs, dict):
        raise ReproduceError("the outputs must be a JSON object (pulumi stack output --json)")
    try:
        parsed = SourceOutputs.model_validate(outputs)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ReproduceError(
            f"the outputs are not those of a stack of this project ({problems}); see README, Reproducing staging"
        ) from None
    expected_env = (source.get("config") or {}).get(f"{PROJECT}:environment")
    expected_cluster = program.cluster_name(source_stack)
    if parsed.clusterName != expected_cluster or parsed.environment != expected_env:
        raise ReproduceError(
            f"the outputs are of cluster '{parsed.clusterName}' ({parsed.environment}), not of stack '{source_stack}' "
            f"(cluster '{expected_cluster}', {expected_env}); pass the outputs of --from {source_stack}"
        )
    return parsed


def _image(reference: str) -> dict[str, str]:
    """`repo@sha256:...` or `repo:tag` as an image config entry."""
    if "@" in reference:
        repository, digest = reference.split("@", 1)
        return {"repository": repository, "digest": digest}
    repository, _, tag = reference.rpartition(":")
    return {"repository": repository, "tag": tag}


def reproduction(source: dict[str, Any], outputs: dict[str, Any], source_stack: str) -> dict[str, Any]:
    """The copy's stack file: the source's config with its pinned versions and ephemeral overrides. Raises
    ReproduceError when the outputs are not `source_stack`'s (check_outputs)."""
    pinned = check_outputs(outputs, source_stack, source).versions.model_dump()
    config = dict(source.get("config") or {})
    key = lambda name: f"{PROJECT}:{name}"  # noqa: E731

    config[key("ephemeral")] = True
    config[key("protectStatefulResources")] = False
    cluster = dict(config.get(key("cluster")) or {})
    cluster["version"] = pinned["eks"]["kubernetes"]
    config[key("cluster")] = cluster
    config[key("pins")] = {
        "addons": dict(pinned["eks"]["addons"]),
        "amiRelease": pinned["eks"]["ami_release"],
        "charts": {name: chart["version"] for name, chart in sorted(pinned["charts"].items())},
    }
    images = pinned.get("images", {})
    # The chart images' digests, where the source pinned them (a copy must run the same bytes).
    digests = {name: ref.split("@", 1)[1] for name, ref in sorted(images.get("charts", {}).items()) if "@sha256:" in ref}
    if digests:
        config[key("pins")]["images"] = digests
    models = {name: dict(model) for name, model in (config.get(key("models")) or {}).items()}
    unknown = sorted(set(images.get("models") or {}) - set(models))
    if unknown:
        raise ReproduceError(
            f"versions.images.models: {', '.join(unknown)} not in Pulumi.{source_stack}.yaml's models; the outputs are of "
            "another revision of the stack file (check out the commit that was deployed)"
        )
    for name, model in models.items():
        if name in images.get("models", {}):
            model["image"] = _image(images["models"][name])
    if models:
        config[key("models")] = models
    if images.get("loader"):
        config[key("serving")] = {**(config.get(key("serving")) or {}), "loaderImage": _image(images["loader"])}
    registry = config.get(key("modelRegistry"))
    mode = registry.get("mode") if isinstance(registry, dict) else None
    if mode in ("sagemaker", "selfHosted") and isinstance(registry.get(mode), dict):
        # The copy serves its source's registry (the versions its lock names live there) and makes no server
        # (for selfHosted, no database either): models sync copies the versions' files from the source's store.
        settings = registry[mode]
        config[key("modelRegistry")] = {**registry, mode: {**settings, "serverOfStack": settings.get("serverOfStack") or source_stack}}
    return {"config": without_alert_receivers(config)}


def without_alert_receivers(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stack's config without its alert receivers and routes: their secrets are encrypted for the
    source stack alone, and a copy alerts nobody unless told to."""
    key = f"{PROJECT}:monitoring"
    if key not in config:
        return config
    monitoring = {name: value for name, value in (config[key] or {}).items() if name not in ("receivers", "routes", "defaultReceiver")}
    return {**config, key: monitoring}


def copied_lock(project_dir: Path, source_stack: str, name: str, source_store: str | None = None) -> lockfile.LockFile | None:
    """The source stack's model lock for the copy: the same versions, files and fingerprints (None when the
    source has no lock). `source_store`: the source's model store bucket, whose copy of each version becomes a
    mirror `models sync` falls back to when the registry's files are gone. Raises ReproduceError for an
    unreadable lock."""
    source = lockfile.path(project_dir, source_stack)
    if not source.exists():
        return None
    try:
        lock = lockfile.read(source)
    except lockfile.LockFileError as err:
        raise ReproduceError(str(err)) from None
    models = {}
    for model, entry in lock.models.items():
        mirrors = [*entry.mirrors, f"s3://{source_store}/{entry.prefix}"] if source_store else entry.mirrors
        models[model] = entry.model_copy(update={"mirrors": mirrors})
    return lock.model_copy(update={"stack": name, "models": models})


def check_plans(project_dir: Path, name: str, document: dict[str, Any], lock: lockfile.LockFile | None = None) -> None:
    """Plan the copy offline in a scratch directory before it is written (with its model lock, if any):
    versions the program does not pin (`1.99`, a chart version without its IAM policy), malformed image
    references, a registry model the lock lacks and the like are refused here, not at the user's next `plan`.
    Raises ReproduceError with the plan's own message."""
    with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
        shutil.copy(project_dir / "Pulumi.yaml", Path(scratch) / "Pulumi.yaml")
        (Path(scratch) / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=True))
        if lock is not None:
            lockfile.write(lockfile.path(Path(scratch), name), lock)
        try:
            offline_plan.run(name, stack_files.read_stack(name, Path(scratch)))
        except (pulumi.RunError, stack_config.ConfigError, stack_files.StackFileError) as err:
            raise ReproduceError(
                f"the copy would not plan, so nothing was written; the outputs hold versions or images this program cannot run:\n{err}"
            ) from None


# Preview stacks' names (preview.PREVIEW_STACK, which imports this module; a test keeps the two equal).
PREVIEW_NAME = re.compile(r"^pr-([1-9][0-9]*)\Z")


def check_name(name: str) -> None:
    """ReproduceError unless `name` can name a copy (1-30 lowercase letters, digits or '-', starting with a letter)."""
    if not _STACK_NAME.match(name):
        raise ReproduceError(
            f"'{name}' must be 1-30 lowercase letters, digits or '-', starting with a letter and not ending in '-' "
            "(it names the cluster, the bucket and the registry server)"
        )
    if PREVIEW_NAME.match(name):
        raise ReproduceError(
            f"'{name}' is a preview stack's name (pr-<number>): the preview sweep and closing that pull request would "
            "remove the copy, and a live preview of that name would be taken over; name it otherwise, e.g. repro-<date>"
        )


def write(project_dir: Path, source_stack: str, name: str, outputs: dict[str, Any]) -> Path:
    check_name(name)
    source_path = project_dir / f"Pulumi.{source_stack}.yaml"
    if not source_path.exists():
        raise ReproduceError(f"no stack file {source_path.name}")
    target = project_dir / f"Pulumi.{name}.yaml"
    if target.exists():
        raise ReproduceError(f"{target.name} exists; choose another name or remove it first")
    try:
        source = stack_files.load_yaml(source_path)
    except stack_files.StackFileError as err:
        raise ReproduceError(str(err)) from None
    document = reproduction(source, outputs, source_stack)
    store = outputs.get("modelStoreBucket") if isinstance(outputs, dict) else None
    lock = copied_lock(project_dir, source_stack, name, store if isinstance(store, str) else None)
    check_plans(project_dir, name, document, lock)
    header = (
        f"# A reproduction of '{source_stack}' (python -m infra reproduce): its versions, images and shape, ephemeral.\n"
        f"# Alert receivers are not copied (their secrets belong to '{source_stack}').\n"
        f"# Deploy: pulumi stack init {name} && pulumi up --stack {name}; remove: python -m infra cleanup --stack {name} --apply,\n"
        f"# pulumi destroy --stack {name}, pulumi stack rm {name}.\n"
    )
    if lock is not None:
        # The source's registry versions, exactly; `models sync --stack <name>` copies them into the copy's store.
        lockfile.write(lockfile.path(project_dir, name), lock)
    target.write_text(header + yaml.safe_dump(document, sort_keys=True))
    return target
