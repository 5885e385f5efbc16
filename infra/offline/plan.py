"""Run the real program under the mock runtime and turn what it registered into a plan on disk.

Layout of a plan directory (see ../shared/DESIGN.md):
- plan.json: every resource sorted by URN with its inputs (secrets masked), dependencies, parent,
  provider and options, plus the stack outputs;
- manifests/: each Kubernetes object declared directly, one YAML file each; Helm releases under helm/.
"""

from __future__ import annotations

import json
import logging
import os
import runpy
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.settings
import yaml

from ml_platform.infra.config import PROJECT
from ml_platform.infra.offline import capacity, deploy_time, plan_cache, stack_files
from ml_platform.infra.offline.ec2_estate import Ec2Estate
from ml_platform.infra.offline.mocks import SECRET, PlatformMocks, RecordingMonitor, plain
from ml_platform.infra.offline.secrets import is_masked, masked
from ml_platform.infra.offline.stack_files import RawStackConfig

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


@dataclass
class Plan:
    stack: str
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    project: str = PROJECT

    def to_json(self) -> str:
        document = {"stack": self.stack, "project": self.project, "resources": self.resources, "outputs": self.outputs}
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    def by_type(self, type_token: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_token]

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Kubernetes objects by their file path under manifests/."""
        files = {}
        for resource in self.resources:
            token = resource["type"]
            if not token.startswith("kubernetes:") or not resource["custom"]:
                continue
            body = resource["inputs"]
            if token == HELM_RELEASE:
                files[f"helm/{body.get('name', resource['name'])}.yaml"] = body
                continue
            if body.get("kind") == "Secret":
                # Pulumi masks a Secret's whole payload; keep it an object so the manifest stays a valid Secret.
                body = {**body, **{key: {SECRET: SECRET} for key in ("data", "stringData") if is_masked(body.get(key))}}
            metadata = body.get("metadata", {})
            namespace = metadata.get("namespace", "_cluster")
            files[f"{namespace}/{body['kind']}-{metadata.get('name', resource['name'])}.yaml"] = body
        return dict(sorted(files.items()))


class _WarningLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run(
    stack: str, raw: RawStackConfig, program: Callable[[], None] | None = None, project: str = PROJECT, estate: Ec2Estate | None = None
) -> Plan:
    """Run `program` (default: the platform's) of Pulumi project `project` for `stack` under the mock runtime
    (PlatformMocks: AWS answers as the real services shape them) and return its plan. `estate`: the EC2
    networking an existing VPC's lookups are answered from; default: one assumed from the stack's network
    config (Ec2Estate.assumed), which the plan's warnings say. With $ML_PLATFORM_PLAN_CACHE set, a plan of the
    platform's own program with an assumed estate is read from, or written to, the on-disk cache (plan_cache)."""
    cache = plan_cache.directory() if program is None and estate is None else None
    if cache is not None:
        name = plan_cache.key(stack, project, raw)
        cached = plan_cache.load(cache, name)
        if cached is not None:
            return Plan(**cached)
        fresh = _run(stack, raw, None, project, None)
        plan_cache.store(cache, name, asdict(fresh))
        return fresh
    return _run(stack, raw, program, project, estate)


def _run(stack: str, raw: RawStackConfig, program: Callable[[], None] | None, project: str, estate: Ec2Estate | None) -> Plan:
    if program is None:
        from ml_platform.infra.program import main as program

    region = raw.values.get("aws:region", "us-east-1")
    estate = estate or _assumed_estate(raw, region)
    mocks = PlatformMocks(region, estate)
    monitor = RecordingMonitor(mocks)
    logger = logging.getLogger(f"ml-platform.plan.{stack}")
    logger.propagate = False
    handler = _WarningLog()
    logger.handlers = [handler]

    # A fresh root stack per run, so runs in one process never share outputs.
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_all_config(dict(raw.values), list(raw.secret_keys))
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, logger=logger, monitor=monitor)
    outputs: dict[str, Any] = {}

    async def collect() -> None:
        root = pulumi.runtime.settings.get_root_resource()
        for name, value in sorted(root.outputs.items()):
            output = pulumi.Output.from_input(value)
            outputs[name] = masked(plain(await output.future())) if await output.is_secret() else plain(await output.future())

    @pulumi.runtime.test
    def execute():
        program()
        return pulumi.Output.from_input(None).apply(lambda _: collect())

    # The engine runs the program in the project directory; so does the plan, when it knows the directory.
    previous = Path.cwd()
    if raw.directory is not None:
        os.chdir(raw.directory)
    try:
        execute()
    finally:
        os.chdir(previous)
    resources = sorted(monitor.records, key=lambda r: r["urn"])
    return Plan(
        stack=stack,
        resources=resources,
        outputs=outputs,
        warnings=sorted(
            {*handler.messages, *raw.notes, *(estate.notes if estate else ()), *(f"placeholder {p.line()}" for p in raw.placeholders)}
        ),
        project=project,
    )


