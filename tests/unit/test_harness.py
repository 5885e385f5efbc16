"""The test harness itself must be able to fail: an assertion inside apply fails the test."""

import pulumi
import pytest

from ml_platform.components.kms import KmsKey, KmsKeyArgs


def test_an_assertion_inside_apply_fails_the_test(pulumi_mocks):
    @pulumi.runtime.test
    def wrong_expectation():
        key = KmsKey("k", KmsKeyArgs(description="d", alias="test-data", account_id="123456789012"))

        def check(arn):
            assert arn.startswith("arn:aws:s3:"), "a KMS key ARN is not an S3 ARN"

        return key.arn.apply(check)

    with pytest.raises(AssertionError, match="a KMS key ARN is not an S3 ARN"):
        wrong_expectation()
