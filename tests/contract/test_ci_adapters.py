"""The GitLab CI, Azure Pipelines and Jenkins adapters of the delivery core (issue #20), checked offline: each file
against its system's schema (check-jsonschema) or linter (npm-groovy-lint); every step the GitHub workflows perform
present in each adapter (derived from the workflows, so a step added there and not here fails); no stored AWS keys;
AWS through each system's OIDC token with the right audience; stack operations serialised per stack and never
interruptible or cancelled. Each check is also shown a broken copy it must reject.

The external tools run once per file set (module-scoped fixtures); the Jenkinsfile lint (a JVM, about 8 s) starts in
the background when the module's first test runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, tool

GITLAB = ROOT / ".gitlab-ci.yml"
AZURE = ROOT / "azure-pipelines.yml"
AZURE_TEMPLATES = sorted((ROOT / "ci" / "azure").glob("*.yml"))
JENKINSFILE = ROOT / "Jenkinsfile"
GITHUB = sorted((ROOT / ".github" / "workflows").glob("*.yml")) + sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
GROOVY_LINT = ROOT / "ci" / "lint" / "node_modules" / ".bin" / "npm-groovy-lint"
GROOVY_LINT_CONFIG = ROOT / "ci" / "lint"

# The core's steps (`python -m infra ci <step>`, the contract's table); those that operate on a stack.
CORE_STEPS = {"plan-diff", "comment", "preview", "deploy", "preview-stack", "sweep", "reproduce"}
STACK_STEPS = {"preview", "deploy", "preview-stack", "sweep", "reproduce"}
OVERRIDE_LABEL = "approve-stateful-replacement"


# --- what a CI file runs -------------------------------------------------------------------------------------------

CORE_CALL = re.compile(r"-m infra ci ([a-z][a-z-]*)")
MAKE_CALL = re.compile(r"(?<![\w./-])make\s+(?:-C\s+\S+\s+)?([a-z][\w-]*)")


def operations(script: str) -> set[str]:
    """The `python -m infra ci` steps, `make` targets, platform-image publications and image builds a script runs
    (shell comment lines ignored)."""
    text = "\n".join(line for line in script.splitlines() if not line.strip().startswith("#"))
    found = {f"ci {step}" for step in CORE_CALL.findall(text)} | {f"make {target}" for target in MAKE_CALL.findall(text)}
    if "publish-image.sh" in text:
        found.add("publish-image.sh")
    if re.search(r"\bdocker build\b", text):
        found.add("docker build")
    return found


def strings(node: Any) -> list[str]:
    """Every string of a parsed YAML document (its comments are gone)."""
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in strings(key) + strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def github_operations() -> set[str]:
    found: set[str] = set()
    for path in GITHUB:
        document = yaml.safe_load(path.read_text())
        steps = document["runs"]["steps"] if "runs" in document else [s for job in document["jobs"].values() for s in job.get("steps", [])]
        # The workflows call the core for every delivery step (tests/contract/test_workflows.py checks that no other
        # `python -m infra`, `pulumi` or `gh` call is left), so their core calls are the steps to match.
        for step in steps:
            found |= operations(step.get("run", ""))
            found |= {f"ci {s}" for s in CORE_CALL.findall(json.dumps(step.get("with", {})))}
    return found


def jenkins_code(text: str) -> str:
    """The Jenkinsfile without its `//` comment lines."""
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))


# --- GitLab: `extends` and `!reference` resolved as GitLab does ----------------------------------------------------


class Reference(list):
    """A `!reference [job, key, ...]` tag."""


class GitLabLoader(yaml.SafeLoader):
    pass


GitLabLoader.add_constructor("!reference", lambda loader, node: Reference(loader.construct_sequence(node)))


def load_gitlab(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=GitLabLoader)  # a SafeLoader with one extra tag


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def gitlab_jobs(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pipeline's jobs (hidden ones and keywords left out) with `extends` and `!reference` resolved."""
    keywords = {"workflow", "stages", "variables", "default", "include", "image", "services", "cache", "before_script", "after_script"}

    def extended(name: str) -> dict[str, Any]:
        job = document[name]
        parents = job.get("extends", [])
        merged: dict[str, Any] = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            merged = deep_merge(merged, extended(parent))
        return deep_merge(merged, {k: v for k, v in job.items() if k != "extends"})

    def resolve(node: Any, depth: int = 0) -> Any:
        assert depth < 10, "!reference nested too deep"
        if isinstance(node, Reference):
            target: Any = extended(node[0])
            for key in node[1:]:
                target = target[key]
            return resolve(target, depth + 1)
        if isinstance(node, list):
            flat: list[Any] = []
            for item in node:
                item = resolve(item, depth)
                flat.extend(item if isinstance(item, list) else [item])
            return flat
        if isinstance(node, dict):
            return {k: resolve(v, depth) for k, v in node.items()}
        return node

    return {name: resolve(extended(name)) for name in document if not name.startswith(".") and name not in keywords}


