"""The rendered manifests of one GPU model (dev `chat`, vLLM) and one CPU model (dev `fraud`, custom image)
are kept under tests/snapshots/, so every change to what a model service deploys shows in review.
Regenerate with UPDATE_SNAPSHOTS=1 after a deliberate change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.mark.parametrize("model", ["chat", "fraud"])
def test_model_manifests_match_the_snapshot(plans, model):
    objects = [
        body
        for relative, body in plans["dev"].manifests().items()
        if relative.split("/")[0] == model or relative == f"_cluster/Namespace-{model}.yaml"
    ]
    rendered = yaml.safe_dump_all(objects, sort_keys=True)
    path = SNAPSHOTS / f"model-{model}.yaml"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(rendered)
    assert len(objects) >= 9
    assert rendered == path.read_text(), f"{path.name} changed: review the diff, then UPDATE_SNAPSHOTS=1"
