"""The floor of an offline plan (`make bench`): a fresh process that loads the SDK class of every resource type a
plan holds (so the same pulumi_aws and pulumi_kubernetes modules load as in the real program) and registers as
many resources, with the plan's own inputs, under the offline plan's own mocks and runner, without the
platform's program, config checks, contract checks or policy pack.

Usage: python bench/bare_program.py <plan.json>; prints the number of resources registered.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pulumi

from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline.stack_files import RawStackConfig


def sdk_class(token: str) -> object | None:
    """The SDK class of a type token (aws:ec2/subnet:Subnet -> pulumi_aws.ec2.Subnet), loaded; None when the
    token has none (components, custom resources of CRDs, which go through apiextensions.CustomResource)."""
    package, module, name = token.split(":")
    if package == "aws":
        return getattr(importlib.import_module(f"pulumi_aws.{module.split('/')[0]}"), name, None)
    if package == "random":
        return getattr(importlib.import_module("pulumi_random"), name, None)
    if package == "kubernetes":
        group, _, version = module.partition("/")
        group = {"helm.sh": "helm", "networking.k8s.io": "networking", "storage.k8s.io": "storage"}.get(group, group)
        try:
            return getattr(importlib.import_module(f"pulumi_kubernetes.{group}.{version}"), name)
        except (ImportError, AttributeError):
            return importlib.import_module("pulumi_kubernetes.apiextensions").CustomResource
    return None


def main(plan_file: Path) -> None:
    records = [r for r in json.loads(plan_file.read_text())["resources"] if r["custom"] and not r["type"].startswith("pulumi:")]

    def program() -> None:
        for record in records:
            sdk_class(record["type"])
            pulumi.CustomResource(record["type"], record["name"], record["inputs"])

    plan = offline_plan.run("bench", RawStackConfig({"aws:region": "us-west-2"}, []), program=program, project="bench")
    print(len(plan.resources))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
