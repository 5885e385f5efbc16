"""`python -m infra ci <step>`: what a CI system's delivery jobs do, as one tested command every CI system calls.

Each step takes its inputs as flags only (an adapter maps its CI system's variables to them) and ends with one of
the exit codes below, the same for every step:

| step | does |
|---|---|
| `plan-diff` | diffs each stack's base and head offline plans (plan_diff.py): a markdown body, a JSON summary, the replacement gate |
| `comment` | posts one comment per change, or updates the earlier one found by its marker (comments.py) |
| `preview` | offline plan, then `pulumi preview` with the policy pack (steps.py) |
| `deploy` | offline plan, doctor, models verify, models sync, `pulumi up` with the policy pack, stopping at the first failure |
| `preview-stack` | creates, updates or destroys the change's preview stack from its event and labels |
| `sweep` | removes the preview stacks past their time to live |
| `reproduce` | writes and checks a copy of a stack, and deploys it with its registry models when asked |
"""

from __future__ import annotations

EXIT_DONE = 0
EXIT_FAILED = 1
"""A step it ran failed; that tool's own message is shown."""
EXIT_BAD_INPUT = 2
"""Bad input: the flag is named with what is allowed, no traceback, nothing done."""
EXIT_REFUSED = 3
"""Refused by the replacement gate: a stateful replacement (or an update the API refuses) nobody approved."""


class CiInputError(Exception):
    """Bad input to a step, found before anything is done; its message names the flag and what is allowed (exit 2)."""
