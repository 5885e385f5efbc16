"""Mistakes a platform engineer makes editing a stack file, each run in-process as they would run it
(`python -m infra plan`) on a copy of a shipped stack file: exit 2, the key path and the message, no plan
written. Each case is one edit of the real file, so the rest of the stack is as shipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ml_platform.infra import cli

ROOT = Path(__file__).resolve().parents[1]

# (stack, text in the shipped file, what the user wrote instead, key path in the error, message fragment)
MISTAKES = [
    # the stack file as YAML
    (
        "dev",
        "  ml-platform:monitoring:\n",
        "  ml-platform:models: {}\n  ml-platform:monitoring:\n",
        "Pulumi.dev.yaml",
        "'ml-platform:models' is set twice",
    ),
    ("dev", "    fraud:\n      runtime: custom", "    chat:\n      runtime: custom", "Pulumi.dev.yaml", "'chat' is set twice"),
    ("dev", "  ml-platform:models:", "  ml-platfrom:models:", "ml-platfrom:models", "did you mean 'ml-platform:models'?"),
    ("dev", "  ml-platform:monitoring:", "  ml-platform:monitorng:", "monitorng", "did you mean 'monitoring'?"),
    ("dev", "      gpus: 1\n      replicas: {min: 0", "      gpu: 1\n      replicas: {min: 0", "models.chat.gpu", "did you mean 'gpus'?"),
    ("dev", "config:\n", "config:\n  ml-platform:environment: dev\n", "Pulumi.dev.yaml", "'ml-platform:environment' is set twice"),
    # types and enums
    ("dev", "config:\n", "config: []\nsettings:\n", "Pulumi.dev.yaml", "'config' must be a mapping"),
    ("dev", 'resources: {cpu: "1", memory: 2Gi}', "resources: {cpu: 1, memory: 2Gi}", "models.fraud.resources.cpu", 'quote it: "1"'),
    ("dev", "ml-platform:environment: dev", "ml-platform:environment: development", "environment", "'development' is not allowed"),
    ("dev", "      maxSize: 3\n    gpu:", '      maxSize: "3"\n    gpu:', "nodePools.system.maxSize", "expected an integer"),
    (
        "dev",
        "capacityTypes: [spot]\n      weight: 100",
        "capacityTypes: [Spot]\n      weight: 100",
        "nodePools.gpu.capacityTypes[0]",
        "'Spot' is not allowed",
    ),
    ("dev", "instanceTypes: [m6i.large]", "instanceTypes: [m6i.larg]", "nodePools.system.instanceTypes", "did you mean 'm6i.large'?"),
    (
        "dev",
        "instanceFamilies: [g5, g6]\n      capacityTypes: [spot]",
        "instanceFamilies: [g5, g7x]\n      capacityTypes: [spot]",
        "nodePools.gpu",
        "g7x",
    ),
    ("dev", "runtime: vllm", "runtime: vLLM", "models.chat.runtime", "'vLLM' is not allowed"),
    (
        "dev",
        "exposure: {type: alb, scheme: internal}\n      allowedNamespaces: [apps]\n    fraud",
        "exposure: {type: alb, scheme: private}\n      allowedNamespaces: [apps]\n    fraud",
        "models.chat.exposure.scheme",
        "'private' is not allowed",
    ),
    # quantities
    ("dev", 'resources: {cpu: "2", memory: 12Gi}', 'resources: {cpu: "2", memory: "28"}', "models.chat.resources.memory", "unit"),
    ("dev", 'resources: {cpu: "2", memory: 12Gi}', 'resources: {cpu: "2", memory: 12GB}', "models.chat.resources.memory", "12GB"),
    ("dev", 'resources: {cpu: "2", memory: 12Gi}', 'resources: {cpu: "0", memory: 12Gi}', "models.chat.resources.cpu", "more than 0"),
    ("dev", 'resources: {cpu: "2", memory: 12Gi}', 'resources: {cpu: "2 cores", memory: 12Gi}', "models.chat.resources.cpu", "2 cores"),
    (
        "dev",
        'resources: {cpu: "2", memory: 12Gi}',
        'resources: {cpu: "2", memory: 900Gi}',
        "models.chat.resources",
        "fit no node of the pools that can run this model",
    ),
    (
        "dev",
        'resources: {cpu: "1", memory: 2Gi}',
        'resources: {cpu: "200", memory: 2Gi}',
        "models.fraud.resources",
        "fit no node of the pools that can run this model",
    ),
    ("dev", "prometheusMemory: 2Gi", 'prometheusMemory: "2"', "monitoring.prometheusMemory", "unit"),
    # GPUs and pools
    (
        "dev",
        "      gpus: 1\n      replicas: {min: 0",
        "      gpus: 8\n      replicas: {min: 0",
        "models.chat",
        "gpus",
    ),
    (
        "staging",
        "      gpus: 1\n      replicas: {min: 1, max: 3}",
        "      gpus: 2\n      replicas: {min: 1, max: 3}",
        "models.chat.resources.memory",
        "runai_streamer with 2 GPU(s) needs at least 32Gi",
    ),
    (
        "dev",
        "timeSlicing: {replicas: 4}\n    gpu-on-demand",
        "timeSlicing: {replicas: 1}\n    gpu-on-demand",
        "nodePools.gpu.gpuSharing.timeSlicing.replicas",
        "greater than or equal to 2",
    ),
    ("dev", "      minSize: 1\n      maxSize: 3", "      minSize: 4\n      maxSize: 3", "nodePools.system", "minSize"),
    # schedules
    ("dev", 'activeHours: {start: "0 8 * * 1-5"', 'activeHours: {start: "8am"', "models.chat.autoscaling.activeHours.start", "8am"),
    ("dev", "timezone: Europe/Berlin", "timezone: Europe/Berln", "models.chat.autoscaling.activeHours.timezone", "did you mean"),
    ("dev", "timezone: Europe/Berlin", "timezone: CEST", "models.chat.autoscaling.activeHours.timezone", "CEST"),
    ("dev", 'end: "0 20 * * 1-5"', 'end: "0 8 * * 1-5"', "models.chat.autoscaling.activeHours", "start"),
    (
        "dev",
        'activeHours: {start: "0 8 * * 1-5"',
        'activeHours: {start: "0 0 8 * * 1-5"',
        "models.chat.autoscaling.activeHours.start",
        "five",
    ),
    ("dev", "      replicas: {min: 1, max: 4}", "      replicas: {min: 0, max: 4}", "models.fraud.replicas.min", "cannot reach zero"),
    # found by a fresh user's try: what croniter takes and KEDA's robfig/cron does not, windows that never open
    (
        "dev",
        'activeHours: {start: "0 8 * * 1-5"',
        'activeHours: {start: "0 8 L * *"',
        "models.chat.autoscaling.activeHours.start",
        "no L, W or #",
    ),
    (
        "dev",
        'activeHours: {start: "0 8 * * 1-5"',
        'activeHours: {start: "0 8 * * 1#2"',
        "models.chat.autoscaling.activeHours.start",
        "no L, W or #",
    ),
    (
        "dev",
        'activeHours: {start: "0 8 * * 1-5"',
        'activeHours: {start: "0 8 * * 7"',
        "models.chat.autoscaling.activeHours.start",
        "Sunday is 0",
    ),
    (
        "dev",
        'activeHours: {start: "0 8 * * 1-5"',
        'activeHours: {start: "0 8 31 2 *"',
        "models.chat.autoscaling.activeHours.start",
        "never fires",
    ),
    ("dev", 'end: "0 20 * * 1-5"', 'end: "0 08 * * 1-5"', "models.chat.autoscaling.activeHours", "the same moment"),
    # vLLM's argparse takes the last value given
    (
        "dev",
        '--gpu-memory-utilization, "0.2"]',
        '--gpu-memory-utilization, "0.2", --gpu-memory-utilization, "0.9"]',
        "models.chat.args",
        "reserves 0.9",
    ),
    ("dev", '--gpu-memory-utilization, "0.2"]', '--gpu-memory-utilization, "20%"]', "models.chat.args", "'20%' is not a number"),
    ("dev", '--gpu-memory-utilization, "0.2"]', '--gpu-memory-utilization, "0"]', "models.chat.args", "not a share"),
    # network and access
    ("staging", "privateAccessCidrs: [10.100.0.0/16]", "privateAccessCidrs: [10.0.0.0/16]", "cluster.privateAccessCidrs[0]", "overlaps"),
    (
        "staging",
        "privateAccessCidrs: [10.100.0.0/16]",
        "privateAccessCidrs: [10.100.0.0/33]",
        "cluster.privateAccessCidrs",
        "not a valid netmask",
    ),
    (
        "prod",
        "privateAccessCidrs: [10.100.0.0/16]",
        "privateAccessCidrs: [10.100.0.0/16, 10.100.0.0/16]",
        "cluster.privateAccessCidrs",
        "listed twice",
    ),
    ("prod", "privateAccessCidrs: [10.100.0.0/16]", "privateAccessCidrs: [10.100.0.1]", "cluster.privateAccessCidrs", "no prefix length"),
    ("dev", 'publicAccessCidrs: ["203.0.113.0/24"]', 'publicAccessCidrs: ["0.0.0.0/0"]', "cluster.publicAccessCidrs", "0.0.0.0/0"),
    (
        "staging",
        "availabilityZones: [us-west-2a, us-west-2b, us-west-2c]",
        "availabilityZones: [us-west-2a, us-west-2b, us-east-1c]",
        "network.availabilityZones",
        "us-east-1c",
    ),
    (
        "staging",
        "principalArn: arn:aws:iam::123456789012:role/ml-engineers",
        "principalArn: ml-engineers",
        "cluster.admins[1].principalArn",
        "ml-engineers",
    ),
    ("staging", "        access: view", "        access: read-only", "cluster.admins[1].access", "'read-only' is not allowed"),
    # images, registries, secrets
    (
        "staging",
        "image: {repository: serving/vllm, tag: v0.31.0}",
        "image: {repository: serving/vllm, tag: latest}",
        "models.chat.image",
        "'latest' floats",
    ),
    (
        "staging",
        "image: {repository: serving/vllm, tag: v0.31.0}",
        "image: {repository: serving/vlm, tag: v0.31.0}",
        "models.chat.image.repository",
        "not in registries.repositories",
    ),
    ("staging", "      - upstream: quay", "      - upstream: docker-hub", "registries.pullThroughCache[2]", "credential"),
    (
        "prod",
        "          secure: v1:replace-with-your-encrypted-routing-key",
        "          0123456789abcdef0123456789abcdef",
        "monitoring.receivers[0].pagerdutyRoutingKey",
        "pulumi config set --secret --path",
    ),
    ("prod", "    ampRemoteWrite: true", "    ampRemoteWrite: yes please", "monitoring.ampRemoteWrite", "expected true or false"),
    (
        "prod",
        "secure: v1:replace-with-your-encrypted-routing-key",
        'secure: ""',
        "monitoring.receivers[0].pagerdutyRoutingKey",
        "not a ciphertext",
    ),
    (
        "prod",
        "secure: v1:replace-with-your-encrypted-routing-key",
        "secure: 123",
        "monitoring.receivers[0].pagerdutyRoutingKey",
        "not a ciphertext",
    ),
    # prod's rules, all in one pass
    ("prod", "ml-platform:environment: prod", "ml-platform:environment: Prod", "environment", "'Prod' is not allowed"),
    (
        "staging",
        "ml-platform:environment: staging",
        "ml-platform:environment: prod",
        "models.chat.image.digest",
        "prod runs images by digest",
    ),
]


@pytest.fixture
def project(tmp_path):
    for path in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.mark.parametrize(
    ("stack", "shipped", "written", "path", "message"), MISTAKES, ids=[f"{m[0]}:{m[3]}:{i}" for i, m in enumerate(MISTAKES)]
)
def test_a_realistic_mistake_is_exit_2_with_key_path_and_message(project, capsys, stack, shipped, written, path, message):
    stack_file = project / f"Pulumi.{stack}.yaml"
    text = stack_file.read_text()
    assert text.count(shipped) == 1, f"the case no longer matches Pulumi.{stack}.yaml: {shipped!r}"
    stack_file.write_text(text.replace(shipped, written))
    out = project / "out"
    assert cli.main(["plan", "--stack", stack, "--project-dir", str(project), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if path in line]
    assert lines, f"no line naming {path!r} in:\n{err}"
    assert any(message in line for line in lines), f"{path!r} without {message!r} in:\n{err}"
    assert not out.exists(), "nothing is written for a bad stack file"


def test_there_are_at_least_forty_mistakes():
    assert len(MISTAKES) >= 40 and len({(m[0], m[1], m[2]) for m in MISTAKES}) == len(MISTAKES)


def test_many_mistakes_in_prod_come_in_one_pass(project, capsys):
    """Field errors in network and monitoring do not hide the cross-section findings about the fields that
    are fine (a fresh user's ten-mistake prod edit needed three rounds before)."""
    stack_file = project / "Pulumi.prod.yaml"
    text = stack_file.read_text()
    for shipped, written in [
        ("    flowLogRetentionDays: 90", "    flowLogRetentionDays: 91"),  # not a CloudWatch retention: a field error in network
        ("    natGateways: perAz", "    natGateways: single"),  # valid alone, refused for prod across sections
        ("    retention: 30d", "    retention: 30 days"),  # a field error in monitoring
        ("privateAccessCidrs: [10.100.0.0/16]", "privateAccessCidrs: [10.20.0.0/16]"),  # overlaps the VPC
        ("          secure: v1:replace-with-your-encrypted-routing-key", "          0123456789abcdef0123456789abcdef"),
    ]:
        assert text.count(shipped) == 1, shipped
        text = text.replace(shipped, written)
    stack_file.write_text(text)
    assert cli.main(["plan", "--stack", "prod", "--project-dir", str(project), "--out", str(project / "out")]) == 2
    err = capsys.readouterr().err
    for path, message in [
        ("network.flowLogRetentionDays", "91"),
        ("monitoring.retention", "30 days"),
        ("network.natGateways", "one NAT gateway per AZ"),
        ("cluster.privateAccessCidrs[0]", "overlaps the VPC"),
        ("monitoring.receivers[0].pagerdutyRoutingKey", "pulumi config set --secret --path"),
    ]:
        assert any(path in line and message in line for line in err.splitlines()), f"{path} / {message} missing in:\n{err}"


def test_a_cross_check_never_reports_on_a_broken_fields_default(project, capsys):
    """With network.cidr broken, the second pass runs on the default VPC range (10.0.0.0/16): an access range
    inside that default must not be called an overlap, since it says nothing about the user's VPC."""
    stack_file = project / "Pulumi.prod.yaml"
    text = stack_file.read_text().replace("    cidr: 10.20.0.0/16", "    cidr: 10.20.0.0/33")
    stack_file.write_text(text.replace("privateAccessCidrs: [10.100.0.0/16]", "privateAccessCidrs: [10.0.0.0/16]"))
    assert cli.main(["plan", "--stack", "prod", "--project-dir", str(project), "--out", str(project / "out")]) == 2
    err = capsys.readouterr().err
    assert "network.cidr" in err and "overlaps" not in err
