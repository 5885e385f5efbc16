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

from ml_platform.infra.delivery import cost, prices, replacements
from ml_platform.infra.offline.plan import component_of

MAX_ROWS = 60  # per section in markdown: a pull-request comment must stay readable
MAX_VALUE = 60  # characters of an old or new value shown
MAX_PROPERTIES = 6  # changed inputs shown per resource
MAX_CALLED_OUT = 25  # stateful replacements or refused updates listed above the details


class PlanError(Exception):
    """A base or head plan that cannot be read."""


# Keys a resource of a plan carries, with what an older plan that lacks them means.
RESOURCE_DEFAULTS = {
    "custom": True,
    "parent": "",
    "provider": "",
    "dependencies": [],
    "propertyDependencies": {},
    "protect": False,
    "retainOnDelete": False,
    "deleteBeforeReplace": False,
    "ignoreChanges": [],
    "replaceOnChanges": [],
    "aliases": [],
}


def load(path: str | Path) -> dict:
    """plan.json from a plan directory or the file itself, checked for the shape `python -m infra plan` writes
    (a plan of an older version of the program gets the defaults of keys it lacks); PlanError otherwise."""
    path = Path(path)
    if path.is_dir():
        path = path / "plan.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"no plan at {path}: run `python -m infra plan --stack <stack> --out <dir>` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PlanError(f"{path} is not a plan.json ({err})") from None
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(document.get("stack"), str) or not isinstance(resources, list):
        raise PlanError(f"{path} is not a plan.json: expected an object with `stack` and `resources`, as `python -m infra plan` writes")
    for index, resource in enumerate(resources):
        missing = [k for k in ("urn", "type", "name", "inputs") if not isinstance(resource, dict) or k not in resource]
        if missing:
            raise PlanError(f"{path}: resources[{index}] lacks {', '.join(missing)}; is this a plan.json of `python -m infra plan`?")
        for key, default in RESOURCE_DEFAULTS.items():
            resource.setdefault(key, default)
    document.setdefault("outputs", {})
    return document