def _assumed_estate(raw: RawStackConfig, region: str) -> Ec2Estate | None:
    """The VPC the offline plan assumes for a stack given an existing one (network.vpcId); None otherwise, or
    when the config is too broken to read (the program then reports it)."""
    try:
        network = json.loads(raw.values.get(f"{PROJECT}:network", "{}"))
        cluster = json.loads(raw.values.get(f"{PROJECT}:cluster", "{}"))
    except ValueError:
        return None
    if not isinstance(network, dict) or not isinstance(network.get("vpcId"), str):
        return None
    cluster = cluster if isinstance(cluster, dict) else {}
    avoid = [c for key in ("privateAccessCidrs", "publicAccessCidrs") for c in cluster.get(key) or [] if isinstance(c, str)]
    try:
        return Ec2Estate.assumed(network, region, avoid)
    except (ValueError, TypeError):
        return None


def plan_program(project_dir: Path, stack: str) -> Plan:
    """The offline plan of any Pulumi Python program, such as one that uses ml_platform.components: its
    Pulumi.yaml (`name`, and `main`, default the project directory) and Pulumi.<stack>.yaml are read as the
    Pulumi CLI merges them, and its entry point runs as Pulumi's language host runs it (`__main__.py` with the
    program directory first on sys.path, the project directory as working directory) under the mock runtime.

    Raises StackFileError for a missing or unreadable Pulumi.yaml or stack file; whatever the program raises
    (a pulumi.RunError for a failed resource) propagates."""
    project_dir = project_dir.resolve()
    project = stack_files.project_name(project_dir, expected=None)
    raw = stack_files.read_stack(stack, project_dir, project=project)
    main = stack_files.load_yaml(project_dir / "Pulumi.yaml").get("main") or "."
    entry = (project_dir / main).resolve()
    if not (entry / "__main__.py").is_file() and not entry.is_file():
        raise stack_files.StackFileError(f"{project_dir / 'Pulumi.yaml'}: main {main!r} has no __main__.py")

    def program() -> None:
        previous = Path.cwd()
        os.chdir(project_dir)
        try:
            runpy.run_path(str(entry), run_name="__main__")
        finally:
            os.chdir(previous)

    return run(stack, raw, program, project=project)


def write(plan: Plan, out_dir: Path) -> None:
    """Write plan.json and manifests/ into out_dir, replacing what an earlier run left there only once the new
    plan is whole (written beside it first): a failed write (OSError) leaves the earlier plan as it was."""
    staging = out_dir.with_name(f".{out_dir.name}.writing")
    try:
        if staging.exists():
            shutil.rmtree(staging)
        (staging / "manifests").mkdir(parents=True)
        (staging / "plan.json").write_text(plan.to_json())
        for relative, body in plan.manifests().items():
            path = staging / "manifests" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(body, sort_keys=True, default_flow_style=False))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def component_of(resource: dict[str, Any], by_urn: dict[str, dict[str, Any]]) -> str:
    """The top-level component a resource belongs to (`-` for resources directly under the stack)."""
    current = resource
    top = None
    while current is not None:
        if not current["custom"]:
            top = current
        current = by_urn.get(current["parent"])
    return f"{top['name']} ({top['type'].split(':')[-1]})" if top else "-"


def summary(plan: Plan, violations: list[str], contract_gaps: list[str] = (), pools: list[capacity.PoolCapacity] = ()) -> str:
    """The terminal summary: the first deploy's estimated time and critical path (deploy_time), resources per
    component, protected resources, warnings, policy results, the
    managed pools' capacity against the platform's pods (infra/offline/capacity.py), and the problems that
    fail the plan: the controller contract's gaps and pools too small."""
    by_urn = {r["urn"]: r for r in plan.resources}
    custom = [r for r in plan.resources if r["custom"] and not r["type"].startswith("pulumi:providers:")]
    counts = Counter(component_of(r, by_urn) for r in custom)
    width = max((len(name) for name in counts), default=10)
    lines = [f"Offline plan of stack '{plan.stack}': {len(custom)} resources", deploy_time.estimate(plan.resources).line()]
    lines += ["", f"{'component':<{width}}  resources"]
    lines += [f"{name:<{width}}  {count:>9}" for name, count in sorted(counts.items())]
    protected = [f"{r['type']}  {r['name']}" for r in custom if r["protect"]]
    lines += _section("protected", protected) + _section("warnings", plan.warnings) + _section("policy violations", violations)
    lines += _section("capacity at minimum size (platform pods)", [p.line() for p in pools])
    lines += _section("controller and capacity problems", list(contract_gaps))
    return "\n".join(lines)


def _section(title: str, items: list[str]) -> list[str]:
    if not items:
        return ["", f"{title}: none"]
    return ["", f"{title} ({len(items)}):"] + [f"  {item}" for item in items]
