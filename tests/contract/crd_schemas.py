"""Validation of custom resources against the CRD schemas in ../shared/schemas/crds, strictly: like the
API server's strict field validation, a field the CRD does not declare is an error, not silently pruned."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import jsonschema

from tests.helpers import SHARED

SCHEMAS = SHARED / "schemas" / "crds"


def _strict(schema: Any) -> Any:
    """Close every object that lists its properties and says nothing about others."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def schema_for(api_version: str, kind: str) -> dict:
    group, version = api_version.split("/")
    path = SCHEMAS / group / f"{kind.lower()}_{version}.json"
    if not path.exists():
        raise FileNotFoundError(f"no CRD schema for {api_version} {kind} at {path}")
    return _strict(json.loads(path.read_text()))


def errors(manifest: dict) -> list[str]:
    """Every schema violation of one custom resource, as `<path>: <message>`."""
    body = copy.deepcopy(manifest)
    validator = jsonschema.Draft7Validator(schema_for(body["apiVersion"], body["kind"]))
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in validator.iter_errors(body))
