from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import plan_cache, stack_files

STACKS = ("dev", "staging", "prod")
# Every plan of the platform's program with the same config and code is made once per test run, whichever
# worker or subprocess (the CLI, the fake Pulumi CLI) asks first (infra/offline/plan_cache.py).
PLAN_CACHE = Path(__file__).resolve().parents[1] / "build" / "test-cache" / "plans"


def pytest_sessionstart(session):
    from tests.helpers import SHARED

    if not (SHARED / "charts").is_dir() or not (SHARED / "schemas" / "crds").is_dir():
        raise pytest.UsageError(f"expected the shared reference (charts/, schemas/crds/) at {SHARED}, beside the repository")
    os.environ.setdefault(plan_cache.ENVIRONMENT, str(PLAN_CACHE))
    plan_cache.prune(Path(os.environ[plan_cache.ENVIRONMENT]))


@pytest.fixture(autouse=True)
def _uncached_when_patching(request):
    """A test that takes `monkeypatch` itself may change the program at run time, which no cache key can see:
    its plans are made afresh (fixtures that only set environment variables keep the cache)."""
    function = getattr(request, "function", None)
    if function is not None and "monkeypatch" in inspect.signature(function).parameters:
        request.getfixturevalue("monkeypatch").delenv(plan_cache.ENVIRONMENT, raising=False)


@pytest.fixture(scope="session")
def plans() -> dict[str, offline_plan.Plan]:
    """The offline plan of every committed stack, computed once per test session."""
    return {stack: offline_plan.run(stack, stack_files.read_stack(stack)) for stack in STACKS}


@pytest.fixture
def pulumi_mocks():
    """The offline plan's mocks set up for a `@pulumi.runtime.test` test; yields the recording monitor."""
    import pulumi
    import pulumi.runtime.settings

    from ml_platform.infra.config import PROJECT
    from ml_platform.infra.offline.mocks import PlatformMocks, RecordingMonitor
    from tests.helpers import REGION

    mocks = PlatformMocks(REGION)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_all_config({"aws:region": REGION}, [])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=False, monitor=monitor)
    yield monitor
