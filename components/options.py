"""Resource options shared by the components."""

from __future__ import annotations

import pulumi


def inherited_depends_on(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """A component's `depends_on` does not reach its children: what a child that must wait adds to its own."""
    if opts is None or opts.depends_on is None:
        return []
    return list(opts.depends_on) if isinstance(opts.depends_on, list) else [opts.depends_on]
