"""`make bench`: the speeds issues #15 and #16 ask for, each printed (with its goal where one is set).
Benchmarks print figures; no test times anything.

- Cold start: per committed stack and model, the estimated time from a pending pod to serving as configured,
  and with each option that applies turned the other way (infra/coldstart.py's documented figures).
- First deploy: per committed stack, the estimated critical path of a first `pulumi up` against the essential
  chain (infra/offline/deploy_time.py). Goal: within 1.1x.
- Offline plan: `python -m infra plan --stack prod` in a fresh process against the floor, a fresh process that
  loads the SDK class of every resource type of the plan and registers as many resources with the same inputs
  under the same mocks (bench/bare_program.py), median of --runs. Goals: within 2x the floor, and 4 s.
- Tests: the README's test command's pytest run (-n auto --dist loadfile) from a cold plan cache, median of
  --suite-runs (0 skips it). Goal: 90 s on a quiet 2-core machine.

Usage: python bench/bench.py [--runs 5] [--suite-runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ml_platform.infra import coldstart, config, models
from ml_platform.infra.offline import deploy_time, stack_files

ROOT = Path(__file__).resolve().parents[1]

STACKS = ("dev", "staging", "prod")


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def first_deploy(work: Path) -> None:
    print("first deploy (estimated critical path against the essential chain; goal <= 1.10x)")
    for stack in STACKS:
        subprocess.run(
            [sys.executable, "-m", "infra", "plan", "--stack", stack, "--out", str(work / stack)], cwd=ROOT, check=True, capture_output=True
        )
        estimate = deploy_time.estimate(json.loads((work / stack / "plan.json").read_text())["resources"])
        path = " -> ".join(name for name, _ in estimate.path)
        minutes = f"{estimate.seconds / 60:5.1f} min  essential {estimate.essential / 60:5.1f} min"
        print(f"  {stack:8} {minutes}  {estimate.ratio:.2f}x  {verdict(estimate.ratio <= 1.1)}")
        print(f"           {path}")


def cold_starts() -> None:
    print("cold start per model (estimates from documented figures; `python -m infra coldstart` explains each term)")
    for stack in STACKS:
        cfg = config.parse(stack_files.read_stack(stack).values, stack)
        for name, model in sorted(cfg.models.items()):
            start = models.cold_start(name, model, cfg)
            options = "; ".join(f"{label} {seconds:.0f} s" for label, seconds in start.alternatives)
            print(f"  {stack:8} {name:10} {start.seconds:5.0f} s  (probe budget {start.probe_budget} s)  {options}")
    print(
        f"  figures: pull {coldstart.PULL_GIB_PER_S * 1024:.0f} MiB/s, gp3 copy {coldstart.COPY_GIB_PER_S * 1024:.0f} MiB/s, "
        f"NVMe copy {coldstart.NVME_COPY_GIB_PER_S * 1024:.0f} MiB/s, stream {coldstart.STREAM_GIB_PER_S * 1024:.0f} MiB/s"
    )


def plan_time(work: Path, runs: int) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ML_PLATFORM_PLAN_CACHE"}
    plan = [sys.executable, "-m", "infra", "plan", "--stack", "prod", "--out", str(work / "prod")]
    floor = [sys.executable, str(ROOT / "bench" / "bare_program.py"), str(work / "prod" / "plan.json")]
    timed(plan, env)  # warm the file cache and write plan.json for the floor
    planned = statistics.median(timed(plan, env) for _ in range(runs))
    bare = statistics.median(timed(floor, env) for _ in range(runs))
    ratio = planned / bare
    print(f"offline plan of prod (median of {runs}; goals <= 2.0x the floor and <= 4.0 s)")
    print(f"  plan {planned:5.2f} s  floor {bare:5.2f} s  {ratio:.2f}x  {verdict(ratio <= 2.0 and planned <= 4.0)}")


def suite_time(runs: int) -> None:
    if runs <= 0:
        return
    tools = ROOT / "venv-tools" / "bin"
    env = {**os.environ, "TOOLS_BIN": str(tools)}
    env.pop("ML_PLATFORM_PLAN_CACHE", None)
    seconds = []
    for _ in range(runs):
        shutil.rmtree(ROOT / "build" / "test-cache", ignore_errors=True)
        seconds.append(timed([sys.executable, "-m", "pytest", "-q", "-n", "auto", "--dist", "loadfile"], env))
    median = statistics.median(seconds)
    shown = ", ".join(f"{s:.0f}" for s in seconds)
    print(
        f"tests from a cold plan cache (median of {runs}: {shown} s; goal <= 90 s on a quiet 2-core machine, {os.cpu_count()} cores here)"
    )
    print(f"  {median:5.1f} s  {verdict(median <= 90)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="plan and floor runs (median)")
    parser.add_argument("--suite-runs", type=int, default=3, help="test suite runs (median); 0 skips them")
    args = parser.parse_args()
    if args.runs < 1 or args.suite_runs < 0:
        parser.error("--runs must be at least 1 and --suite-runs at least 0")
    cold_starts()
    with tempfile.TemporaryDirectory() as work:
        first_deploy(Path(work))
        plan_time(Path(work), args.runs)
    suite_time(args.suite_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
