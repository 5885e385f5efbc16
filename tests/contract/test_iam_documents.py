"""Every IAM document the plans declare, replayed into moto's IAM, which rejects malformed policies the
way IAM does: trust policies through UpdateAssumeRolePolicy, identity policies through PutRolePolicy,
resource policies (bucket, repository, key) through moto's policy grammar validator."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from moto.iam.policy_validation import BaseIAMPolicyValidator

from ml_platform.components import iam

RESOURCE_POLICIES = {
    "aws:sqs/queuePolicy:QueuePolicy": "policy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy": "policy",
    "aws:kms/key:Key": "policy",
}


def documents(plans, type_token: str, prop: str) -> list[tuple[str, str]]:
    found = []
    for stack, plan in plans.items():
        for resource in plan.by_type(type_token):
            found.append((f"{stack}:{resource['name']}", resource["inputs"][prop]))
    return found


@pytest.fixture
def iam_client():
    with mock_aws():
        client = boto3.client("iam", region_name="us-east-1")
        client.create_role(RoleName="replay", AssumeRolePolicyDocument=json.dumps(iam.service_trust_policy("ec2.amazonaws.com")))
        yield client


def test_trust_policies_are_accepted(plans, iam_client):
    trust = documents(plans, "aws:iam/role:Role", "assumeRolePolicy")
    assert len(trust) >= 9
    for _, document in trust:
        iam_client.update_assume_role_policy(RoleName="replay", PolicyDocument=document)


def test_the_replay_rejects_a_trust_policy_with_a_resource(iam_client):
    bad = iam.service_trust_policy(iam.POD_IDENTITY_SERVICE, tag_session=True)
    bad["Statement"][0]["Resource"] = "*"
    with pytest.raises(iam_client.exceptions.MalformedPolicyDocumentException):
        iam_client.update_assume_role_policy(RoleName="replay", PolicyDocument=json.dumps(bad))


def test_identity_policies_are_accepted(plans, iam_client):
    inline = documents(plans, "aws:iam/rolePolicy:RolePolicy", "policy")
    assert len(inline) >= 4
    for index, (_, document) in enumerate(inline):
        iam_client.put_role_policy(RoleName="replay", PolicyName=f"p{index}", PolicyDocument=document)


def test_managed_policies_are_accepted(plans, iam_client):
    managed = documents(plans, "aws:iam/policy:Policy", "policy")
    assert len(managed) >= 6
    for index, (_, document) in enumerate(managed):
        iam_client.create_policy(PolicyName=f"replay-{index}", PolicyDocument=document)


def test_resource_policies_are_well_formed(plans):
    checked = 0
    for type_token, prop in RESOURCE_POLICIES.items():
        for _, document in documents(plans, type_token, prop):
            BaseIAMPolicyValidator(document).validate()
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    "bad",
    [
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3GetObject", "Resource": "*"}]},
        {"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]},
        {"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Action": "s3:GetObject", "Resource": "*"}]},
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]},
    ],
    ids=["action without service", "old version", "bad effect", "no resource"],
)
def test_the_replay_rejects_malformed_documents(iam_client, bad):
    with pytest.raises(iam_client.exceptions.MalformedPolicyDocumentException):
        iam_client.put_role_policy(RoleName="replay", PolicyName="bad", PolicyDocument=json.dumps(bad))
