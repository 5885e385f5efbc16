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


# JSONPath a user might write, tricky ones included: the plan must refuse exactly what the image would refuse at start
# (a refused redaction crash-loops the proxy, which gates the server; a refused joinKey fails every job run).
EXPRESSIONS = [
    "$.customer",
    "$.messages[*].content",
    "$..email",
    "$.items[?(@.kind == 'card')].number",
    "$.a[0:2]",
    "$['x']",
    "$",
    "$.a.`len`",
    "`sorted`",
    "$.a.`str()`",
    "$.a.b + $.c",
    "$.a['b','c']",
    "$.ids[0]",
    "$.ids[*]",
    "$.meta.txnId",
    "$..id",
]
VERDICTS = """
import json, sys
from model_monitoring.config import jsonpath_last_field
from model_monitoring.redact import Redactor
out = {}
for expression in json.load(sys.stdin):
    verdict = []
    for check in (lambda e: Redactor([e]), jsonpath_last_field):
        try:
            check(expression)
            verdict.append(True)
        except Exception:
            verdict.append(False)
    out[expression] = verdict
print(json.dumps(out))
"""


def test_the_plan_refuses_exactly_the_json_paths_the_image_refuses():
    from ml_platform.infra.config.model_monitoring import Capture, Feedback

    result = subprocess.run(
        [python(), "-c", VERDICTS],
        input=json.dumps(EXPRESSIONS),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SOURCE)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    image = json.loads(result.stdout)

    def plan_accepts(build) -> bool:
        try:
            build()
        except Exception:
            return False
        return True

    plan = {
        e: [
            plan_accepts(lambda e=e: Capture(sampleRate=0.1, redact=[e])),
            plan_accepts(lambda e=e: Feedback(labelsPrefix="l/", metric="mae", objective=1, joinKey=e, labelField="outcome")),
        ]
        for e in EXPRESSIONS
    }
    assert plan == image
    assert image["$.customer"] == [True, True] and image["$.a.`len`"] == [False, False], "the list holds both verdicts"
