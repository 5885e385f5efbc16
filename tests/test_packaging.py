"""A regular (non-editable) install of the repository works on its own: the wheel holds every package and data
file under the one top-level name `ml_platform`, and from a fresh environment outside the checkout it imports
every module, runs the `ml-platform` command to plan a stack, and plans the example program.

The fresh environment borrows the test venv's third-party packages through a .pth line (site-packages named in
a .pth file are added without processing their own .pth files, so the venv's editable install of this
repository stays invisible there)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"infra": "ml_platform.infra", "components": "ml_platform.components", "policy": "ml_platform.policy"}
COPY_IGNORE = shutil.ignore_patterns("venv*", "build", ".git", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "Pulumi.pr-*.yaml")


def modules() -> list[str]:
    """Every module of the three folders, by its installed name."""
    found = []
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            found.append(".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts)))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(work), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = work.glob("ml_platform-*.whl")
    return built


@pytest.fixture(scope="module")
def env(wheel, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "env")], check=True, timeout=120)
    python = home / "env" / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True)
    (Path(site.stdout.strip()) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return home


def run(env: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, env={"PATH": f"{env / 'env' / 'bin'}:/usr/bin:/bin"}
    )


def test_the_wheel_installs_one_top_level_name_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"ml_platform", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "ml_platform/components/serving_platform/aws-load-balancer-controller-3.5.0.iam-policy.json" in names
    assert "ml_platform/infra/kubernetes-versions.yaml" in names
    installed = {name.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for name in names if name.endswith(".py")}
    assert set(modules()) <= installed, sorted(set(modules()) - installed)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ml-platform = ml_platform.infra.console:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_every_module_imports_from_the_installed_copy(env):
    script = (
        "import importlib, json, sys\n"
        f"names = {modules()!r}\n"
        "loaded = {name: importlib.import_module(name).__file__ for name in names}\n"
        "from ml_platform import components\n"
        "from ml_platform.components.serving_platform import alb_policy_versions\n"
        "print(json.dumps({'files': loaded, 'public': {n: getattr(components, n).__name__ for n in components.__all__},\n"
        "                  'alb': alb_policy_versions(), 'path': sys.path}))\n"
    )
    result = run(env, "python", "-I", "-c", script, cwd=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert all(path.startswith(str(env)) for path in report["files"].values()), "imported from the checkout, not the install"
    assert report["alb"], "the load balancer controller's IAM policy files are package data"
    assert len(report["public"]) >= 29 and all(name == value for name, value in report["public"].items())
    assert not any(str(ROOT) == entry for entry in report["path"])


def test_the_installed_command_plans_a_stack_outside_the_checkout(env):
    project = env / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, project / name)
    result = run(env, "ml-platform", "plan", "--stack", "dev", cwd=project)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    plan = json.loads((project / "build" / "plan" / "dev" / "plan.json").read_text())
    assert plan["project"] == "ml-platform" and any(r["type"] == "aws:eks/cluster:Cluster" for r in plan["resources"])
    elsewhere = run(env, "ml-platform", "plan", "--stack", "dev", cwd=env)
    assert elsewhere.returncode == 2 and "no Pulumi.yaml in" in elsewhere.stderr and "Traceback" not in elsewhere.stderr


def test_the_example_plans_from_the_installed_copy(env):
    example = env / "example"
    shutil.copytree(ROOT / "examples" / "model-service-on-existing-cluster", example, ignore=COPY_IGNORE)
    script = (
        "import json, pathlib\n"
        "from ml_platform.infra.offline.plan import plan_program\n"
        "plan = plan_program(pathlib.Path('.'), 'dev')\n"
        "print(json.dumps(sorted({r['type'] for r in plan.resources})))\n"
    )
    result = run(env, "python", "-I", "-c", script, cwd=example)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mlplatform:k8s:ModelService" in json.loads(result.stdout)


def test_a_broken_versions_file_is_one_line_and_exit_2(env):
    project = env / "project-broken"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, project / name)
    (packaged,) = (env / "env").rglob("ml_platform/infra/kubernetes-versions.yaml")
    original = packaged.read_text()
    try:
        packaged.write_text(original.replace("version: v1.22.4-eksbuild.3", "version: v1.22.4"))
        result = run(env, "ml-platform", "plan", "--stack", "dev", cwd=project)
    finally:
        packaged.write_text(original)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "kubernetes-versions.yaml breaks its schema" in result.stderr and "addons.vpc-cni.version 'v1.22.4'" in result.stderr
