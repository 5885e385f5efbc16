"""What the platform hands the model-monitoring image is what the image accepts: every capture proxy's
environment (images/model-monitoring `capture.load_config`) and every monitor job's ConfigMap (`config.parse_config`)
in the staging and prod plans, checked by the image's own code in its own venv (venv-monitoring/, which `make test`
builds from images/model-monitoring/requirements*.txt). A mismatch here is a pod crash-looping on a live cluster."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helpers import ROOT

SOURCE = ROOT / "images" / "model-monitoring" / "src"
CHECK = """
import json, sys
from model_monitoring import capture, config
given = json.load(sys.stdin)
for env in given["proxies"]:
    capture.load_config(env)
for doc in given["jobs"]:
    config.parse_config(doc)
print("accepted", len(given["proxies"]), len(given["jobs"]))
"""


def python() -> str:
    path = os.path.join(os.environ.get("MONITORING_BIN") or str(ROOT / "venv-monitoring" / "bin"), "python")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: run through `make test`, which builds venv-monitoring/")
    return path


def handed_over(plan) -> dict:
    proxies, jobs = [], []
    for r in plan.resources:
        inputs = r["inputs"]
        if r["type"] == "kubernetes:apps/v1:Deployment":
            for container in inputs["spec"]["template"]["spec"].get("initContainers", []):
                if container["name"] == "capture-proxy":
                    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
                    proxies.append({**env, "POD_NAME": "fraud-7d9f-abcde"})
        if r["type"] == "kubernetes:core/v1:ConfigMap" and inputs["metadata"]["name"].endswith("-monitor"):
            jobs.append(json.loads(inputs["data"]["config.json"]))
    return {"proxies": proxies, "jobs": jobs}


def accepts(given: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python(), "-c", CHECK],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SOURCE)},
    )


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_image_accepts_what_the_plan_hands_it(plans, stack):
    given = handed_over(plans[stack])
    assert given["proxies"] and given["jobs"]
    result = accepts(given)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["accepted", str(len(given["proxies"])), str(len(given["jobs"]))]


def test_the_check_fails_on_a_key_the_job_does_not_know(plans):
    given = handed_over(plans["staging"])
    given["jobs"][0]["drift"]["labelColumn"] = "requestId"
    assert accepts(given).returncode != 0
    given = handed_over(plans["staging"])
    given["proxies"][0]["CAPTURE_REDACT"] = '["$"]'
    assert accepts(given).returncode != 0