def gitlab_script(job: dict[str, Any]) -> str:
    return "\n".join(job.get("before_script", []) + job.get("script", []))


# --- stored keys ---------------------------------------------------------------------------------------------------

KEY_NAME = re.compile(r"aws_(access_key_id|secret_access_key|session_token)", re.IGNORECASE)
KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
# The only line that may name the key variables: the STS exchange's short-lived credentials (`set -- $credentials`,
# POSIX: the images jobs run in an Alpine shell), exported.
EXCHANGE_LINES = {'export AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2" AWS_SESSION_TOKEN="$3"'}
EXCHANGE = 'credentials=$(aws sts assume-role-with-web-identity --role-arn "$ROLE_TO_ASSUME" --web-identity-token'
# Jenkins and Azure ways to hand a job stored AWS keys.
KEY_BINDINGS = re.compile(
    r"AmazonWebServicesCredentialsBinding|\bwithAWS\s*\(|\baws\s*\(\s*credentials|\bawsCredentials\s*:|AWSShellScript@"
)
JENKINS_CREDENTIALS = {"aws-oidc-token", "ci-comment-token"}


def stored_key_problems(text: str, name: str) -> list[str]:
    problems = [f"{name}: an AWS access key id ({m.group(0)[:4]}...)" for m in KEY_ID.finditer(text)]
    problems += [f"{name}: a stored-key binding ({m.group(0)})" for m in KEY_BINDINGS.finditer(text)]
    exchange_lines = 0
    for number, line in enumerate(text.splitlines(), 1):
        if KEY_NAME.search(line):
            if line.strip() in EXCHANGE_LINES:
                exchange_lines += 1
            else:
                problems.append(f"{name}:{number}: names an AWS key outside the OIDC exchange: {line.strip()}")
    if exchange_lines and (EXCHANGE not in text or "set -- $credentials" not in text):
        problems.append(f"{name}: AWS key variables set from something other than `aws sts assume-role-with-web-identity`")
    if name == "Jenkinsfile":
        problems += [
            f"Jenkinsfile: credential {c!r} is neither the OIDC token file nor the comment token"
            for c in re.findall(r"credentialsId:\s*'([^']+)'", text)
            if c not in JENKINS_CREDENTIALS
        ]
        if re.search(r"\bcredentials\(", text):
            problems.append("Jenkinsfile: credentials() in `environment` (a stored secret)")
    return problems


# --- serialisation -------------------------------------------------------------------------------------------------


def gitlab_serialisation_problems(document: dict[str, Any]) -> list[str]:
    """Every stack operation holds its stack's resource group and is never interruptible; newer pipelines cancel
    only interruptible jobs."""
    problems = []
    if document.get("workflow", {}).get("auto_cancel", {}).get("on_new_commit", "conservative") not in ("interruptible", "none"):
        problems.append("workflow.auto_cancel.on_new_commit must be `interruptible` or `none`")
    for name, job in gitlab_jobs(document).items():
        steps = set(CORE_CALL.findall(gitlab_script(job))) & STACK_STEPS
        if not steps:
            continue
        variables = job.get("variables", {})
        if job.get("interruptible") is not False:
            problems.append(f"{name}: a stack operation must set `interruptible: false`")
        expected = {
            "preview": f"stack-{variables.get('STACK')}",
            "deploy": f"stack-{variables.get('STACK')}",
            "preview-stack": "stack-pr-$CI_MERGE_REQUEST_IID",
            "reproduce": "stack-$REPRODUCE_AS",
            "sweep": job.get("resource_group") or "a resource group",
        }
        for step in steps:
            if job.get("resource_group") != expected[step]:
                problems.append(f"{name}: `ci {step}` needs resource_group {expected[step]}, has {job.get('resource_group')}")
    return problems


def azure_stack_operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameters of every use of ci/azure/stack-operation.yml, with the stage's name."""
    return [
        {**job["parameters"], "stage": stage["stage"]}
        for stage in document["stages"]
        for job in stage["jobs"]
        if job.get("template") == "ci/azure/stack-operation.yml"
    ]


def azure_serialisation_problems(document: dict[str, Any], template: dict[str, Any]) -> list[str]:
    """Stack operations are deployment jobs bound to an environment (each with an Exclusive lock check); runs queue
    in order (`lockBehavior: sequential`) and a newer push never cancels a running build."""
    problems = []
    if document.get("lockBehavior") != "sequential":
        problems.append("lockBehavior must be `sequential` (runLatest cancels queued runs)")
    if str(document.get("pr", {}).get("autoCancel", "true")).lower() != "false":
        problems.append("pr.autoCancel must be false")
    job = template["jobs"][0]
    if "deployment" not in job or job.get("environment") != "${{ parameters.environment }}":
        problems.append("stack-operation.yml must be a deployment job bound to its `environment`")
    for stage in document["stages"]:
        for plain in stage["jobs"]:
            if "template" in plain:
                continue
            scripts = "\n".join(strings(plain))
            for step in set(CORE_CALL.findall(scripts)) & (STACK_STEPS - {"preview"}):
                problems.append(f"{stage['stage']}.{plain.get('job')}: `ci {step}` outside a deployment job")
    return problems


