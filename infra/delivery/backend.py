"""`python -m infra bootstrap-backend`: the S3 state bucket and KMS key for Pulumi's state and secrets,
created or brought up to standard idempotently (running it twice changes nothing the second time)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from components.model_store import tls_only_policy

DEFAULT_KEY_ALIAS = "alias/ml-platform-pulumi-secrets"


class BackendError(Exception):
    """The bucket or key cannot be set up (e.g. the bucket name belongs to another account)."""


@dataclass(frozen=True)
class Backend:
    bucket: str
    region: str
    key_arn: str
    key_alias: str

    @property
    def login(self) -> str:
        return f"pulumi login 's3://{self.bucket}?region={self.region}&awssdk=v2'"

    @property
    def secrets_provider(self) -> str:
        return f"--secrets-provider 'awskms://{self.key_alias}?region={self.region}'"


def ensure_key(kms, alias: str, say: Callable[[str], None]) -> str:
    """The KMS key behind `alias`, created (rotating) if the alias does not exist."""
    try:
        key = kms.describe_key(KeyId=alias)["KeyMetadata"]
        say(f"key {alias} exists ({key['KeyId']})")
    except ClientError as err:
        if err.response["Error"]["Code"] != "NotFoundException":
            raise
        key = kms.create_key(Description="Pulumi state secrets of ml-platform")["KeyMetadata"]
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
        say(f"created key {alias} ({key['KeyId']})")
    if not kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]:
        kms.enable_key_rotation(KeyId=key["KeyId"])
        say("turned on key rotation")
    return key["Arn"]


def ensure_bucket(s3, bucket: str, region: str, key_arn: str, say: Callable[[str], None]) -> None:
    """The state bucket: versioned (every state is recoverable), SSE-KMS, never public, TLS only."""
    try:
        s3.head_bucket(Bucket=bucket)
        say(f"bucket {bucket} exists")
    except ClientError as err:
        if err.response["Error"]["Code"] in ("403", "Forbidden"):
            raise BackendError(f"bucket '{bucket}' exists but this account cannot use it; choose another name") from None
        if err.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
        create = {"Bucket": bucket}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**create)
        except ClientError as create_err:
            if create_err.response["Error"]["Code"] == "BucketAlreadyExists":
                raise BackendError(f"bucket name '{bucket}' is taken by another account; choose another name") from None
            raise
        say(f"created bucket {bucket} in {region}")
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, "BucketKeyEnabled": True}
            ]
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(f"arn:aws:s3:::{bucket}")))
    say("versioning, SSE-KMS, public access block and TLS-only policy in place")


def bootstrap(session, bucket: str, region: str, key_alias: str = DEFAULT_KEY_ALIAS, say: Callable[[str], None] = print) -> Backend:
    key_arn = ensure_key(session.client("kms", region_name=region), key_alias, say)
    ensure_bucket(session.client("s3", region_name=region), bucket, region, key_arn, say)
    return Backend(bucket=bucket, region=region, key_arn=key_arn, key_alias=key_alias)
