import json

import pulumi

from ml_platform.components import model_store
from tests.helpers import render, resource

KEY = "arn:aws:kms:us-west-2:123456789012:key/k"


def build(**overrides):
    args = dict(kms_key_arn=KEY)
    args.update(overrides)
    return lambda: model_store.ModelStore("models", model_store.ModelStoreArgs(**args))


def test_bucket_is_private_versioned_and_kms_encrypted():
    plan = render(build())
    block = resource(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "models-public-access")["inputs"]
    assert all(block[flag] is True for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    versioning = resource(plan, "aws:s3/bucketVersioning:BucketVersioning", "models-versioning")["inputs"]
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    (rule,) = resource(plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "models-encryption")[
        "inputs"
    ]["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}
    assert rule["bucketKeyEnabled"] is True


def test_lifecycle_expires_noncurrent_versions_after_versioning_is_on():
    plan = render(build(noncurrent_version_expiry_days=45))
    lifecycle = resource(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "models-lifecycle")
    rule, cache, markers = lifecycle["inputs"]["rules"]
    assert rule["filter"] == {"prefix": ""} and rule["noncurrentVersionExpiration"] == {"noncurrentDays": 45}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
    # Compile caches are caches: they expire (S3 applies the shortest of overlapping rules' expirations), weights never do.
    assert cache["filter"] == {"prefix": model_store.COMPILE_CACHE_PREFIX} and cache["expiration"] == {"days": 30}
    assert cache["noncurrentVersionExpiration"] == {"noncurrentDays": 1} and "expiration" not in rule
    assert markers["filter"] == cache["filter"] and markers["expiration"] == {"expiredObjectDeleteMarker": True}
    assert resource(plan, "aws:s3/bucketVersioning:BucketVersioning", "models-versioning")["urn"] in lifecycle["dependencies"]


def test_bucket_policy_denies_plain_http():
    (statement,) = model_store.tls_only_policy("arn:aws:s3:::b")["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
    plan = render(build())
    policy = resource(plan, "aws:s3/bucketPolicy:BucketPolicy", "models-policy")
    bucket_arn = resource(plan, "aws:s3/bucket:Bucket", "models-bucket")
    assert json.loads(policy["inputs"]["policy"])["Statement"][0]["Resource"][0].startswith("arn:aws:s3:::models-bucket-")
    assert bucket_arn["urn"] in policy["dependencies"]


def test_protection_and_force_destroy_follow_args():
    plain = resource(render(build()), "aws:s3/bucket:Bucket", "models-bucket")
    assert plain["protect"] is False and plain["inputs"]["forceDestroy"] is False
    kept = resource(render(build(protect=True)), "aws:s3/bucket:Bucket", "models-bucket")
    assert kept["protect"] is True and kept["retainOnDelete"] is True
    assert resource(render(build(force_destroy=True)), "aws:s3/bucket:Bucket", "models-bucket")["inputs"]["forceDestroy"] is True


@pulumi.runtime.test
def test_bucket_outputs(pulumi_mocks):
    store = model_store.ModelStore("models", model_store.ModelStoreArgs(kms_key_arn=KEY))

    def check(values):
        name, arn = values
        assert arn == f"arn:aws:s3:::{name}"

    return pulumi.Output.all(store.bucket_name, store.bucket_arn).apply(check)
