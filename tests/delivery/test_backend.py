"""bootstrap-backend: creates to standard, is idempotent, reads an existing bucket before changing it (region
refused, changes only with --force, other policy statements kept), validates its arguments before any call,
and ends every AWS failure in one line. In-process against moto's mock, and as a user runs it against moto's
server mode on loopback (no credentials, wrong region)."""

import json
import re

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ml_platform.infra import cli
from ml_platform.infra.delivery import backend

REGION = "eu-west-1"


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def quiet(*args, **kwargs):
    return backend.bootstrap(*args, say=lambda _: None, **kwargs)


def test_creates_a_hardened_bucket_and_rotating_key(aws):
    result = quiet(aws, "acme-pulumi-state", REGION)
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


def test_running_twice_changes_nothing_the_second_time(aws, monkeypatch):
    first = quiet(aws, "acme-pulumi-state", REGION)
    said = []
    s3 = aws.client("s3", region_name=REGION)
    writes = []
    for name in ("put_bucket_policy", "put_bucket_encryption", "put_bucket_versioning", "put_public_access_block"):
        monkeypatch.setattr(s3, name, lambda _name=name, **_: writes.append(_name))
    real_client = aws.client
    monkeypatch.setattr(
        aws, "client", lambda service, region_name=None: s3 if service == "s3" else real_client(service, region_name=region_name)
    )
    second = backend.bootstrap(aws, "acme-pulumi-state", REGION, say=said.append)
    assert second.key_arn == first.key_arn and writes == []
    assert "bucket acme-pulumi-state exists in eu-west-1" in said and "already to standard: nothing changed" in said
    assert len(aws.client("kms").list_keys()["Keys"]) == 1