def _innermost_call(code: str, at: int) -> str:
    """The name of the innermost call whose parentheses enclose `at` ("" when none)."""
    depth = 0
    for k in range(at - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(code[k], 0)
        if depth < 0:
            return re.search(r"(\w*)$", code[:k]).group(1)
    return ""


def jenkins_serialisation_problems(text: str) -> list[str]:
    """Every stack operation inside its stack's lock (onStack, or deployUnlessSuperseded for main's deploys); no newer
    build aborts a running one; builds of a branch may run side by side (a build waiting for prod's approval must not
    hold up the next), so main's deploys skip themselves when a newer commit's build exists."""
    code = jenkins_code(text)
    problems = []
    for function in ("void onStack(", "void deployUnlessSuperseded("):
        body = code[code.find(function) : code.find("\n}\n", code.find(function))]
        if function not in code or 'lock(resource: "stack-${stack}")' not in body:
            problems.append(f'{function[5:-1]} must hold lock(resource: "stack-${{stack}}")')
    if "if (!superseded())" not in code:
        problems.append("deployUnlessSuperseded must skip a deploy a newer commit's build supersedes")
    if re.search(r"abortPrevious:\s*true|\bmilestone\b", code):
        problems.append("a newer build must never abort a running one (abortPrevious, milestone)")
    if "disableConcurrentBuilds" in code:
        problems.append("disableConcurrentBuilds: a build waiting for prod's approval would hold up every later build of main")
    deploy_function = code.find("void deployUnlessSuperseded(")
    deploy_body = range(deploy_function, code.find("\n}\n", deploy_function))
    for match in re.finditer(r"-m infra ci (deploy|preview|preview-stack|reproduce)\b", code):
        if _innermost_call(code, match.start()) != "onStack" and match.start() not in deploy_body:
            line = code.count("\n", 0, match.start()) + 1
            problems.append(f"Jenkinsfile:{line}: `ci {match.group(1)}` outside onStack (no stack lock)")
    for call in re.findall(r"ci deploy --stack (\w+)", code):
        problems.append(f"Jenkinsfile: `ci deploy --stack {call}` directly: main's deploys go through deployUnlessSuperseded")
    return problems


# --- external tools, once per file set -----------------------------------------------------------------------------


def check_schema(schema: str, paths: list[Path]) -> subprocess.CompletedProcess:
    command = [tool("check-jsonschema"), "--builtin-schema", schema, "--data-transform", schema.removeprefix("vendor.")]
    if schema == "vendor.azure-pipelines":
        command += ["--regex-variant", "python"]  # the default regex variant crashes on this schema
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True, timeout=120)


def broken_gitlab(text: str) -> str:
    """A rule's `when` that GitLab does not know."""
    broken = text.replace("      when: manual\n      allow_failure: false\n", "      when: later\n      allow_failure: false\n", 1)
    assert broken != text
    return broken


def broken_azure(text: str) -> str:
    """lockBehavior takes sequential or runLatest only."""
    broken = text.replace("lockBehavior: sequential", "lockBehavior: whenFree")
    assert broken != text
    return broken


@pytest.fixture(scope="module")
def schema_results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("schemas")
    gitlab_broken, azure_broken = folder / "gitlab-broken.yml", folder / "azure-broken.yml"
    gitlab_broken.write_text(broken_gitlab(GITLAB.read_text()))
    azure_broken.write_text(broken_azure(AZURE.read_text()))
    return {
        "gitlab": check_schema("vendor.gitlab-ci", [GITLAB]),
        "gitlab-broken": check_schema("vendor.gitlab-ci", [gitlab_broken]),
        # The templates are pipeline documents too (parameters + steps or jobs): the same schema validates them.
        "azure": check_schema("vendor.azure-pipelines", [AZURE, *AZURE_TEMPLATES]),
        "azure-broken": check_schema("vendor.azure-pipelines", [azure_broken]),
    }


