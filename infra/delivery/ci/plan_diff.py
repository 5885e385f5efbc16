"""`python -m infra ci plan-diff`: the offline diff of every stack between a change's base and head, as one
comment body and a JSON summary, with the replacement gate.

The plans are those `make plans` writes into `build/plan/<stack>/` of each checkout; each stack's pair is
compared by infra/delivery/diff.py (the same diff and cost change `python -m infra diff` prints). The gate
refuses (exit 3) a change that replaces or deletes a stateful resource, or makes an update the API server
refuses, unless the change carries the override label (`--approved-replacement`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml_platform.infra.delivery import diff
from ml_platform.infra.delivery.ci import EXIT_DONE, EXIT_REFUSED, CiInputError

MARKER = "ml-platform-plan-diff"
"""The marker of the plan-diff comment: its body starts with `<!-- ml-platform-plan-diff -->`."""
OVERRIDE_LABEL = "approve-stateful-replacement"
"""The label (on every host) that approves a stateful replacement; adapters pass `--approved-replacement` when it is on."""
DEFAULT_STACKS = ("dev", "staging", "prod")
_STACK = re.compile(r"^[a-z][a-z0-9-]{0,29}\Z")


@dataclass(frozen=True)
class StackDiff:
    """One stack's base and head plans (as diff.load reads them) and their changes (diff.compare)."""

    stack: str
    base: dict
    head: dict
    changes: list[diff.Change]


def parse_stacks(text: str) -> list[str]:
    """`dev,staging,prod` -> ["dev", "staging", "prod"] (spaces ignored, order kept, duplicates dropped).
    Raises CiInputError naming --stacks for an empty list or a name that is not a stack name."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    bad = [name for name in names if not _STACK.match(name)]
    if not names or bad:
        raise CiInputError(
            f"--stacks {text!r}: give stack names separated by commas, e.g. dev,staging,prod "
            f"(lowercase letters, digits and '-'){'; not a stack name: ' + ', '.join(bad) if bad else ''}"
        )
    return names


def load(base_dir: Path, head_dir: Path, stacks: list[str]) -> list[StackDiff]:
    """Read `<base_dir>/<stack>/plan.json` and `<head_dir>/<stack>/plan.json` of each stack and compare them.
    Raises CiInputError naming --base or --head when a folder or a plan is missing or unreadable, or when a
    plan is another stack's."""
    for flag, folder in (("--base", base_dir), ("--head", head_dir)):
        if not folder.is_dir():
            raise CiInputError(f"{flag} {folder}: not a directory; give the build/plan folder `make plans` wrote in that checkout")
    diffs = []
    for stack in stacks:
        plans = {}
        for flag, folder in (("--base", base_dir), ("--head", head_dir)):
            if not (folder / stack).is_dir():
                raise CiInputError(f"{flag} {folder}: no plan of stack '{stack}' (no folder {stack}/ there); `make plans` writes them")
            try:
                plans[flag] = diff.load(folder / stack)
            except diff.PlanError as err:
                raise CiInputError(f"{flag} {folder}: stack '{stack}': {err}") from None
            if plans[flag]["stack"] != stack:
                raise CiInputError(f"{flag} {folder}: {stack}/plan.json is a plan of stack '{plans[flag]['stack']}', not '{stack}'")
        diffs.append(StackDiff(stack, plans["--base"], plans["--head"], diff.compare(plans["--base"], plans["--head"])))
    return diffs


def _entry(change: diff.Change, reasons: list[str]) -> dict:
    return {"urn": change.resource["urn"], "type": change.resource["type"], "name": change.resource["name"], "reasons": reasons}


def summary(diffs: list[StackDiff], approved: bool) -> dict:
    """The JSON summary: `{"stacks": {stack: {"added": n, "changed": n, "removed": n, "replacements": [entry],
    "refused": [entry]}}, "gate": "pass" | "approved" | "refused"}`, each entry `{"urn", "type", "name", "reasons"}`.
    `replacements`: stateful resources replaced or deleted; `refused`: updates the API server refuses in place.
    The gate passes when both are empty everywhere, else it is `approved` with `approved`, else `refused`."""
    stacks = {}
    for item in diffs:
        counts = {action: sum(1 for c in item.changes if c.action == action) for action in ("added", "changed", "removed")}
        stacks[item.stack] = {
            **counts,
            "replacements": [_entry(c, c.replaces) for c in diff.stateful_replacements(item.changes)],
            "refused": [_entry(c, c.refused) for c in diff.refused_updates(item.changes)],
        }
    blocked = any(entry["replacements"] or entry["refused"] for entry in stacks.values())
    return {"stacks": stacks, "gate": ("approved" if approved else "refused") if blocked else "pass"}


def markdown(diffs: list[StackDiff], verdict: dict) -> str:
    """The comment body: the marker line, each stack's markdown diff with its cost change (diff.render), and the
    gate's verdict when something is replaced."""
    parts = [f"<!-- {MARKER} -->"]
    parts += [diff.render(item.base, item.head, item.changes, markdown=True) + "\n" for item in diffs]
    if verdict["gate"] == "refused":
        parts.append(
            f"**Replacement gate: refused.** A stateful resource would be replaced or deleted, or an update refused (see above). "
            f"If that is intended, label the change `{OVERRIDE_LABEL}`."
        )
    elif verdict["gate"] == "approved":
        parts.append(f"**Replacement gate: approved** by the label `{OVERRIDE_LABEL}`.")
    return "\n".join(parts) + "\n"


def _write(flag: str, path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise CiInputError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None


def run(
    base_dir: Path,
    head_dir: Path,
    stacks: list[str],
    approved: bool = False,
    markdown_path: Path | None = None,
    json_path: Path | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Diff every stack, write the markdown body (`markdown_path`) and the JSON summary (`json_path`) when given,
    say one line per stack and the gate's verdict. Returns 0 (gate `pass` or `approved`) or 3 (`refused`); raises
    CiInputError (exit 2) for unreadable plans or an unwritable output, before anything is written."""
    for flag, path in (("--markdown", markdown_path), ("--json", json_path)):
        if path is not None and not path.parent.is_dir():
            raise CiInputError(f"{flag} {path}: the folder {path.parent} does not exist")
    diffs = load(base_dir, head_dir, stacks)
    verdict = summary(diffs, approved)
    if markdown_path is not None:
        _write("--markdown", markdown_path, markdown(diffs, verdict))
    if json_path is not None:
        _write("--json", json_path, json.dumps(verdict, indent=2, sort_keys=True) + "\n")
    for stack, entry in verdict["stacks"].items():
        say(
            f"{stack}: {entry['added']} to add, {entry['changed']} to change, {entry['removed']} to remove; "
            f"{len(entry['replacements'])} stateful replacement(s), {len(entry['refused'])} refused update(s)"
        )
    if verdict["gate"] == "refused":
        say(
            "replacement gate: refused: this change replaces or deletes a stateful resource, or makes an update the API "
            f"refuses (see the diff); if that is intended, label the change {OVERRIDE_LABEL} (--approved-replacement)"
        )
        return EXIT_REFUSED
    say(f"replacement gate: {verdict['gate']}")
    return EXIT_DONE
