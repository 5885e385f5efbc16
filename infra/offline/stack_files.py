"""Read a stack's configuration from Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI merges them.

The CLI's rules (pkg/workspace/config.go, mergeConfig): a key set in the stack file replaces the project's
value or default for that key whole (objects are not deep-merged); project keys of this project take
`default:`, keys of other namespaces (such as `aws:region`) take `value:`. Values reach the program as
strings, objects as JSON text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError, SafeConstructor
from ruamel.yaml.error import YAMLError

from ml_platform.infra import placeholders
from ml_platform.infra.config import PROJECT
from ml_platform.infra.offline.secrets import masked


class StackFileError(Exception):
    """A stack or project file that cannot be read."""


def find_project_dir(start: Path | None = None) -> Path:
    """The directory of the Pulumi.yaml the Pulumi CLI would use from `start` (default: the working directory):
    `start` itself or its nearest parent holding one (the CLI's workspace.DetectProjectPathFrom). Works the same
    in a checkout and for an installed copy, which has no repository to default to.

    Raises StackFileError when there is none, or when the nearest is another Pulumi project's (an example's
    or the team's own program): this platform's stack files use its project's config namespace."""
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            project_name(directory)
            return directory
    raise StackFileError(f"no Pulumi.yaml in {start} or a parent; run from the platform's project directory or pass --project-dir")


def project_name(root: Path, expected: str | None = PROJECT) -> str:
    """The `name:` of root/Pulumi.yaml, which must be `expected` (default: this platform's, PROJECT; None: any):
    its stack files' keys are read in that namespace. Raises StackFileError otherwise."""
    name = load_yaml(root / "Pulumi.yaml").get("name")
    if not isinstance(name, str) or not name:
        raise StackFileError(f"{root / 'Pulumi.yaml'} has no project name ('name:')")
    if expected is not None and name != expected:
        raise StackFileError(
            f"{root / 'Pulumi.yaml'} is the Pulumi project {name!r}, not {PROJECT!r}; run from the platform's project directory "
            "or pass --project-dir"
        )
    return name


@dataclass(frozen=True)
class RawStackConfig:
    values: dict[str, str]
    secret_keys: list[str]
    notes: tuple[str, ...] = ()
    """What the offline plan cannot see in the stack file (for its warnings)."""
    placeholders: tuple[placeholders.Placeholder, ...] = ()
    """The repository's example values still in the stack file (infra/placeholders.py), seen before secrets are masked."""
    directory: Path | None = None
    """The project directory the stack file was read from: the program runs there, as under the engine, and
    reads the stack's model lock file there (infra/model_registry/lockfile.py)."""


class _TimestampsAsText(SafeConstructor):
    """Unquoted dates and times stay the text they are (`expires: 2027-01-31`), as the Pulumi CLI's YAML reader
    (go-yaml v3 into an untyped value) hands them to the program, instead of date objects JSON cannot carry."""


_TimestampsAsText.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML file as data, strictly: a key given twice in one mapping is an error naming both lines (a second
    `ml-platform:models:` block would otherwise silently replace the first). ruamel.yaml does this check, so
    the project does not parse YAML itself. Timestamps stay text (_TimestampsAsText)."""
    reader = YAML(typ="safe", pure=True)
    reader.Constructor = _TimestampsAsText
    try:
        loaded = reader.load(path.read_text())
    except FileNotFoundError:
        raise StackFileError(f"{path.name} not found in {path.parent}") from None
    except DuplicateKeyError as err:
        first = err.context_mark.line + 1 if err.context_mark else "?"
        again = err.problem_mark.line + 1 if err.problem_mark else "?"
        key = str(err.problem).split('"')[1] if '"' in str(err.problem) else "a key"
        raise StackFileError(
            f"{path.name}: '{key}' is set twice in one mapping (lines {first} and {again}); YAML keeps only the last, "
            "so merge them into one"
        ) from None
    except YAMLError as err:
        raise StackFileError(f"{path.name} is not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise StackFileError(f"{path.name} must be a YAML mapping")
    return loaded


def _full_key(key: str, project: str = PROJECT) -> str:
    return key if ":" in key else f"{project}:{key}"


def _to_wire(value: Any) -> str:
    """How the CLI hands a config value to the program: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def mask_secure(value: Any, path: str) -> tuple[Any, list[str]]:
    """(the value with every encrypted (`secure:`) value at any depth as "[secret:<digest>]", the paths of those
    values below `path`). They need the stack's own secrets provider: offline they are masked (a keyed digest of
    the ciphertext, so a changed secret shows in a diff without its value), and the key holding one is a secret
    key, as the engine marks it."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            if not isinstance(value["secure"], str) or not value["secure"].startswith("v1:") or len(value["secure"]) < 4:
                # What `pulumi config set --secret` writes is a "v1:<base64>" ciphertext; anything else cannot decrypt.
                raise StackFileError(
                    f"{path}: 'secure:' holds {value['secure']!r}, not a ciphertext; set it with `pulumi config set --secret`"
                )
            return masked(value["secure"]), [path]
        inner = {key: mask_secure(item, f"{path}.{key}") for key, item in value.items()}
        return {key: item for key, (item, _) in inner.items()}, [found for _, paths in inner.values() for found in paths]
    if isinstance(value, list):
        masked_items = [mask_secure(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return [item for item, _ in masked_items], [found for _, paths in masked_items for found in paths]
    return value, []


def project_defaults(root: Path | None = None, project: str = PROJECT) -> dict[str, Any]:
    """Project-level config values and defaults declared in Pulumi.yaml (root: default find_project_dir();
    project: the name it must have, whose namespace its keys take)."""
    root = root or find_project_dir()
    project_name(root, project)
    declared = load_yaml(root / "Pulumi.yaml").get("config") or {}
    values: dict[str, Any] = {}
    for key, spec in declared.items():
        full = _full_key(key, project)
        if isinstance(spec, dict) and ("default" in spec or "value" in spec):
            values[full] = spec["default"] if "default" in spec else spec["value"]
        elif not isinstance(spec, dict):
            values[full] = spec
    return values


# The template of preview stacks (`python -m infra preview-stack create`), not a stack of its own.
PREVIEW_TEMPLATE = "Pulumi.pr.yaml"


def stack_names(root: Path | None = None) -> list[str]:
    root = root or find_project_dir()
    return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in root.glob("Pulumi.*.yaml") if path.name != PREVIEW_TEMPLATE)


def read_stack(stack: str, root: Path | None = None, project: str = PROJECT) -> RawStackConfig:
    """The merged config of one stack, as the engine would pass it to the program (root: the project directory,
    default find_project_dir(); project: its Pulumi.yaml's name, this platform's unless planning another program).
    Raises StackFileError naming the file and key at fault."""
    root = root or find_project_dir()
    path = root / f"Pulumi.{stack}.yaml"
    if path.name == PREVIEW_TEMPLATE:
        raise StackFileError(f"{path.name} is the template of preview stacks; use `python -m infra preview-stack create --pr N`")
    if not path.exists():
        raise StackFileError(f"no stack file {path.name}; stacks here: {', '.join(stack_names(root))}")
    merged = project_defaults(root, project)
    secret_keys = []
    document = load_yaml(path)
    notes = []
    if document.get("environment"):
        # Pulumi ESC environments are resolved by the Pulumi Cloud at run time: their values never reach an offline plan.
        imported = document["environment"]
        names = ", ".join(imported) if isinstance(imported, list) else str(imported)
        notes.append(f"{path.name} imports the ESC environment(s) {names}, which are not visible offline: this plan lacks their values")
    config = document.get("config")
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: 'config' must be a mapping of keys to values, not a {type(config).__name__}")
    given = {_full_key(key, project): value for key, value in config.items()}
    examples = tuple(placeholders.find(given))
    for full, value in given.items():
        value, secure = mask_secure(value, full)
        if secure:
            secret_keys.append(full)
        merged[full] = value
    values = {key: _to_wire(value) for key, value in sorted(merged.items())}
    return RawStackConfig(values, sorted(secret_keys), tuple(notes), examples, root.resolve())