def java_major() -> int:
    java = shutil.which("java")
    if java is None:
        return 0
    version = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    match = re.search(r'version "(\d+)', version)
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module", autouse=True)
def groovy_lint_run(tmp_path_factory):
    """Starts npm-groovy-lint once, on the Jenkinsfile and a copy with a syntax error, each alone in a folder (its base
    folder is the files' common parent: never let that be / or the repository, which it would scan). CodeNarc runs
    on the machine's Java (17 to 24): with another, npm-groovy-lint would download a JRE, so the test fails instead."""
    if not GROOVY_LINT.exists():
        yield None
        return
    if not 17 <= java_major() <= 24:
        yield "java"
        return
    folder = tmp_path_factory.mktemp("groovy-lint")
    (folder / "ok").mkdir()
    (folder / "broken").mkdir()
    shutil.copy(JENKINSFILE, folder / "ok" / "Jenkinsfile")
    (folder / "broken" / "Jenkinsfile").write_text(JENKINSFILE.read_text().replace("pipeline {\n", "pipeline {{\n", 1))
    command = [str(GROOVY_LINT), "--noserver", "--failon", "error", "--config", str(GROOVY_LINT_CONFIG), "--output", "json"]
    process = subprocess.Popen(
        [*command, "ok/Jenkinsfile", "broken/Jenkinsfile"], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def groovy_lint(groovy_lint_run) -> tuple[int, dict[str, list[dict]]]:
    if groovy_lint_run is None:
        pytest.fail(f"{GROOVY_LINT.relative_to(ROOT)} not found: run `make groovy-lint` (make test does)")
    if groovy_lint_run == "java":
        pytest.fail("npm-groovy-lint needs Java 17 to 24 on PATH (else it downloads one): install openjdk-17-jre-headless")
    stdout, stderr = groovy_lint_run.communicate(timeout=300)
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"npm-groovy-lint gave no JSON report (exit {groovy_lint_run.returncode}): {stdout[-2000:]}{stderr[-2000:]}")
    files = {Path(path).parent.name: result["errors"] for path, result in report["files"].items()}
    return groovy_lint_run.returncode, files


# --- the tests -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gitlab() -> dict[str, Any]:
    return load_gitlab(GITLAB.read_text())


@pytest.fixture(scope="module")
def azure() -> dict[str, Any]:
    return yaml.safe_load(AZURE.read_text())


@pytest.fixture(scope="module")
def azure_template() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "ci" / "azure" / "stack-operation.yml").read_text())


def test_the_adapters_exist():
    assert [p.name for p in AZURE_TEMPLATES] == ["aws.yml", "stack-operation.yml"]
    assert GITLAB.exists() and AZURE.exists() and JENKINSFILE.exists()


def test_github_operations_are_derived_from_the_workflows():
    found = github_operations()
    # every core step, the venv and the offline plans, the platform images and their pull-request build
    assert {f"ci {step}" for step in CORE_STEPS} | {"make venv", "make plans", "publish-image.sh", "docker build"} <= found


ADAPTERS = {
    "gitlab": lambda: operations("\n".join(strings(load_gitlab(GITLAB.read_text())))),
    "azure": lambda: operations("\n".join(s for p in [AZURE, *AZURE_TEMPLATES] for s in strings(yaml.safe_load(p.read_text())))),
    "jenkins": lambda: operations(jenkins_code(JENKINSFILE.read_text())),
}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_every_step_the_github_workflows_perform_is_in_the_adapter(adapter):
    missing = github_operations() - ADAPTERS[adapter]()
    assert not missing, f"{adapter} lacks what the GitHub workflows run: {sorted(missing)}"
    assert set(CORE_CALL.findall(json.dumps(sorted(ADAPTERS[adapter]())))) <= CORE_STEPS, "a step the core does not have"


def test_the_parity_check_notices_a_step_added_to_github_only():
    added = operations("venv/bin/python -m infra ci drift-report --stack prod\nmake images")
    assert added == {"ci drift-report", "make images"}
    assert added - ADAPTERS["gitlab"]() == added
    # comments and shell comments are not calls
    assert operations("# make clean\n  # python -m infra ci deploy") == set()


def test_gitlab_matches_its_schema(schema_results):
    result = schema_results["gitlab"]
    assert result.returncode == 0, result.stdout + result.stderr


def test_azure_pipeline_and_templates_match_the_schema(schema_results):
    result = schema_results["azure"]
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schemas_reject_a_broken_copy(schema_results):
    gitlab, azure = schema_results["gitlab-broken"], schema_results["azure-broken"]
    assert gitlab.returncode == 1 and "later" in gitlab.stdout, gitlab.stdout + gitlab.stderr
    assert azure.returncode == 1 and "whenFree" in azure.stdout, azure.stdout + azure.stderr


