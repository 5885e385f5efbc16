import json

import pulumi

from ml_platform.components.kms import KmsKey, KmsKeyArgs
from tests.helpers import render, resource


def test_key_rotates_and_names_log_service_scoped_to_account():
    plan = render(
        lambda: KmsKey(
            "data",
            KmsKeyArgs(
                description="d",
                alias="test-data",
                account_id="123456789012",
                region="us-west-2",
                service_principals=("logs.us-west-2.amazonaws.com",),
            ),
        )
    )
    key = resource(plan, "aws:kms/key:Key", "data-key")
    assert key["inputs"]["enableKeyRotation"] is True
    assert key["inputs"]["deletionWindowInDays"] == 30
    policy = json.loads(key["inputs"]["policy"])
    logs = [s for s in policy["Statement"] if s["Principal"] == {"Service": "logs.us-west-2.amazonaws.com"}]
    assert logs[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == "arn:aws:logs:us-west-2:123456789012:log-group:*"
    assert resource(plan, "aws:kms/alias:Alias", "data-alias")["inputs"]["name"] == "alias/test-data"
    assert key["protect"] is False


def test_protected_key_is_protected_and_retained():
    plan = render(lambda: KmsKey("data", KmsKeyArgs(description="d", alias="test-data", account_id="123456789012", protect=True)))
    key = resource(plan, "aws:kms/key:Key", "data-key")
    assert key["protect"] is True and key["retainOnDelete"] is True


@pulumi.runtime.test
def test_key_arn_is_a_kms_arn(pulumi_mocks):
    key = KmsKey("k", KmsKeyArgs(description="d", alias="test-data", account_id="123456789012"))
    return key.arn.apply(lambda arn: _assert(arn.startswith("arn:aws:kms:us-west-2:123456789012:key/")))


def _assert(condition: bool) -> None:
    assert condition
