"""What a PromQL query reads, from its syntax tree: the series it selects and the functions it calls.

Parsed with promql-parser (GreptimeTeam's Rust parser, pinned in requirements.txt), not with patterns: the
query grammar is Prometheus's, not this project's to re-implement.
"""

from __future__ import annotations

from typing import Any

import promql_parser

# Functions that make a number out of nothing: with them, missing series read as a value (KEDA: as load).
INVENTS_VALUES = frozenset({"vector", "absent", "absent_over_time"})


def _tree(query: str) -> Any:
    try:
        return promql_parser.parse(query)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"the query does not parse: {error}") from None


def _walk(node: Any, visit) -> None:
    visit(node)
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        if child is not None:
            _walk(child, visit)
    for child in getattr(node, "args", None) or []:
        _walk(child, visit)


def series(query: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, equality matchers) of every series selector; raises ValueError when it does not parse."""
    found: list[tuple[str, dict[str, str]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {m.name: m.value for m in node.matchers.matchers if str(m.op) == "MatchOp.Equal"}
            found.append((node.name or matchers.get("__name__", ""), matchers))

    _walk(_tree(query), visit)
    return found


def functions(query: str) -> set[str]:
    """Names of the functions a query calls; raises ValueError when it does not parse."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.Call):
            found.add(node.func.name)

    _walk(_tree(query), visit)
    return found
