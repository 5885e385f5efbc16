"""Pulumi.yaml declares every config key the program reads, and stack files merge the way the CLI does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra import config
from infra.offline import stack_files
from infra.offline.secrets import masked

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
