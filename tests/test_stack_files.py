"""Pulumi.yaml declares every config key the program reads, and stack files merge the way the CLI does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ml_platform.infra import config
from ml_platform.infra.offline import stack_files
from ml_platform.infra.offline.secrets import masked

ROOT = Path(__file__).resolve().parents[1]


def project():
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_pulumi_yaml_declares_exactly_the_keys_the_program_reads():
    declared = {key for key in project()["config"] if ":" not in key}
    assert declared == set(config.OBJECT_KEYS) | set(config.SCALAR_KEYS)


def test_declarations_follow_pulumi_project_file_rules():
    for key, spec in project()["config"].items():
        assert isinstance(spec, dict), key
        assert not ("default" in spec and "value" in spec), f"{key}: default and value together are rejected"
        if ":" in key:
            assert "value" in spec and "default" not in spec, f"{key}: other namespaces take `value`"
        else:
            assert spec["type"] in ("string", "integer", "boolean", "array", "object"), key
            expected = "object" if key in config.OBJECT_KEYS else ("boolean" if key in config.BOOLEAN_KEYS else "string")
            assert spec["type"] == expected, key


def test_every_object_default_parses_to_the_model_defaults():
    raw = stack_files.project_defaults(ROOT)
    assert json.loads(stack_files._to_wire(raw["ml-platform:network"])) == {}
    assert raw["aws:region"] == "us-west-2"


def test_stack_value_replaces_the_project_default_whole(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "ml-platform",
                "config": {
                    "network": {"type": "object", "default": {"azCount": 3, "flowLogs": True}},
                    "aws:region": {"value": "eu-west-1"},
                },
            }
        )
    )
    (tmp_path / "Pulumi.s.yaml").write_text(yaml.safe_dump({"config": {"ml-platform:network": {"azCount": 2}, "aws:region": "us-east-1"}}))
    raw = stack_files.read_stack("s", tmp_path)
    assert raw.values["ml-platform:network"] == '{"azCount":2}'
    assert raw.values["aws:region"] == "us-east-1"


def test_secure_values_stay_masked_and_marked_secret(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: ml-platform\n")
    (tmp_path / "Pulumi.s.yaml").write_text("config:\n  ml-platform:token:\n    secure: v1:abc\n")
    raw = stack_files.read_stack("s", tmp_path)
    assert raw.values["ml-platform:token"] == masked("v1:abc") and raw.secret_keys == ["ml-platform:token"]
    # another ciphertext (the value was changed with `pulumi config set --secret`) shows as another digest
    assert masked("v1:abd") != masked("v1:abc")


def test_broken_stack_file_is_a_clear_error(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: ml-platform\n")
    (tmp_path / "Pulumi.s.yaml").write_text("config: [unclosed\n")
    with pytest.raises(stack_files.StackFileError, match=r"Pulumi\.s\.yaml is not valid YAML"):
        stack_files.read_stack("s", tmp_path)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_files_use_only_known_namespaces(stack):
    keys = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert all(key.split(":")[0] in ("ml-platform", "aws") for key in keys)


def test_nested_secure_values_are_masked_in_place(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: ml-platform\n")
    (tmp_path / "Pulumi.s.yaml").write_text(
        "config:\n  ml-platform:monitoring:\n    receivers:\n      - name: oncall\n        webhookUrl:\n          secure: v1:abc\n"
    )
    raw = stack_files.read_stack("s", tmp_path)
    assert json.loads(raw.values["ml-platform:monitoring"]) == {"receivers": [{"name": "oncall", "webhookUrl": masked("v1:abc")}]}
    assert raw.secret_keys == ["ml-platform:monitoring"]


@pytest.fixture
def project_dir(tmp_path):
    for path in ROOT.glob("Pulumi*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    return tmp_path


def plan_exit(project_dir, capsys, stack="dev") -> tuple[int, str]:
    from ml_platform.infra import cli

    code = cli.main(["plan", "--stack", stack, "--project-dir", str(project_dir), "--out", str(project_dir / "out")])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_second_models_block_is_an_error_not_a_silent_overwrite(project_dir, capsys):
    dev = project_dir / "Pulumi.dev.yaml"
    dev.write_text(dev.read_text() + "  ml-platform:models:\n    other: {}\n")
    code, out = plan_exit(project_dir, capsys)
    assert code == 2
    assert "Pulumi.dev.yaml: 'ml-platform:models' is set twice in one mapping (lines" in out and "YAML keeps only the last" in out
    assert not (project_dir / "out").exists()


def test_a_model_given_twice_is_an_error_naming_both_lines(project_dir, capsys):
    dev = project_dir / "Pulumi.dev.yaml"
    text = dev.read_text()
    dev.write_text(text.replace("    fraud:\n", "    chat:\n      runtime: custom\n    fraud:\n", 1))
    code, out = plan_exit(project_dir, capsys)
    assert code == 2 and "'chat' is set twice in one mapping" in out


def test_a_misspelt_namespace_is_an_error_with_a_suggestion(project_dir, capsys):
    dev = project_dir / "Pulumi.dev.yaml"
    dev.write_text(dev.read_text().replace("  ml-platform:models:", "  ml-platfrom:models:"))
    code, out = plan_exit(project_dir, capsys)
    assert code == 2
    assert "ml-platfrom:models: 'ml-platfrom' is not a config namespace this program reads; did you mean 'ml-platform:models'?" in out


def test_provider_namespaces_are_read(project_dir, capsys):
    dev = project_dir / "Pulumi.dev.yaml"
    dev.write_text(dev.read_text() + "  kubernetes:enableServerSideApply: true\n  pulumi:disable-default-providers: ['*']\n")
    assert plan_exit(project_dir, capsys)[0] == 0


def test_an_esc_environment_is_said_to_be_invisible_offline(project_dir, capsys):
    dev = project_dir / "Pulumi.dev.yaml"
    dev.write_text("environment:\n  - ml-platform/dev\n" + dev.read_text())
    code, out = plan_exit(project_dir, capsys)
    assert code == 0 and "imports the ESC environment(s) ml-platform/dev, which are not visible offline" in out
