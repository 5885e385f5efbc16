"""ModelStore: the S3 bucket holding model artifacts: versioned, SSE-KMS, never public, TLS only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

TYPE = "mlplatform:aws:ModelStore"
COMPILE_CACHE_PREFIX = "compile-cache/"
"""Where models keep vLLM's compile cache (`compile-cache/<namespace>/<model>/`): a cache, not a record, so its
objects expire (compile_cache_expiry_days) and a replica that misses one compiles and saves it again."""


def tls_only_policy(bucket_arn: str) -> dict:
    """Bucket policy refusing every request that does not use TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def expiring_rules(expire_id: str, markers_id: str, prefix: str, days: int) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Lifecycle rules expiring `prefix`'s objects `days` after they were written and their noncurrent versions a
    day later. An expired object leaves a delete marker in a versioned bucket; S3 takes one rule's Days or its
    ExpiredObjectDeleteMarker, not both, so the markers get a rule of their own."""
    return [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id=expire_id,
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days),
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(noncurrent_days=1),
        ),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id=markers_id,
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(expired_object_delete_marker=True),
        ),
    ]


@dataclass
class ModelStoreArgs:
    kms_key_arn: pulumi.Input[str]
    """KMS key for SSE-KMS."""
    bucket_name: str | None = None
    """Bucket name (globally unique); None lets Pulumi pick one."""
    noncurrent_version_expiry_days: int = 30
    """Superseded object versions are deleted after this many days."""
    abort_incomplete_upload_days: int = 7
    """Unfinished multipart uploads are aborted after this many days."""
    compile_cache_expiry_days: int = 30
    """Objects under COMPILE_CACHE_PREFIX expire this many days after they were written, and their noncurrent
    versions a day later: entries of old images and configs, which no replica reads again, go away."""
    expiring_prefixes: Mapping[str, int] = field(default_factory=dict)
    """Prefix -> days: objects under each prefix expire this many days after they were written, their noncurrent
    versions a day later and their delete markers then (the capture proxies' `capture/<model>/`: records, kept only
    as long as the model's capture.retentionDays says)."""
    force_destroy: bool = False
    """Delete the bucket with its objects: only for ephemeral stacks."""
    protect: bool = False
    """Protect and retain the bucket (prod)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the bucket."""


class ModelStore(pulumi.ComponentResource):
    """The S3 bucket holding model artifacts: versioned, SSE-KMS, never public, TLS only.

    Arguments: ModelStoreArgs, documented field by field."""

    bucket_name: pulumi.Output[str]
    """The bucket's name."""
    bucket_arn: pulumi.Output[str]
    """The bucket's ARN."""

    def __init__(self, name: str, args: ModelStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            force_destroy=args.force_destroy,
            tags=dict(args.tags),
            # Model weights are expensive to rebuild: protect and keep the bucket where the stack says so.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect),
        )
        access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_arn
                    ),
                    # S3 Bucket Keys cut KMS request costs when many pods read large weight files.
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_version_expiry_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=args.abort_incomplete_upload_days
                    ),
                ),
                *expiring_rules(
                    "expire-compile-caches", "remove-compile-cache-delete-markers", COMPILE_CACHE_PREFIX, args.compile_cache_expiry_days
                ),
                # Ids name the prefix (S3 allows 255 characters), so a rule keeps its id when others come and go.
                *(
                    rule
                    for prefix, days in sorted(args.expiring_prefixes.items())
                    for rule in expiring_rules(f"expire-{prefix.strip('/')}", f"remove-{prefix.strip('/')}-delete-markers", prefix, days)
                ),
            ],
            # S3 rejects lifecycle rules on noncurrent versions until versioning is on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn))),
            # A bucket policy put before the public access block could be judged public and refused.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access_block]),
        )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})
