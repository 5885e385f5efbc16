"""Shared test harness: the offline plan's own mocks, a way to render components, and stack config builders."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ml_platform.components.images import CHART_IMAGES
from ml_platform.infra.config import PROJECT
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline.stack_files import RawStackConfig

REGION = "us-west-2"
ROOT = Path(__file__).resolve().parents[1]
# The shared reference (CRD schemas, chart defaults) lives beside the repository, as in CI.
SHARED = ROOT.parent / "shared"
ADMIN = {"principalArn": "arn:aws:iam::123456789012:role/platform-admins"}


def render(build: Callable[[], Any], stack: str = "test", config: dict[str, str] | None = None) -> offline_plan.Plan:
    """Run `build` (which declares resources) under the offline plan's mocks and return what it registered.

    The plan is returned only after every registration and output has resolved, so assertions on it
    see everything the build declared.
    """
    values = {"aws:region": REGION, **(config or {})}
    return offline_plan.run(stack, RawStackConfig(values, []), program=build)


def resource(plan: offline_plan.Plan, type_token: str, name: str) -> dict[str, Any]:
    matches = [r for r in plan.resources if r["type"] == type_token and r["name"] == name]
    assert len(matches) == 1, f"expected one {type_token} named {name}, found {[r['name'] for r in plan.by_type(type_token)]}"
    return matches[0]


def raw_config(**sections: Any) -> dict[str, str]:
    """Raw Pulumi config (`ml-platform:key` -> wire string) from Python values, as the engine passes it."""
    region = sections.pop("region", REGION)
    raw = {} if region is None else {"aws:region": region}
    for key, value in sections.items():
        raw[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return raw


def minimal_sections(**overrides: Any) -> dict[str, Any]:
    """The smallest valid dev stack config, with overrides."""
    sections: dict[str, Any] = {
        "environment": "dev",
        "cluster": {"admins": [ADMIN]},
        "nodePools": {"system": {"instanceTypes": ["m6i.large"], "minSize": 1, "maxSize": 3}},
    }
    sections.update(overrides)
    return sections


# Prod runs every chart image whose chart takes a digest by digest (made-up ones here).
PROD_IMAGE_DIGESTS = {key: "sha256:" + "c" * 64 for key, image in CHART_IMAGES.items() if image.digest_key and image.chart != "karpenter"}


def prod_sections(**overrides: Any) -> dict[str, Any]:
    """The smallest valid prod stack config, with overrides."""
    sections: dict[str, Any] = {
        "pins": {"images": PROD_IMAGE_DIGESTS},
        "environment": "prod",
        "protectStatefulResources": "true",
        "network": {"azCount": 3, "natGateways": "perAz", "flowLogs": True},
        "cluster": {"admins": [ADMIN]},
        # encrypted in the stack file: offline, its masked digest
        "monitoring": {"receivers": [{"name": "oncall", "webhookUrl": "[secret:0123456789ab]"}], "defaultReceiver": "oncall"},
        "nodePools": {"system": {"instanceTypes": ["m6i.large"], "minSize": 2, "maxSize": 4}},
    }
    sections.update(overrides)
    return sections


def tool(name: str) -> str:
    """A scanner from venv-tools/ (make test passes TOOLS_BIN), else from PATH; fails clearly if absent."""
    candidates = [Path(os.environ["TOOLS_BIN"]) / name] if os.environ.get("TOOLS_BIN") else []
    found = next((str(c) for c in candidates if c.exists()), None) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run through `make test` (installs venv-tools/) or put it on PATH")
    return found


# A GPU model's ModelSpec fields (vLLM on 2 GPUs, weights from the store) the component tests start from.
MODEL_SPEC = dict(
    name="chat",
    runtime="vllm",
    image="docker.io/vllm/vllm-openai:v0.31.0",
    loader_image="public.ecr.aws/aws-cli/aws-cli:2.37.11",
    cpu="4",
    memory="24Gi",
    port=8000,
    health_path="/health",
    metrics_path="/metrics",
    startup_seconds=900,
    min_replicas=1,
    max_replicas=3,
    target=5,
    prometheus_url="http://kps-prometheus.monitoring.svc:9090",
    monitoring_namespace="monitoring",
    region="us-west-2",
    model_uri="s3://bucket/llama/",
    gpus=2,
    node_selector={"nvidia.com/gpu.present": "true", "ml-platform/gpu-sharing": "none"},
    tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
)
