"""doctor against moto (credentials, offerings, backend) with the Service Quotas API stubbed by botocore's
Stubber (moto does not serve EC2 quotas), passing and failing."""

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ml_platform.infra import config
from ml_platform.infra.delivery import doctor
from ml_platform.infra.offline import stack_files


class Session:
    """A boto3 session whose service-quotas client answers from a stub."""

    def __init__(self, session, quotas: dict[str, float]):
        self.session = session
        self.quotas = quotas

    def client(self, name, region_name=None):
        client = self.session.client(name, region_name=region_name)
        if name == "service-quotas":
            # In the order doctor asks: G before P, on-demand before spot.
            stub = Stubber(client)
            for code, value in self.quotas.items():
                stub.add_response(
                    "get_service_quota",
                    {"Quota": {"QuotaCode": code, "Value": value, "ServiceCode": "ec2"}},
                    {"ServiceCode": "ec2", "QuotaCode": code},
                )
            stub.activate()
        if name == "sts" and self.quotas.get("sts") == 0:
            stub = Stubber(client)
            stub.add_client_error("get_caller_identity", service_error_code="InvalidClientTokenId", http_status_code=403)
            stub.activate()
        return client


def stack(name: str) -> config.StackConfig:
    return config.parse(stack_files.read_stack(name).values, name)


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.Session(region_name="us-west-2")


def test_dev_needs_spot_g_quota_and_passes_with_enough(aws):
    cfg = stack("dev")
    assert doctor.needed_vcpus(cfg, aws.client("ec2")) == {("G", "spot"): 64, ("G", "on-demand"): 32}
    aws.client("s3").create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    enhanced(aws, "*")
    checks = doctor.run(Session(aws, {"L-DB2E81BA": 64, "L-3819A6DF": 128}), cfg, backend_bucket="state")
    assert all(c.ok for c in checks), [c.line() for c in checks]
    names = [c.name for c in checks]
    assert names[:2] == ["placeholders", "credentials"] and "gpu offerings of pool gpu" in names and "state backend" in names


