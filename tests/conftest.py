from __future__ import annotations

import pytest

from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files

STACKS = ("dev", "staging", "prod")


def pytest_sessionstart(session):
    from tests.helpers import SHARED

    if not (SHARED / "charts").is_dir() or not (SHARED / "schemas" / "crds").is_dir():
        raise pytest.UsageError(f"expected the shared reference (charts/, schemas/crds/) at {SHARED}, beside the repository")


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
