from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import plan_cache, stack_files

STACKS = ("dev", "staging", "prod")
# Every plan of the platform's program with the same config and code is made once per test run (or once per
# worker, when two ask at the same moment), whichever worker or subprocess (the CLI, the fake Pulumi CLI) asks
# first (infra/offline/plan_cache.py).
PLAN_CACHE = Path(__file__).resolve().parents[1] / "build" / "test-cache" / "plans"
PATCHING = ("setattr", "delattr", "setitem", "delitem")


def pytest_sessionstart(session):
    from tests.helpers import SHARED

    if not (SHARED / "charts").is_dir() or not (SHARED / "schemas" / "crds").is_dir():
        raise pytest.UsageError(f"expected the shared reference (charts/, schemas/crds/) at {SHARED}, beside the repository")
    os.environ.setdefault(plan_cache.ENVIRONMENT, str(PLAN_CACHE))
    if "PYTEST_XDIST_WORKER" not in os.environ:
        # The controller (or a run without workers) starts before any worker: a run never sees an earlier run's plans.
        plan_cache.clear(Path(os.environ[plan_cache.ENVIRONMENT]))


@pytest.fixture(autouse=True)
def _uncached_when_patching():
    """A test that patches code or data at run time (monkeypatch's setattr, delattr, setitem, delitem, in the test
    or in any fixture it uses) changes the program in a way no cache key can see: from its first patch on, its
    plans are made afresh and never stored. Setting environment variables keeps the cache."""
    saved = os.environ.get(plan_cache.ENVIRONMENT)
    originals = {method: getattr(pytest.MonkeyPatch, method) for method in PATCHING}

    def uncaching(method):
        def patch(self, *args, **kwargs):
            # setenv and delenv go through setitem/delitem on os.environ, which the program does not read.
            if not (method in ("setitem", "delitem") and args and args[0] is os.environ):
                os.environ.pop(plan_cache.ENVIRONMENT, None)
            return originals[method](self, *args, **kwargs)

        return patch

    for method in PATCHING:
        setattr(pytest.MonkeyPatch, method, uncaching(method))
    try:
        yield
    finally:
        for method, original in originals.items():
            setattr(pytest.MonkeyPatch, method, original)
        if saved is not None:
            os.environ[plan_cache.ENVIRONMENT] = saved


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