@dataclass
class Change:
    action: str  # added, removed, changed
    resource: dict
    component: str
    properties: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    """Why this is a replacement (empty when it is not)."""
    values: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Changed input path -> (old, new); secrets as their plan digests (`[secret:...]`)."""
    refused: list[str] = field(default_factory=list)
    """Changes the API server refuses to make in place (replacements.API_REFUSES): `pulumi up` would fail."""
    notes: list[str] = field(default_factory=list)
    """What else happens: nodes rolled, a replacement no rule here can rule out."""

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


ABSENT = "<absent>"


def changed_values(before: dict, after: dict) -> dict[str, tuple[Any, Any]]:
    """Every changed input path with its old and new value (ABSENT where there is none)."""
    old, new = _paths(before), _paths(after)
    pairs = {path: (old.get(path, ABSENT), new.get(path, ABSENT)) for path in sorted(set(old) | set(new))}
    return {path: pair for path, pair in pairs.items() if pair[0] != pair[1]}


def changed_properties(before: dict, after: dict) -> list[str]:
    return list(changed_values(before, after))


def shown(value: Any, around: int = 0) -> str:
    """A value as the diff prints it: JSON, at most MAX_VALUE characters, centred on `around` (where it first
    differs from the other side) when it is longer."""
    text = value if value == ABSENT else json.dumps(value, sort_keys=True)
    if len(text) <= MAX_VALUE:
        return text
    start = max(0, min(around - MAX_VALUE // 3, len(text) - MAX_VALUE + 2))
    return ("…" if start else "") + text[start : start + MAX_VALUE - 2] + ("…" if start + MAX_VALUE - 2 < len(text) else "")


def _json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return None


def described(old: Any, new: Any) -> list[tuple[str, str]]:
    """(where, "old → new") lines for one changed input: a JSON document in a string (an IAM policy, a
    dashboard) by the paths that changed inside it; anything else as one value, cut around its first difference."""
    inner_old, inner_new = _json(old), _json(new)
    if inner_old is not None and inner_new is not None:
        return [(f" {path}", f"{shown(a)} → {shown(b)}") for path, (a, b) in changed_values({"": inner_old}, {"": inner_new}).items()]
    first = next((i for i, (a, b) in enumerate(zip(json.dumps(old), json.dumps(new), strict=False)) if a != b), 0)
    return [("", f"{shown(old, first)} → {shown(new, first)}")]


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
        values = changed_values(before["inputs"], after["inputs"])
        properties = list(values)
        options = [o for o in ("protect", "retainOnDelete", "ignoreChanges") if before.get(o) != after.get(o)]
        values |= {f"({o})": (before.get(o), after.get(o)) for o in options}
        if properties or options:
            own = after.get("replaceOnChanges", [])
            reasons = [f"{p} forces replacement" for p in properties if replacements.forces_replacement(after["type"], p, own)]
            refused = [
                f"{p} cannot change in place (the API server refuses the update)"
                for p in properties
                if replacements.refused_update(after["type"], p) and not replacements.forces_replacement(after["type"], p, own)
            ]
            change = Change("changed", after, component_of(after, head_by_urn), properties + [f"({o})" for o in options], reasons, values)
            change.refused = refused
            if reasons and before.get("protect"):
                change.replaces.append("it is protected: `pulumi up` refuses until it is unprotected")
            if not reasons and after["type"] in replacements.ROLLS_NODES and any(p.startswith("spec") for p in properties):
                change.notes.append(replacements.ROLLS_NODES[after["type"]])
            changes.append(change)
    for urn, before in base_by_urn.items():
        if urn not in head_by_urn and urn not in aliased:
            reason = ["deleted: its URN is gone (a rename without an alias in infra/aliases.py does this too)"]
            if before.get("protect"):
                reason.append("it is protected: `pulumi up` refuses until it is unprotected")
            stateful = before["type"] in replacements.STATEFUL_TYPES
            changes.append(Change("removed", before, component_of(before, base_by_urn), replaces=reason if stateful else []))
    changes += propagated(changes, head_by_urn)
    return sorted(changes, key=lambda c: (c.component, c.action, c.resource["urn"]))


def propagated(changes: list[Change], head_by_urn: dict[str, dict]) -> list[Change]:
    """What follows from the changes already found. A replaced (or new) resource's outputs, its ID and ARN, are
    unknown until it exists again, so every input that reads it (the plan's propertyDependencies) changes; where
    that input forces replacement (itself or a property below it), the reader is replaced too, transitively: a
    new VPC CIDR replaces the VPC, then its subnets (vpcId), the node groups in them (subnetIds), the cluster,
    which cannot move to another VPC, and the Kubernetes provider of that cluster, with every object it manages.
    A reader of a type with no rule is marked as one that may be replaced, never passed as an update. An
    updated launch template publishes a new version its node groups roll to. Returns the resources this adds to
    `changes` (and extends the reasons and notes of those already in it)."""
    by_urn = {c.resource["urn"]: c for c in changes if c.action != "removed"}
    fresh = {urn for urn, c in by_urn.items() if c.action == "added" or c.replaces}
    # The types replaced on the way to each fresh resource (for REPLACED_WITH): its own, and those of the fresh
    # resources it reads (a subnet whose CIDR moved with its VPC's was replaced with the VPC).
    roots = {urn: {by_urn[urn].resource["type"]} for urn in fresh}
    grew = True
    while grew:
        grew = False
        for urn in fresh:
            dependencies = {d for deps in (head_by_urn[urn].get("propertyDependencies") or {}).values() for d in deps if d in fresh}
            behind = set().union(roots[urn], *(roots[d] for d in dependencies))
            if behind != roots[urn]:
                roots[urn], grew = behind, True
    rolled = {
        urn for urn, c in by_urn.items() if c.action == "changed" and not c.replaces and c.resource["type"] in replacements.ROLLS_NODES
    }
    added: list[Change] = []

    def change_of(urn: str) -> Change:
        if urn not in by_urn:
            resource = head_by_urn[urn]
            by_urn[urn] = Change("changed", resource, component_of(resource, head_by_urn))
            added.append(by_urn[urn])
        return by_urn[urn]

    def replace(urn: str, why: str, behind: set[str]) -> None:
        change_of(urn).replaces.append(why)
        if head_by_urn[urn].get("protect"):
            change_of(urn).replaces.append("it is protected: `pulumi up` refuses until it is unprotected")
        fresh.add(urn)
        roots[urn] = behind | {head_by_urn[urn]["type"]}

    grew = True
    while grew:
        grew = False
        for urn, resource in head_by_urn.items():
            if urn in fresh:
                continue
            kind = resource["type"]
            if resource.get("provider") in fresh and resource["provider"] in head_by_urn:
                name = resource["provider"].rsplit("::", 1)[-1]
                replace(urn, f"its provider {name} is replaced (a new cluster): every object is created again", roots[resource["provider"]])
                grew = True
                continue
            for prop, dependencies in sorted((resource.get("propertyDependencies") or {}).items()):
                upstream = sorted(d for d in dependencies if d in fresh)
                source = sorted(d for d in dependencies if d in rolled)
                if source and not upstream:
                    note = f"{prop}: {replacements.ROLLS_NODES[head_by_urn[source[0]]['type']]} ({source[0].rsplit('::', 1)[-1]})"
                    if note not in change_of(urn).notes:
                        change_of(urn).notes.append(note)
                if not upstream:
                    continue
                change = change_of(urn)
                name = upstream[0].rsplit("::", 1)[-1]
                note = f"{prop} (from {name}, replaced or new)"
                if note not in change.properties:
                    change.properties.append(note)
                behind = set().union(*(roots[d] for d in upstream))
                moved = replacements.REPLACED_WITH.get((kind, prop))
                if replacements.reads_force_new(kind, prop) or moved in behind or kind == replacements.K8S_PROVIDER:
                    why = "forces replacement" if moved not in behind else f"cannot move to a new {moved.rsplit(':', 1)[-1]}"
                    replace(urn, f"{prop} {why}: it reads {name}, which is replaced or new", behind)
                    grew = True
                    break
                if not replacements.has_rules(kind):
                    uncertain = f"{prop} reads {name}, which is replaced or new; no replacement rule for {kind}: it may be replaced"
                    if uncertain not in change.notes:
                        change.notes.append(uncertain)
    return added


def stateful_replacements(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.replaces and c.resource["type"] in replacements.STATEFUL_TYPES]


def refused_updates(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.refused]


def blocking(changes: list[Change]) -> list[Change]:
    """What fails `--fail-on-replace`: stateful replacements, and updates the API would refuse."""
    return stateful_replacements(changes) + [c for c in refused_updates(changes) if c not in stateful_replacements(changes)]


def _called_out(warning: str, changes: list[Change], reasons: str, markdown: bool) -> list[str]:
    """A caution block above the details: the warning, then each change with its reasons, bounded."""
    if not changes:
        return []
    bullet = "> - " if markdown else "  - "
    lines = [f"\n> [!CAUTION]\n> **{warning}**" if markdown else f"\n!!! {warning}"]
    lines += [f"{bullet}{change.label}: {'; '.join(getattr(change, reasons))}" for change in changes[:MAX_CALLED_OUT]]
    if len(changes) > MAX_CALLED_OUT:
        lines.append(f"{bullet}... and {len(changes) - MAX_CALLED_OUT} more")
    return lines


def _code(text: str) -> str:
    """Text safe inside a markdown code span (values may hold backticks, `<absent>`, globs)."""
    return text.replace("`", "'")


def _cost_line(base: dict, head: dict, markdown: bool) -> str:
    """The change in estimated monthly cost, each plan at its own region's prices (cost.estimate); a region without
    prices is said, not priced at another's."""
    try:
        before = cost.totals(cost.estimate(base["resources"], region=cost.plan_region(base)))
        head_items = cost.estimate(head["resources"], region=cost.plan_region(head))
        after = cost.totals(head_items)
    except prices.UnknownRegion as err:
        text = f"estimated monthly cost: not estimated ({err}; `python -m infra cost --price-region R` estimates at another region's rates)"
        return f"**{text}**" if markdown else text
    floor, ceiling = after[0] - before[0], after[1] - before[1]
    text = f"estimated monthly cost: idle floor ${after[0]:,.0f} ({floor:+,.0f}), ceiling ${after[1]:,.0f} ({ceiling:+,.0f})"
    unplaced = [i for i in head_items if i.name == "models not in the floor"]
    if unplaced:
        text += f"; {len(unplaced)} model replica(s) not in the floor (see `python -m infra cost`)"
    return f"**{text}**" if markdown else text


def render(base: dict, head: dict, changes: list[Change], markdown: bool = False) -> str:
    counts = defaultdict(int)
    for change in changes:
        counts[change.action] += 1
    risky = stateful_replacements(changes)
    stack = head.get("stack", "?")
    replaced = sum(1 for c in changes if c.replaces and c.action == "changed")
    headline = f"{counts['added']} to add, {counts['changed']} to change ({replaced} replaced), {counts['removed']} to remove"
    lines = []
    if markdown:
        lines.append(f"### Plan diff of `{stack}`: {headline}")
    else:
        lines.append(f"plan diff of '{stack}': {headline}")
    lines.append(_cost_line(base, head, markdown))
    warning = f"STATEFUL REPLACEMENT: {len(risky)} stateful resource(s) would be replaced or deleted"
    lines += _called_out(warning, risky, "replaces", markdown)
    refused = refused_updates(changes)
    warning = f"UPDATE THE API WILL REFUSE: {len(refused)} resource(s) cannot be changed in place; `pulumi up` would fail half-way"
    lines += _called_out(warning, refused, "refused", markdown)
    other = [c for c in changes if c.replaces and c not in risky and c.action == "changed"]
    if other:
        more = f", and {len(other) - 10} more" if len(other) > 10 else ""
        lines.append(f"\n{len(other)} other replacement(s): " + ", ".join(c.label for c in other[:10]) + more)

    by_component: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        by_component[change.component].append(change)
    if markdown:
        lines.append("\n<details><summary>Changes by component</summary>\n")
    rows = 0
    for component, items in sorted(by_component.items()):
        if not (markdown and rows >= MAX_ROWS):
            lines.append(f"\n**{component}**" if markdown else f"\n{component}")
        for change in items:
            rows += 1
            if markdown and rows > MAX_ROWS:
                continue
            symbol = {"added": "+", "removed": "-", "changed": "~"}[change.action]
            symbol = "±" if change.replaces and change.action == "changed" else symbol
            lines.append(f"{'- ' if markdown else '  '}{symbol} {change.label}")
            item = "  - " if markdown else "      "
            for why in change.replaces[:2] + change.refused[:2]:
                lines.append(f"{item}{'**' + why + '**' if markdown else '!! ' + why}")
            for note in change.notes[:2]:
                lines.append(f"{item}{'_' + note + '_' if markdown else '.. ' + note}")
            shown_lines = [
                (prop + where, what)
                for prop in change.properties
                for where, what in (described(*change.values[prop]) if prop in change.values else [("", "changes")])
            ]
            for where, what in shown_lines[:MAX_PROPERTIES]:
                lines.append(f"{item}`{where}`: `{_code(what)}`" if markdown else f"{item}{where}: {what}")
            if len(shown_lines) > MAX_PROPERTIES:
                lines.append(f"{item}... and {len(shown_lines) - MAX_PROPERTIES} more")
    if markdown and rows > MAX_ROWS:
        lines.append(f"\n... and {rows - MAX_ROWS} more (run `python -m infra diff` locally for all)")
    if markdown:
        lines.append("\n</details>")
    if not changes:
        lines.append("no changes")
    return "\n".join(lines)