def test_an_existing_bucket_that_falls_short_is_changed_only_with_force(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="legacy-state", CreateBucketConfiguration={"LocationConstraint": REGION})
    other = {"Sid": "ReadForAuditors", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}}
    other |= {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::legacy-state/*"}
    s3.put_bucket_policy(Bucket="legacy-state", Policy=json.dumps({"Version": "2012-10-17", "Statement": [other]}))
    with pytest.raises(backend.BackendError) as refused:
        quiet(aws, "legacy-state", REGION)
    message = str(refused.value)
    assert "nothing was changed. Run again with --force" in message
    assert "versioning: never enabled -> Enabled" in message
    # S3 encrypts new buckets with SSE-S3 (AES256); moto shows no configuration.
    assert re.search(r"default encryption: (AES256|none) -> aws:kms with a new key alias/ml-platform-pulumi-secrets, bucket key", message)
    assert "bucket policy: 1 statement(s), TLS-only one missing or different -> statement DenyInsecureTransport added, 1 other" in message
    assert s3.get_bucket_versioning(Bucket="legacy-state").get("Status") is None
    assert aws.client("kms").list_keys()["Keys"] == []  # nothing half-created: not even the key
    quiet(aws, "legacy-state", REGION, force=True)
    assert s3.get_bucket_versioning(Bucket="legacy-state")["Status"] == "Enabled"
    statements = json.loads(s3.get_bucket_policy(Bucket="legacy-state")["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["ReadForAuditors", "DenyInsecureTransport"]


def test_a_policy_with_one_statement_as_an_object_is_kept(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="one-statement", CreateBucketConfiguration={"LocationConstraint": REGION})
    only = {"Sid": "One", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::one-statement/*"}
    s3.put_bucket_policy(Bucket="one-statement", Policy=json.dumps({"Version": "2012-10-17", "Statement": only}))
    with pytest.raises(backend.BackendError, match="bucket policy: 1 statement"):
        quiet(aws, "one-statement", REGION)
    quiet(aws, "one-statement", REGION, force=True)
    statements = json.loads(s3.get_bucket_policy(Bucket="one-statement")["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["One", "DenyInsecureTransport"]


def test_a_bucket_encrypted_with_another_key_is_not_repointed_without_force(aws):
    s3, kms = aws.client("s3"), aws.client("kms")
    quiet(aws, "acme-pulumi-state", REGION)
    theirs = kms.create_key()["KeyMetadata"]["Arn"]
    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": theirs}, "BucketKeyEnabled": True}
    s3.put_bucket_encryption(Bucket="acme-pulumi-state", ServerSideEncryptionConfiguration={"Rules": [rule]})
    with pytest.raises(backend.BackendError, match=f"default encryption: aws:kms with {theirs}, bucket key -> aws:kms with alias/"):
        quiet(aws, "acme-pulumi-state", REGION)
    now = s3.get_bucket_encryption(Bucket="acme-pulumi-state")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert now["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == theirs


def test_a_bucket_in_another_region_is_refused_and_nothing_is_made(aws):
    aws.client("s3", region_name="us-west-2").create_bucket(
        Bucket="west-state", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    with pytest.raises(backend.BackendError, match=r"is in us-west-2, not eu-west-1: a bucket's region cannot change.*--region us-west-2"):
        quiet(aws, "west-state", REGION)
    assert aws.client("kms", region_name=REGION).list_keys()["Keys"] == []


def test_a_bucket_of_another_account_is_a_clear_error(aws, monkeypatch):
    s3 = aws.client("s3")
    forbidden = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")
    monkeypatch.setattr(s3, "head_bucket", lambda **_: (_ for _ in ()).throw(forbidden))
    with pytest.raises(backend.BackendError, match="exists but this account cannot use it"):
        backend.read_bucket(s3, "someone-elses")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bucket", "Bad_Bucket"], "'Bad_Bucket' is not a valid bucket name: 3-63 characters of lowercase"),
        (["--bucket", "ab"], "'ab' is not a valid bucket name"),
        (["--bucket", "my..state"], "no two adjacent dots"),
        (["--bucket", "192.168.5.4"], "not an IP address"),
        (["--bucket", "xn--state"], "reserves"),
        (["--bucket", "state-s3alias"], "reserves"),
        (["--region", "us-wst-2"], "'us-wst-2' is not an AWS region; did you mean us-west-2?"),
        (["--key-alias", "ml-platform"], "'ml-platform' is not a KMS alias"),
        (["--key-alias", "alias/aws/s3"], "reserved for AWS managed keys"),
    ],
)
def test_bad_arguments_exit_2_before_any_call(argv, message, monkeypatch, capsys):
    class NoCalls:
        def client(self, *args, **kwargs):
            raise AssertionError("no AWS client may be made for bad arguments")

    monkeypatch.setattr(cli, "_session", NoCalls)
    args = {"--bucket": "acme-pulumi-state", "--region": "us-west-2"} | dict(zip(argv[::2], argv[1::2], strict=True))
    assert cli.main(["bootstrap-backend", *[x for pair in args.items() for x in pair]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_prints_the_login_lines(aws, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_session", lambda: aws)
    assert cli.main(["bootstrap-backend", "--bucket", "acme-pulumi-state", "--region", REGION]) == 0
    out = capsys.readouterr().out
    assert "created bucket acme-pulumi-state" in out and "pulumi login 's3://acme-pulumi-state?region=eu-west-1&awssdk=v2'" in out


# As a user runs it: the command line, boto3's default session, moto's server on loopback.


def test_server_creates_then_refuses_a_region_mismatch(aws_server, capsys):
    assert cli.main(["bootstrap-backend", "--bucket", "acme-pulumi-state", "--region", "us-west-2"]) == 0
    assert "pulumi login 's3://acme-pulumi-state?region=us-west-2&awssdk=v2'" in capsys.readouterr().out
    s3 = aws_server("s3", "us-west-2")
    before = s3.get_bucket_encryption(Bucket="acme-pulumi-state")["ServerSideEncryptionConfiguration"]
    assert cli.main(["bootstrap-backend", "--bucket", "acme-pulumi-state", "--region", "eu-west-1"]) == 2
    captured = capsys.readouterr()
    assert "is in us-west-2, not eu-west-1" in captured.err and "pulumi login" not in captured.out
    assert aws_server("kms", "eu-west-1").list_keys()["Keys"] == []
    assert s3.get_bucket_encryption(Bucket="acme-pulumi-state")["ServerSideEncryptionConfiguration"] == before
    assert cli.main(["bootstrap-backend", "--bucket", "acme-pulumi-state", "--region", "us-west-2"]) == 0
    assert "already to standard: nothing changed" in capsys.readouterr().out


def test_server_without_credentials_is_one_line_exit_1(no_credentials, capsys):
    assert cli.main(["bootstrap-backend", "--bucket", "acme-pulumi-state", "--region", "us-west-2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no usable AWS credentials") and "aws sso login" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
