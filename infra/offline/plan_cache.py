"""An on-disk cache of offline plans, opt-in through $ML_PLATFORM_PLAN_CACHE (a directory): a plan of the
platform's own program is stored under a key of everything it is made from, and a later run with the same key
(in any process, such as a test suite's parallel workers, or a CI job's second command) reads it back instead
of running the program again.

The key: the stack and project names, the stack's config as the engine would pass it (values, secret keys, and
what the reader noticed: notes, placeholders), today's date (the program's support-window warning reads it), and
a fingerprint of the code: every .py, .yaml and .json under the installed infra/, components/ and policy/
folders, and the name and version of every installed distribution (the SDKs, botocore's data). Plans made with a
custom program or a given EC2 estate are never cached. What the key cannot see is code changed at run time (a
test that monkeypatches the program): the test suite unsets the variable for any test that patches
(tests/conftest.py), and empties the cache when a run starts.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

ENVIRONMENT = "ML_PLATFORM_PLAN_CACHE"
PACKAGE_ROOTS = ("infra", "components", "policy")


def directory() -> Path | None:
    """The cache directory, or None when caching is off."""
    value = os.environ.get(ENVIRONMENT)
    return Path(value) if value else None


@functools.cache
def code_fingerprint() -> str:
    """A digest of the platform's own source and data files, as installed, and of every installed
    distribution's name and version."""
    import importlib.metadata

    import ml_platform.components
    import ml_platform.infra
    import ml_platform.policy

    digest = hashlib.sha256()
    for name, version in sorted((d.metadata["Name"] or "", d.version) for d in importlib.metadata.distributions()):
        digest.update(f"{name}=={version}\n".encode())
    for package in (ml_platform.infra, ml_platform.components, ml_platform.policy):
        root = Path(package.__file__).parent
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml", ".json") and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def key(stack: str, project: str, raw: Any) -> str:
    """The cache key of one plan (`raw`: a RawStackConfig)."""
    material = {
        "stack": stack,
        "project": project,
        "values": raw.values,
        "secret_keys": sorted(raw.secret_keys),
        "notes": list(raw.notes),
        "placeholders": [p.line() for p in raw.placeholders],
        "date": datetime.date.today().isoformat(),
        "code": code_fingerprint(),
        # The program reads the stack's model lock file too (infra/model_registry/lockfile.py).
        "locks": lock_files(raw),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def lock_files(raw: Any) -> dict[str, str]:
    """The model lock files (name -> text) of the project the program will run in: the stack file's directory,
    else the working directory's project."""
    directory = raw.directory
    if directory is None:
        from ml_platform.infra.offline.stack_files import StackFileError, find_project_dir

        try:
            directory = find_project_dir()
        except StackFileError:
            return {}
    return {path.name: path.read_text() for path in sorted(Path(directory).glob("models.*.lock.yaml"))}


def load(cache: Path, name: str) -> dict[str, Any] | None:
    path = cache / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def store(cache: Path, name: str, document: dict[str, Any]) -> None:
    """Write atomically (a temporary file renamed into place), so a parallel reader sees all or nothing; a cache
    that cannot be written is skipped, never an error."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        temporary = cache / f".{name}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(document))
        os.replace(temporary, cache / f"{name}.json")
    except OSError:
        return


def clear(cache: Path) -> None:
    """Remove every entry (a test run starts from an empty cache)."""
    for path in cache.glob("*.json") if cache.is_dir() else ():
        path.unlink(missing_ok=True)