@pytest.mark.parametrize("path", [GITLAB, AZURE, *AZURE_TEMPLATES, JENKINSFILE], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_holds_stored_aws_keys(path):
    assert stored_key_problems(path.read_text(), path.name) == []


def test_the_key_check_rejects_stored_keys():
    gitlab = GITLAB.read_text().replace("  AWS_REGION: us-west-2\n", "  AWS_REGION: us-west-2\n  AWS_SECRET_ACCESS_KEY: $AWS_KEY\n")
    assert [p.split(": ", 1)[1] for p in stored_key_problems(gitlab, "gitlab")] == [
        "names an AWS key outside the OIDC exchange: AWS_SECRET_ACCESS_KEY: $AWS_KEY"
    ]
    azure = AZURE.read_text() + "\n# aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
    assert stored_key_problems(azure, "azure") == [
        "azure: an AWS access key id (AKIA...)",
        f"azure:{azure.count(chr(10))}: names an AWS key outside the OIDC exchange: # aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    ]
    jenkins = JENKINSFILE.read_text().replace(
        "withCredentials([file(credentialsId: 'aws-oidc-token', variable: 'AWS_ID_TOKEN_FILE')])",
        "withAWS(credentials: 'aws-keys')",
    )
    assert stored_key_problems(jenkins, "Jenkinsfile") == ["Jenkinsfile: a stored-key binding (withAWS()"]
    keys_from_elsewhere = 'set -- $KEYS\nexport AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2" AWS_SESSION_TOKEN="$3"\n'
    assert stored_key_problems(keys_from_elsewhere, "x") == [
        "x: AWS key variables set from something other than `aws sts assume-role-with-web-identity`"
    ]


def test_gitlab_reaches_aws_through_its_id_token_for_sts(gitlab):
    jobs = gitlab_jobs(gitlab)
    with_aws = {name for name, job in jobs.items() if "assume-role-with-web-identity" in gitlab_script(job)}
    assert with_aws == {name for name, job in jobs.items() if set(CORE_CALL.findall(gitlab_script(job))) & STACK_STEPS} | {
        "images:staging",
        "images:prod",
    }
    for name in with_aws:
        assert jobs[name]["id_tokens"] == {"AWS_ID_TOKEN": {"aud": "sts.amazonaws.com"}}, name
        assert '--web-identity-token "$AWS_ID_TOKEN"' in gitlab_script(jobs[name]) and jobs[name]["variables"]["ROLE_TO_ASSUME"]
    # the plan diff runs every MR's code, forks' included: no ID token there
    assert "id_tokens" not in jobs["plan-diff"] and "id_tokens" not in jobs["images:check"]
    deploy_roles = {jobs[n]["variables"]["ROLE_TO_ASSUME"] for n in ("deploy:staging", "deploy:prod", "reproduce", "images:prod")}
    assert deploy_roles == {"$AWS_ROLE_ARN"}, "environment-scoped: staging's and prod's own role"
    assert {jobs[n]["environment"]["name"] for n in ("deploy:staging", "deploy:prod")} == {"staging", "prod"}


def test_azure_exchanges_the_pipeline_oidc_token_with_sts(azure):
    reference, step = yaml.safe_load((ROOT / "ci" / "azure" / "aws.yml").read_text())["steps"]
    # the job names its service connection in a task input, so Azure DevOps issues that connection's token (and runs
    # its checks); a name known when the run compiles, passed through from a YAML variable, never a variable group's
    assert reference["task"] == "AzureCLI@2" and reference["inputs"]["azureSubscription"] == "${{ parameters.serviceConnection }}"
    script = step["bash"]
    assert "--duration-seconds 14400" in script
    assert '"$(System.OidcRequestUri)?api-version=7.1&serviceConnectionId=$SERVICE_CONNECTION_ID"' in script
    assert '-H "Authorization: Bearer $SYSTEM_ACCESSTOKEN"' in script and "curl -sS -X POST" in script
    assert step["env"]["SYSTEM_ACCESSTOKEN"] == "$(System.AccessToken)"
    assert '--web-identity-token "$token"' in script and EXCHANGE.split(" --web")[0] in script
    assert "##vso[task.setsecret]$token" in script, "the token is masked in the log"
    # each role with its own service connection (the token's subject); prod's only in the prod environment
    operations_ = azure_stack_operations(azure)
    names = {v["name"]: v["value"] for v in azure["variables"] if "name" in v}
    for operation in operations_:
        role, connection = operation["roleArn"], operation["serviceConnectionId"]
        assert role.removeprefix("$(AWS_").split("_")[0] == connection.removeprefix("$(AWS_").split("_")[0], operation["name"]
        environment = role.removeprefix("$(AWS_").split("_")[0].lower()
        variable = f"aws{environment.capitalize()}Connection"
        assert operation["serviceConnection"] == "${{ variables." + variable + " }}" and names[variable] == f"aws-{environment}"
        if "PROD" in role:
            assert operation["environment"] == "prod", operation["name"]
    # plain jobs reach AWS only for the read-only preview
    for stage in azure["stages"]:
        for job in stage["jobs"]:
            uses_aws = any(step.get("template") == "ci/azure/aws.yml" for step in job.get("steps", []))
            assert not uses_aws or job.get("job") == "pulumi_preview", job


def test_jenkins_reaches_aws_through_the_oidc_token_file():
    code = jenkins_code(JENKINSFILE.read_text())
    assert "withCredentials([file(credentialsId: 'aws-oidc-token', variable: 'AWS_ID_TOKEN_FILE')])" in code
    assert 'withEnv(["ROLE_TO_ASSUME=${roleArn}"])' in code and "sh(assumeRole() + command)" in code
    # exchanged in the command's own shell, for the roles' 4 hours (a deploy outlasts STS's default hour)
    assert '--web-identity-token "$(cat "$AWS_ID_TOKEN_FILE")"' in code and "--duration-seconds 14400" in code
    # every AWS call goes through withAws, with the preview role on change requests, each environment's otherwise
    roles = re.findall(r"(?:onStack\([^,]+|withAws\(|publishImages\([^,]+|deployUnlessSuperseded\([^,]+),\s*(env\.AWS_\w+_ROLE_ARN)", code)
    roles += re.findall(r"withAws\((env\.AWS_\w+_ROLE_ARN)", code)
    assert set(roles) == {"env.AWS_PREVIEW_ROLE_ARN", "env.AWS_STAGING_ROLE_ARN", "env.AWS_PROD_ROLE_ARN"}
    assert re.search(r"deployUnlessSuperseded\('prod', env\.AWS_PROD_ROLE_ARN\)", code)


def test_jenkins_installs_the_pinned_pulumi_and_an_aws_cli():
    code = jenkins_code(JENKINSFILE.read_text())
    setup = code[code.index("void setUp()") : code.index("\n}\n", code.index("void setUp()"))]
    # an agent's own Pulumi of another version is not used: the pinned one is installed into the workspace
    assert 'want="$(cat .pulumi.version)"' in setup and 'if [ "${have#v}" != "$want" ]' in setup
    assert '--install-root "$PWD/.pulumi"' in setup
    assert "grep -E '^awscli' requirements-tools.txt" in setup
    assert 'withEnv(["PATH+TOOLS=${env.WORKSPACE}/.pulumi/bin:${env.WORKSPACE}/.aws-cli/bin"])' in code
    stages = re.findall(r"stage\('([^']+)'\) \{\n(?:(?!stage\().)*?agent any", code, re.S)
    assert stages == ["Build, plan, staging", "Deploy prod", "Images into prod"]
    for stage in stages[1:]:
        body = code[code.index(f"stage('{stage}')") :]
        assert body.index("setUp()") < body.index("publishImages(" if "Images" in stage else "deployUnlessSuperseded("), stage


def _braced(code: str, opening: int) -> str:
    """The text between the brace at `opening` and its match (braces inside strings counted too: fine for this file)."""
    depth = 0
    for k in range(opening, len(code)):
        depth += {"{": 1, "}": -1}.get(code[k], 0)
        if depth == 0:
            return code[opening + 1 : k]
    raise AssertionError("unbalanced braces")


def test_jenkins_binds_the_comment_token_only_where_no_change_code_runs():
    code = jenkins_code(JENKINSFILE.read_text())
    plan = code[code.index("stage('Plan diff')") : code.index("stage('Image check')")]
    blocks = [_braced(plan, m.end() - 1) for m in re.finditer(r"withCommentToken \{", plan)]
    assert len(blocks) == 2, "the labels' read and the comment's post"
    assert "curl" in blocks[0] and "ci comment" in blocks[1]
    for block in blocks:
        assert "make" not in block and "ci plan-diff" not in block, block[:300]
    assert "make plans" in plan and all("make plans" not in block for block in blocks)
    assert '[ "$CI_HOST" != azure ] || scheme="--token-scheme basic"' in plan, "Jenkins holds a PAT: Basic for Azure DevOps"


def test_gitlab_serialises_stack_operations_and_never_interrupts_them(gitlab):
    assert gitlab_serialisation_problems(gitlab) == []
    jobs = gitlab_jobs(gitlab)
    assert jobs["plan-diff"]["interruptible"] is True, "the plan diff alone may be cancelled by a newer push"
    assert {jobs[f"preview:{s}"]["resource_group"] for s in ("dev", "staging", "prod")} == {"stack-dev", "stack-staging", "stack-prod"}


def test_gitlab_serialisation_check_rejects_a_missing_group_and_an_interruptible_deploy(gitlab):
    broken = load_gitlab(GITLAB.read_text())
    del broken["deploy:prod"]["resource_group"]
    broken[".stack"]["interruptible"] = True
    broken["workflow"]["auto_cancel"]["on_new_commit"] = "conservative"
    problems = gitlab_serialisation_problems(broken)
    assert "deploy:prod: `ci deploy` needs resource_group stack-prod, has None" in problems
    assert "deploy:staging: a stack operation must set `interruptible: false`" in problems
    assert "workflow.auto_cancel.on_new_commit must be `interruptible` or `none`" in problems


def test_azure_serialises_stack_operations_and_never_cancels_them(azure, azure_template):
    assert azure_serialisation_problems(azure, azure_template) == []
    environments = {op["name"]: op["environment"] for op in azure_stack_operations(azure)}
    assert environments["deploy_staging"] == "staging" and environments["deploy_prod"] == "prod"
    assert {environments[n] for n in ("preview_stack", "destroy_preview_stack", "sweep")} == {"previews"}
    broken = yaml.safe_load(AZURE.read_text().replace("lockBehavior: sequential", "lockBehavior: runLatest"))
    broken["pr"]["autoCancel"] = True
    broken["stages"][0]["jobs"].append({"job": "deploy_dev", "steps": [{"bash": "venv/bin/python -m infra ci deploy --stack dev"}]})
    assert azure_serialisation_problems(broken, azure_template) == [
        "lockBehavior must be `sequential` (runLatest cancels queued runs)",
        "pr.autoCancel must be false",
        "pull_request.deploy_dev: `ci deploy` outside a deployment job",
    ]


def test_jenkins_locks_each_stack_and_never_aborts_a_build():
    text = JENKINSFILE.read_text()
    assert jenkins_serialisation_problems(text) == []
    broken = text.replace("buildDiscarder(", "disableConcurrentBuilds(abortPrevious: true)\n        buildDiscarder(").replace(
        "deployUnlessSuperseded('prod', env.AWS_PROD_ROLE_ARN)",
        "withAws(env.AWS_PROD_ROLE_ARN, '$PY -m infra ci deploy --stack prod')",
    )
    problems = jenkins_serialisation_problems(broken)
    assert problems[0] == "a newer build must never abort a running one (abortPrevious, milestone)"
    assert problems[1].startswith("disableConcurrentBuilds: ")
    assert problems[2].endswith("`ci deploy` outside onStack (no stack lock)")
    assert problems[3] == "Jenkinsfile: `ci deploy --stack prod` directly: main's deploys go through deployUnlessSuperseded"
    unchecked = text.replace("if (!superseded())", "if (true)")
    assert jenkins_serialisation_problems(unchecked) == ["deployUnlessSuperseded must skip a deploy a newer commit's build supersedes"]


def test_prod_is_deployed_after_staging_behind_an_approval(gitlab, azure):
    jobs = gitlab_jobs(gitlab)
    prod = jobs["deploy:prod"]
    assert prod["needs"] == ["deploy:staging"] and prod["environment"]["deployment_tier"] == "production"
    assert all(rule["when"] == "manual" and rule["allow_failure"] is False for rule in prod["rules"])
    stages = {stage["stage"]: stage for stage in azure["stages"]}
    assert stages["prod"]["dependsOn"] == ["staging"]
    assert [op["environment"] for op in azure_stack_operations(azure) if op["stage"] == "prod"] == ["prod"]
    code = jenkins_code(JENKINSFILE.read_text())
    staging, approve, prod_stage = (code.index(f"stage('{name}')") for name in ("Deploy staging", "Approve prod", "Deploy prod"))
    assert staging < approve < prod_stage
    approval = code[approve:prod_stage]
    assert "input {" in approval and "beforeInput true" in approval, "no approval asked for a skipped stage"
    # the approval waits without an executor (no agent, none at the top either) and for a bounded time
    assert "agent" not in approval and re.search(r"^pipeline \{\n(?:\s*//.*\n)*\s*agent none", code, re.M)
    assert "timeout(time: 7, unit: 'DAYS')" in approval


def test_the_plan_diff_gate_and_fork_handling():
    gitlab_text, azure_text, jenkins_text = GITLAB.read_text(), AZURE.read_text(), JENKINSFILE.read_text()
    for text in (gitlab_text, azure_text, jenkins_text):
        assert f"*,{OVERRIDE_LABEL},*) approved=--approved-replacement" in text
        assert "--stacks dev,staging,prod" in text and "--markdown plan-diff.md --json plan-diff.json" in text
        assert 'exit "$gate"' in text or 'exit "$(cat plan-diff.exit)"' in text, "the gate's exit 3 fails the job after the comment"
        assert "optional=--optional" in text, "forks: the comment is optional"
    assert '--host gitlab --api-url "$CI_API_V4_URL"' in gitlab_text
    assert "--host azure" in azure_text and "CI_COMMENT_TOKEN: $(System.AccessToken)" in azure_text


def test_preview_stacks_follow_labels_close_and_ttl(gitlab):
    jobs = gitlab_jobs(gitlab)
    start, stop = jobs["preview-stack"], jobs["preview-stack:stop"]
    ttl = yaml.safe_load((ROOT / "Pulumi.pr.yaml").read_text())["config"]["ml-platform:preview"]["ttlHours"]
    assert start["environment"] == {
        "name": "pr-$CI_MERGE_REQUEST_IID",
        "action": "start",
        "on_stop": "preview-stack:stop",
        "auto_stop_in": f"{ttl} hours",
    }
    assert stop["environment"] == {"name": "pr-$CI_MERGE_REQUEST_IID", "action": "stop"}
    assert "--event update" in gitlab_script(start) and "--event close" in gitlab_script(stop)
    for text in (AZURE.read_text(), JENKINSFILE.read_text()):
        assert "--event update" in text and "--event close" in text
    for text in (GITLAB.read_text(), AZURE.read_text(), JENKINSFILE.read_text()):
        assert "ci sweep --apply" in text and re.search(r"ci sweep(?! --apply)\W", text), "scheduled sweep applies, by hand it lists"


def test_previews_cover_every_stack(gitlab, azure):
    jobs = gitlab_jobs(gitlab)
    assert sorted(j["variables"]["STACK"] for n, j in jobs.items() if n.startswith("preview:")) == ["dev", "prod", "staging"]
    preview = next(j for s in azure["stages"] for j in s["jobs"] if j.get("job") == "pulumi_preview")
    assert sorted(v["STACK"] for v in preview["strategy"]["matrix"].values()) == ["dev", "prod", "staging"]
    assert "for (String stack in ['dev', 'staging', 'prod'])" in JENKINSFILE.read_text()


def test_the_jenkinsfile_passes_npm_groovy_lint_and_a_syntax_error_fails_it(groovy_lint):
    returncode, files = groovy_lint
    assert [e for e in files["ok"] if e["severity"] == "error"] == [], files["ok"]
    assert [e["rule"] for e in files["broken"] if e["severity"] == "error"] == ["NglParseError"]
    assert returncode == 1, "--failon error: an error fails the run"


def test_npm_groovy_lint_is_pinned():
    package = json.loads((ROOT / "ci" / "lint" / "package.json").read_text())
    lock = json.loads((ROOT / "ci" / "lint" / "package-lock.json").read_text())
    version = package["dependencies"]["npm-groovy-lint"]
    assert re.fullmatch(r"1[56]\.\d+\.\d+", version), "15.x or 16.x, exactly"
    assert lock["packages"]["node_modules/npm-groovy-lint"]["version"] == version


def test_jenkins_never_traces_the_token_exchange():
    # Jenkins runs a script without `#!` under `sh -xe`: its trace would print the ID token and the STS credentials
    code = JENKINSFILE.read_text()
    body = code[code.index("String assumeRole()") :]
    assert body.split("return '''", 1)[1].startswith("#!/bin/sh -e\n"), "the exchange's script must name its interpreter first"


def test_jenkins_previews_every_stack_comments_each_and_gates_after_them():
    code = jenkins_code(JENKINSFILE.read_text())
    preview = code[code.index("stage('Preview')") : code.index("stage('Preview stack')")]
    assert "catchError(buildResult: 'FAILURE', stageResult: 'FAILURE')" in preview, "one failing preview stops none of the others"
    assert "--markdown preview-${stack}.md" in preview and '--marker "ml-platform-preview-$STACK"' in preview
    plan = code[code.index("stage('Plan diff')") : code.index("stage('Image check')")]
    assert 'exit "$(cat plan-diff.exit)"' not in plan, "the gate's exit 3 must not skip the previews"
    assert code.index("stage('Replacement gate')") > code.index("stage('Preview stack')")
    for stage in ("Deploy prod", "Images into prod"):
        when = code[code.index(f"stage('{stage}')") :]
        assert when.index("beforeAgent true") < when.index("agent any"), f"{stage}: no executor for a build that skips it"


def test_gitlab_previews_run_whatever_the_gate_says(gitlab):
    jobs = gitlab_jobs(gitlab)
    for name in ("preview:dev", "preview:staging", "preview:prod", "preview-stack", "preview-stack:unlabelled"):
        assert jobs[name]["needs"] == [], name


def test_azure_reads_labels_for_sure_deploys_only_mains_tip_and_pins_pulumi(azure):
    operations_ = {op["name"]: op for op in azure_stack_operations(azure)}
    for name in ("preview_stack", "preview_stack_unlabelled"):
        assert "eq(dependencies.plan_diff.outputs['labels.LABELS_READ'], 'true')" in operations_[name]["condition"], name
    assert operations_["deploy_staging"]["onlyIfTipOf"] == operations_["deploy_prod"]["onlyIfTipOf"] == "main"
    assert operations_["deploy_prod"]["agentPool"] == "${{ parameters.prodAgentPool }}"
    template = (ROOT / "ci" / "azure" / "stack-operation.yml").read_text()
    assert 'git ls-remote origin "refs/heads/$BRANCH"' in template and "variable=SUPERSEDED]true" in template
    assert "condition: and(succeeded(), ne(variables['SUPERSEDED'], 'true'))" in template
    aws_steps = (ROOT / "ci" / "azure" / "aws.yml").read_text()
    assert """if [ "$(pulumi version 2>/dev/null | sed 's/^v//')" != "$want" ]""" in aws_steps, "the pinned Pulumi, not the image's"
    assert "'$('*)" in aws_steps, "a variable the group lacks arrives as its macro text: refused"
