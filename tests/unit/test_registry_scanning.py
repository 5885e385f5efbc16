"""The account's ECR enhanced scanning: declared by prod (the owner) only, retained on delete, and Inspector's rescan
durations set through inspector2's real API model (botocore's Stubber validates requests and answers)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from ml_platform.components import registry_scanning
from ml_platform.infra import config
from ml_platform.infra.offline import stack_files
from ml_platform.policy import rules

SETTINGS = {"rescanDuration": "DAYS_180", "pullDateRescanDuration": "DAYS_180", "pullDateRescanMode": "LAST_IN_USE_AT"}


def test_only_the_owner_declares_scanning_and_keeps_it_when_destroyed(plans):
    for stack, plan in plans.items():
        declared = [r for r in plan.resources if r["type"] == rules.ECR_REGISTRY_SCANNING]
        rescan = [r for r in plan.resources if r["type"] == "pulumi-python:dynamic:Resource" and r["name"].endswith("-rescan")]
        if stack != "prod":
            assert declared == [] and rescan == [], f"{stack} shares prod's account: prod owns its scanning"
            continue
        (scanning,) = declared
        assert scanning["retainOnDelete"] and rescan[0]["retainOnDelete"], "destroying the owner leaves the account scanning"
        assert scanning["inputs"] == {
            "scanType": "ENHANCED",
            "rules": [{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}],
        }
        assert {k: rescan[0]["inputs"][k] for k in SETTINGS} == SETTINGS and rescan[0]["inputs"]["region"] == "us-west-2"


@pytest.fixture
def inspector(monkeypatch):
    client = boto3.client("inspector2", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    monkeypatch.setattr(registry_scanning.InspectorEcrConfigurationProvider, "_client", lambda self, region: client)
    with stub:
        yield stub
        stub.assert_no_pending_responses()


def state(status: str) -> dict:
    return {"ecrConfiguration": {"rescanDurationState": {**SETTINGS, "status": status, "updatedAt": "2026-11-30T10:00:00Z"}}}


def test_the_provider_sets_the_durations_and_reads_them_back(inspector):
    inspector.add_response("update_configuration", {}, {"ecrConfiguration": SETTINGS})
    inspector.add_response("get_configuration", state("SUCCESS"))
    result = registry_scanning.InspectorEcrConfigurationProvider().create({**SETTINGS, "region": "us-west-2"})
    assert result.id == "inspector-ecr-us-west-2" and result.outs["status"] == "SUCCESS"


def test_a_failed_update_is_an_error_naming_the_settings(inspector):
    inspector.add_response("update_configuration", {}, {"ecrConfiguration": SETTINGS})
    inspector.add_response("get_configuration", state("FAILED"))
    with pytest.raises(Exception, match=r"refused the ECR rescan durations .*DAYS_180.*status FAILED"):
        registry_scanning.InspectorEcrConfigurationProvider().update("id", {}, {**SETTINGS, "region": "us-west-2"})


def test_a_region_change_replaces_and_a_duration_change_updates():
    provider = registry_scanning.InspectorEcrConfigurationProvider()
    old = {**SETTINGS, "region": "us-west-2"}
    assert provider.diff("id", old, {**old, "rescanDuration": "LIFETIME"}).replaces == []
    assert provider.diff("id", old, {**old, "region": "eu-west-1"}).replaces == ["region"]
    assert provider.diff("id", old, dict(old)).changes is False


def test_scanning_settings_are_checked_when_the_stack_is_read():
    values = dict(stack_files.read_stack("staging").values)
    for value, message in (
        ('{"registryScanning": {"rescanDuration": "DAYS_365"}}', "vulnerabilities.registryScanning.rescanDuration"),
        ('{"registryScanning": {"pullDateRescanDuration": "LIFETIME"}}', "vulnerabilities.registryScanning.pullDateRescanDuration"),
        ('{"registryScanning": {"repositoryFilters": ["Prod/*"]}}', "is not an ECR repository filter"),
        ('{"threshold": "SEVERE"}', "vulnerabilities.threshold"),
    ):
        with pytest.raises(config.ConfigError) as err:
            config.parse({**values, "ml-platform:vulnerabilities": value}, "staging")
        assert message in err.value.render(), err.value.render()
