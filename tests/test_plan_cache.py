"""The on-disk plan cache (infra/offline/plan_cache.py): a cached plan is the plan the program makes, the key
moves with anything the plan is made from, and a test that monkeypatches runs uncached."""

from __future__ import annotations

import dataclasses
import os

import pytest

from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import plan_cache, stack_files
from ml_platform.infra.offline.stack_files import RawStackConfig


def test_a_cached_plan_is_the_programs_plan(tmp_path, monkeypatch):
    raw = stack_files.read_stack("dev")
    monkeypatch.setenv(plan_cache.ENVIRONMENT, str(tmp_path))
    first = offline_plan.run("dev", raw)
    assert len(list(tmp_path.glob("*.json"))) == 1
    second = offline_plan.run("dev", raw)
    monkeypatch.delenv(plan_cache.ENVIRONMENT)
    fresh = offline_plan.run("dev", raw)
    for plan in (first, second):
        assert plan.to_json() == fresh.to_json() and plan.warnings == fresh.warnings and plan.project == fresh.project


def test_the_key_moves_with_what_the_plan_is_made_from(monkeypatch):
    raw = stack_files.read_stack("dev")
    base = plan_cache.key("dev", "ml-platform", raw)
    assert plan_cache.key("dev", "ml-platform", raw) == base
    changed = RawStackConfig({**raw.values, "ml-platform:ephemeral": "true"}, raw.secret_keys, raw.notes, raw.placeholders)
    assert plan_cache.key("dev", "ml-platform", changed) != base
    assert plan_cache.key("staging", "ml-platform", raw) != base
    assert plan_cache.key("dev", "ml-platform", dataclasses.replace(raw, secret_keys=["ml-platform:models"])) != base
    monkeypatch.setattr(plan_cache, "code_fingerprint", lambda: "other code")
    assert plan_cache.key("dev", "ml-platform", raw) != base


def test_a_custom_program_is_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(plan_cache.ENVIRONMENT, str(tmp_path))
    offline_plan.run("t", RawStackConfig({"aws:region": "us-west-2"}, []), program=lambda: None, project="other")
    assert not list(tmp_path.glob("*.json"))


@pytest.fixture
def patched_program(monkeypatch):
    """Patches the program from a fixture, as a test's helper would."""
    from ml_platform.components import eks_cluster

    monkeypatch.setattr(eks_cluster, "CONTROL_PLANE_LOG_TYPES", ("api",))


def test_a_patch_made_in_a_fixture_turns_the_cache_off_for_that_test(patched_program):
    assert plan_cache.ENVIRONMENT not in os.environ
    (cluster,) = offline_plan.run("dev", stack_files.read_stack("dev")).by_type("aws:eks/cluster:Cluster")
    assert cluster["inputs"]["enabledClusterLogTypes"] == ["api"]


def test_the_next_test_gets_the_real_plan_from_the_cache():
    assert os.environ.get(plan_cache.ENVIRONMENT)
    (cluster,) = offline_plan.run("dev", stack_files.read_stack("dev")).by_type("aws:eks/cluster:Cluster")
    assert len(cluster["inputs"]["enabledClusterLogTypes"]) == 5


def test_setting_environment_variables_keeps_the_cache(monkeypatch):
    monkeypatch.setenv("SOME_VARIABLE", "1")
    assert os.environ.get(plan_cache.ENVIRONMENT)


def test_clear_empties_the_cache(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    plan_cache.clear(tmp_path)
    assert not list(tmp_path.glob("*.json"))
