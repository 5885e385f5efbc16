"""A stand-in for the Pulumi CLI, for the preview-stack and ci tests: the few commands the delivery code runs, over a
JSON state file. `up` runs the offline plan of the stack and keeps its outputs, as a deployment would export them;
`preview` checks the policy pack and prints a preview, changing nothing.

State ($FAKE_PULUMI_STATE): {"stacks": {name: {"outputs": {...}, "lastUpdate": str | null}}, "calls": [[arg, ...]]}.
$FAKE_PULUMI_FAIL=<command>[:<stack>] makes that command fail; $FAKE_PULUMI_NOW is the time `up` records.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

VALUED = ("--stack", "--secrets-provider", "--policy-pack")


def option(arguments, name):
    return arguments[arguments.index(name) + 1] if name in arguments else None


def positionals(arguments):
    return [a for i, a in enumerate(arguments) if not a.startswith("-") and (i == 0 or arguments[i - 1] not in VALUED)]


def main(arguments):
    state_file = Path(os.environ["FAKE_PULUMI_STATE"])
    state = json.loads(state_file.read_text()) if state_file.exists() else {"stacks": {}, "calls": []}
    state["calls"].append(arguments)
    arguments = [a for a in arguments if a != "--non-interactive"]
    stacks = state["stacks"]
    command = " ".join(a for a in arguments[:2] if not a.startswith("-")) if arguments[0] == "stack" else arguments[0]
    stack = option(arguments, "--stack") or (positionals(arguments)[2] if command in ("stack select", "stack rm") else None)
    code, out = 0, ""
    if os.environ.get("FAKE_PULUMI_FAIL") in (command, f"{command}:{stack}"):
        code, out = 1, f"error: {command} failed on purpose\n"
    elif stack is not None and stack not in stacks and command not in ("stack select",):
        code, out = 255, f"error: no stack named '{stack}' found\n"
    elif command == "stack ls":
        out = json.dumps([{"name": name, "lastUpdate": s["lastUpdate"]} for name, s in sorted(stacks.items())])
    elif command == "stack output":
        out = json.dumps(stacks[stack]["outputs"])
    elif command == "stack select":
        if stack not in stacks:
            if "--create" not in arguments:
                code, out = 255, f"error: no stack named '{stack}' found\n"
            else:
                stacks[stack] = {"outputs": {}, "lastUpdate": None, "secretsProvider": option(arguments, "--secrets-provider")}
    elif command == "up":
        if not Path(option(arguments, "--policy-pack")).is_dir():
            code, out = 1, "error: no policy pack\n"
        else:
            with tempfile.TemporaryDirectory() as out_dir:
                plan = subprocess.run(
                    [sys.executable, "-m", "ml_platform.infra", "plan", "--stack", stack, "--out", out_dir, "--project-dir", os.getcwd()],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if plan.returncode != 0:
                    code, out = 1, plan.stdout + plan.stderr
                else:
                    stacks[stack]["outputs"] = json.loads((Path(out_dir) / "plan.json").read_text())["outputs"]
                    stacks[stack]["lastUpdate"] = os.environ.get("FAKE_PULUMI_NOW", "2026-11-23T10:00:00.000Z")
    elif command == "preview":
        if not Path(option(arguments, "--policy-pack")).is_dir():
            code, out = 1, "error: no policy pack\n"
        else:
            out = f"Previewing update ({stack}):\n    pulumi:pulumi:Stack ml-platform-{stack}\n"
            out += "Policies:\n    policy: passed\nResources:\n    no changes\n"
    elif command == "destroy":
        stacks[stack]["outputs"] = {}
    elif command == "stack rm":
        del stacks[stack]
        Path(f"Pulumi.{stack}.yaml").unlink(missing_ok=True)  # as `pulumi stack rm` does
    else:
        code, out = 2, f"fake pulumi: unsupported {arguments}\n"
    state_file.write_text(json.dumps(state, indent=1))
    (sys.stdout if code == 0 else sys.stderr).write(out)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
