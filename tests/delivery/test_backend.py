"""bootstrap-backend against moto: creates, is idempotent, repairs, and refuses a bucket it cannot own."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra import cli
from infra.delivery import backend

REGION = "eu-west-1"


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def test_creates_a_hardened_bucket_and_rotating_key(aws):
    result = backend.bootstrap(aws, "acme-pulumi-state", REGION, say=lambda _: None)
    s3, kms = aws.client("s3"), aws.client("kms")
    assert s3.get_bucket_versioning(Bucket="acme-pulumi-state")["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket="acme-pulumi-state")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": result.key_arn}
    assert all(s3.get_public_access_block(Bucket="acme-pulumi-state")["PublicAccessBlockConfiguration"].values())
    policy = json.loads(s3.get_bucket_policy(Bucket="acme-pulumi-state")["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert kms.get_key_rotation_status(KeyId=result.key_arn)["KeyRotationEnabled"] is True
    assert s3.get_bucket_location(Bucket="acme-pulumi-state")["LocationConstraint"] == REGION
    assert result.login == "pulumi login 's3://acme-pulumi-state?region=eu-west-1&awssdk=v2'"
    assert result.secrets_provider == "--secrets-provider 'awskms://alias/ml-platform-pulumi-secrets?region=eu-west-1'"


def test_running_twice_reuses_the_key_and_bucket(aws):
    first = backend.bootstrap(aws, "acme-pulumi-state", REGION, say=lambda _: None)
    said = []
    second = backend.bootstrap(aws, "acme-pulumi-state", REGION, say=said.append)
    assert second.key_arn == first.key_arn
    assert "bucket acme-pulumi-state exists" in said and not any(line.startswith("created") for line in said)
    assert len(aws.client("kms").list_keys()["Keys"]) == 1


def test_repairs_an_existing_bucket_that_falls_short(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="legacy-state", CreateBucketConfiguration={"LocationConstraint": REGION})
    backend.bootstrap(aws, "legacy-state", REGION, say=lambda _: None)
    assert s3.get_bucket_versioning(Bucket="legacy-state")["Status"] == "Enabled"


def test_a_bucket_of_another_account_is_a_clear_error(aws, monkeypatch):
    s3 = aws.client("s3")
    forbidden = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")
    monkeypatch.setattr(s3, "head_bucket", lambda **_: (_ for _ in ()).throw(forbidden))
    with pytest.raises(backend.BackendError, match="exists but this account cannot use it"):
        backend.ensure_bucket(s3, "someone-elses", REGION, "arn:aws:kms:eu-west-1:123456789012:key/k", say=lambda _: None)


def test_cli_prints_the_login_lines(aws, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_session", lambda: aws)
    assert cli.main(["bootstrap-backend", "--bucket", "acme-pulumi-state", "--region", REGION]) == 0
    out = capsys.readouterr().out
    assert "created bucket acme-pulumi-state" in out and "pulumi login 's3://acme-pulumi-state?region=eu-west-1&awssdk=v2'" in out
