"""Removal of sensitive fields from captured JSON before it leaves the pod.

Expressions are JSONPath as jsonpath-ng understands it (its `ext` dialect: filters such as `$.items[?(@.kind=="card")]`
and slices work too). jsonpath-ng is the maintained, widely used JSONPath implementation for Python; writing our own
path matcher for data-protection rules would be the riskier choice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jsonpath_ng import JSONPath, Root, This
from jsonpath_ng.ext import parse
from jsonpath_ng.ext.filter import Filter


class RedactError(ValueError):
    """An expression list that cannot be used; the message says which expression and why."""


class Redactor:
    """Removes every match of each JSONPath expression from a parsed JSON document.

    `Redactor(["$.customer.ssn", "$.instances[*].email"])` compiles the expressions once; `redact(doc)` deletes
    matching object members and array elements in place and returns `doc`. A path that matches nothing is not an
    error (requests differ). Raises RedactError for an expression jsonpath-ng cannot parse, and for `$` alone (it
    would remove the whole document, which is what not capturing is for).
    """

    def __init__(self, expressions: Sequence[str]) -> None:
        self.expressions = list(expressions)
        self._paths = []
        for expression in self.expressions:
            if not isinstance(expression, str) or not expression.strip():
                raise RedactError(f"every expression must be a non-empty string, got {expression!r}")
            try:
                path = parse(expression)
            except Exception as exc:  # JsonPathParserError/LexerError, but the ext grammar also raises plain types
                raise RedactError(f"{expression!r} is not a valid JSONPath expression: {exc}") from None
            if isinstance(path, (Root, This)):
                raise RedactError(f"{expression!r} selects the whole document; name the fields to remove")
            if computed := _computed_step(path):
                raise RedactError(
                    f"{expression!r} uses {computed}, which computes a value rather than locating a field: there would be nothing to remove"
                )
            self._paths.append(path)

    @classmethod
    def from_json(cls, text: str) -> Redactor:
        """A Redactor from a JSON array of expression strings (the CAPTURE_REDACT format), e.g. `["$.a.b"]`."""
        try:
            expressions = json.loads(text)
        except ValueError as exc:
            raise RedactError(f"must be a JSON array of JSONPath strings: {exc}") from None
        if not isinstance(expressions, list):
            raise RedactError(f"must be a JSON array of JSONPath strings, got {type(expressions).__name__}")
        return cls(expressions)

    def redact(self, document: Any) -> Any:
        """Delete every match from `document` (dicts and lists, modified in place) and return it."""
        for path in self._paths:
            # filter() with an always-true predicate is jsonpath-ng's deletion: it removes each matched member
            # from its parent dict or list (lists from the highest index down, so positions stay valid).
            document = path.filter(lambda _value: True, document)
        return document


def _computed_step(path: JSONPath) -> str | None:
    """The class name of the first ext operator in `path` that yields a computed value (`len`, `sorted`, `str()`,
    arithmetic...), None if every step locates data. Filter conditions may compute freely: they only select."""
    if isinstance(path, Filter):
        return None
    if type(path).__module__.startswith("jsonpath_ng.ext."):
        return type(path).__name__
    for value in getattr(path, "__dict__", {}).values():
        for child in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(child, JSONPath) and (found := _computed_step(child)):
                return found
    return None
