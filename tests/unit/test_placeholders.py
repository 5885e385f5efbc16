"""The repository's example values (infra/placeholders.py): found wherever they sit in a stack's config, and
real values left alone."""

import json

import pytest

from ml_platform.infra import placeholders
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("arn:aws:iam::123456789012:role/admins", "documentation account"),
        ("203.0.113.0/24", "documentation address range"),
        ("198.51.100.7/32", "documentation address range"),
        ("2001:db8::/48", "documentation address range"),
        ("sha256:" + "e" * 63 + "4", "made-up image digest"),
        ("v1:replace-with-your-encrypted-routing-key", "example secret"),
    ],
)
def test_each_kind_of_example_value_is_found_at_its_path(value, what):
    (found,) = placeholders.find({"ml-platform:cluster": json.dumps({"list": [{"x": value}]})})
    assert found.path == "ml-platform:cluster.list[0].x" and found.value == value and what in found.what


@pytest.mark.parametrize(
    "value",
    ["arn:aws:iam::210987654321:role/admins", "10.20.0.0/16", "203.0.112.0/24", "sha256:" + "a1" * 32, "8am", "v1:AAABAGx"],
)
def test_real_values_are_not_placeholders(value):
    assert placeholders.find({"ml-platform:x": value, "aws:region": "us-west-2"}) == []


def test_every_shipped_stack_files_examples_are_listed():
    """Each example in the stack files is found (the list matches what is shipped), and the plan warns."""
    prod = stack_files.read_stack("prod").placeholders
    paths = {p.path for p in prod}
    assert {f"ml-platform:cluster.admins[{i}].principalArn" for i in range(3)} <= paths
    assert sum(p.path.startswith("ml-platform:pins.images.") for p in prod) == len(placeholders.EXAMPLE_DIGESTS)
    assert {p.path for p in prod if "secret" in p.what} == {
        "ml-platform:monitoring.receivers[0].pagerdutyRoutingKey.secure",
        "ml-platform:monitoring.receivers[1].slackWebhookUrl.secure",
    }
    dev = stack_files.read_stack("dev")
    assert {p.path for p in dev.placeholders} == {"ml-platform:cluster.publicAccessCidrs[0]", "ml-platform:cluster.admins[0].principalArn"}
    warnings = offline_plan.run("dev", dev).warnings
    assert "placeholder ml-platform:cluster.publicAccessCidrs[0]: '203.0.113.0/24' is a documentation address range" in " ".join(warnings)
