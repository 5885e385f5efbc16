"""`pulumi up` runs infra/ the way Pulumi's Python language host does; prove the program works that way.

What the host does (pulumi/pulumi: pkg/engine/project.go, sdk/python/cmd/pulumi-language-python-exec):
with `main: infra/`, the working directory is infra/, the program path is ".", and the exec script calls
`runpy.run_path(".", run_name="__main__")` from the venv's python, so only infra/ is on sys.path, never
the repository root. `components` must still import: infra/requirements.txt installs the repository.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Stands in for pulumi-language-python-exec: the engine's monitor replaced by the offline plan's mocks.
LANGUAGE_HOST = textwrap.dedent(
    """
    import json, os, pathlib, runpy, sys
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.environ["REPO_ROOT"]]
    import pulumi, pulumi.runtime.settings
    from ml_platform.infra.offline.mocks import PlatformMocks, RecordingMonitor
    from ml_platform.infra.offline.stack_files import read_stack

    raw = read_stack(os.environ["STACK"], pathlib.Path(os.environ["REPO_ROOT"]))
    mocks = PlatformMocks(raw.values["aws:region"])
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_all_config(raw.values, raw.secret_keys)
    pulumi.runtime.set_mocks(mocks, project="ml-platform", stack=os.environ["STACK"],
                        preview=os.environ["PREVIEW"] == "1", monitor=monitor)
    os.chdir(os.environ["PROGRAM_DIR"])
    sys.argv = ["."]

    @pulumi.runtime.test
    def program():
        runpy.run_path(".", run_name="__main__")

    program()
    print(json.dumps({"resources": len(monitor.records), "types": sorted({r["type"] for r in monitor.records}),
                      "repo_root_on_path": os.environ["REPO_ROOT"] in [os.path.abspath(p or ".") for p in sys.path]}))
    """
)


def run_as_pulumi(tmp_path: Path, stack: str, preview: bool) -> subprocess.CompletedProcess:
    host = tmp_path / "pulumi_language_python_exec.py"
    host.write_text(LANGUAGE_HOST)
    return subprocess.run(
        [sys.executable, str(host)],
        cwd=tmp_path,
        env={
            "REPO_ROOT": str(ROOT),
            "PROGRAM_DIR": str(ROOT / "infra"),
            "PATH": "/usr/bin:/bin",
            "STACK": stack,
            "PREVIEW": "1" if preview else "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_program_runs_as_pulumi_runs_it(tmp_path):
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    result = run_as_pulumi(tmp_path, "dev", preview=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["repo_root_on_path"] is False
    assert report["resources"] > 50
    assert "aws:eks/cluster:Cluster" in report["types"]


def test_an_update_of_prod_refuses_the_example_values_and_a_preview_shows_them(tmp_path):
    """Under the engine (not the offline plan) an update of prod stops before any resource on the repository's
    example values; a preview of the same stack still runs, so a PR can show its plan."""
    update = run_as_pulumi(tmp_path, "prod", preview=False)
    assert update.returncode != 0
    assert "prod stack 'prod' still holds example values from this repository" in update.stderr
    assert "ml-platform:pins.images.grafana: 'sha256:" in update.stderr and "Traceback" not in update.stderr.split("RunError")[-1]
    preview = run_as_pulumi(tmp_path, "prod", preview=True)
    assert preview.returncode == 0, preview.stderr[-3000:]


def test_infra_requirements_install_the_repository():
    lines = [line.strip() for line in (ROOT / "infra" / "requirements.txt").read_text().splitlines()]
    assert "-r ../requirements.txt" in lines and "-e .." in lines


def test_no_module_in_infra_shadows_an_importable_module():
    """With infra/ first on sys.path, infra/config/ would hide any top-level module named `config`."""
    ours = {m.name for m in pkgutil.iter_modules([str(ROOT / "infra")])}
    others = {m.name for m in pkgutil.iter_modules() if not m.module_finder.path.startswith(str(ROOT))}  # type: ignore[union-attr]
    assert ours & (others | set(sys.stdlib_module_names)) == set()


def test_cli_entry_point_without_an_engine():
    result = subprocess.run([sys.executable, "-m", "infra", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "plan" in result.stdout