def enhanced(aws, *filters: str) -> None:
    aws.client("ecr").put_registry_scanning_configuration(
        scanType="ENHANCED",
        rules=[{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": f, "filterType": "WILDCARD"} for f in filters]}],
    )


def test_a_stack_whose_repositories_the_account_does_not_scan_fails_where_it_refuses_unscanned_images(aws):
    # dev's unscanned verdict is warn: said loudly, but its deploy is not held up before the owner's first deploy
    (check,) = doctor.scanning_checks(aws, stack("dev"))
    assert check.ok and check.detail.startswith("WARNING (vulnerabilities.unscanned is warn here): BASIC (images scanned once")
    enhanced(aws, "prod/*")
    (check,) = doctor.scanning_checks(aws, stack("dev"))
    assert check.ok and "ENHANCED, but no continuous filter matches dev/serving/vllm, dev/serving/triton" in check.detail
    # where unscanned images fail the gate, so does the preflight
    strict = config.parse({**stack_files.read_stack("dev").values, "ml-platform:vulnerabilities": '{"unscanned": "fail"}'}, "dev")
    (check,) = doctor.scanning_checks(aws, strict)
    assert not check.ok and not check.detail.startswith("WARNING")
    enhanced(aws, "prod/*", "dev")  # no wildcard: ECR matches every name containing it
    assert [c.ok for c in doctor.scanning_checks(aws, stack("dev"))] == [True]


def test_the_owner_passes_before_its_first_up_and_fails_when_another_stack_declares_otherwise(aws):
    (scanning, rescan) = doctor.scanning_checks(aws, stack("prod"))
    assert scanning.ok and "BASIC now; this stack declares ENHANCED, which pulumi up sets" in scanning.detail
    assert rescan.ok and rescan.detail.startswith("not set yet"), "moto has no inspector2 GetConfiguration: said, not hidden"
    enhanced(aws, "staging/*")  # what a second owner, staging, would have set
    (scanning, _) = doctor.scanning_checks(aws, stack("prod"))
    assert not scanning.ok and "another stack may declare vulnerabilities.registryScanning too" in scanning.detail
    enhanced(aws, "*")
    assert doctor.scanning_checks(aws, stack("prod"))[0].ok


def test_the_owner_fails_when_it_may_not_read_inspectors_settings(aws, monkeypatch):
    client = boto3.client("inspector2", region_name="us-west-2")
    stub = Stubber(client)
    stub.add_client_error("get_configuration", service_error_code="AccessDeniedException", http_status_code=403)
    stub.activate()
    real = aws.client
    monkeypatch.setattr(
        aws, "client", lambda name, region_name=None: client if name == "inspector2" else real(name, region_name=region_name)
    )
    (_, rescan) = doctor.scanning_checks(aws, stack("prod"))
    assert not rescan.ok and "pulumi up needs inspector2 access to set them" in rescan.detail


def test_a_low_quota_and_a_missing_bucket_fail_with_the_fix(aws):
    checks = {c.name: c for c in doctor.run(Session(aws, {"L-DB2E81BA": 64, "L-3819A6DF": 8}), stack("dev"), backend_bucket="missing")}
    spot = checks["quota All G and VT Spot Instance Requests"]
    assert not spot.ok and "request L-3819A6DF to 64" in spot.detail
    assert not checks["state backend"].ok and "run bootstrap-backend" in checks["state backend"].detail


def test_a_gpu_type_not_offered_in_a_zone_fails(aws, monkeypatch):
    cfg = stack("prod")
    ec2 = aws.client("ec2")
    offered = ec2.describe_instance_type_offerings(LocationType="availability-zone")["InstanceTypeOfferings"]
    assert any(o["InstanceType"] == "g6e.12xlarge" for o in offered)
    real_client = aws.client

    def client(name, region_name=None):
        made = real_client(name, region_name=region_name)
        if name == "ec2":
            original = made.describe_instance_type_offerings

            def without_zone_c(**kwargs):
                result = original(**kwargs)
                result["InstanceTypeOfferings"] = [o for o in result["InstanceTypeOfferings"] if o["Location"] != "us-west-2c"]
                return result

            made.describe_instance_type_offerings = without_zone_c
        return made

    monkeypatch.setattr(aws, "client", client)
    checks = {c.name: c for c in doctor.run(Session(aws, {"L-DB2E81BA": 10000}), cfg)}
    assert not checks["gpu offerings of pool gpu-large"].ok and "none in us-west-2c" in checks["gpu offerings of pool gpu-large"].detail


def test_bad_credentials_stop_at_the_first_check(aws):
    placeholders, check = doctor.run(Session(aws, {"sts": 0}), stack("dev"))
    assert placeholders.ok and check.name == "credentials" and not check.ok and "InvalidClientTokenId" in check.detail


def test_the_repositorys_example_values_fail_doctor(aws):
    examples = stack_files.read_stack("prod").placeholders
    checks = {c.name: c for c in doctor.run(Session(aws, {"L-DB2E81BA": 10000, "L-417A185B": 10000}), stack("prod"), examples=examples)}
    assert not checks["placeholders"].ok
    detail = checks["placeholders"].detail
    assert "ml-platform:cluster.admins[0].principalArn: 'arn:aws:iam::123456789012:role/platform-admins'" in detail
    assert "ml-platform:pins.images.grafana" in detail and "made-up image digest" in detail
    assert "ml-platform:monitoring.receivers" in detail and "example secret" in detail


def test_the_owner_fails_when_its_own_filters_miss_its_repositories_or_inspector_refuses_after_enabling(aws):
    narrow = config.parse(
        {
            **stack_files.read_stack("prod").values,
            "ml-platform:vulnerabilities": '{"registryScanning": {"repositoryFilters": ["serving/*"]}}',
        },
        "prod",
    )
    enhanced(aws, "serving/*")
    (scanning, _) = doctor.scanning_checks(aws, narrow)
    assert not scanning.ok and "match none of its repositoryFilters ['serving/*']: never scanned" in scanning.detail
    # once the account is ENHANCED, Inspector's settings must be readable (moto answers GetConfiguration with a 404)
    enhanced(aws, "*")
    (scanning, rescan) = doctor.scanning_checks(aws, stack("prod"))
    assert scanning.ok and not rescan.ok and "pulumi up needs inspector2 access" in rescan.detail
