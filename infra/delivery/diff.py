"""`python -m infra diff`: what a change does to a stack, from two offline plans (base and head).

Resources added, removed and changed (with the changed inputs), grouped by component; replacements called
out loudly: a stateful resource whose URN disappears without an alias, or whose change touches a property
that forces replacement (the table in infra/delivery/replacements.py); and the change in estimated cost.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.delivery import cost, replacements
from infra.offline.plan import component_of

MAX_ROWS = 60  # per section in markdown: a pull-request comment must stay readable


class PlanError(Exception):
    """A base or head plan that cannot be read."""


def load(path: str | Path) -> dict:
    """plan.json from a plan directory or the file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / "plan.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanError(f"no plan at {path}: run `python -m infra plan --stack <stack> --out <dir>` first") from None
    except json.JSONDecodeError as err:
        raise PlanError(f"{path} is not a plan.json ({err})") from None


@dataclass
class Change:
    action: str  # added, removed, changed
    resource: dict
    component: str
    properties: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    """Why this is a replacement (empty when it is not)."""

    @property
    def label(self) -> str:
        return f"{self.resource['type']} {self.resource['name']}"


def _paths(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten inputs to `a.b[0].c` -> leaf value."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_paths(item, f"{prefix}.{key}" if prefix else key))
        return flat or {prefix: {}}
    if isinstance(value, list):
        flat = {}
        for index, item in enumerate(value):
            flat.update(_paths(item, f"{prefix}[{index}]"))
        return flat or {prefix: []}
    return {prefix: value}


def changed_properties(before: dict, after: dict) -> list[str]:
    old, new = _paths(before), _paths(after)
    return sorted(path for path in set(old) | set(new) if old.get(path, "<absent>") != new.get(path, "<absent>"))


def compare(base: dict, head: dict) -> list[Change]:
    base_by_urn = {r["urn"]: r for r in base["resources"]}
    head_by_urn = {r["urn"]: r for r in head["resources"]}
    aliased = {alias: r["urn"] for r in head["resources"] for alias in r.get("aliases", [])}
    changes = []
    for urn, after in head_by_urn.items():
        before = base_by_urn.get(urn) or base_by_urn.get(
            next((a for a, target in aliased.items() if target == urn and a in base_by_urn), "")
        )
        if before is None:
            changes.append(Change("added", after, component_of(after, head_by_urn)))
            continue
        properties = changed_properties(before["inputs"], after["inputs"])
        options = [o for o in ("protect", "retainOnDelete", "ignoreChanges") if before.get(o) != after.get(o)]
        if properties or options:
            reasons = [f"{p} forces replacement" for p in properties if replacements.forces_replacement(after["type"], p)]
            changes.append(Change("changed", after, component_of(after, head_by_urn), properties + [f"({o})" for o in options], reasons))
    for urn, before in base_by_urn.items():
        if urn not in head_by_urn and urn not in aliased:
            reason = ["its URN is gone: a rename without an alias in infra/aliases.py deletes and recreates it"]
            stateful = before["type"] in replacements.STATEFUL_TYPES
            changes.append(Change("removed", before, component_of(before, base_by_urn), replaces=reason if stateful else []))
    return sorted(changes, key=lambda c: (c.component, c.action, c.resource["urn"]))


def stateful_replacements(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.replaces and c.resource["type"] in replacements.STATEFUL_TYPES]


def _cost_line(base: dict, head: dict, markdown: bool) -> str:
    before, after = cost.totals(cost.estimate(base["resources"])), cost.totals(cost.estimate(head["resources"]))
    floor, ceiling = after[0] - before[0], after[1] - before[1]
    text = f"estimated monthly cost: idle floor ${after[0]:,.0f} ({floor:+,.0f}), ceiling ${after[1]:,.0f} ({ceiling:+,.0f})"
    return f"**{text}**" if markdown else text


def render(base: dict, head: dict, changes: list[Change], markdown: bool = False) -> str:
    counts = defaultdict(int)
    for change in changes:
        counts[change.action] += 1
    risky = stateful_replacements(changes)
    stack = head.get("stack", "?")
    headline = f"{counts['added']} to add, {counts['changed']} to change, {counts['removed']} to remove"
    lines = []
    if markdown:
        lines.append(f"### Plan diff of `{stack}`: {headline}")
    else:
        lines.append(f"plan diff of '{stack}': {headline}")
    lines.append(_cost_line(base, head, markdown))
    if risky:
        warning = f"STATEFUL REPLACEMENT: {len(risky)} stateful resource(s) would be replaced or deleted"
        lines.append(f"\n> [!CAUTION]\n> **{warning}**" if markdown else f"\n!!! {warning}")
        for change in risky:
            lines.append(f"{'> - ' if markdown else '  - '}{change.label}: {'; '.join(change.replaces)}")
    other = [c for c in changes if c.replaces and c not in risky]
    if other:
        lines.append(f"\n{len(other)} other replacement(s): " + ", ".join(c.label for c in other[:10]))

    by_component: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        by_component[change.component].append(change)
    if markdown:
        lines.append("\n<details><summary>Changes by component</summary>\n")
    rows = 0
    for component, items in sorted(by_component.items()):
        lines.append(f"\n**{component}**" if markdown else f"\n{component}")
        for change in items:
            rows += 1
            if markdown and rows > MAX_ROWS:
                continue
            symbol = {"added": "+", "removed": "-", "changed": "~"}[change.action]
            detail = f" ({', '.join(change.properties[:6])}{', ...' if len(change.properties) > 6 else ''})" if change.properties else ""
            lines.append(f"{'- ' if markdown else '  '}{symbol} {change.label}{detail}")
    if markdown and rows > MAX_ROWS:
        lines.append(f"\n... and {rows - MAX_ROWS} more (run `python -m infra diff` locally for all)")
    if markdown:
        lines.append("\n</details>")
    if not changes:
        lines.append("no changes")
    return "\n".join(lines)
