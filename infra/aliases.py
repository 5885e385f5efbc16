"""Renames of top-level components, in one place, so a refactor never replaces what they hold.

Renaming a component (say `eks` to `cluster`) changes the URN of every child, and Pulumi would replace
the cluster. Record the rename here as `"cluster": ("eks",)`: the component gets an alias, and each
child named `<component>-...` inherits it, so the live resources are adopted, not replaced. The test
tests/test_plan.py::test_prod_never_loses_a_stateful_resource_or_its_protection fails until you do.
"""

from __future__ import annotations

import pulumi

RENAMED: dict[str, tuple[str, ...]] = {}


def options(name: str, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
    """Resource options for the top-level component `name`, carrying the aliases of its former names."""
    return pulumi.ResourceOptions(aliases=[pulumi.Alias(name=old) for old in RENAMED.get(name, ())], depends_on=depends_on)
