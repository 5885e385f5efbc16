"""The on-disk plan cache (infra/offline/plan_cache.py): a cached plan is the plan the program makes, the key
moves with anything the plan is made from, and a test that monkeypatches runs uncached."""

from __future__ import annotations

import dataclasses
import os

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


def test_a_test_taking_monkeypatch_runs_uncached(monkeypatch):
    assert plan_cache.ENVIRONMENT not in os.environ


def test_other_tests_run_cached():
    assert os.environ.get(plan_cache.ENVIRONMENT)


def test_old_entries_are_pruned(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "new.json").write_text("{}")
    os.utime(tmp_path / "old.json", (0, 0))
    plan_cache.prune(tmp_path)
    assert [p.name for p in tmp_path.glob("*.json")] == ["new.json"]
