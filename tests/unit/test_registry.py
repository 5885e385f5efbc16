import json

import pulumi

from ml_platform.components import registry
from tests.helpers import render, resource

NODE_ROLE = "arn:aws:iam::123456789012:role/nodes"


def build(**overrides):
    args = dict(repositories=("serving/vllm",), kms_key_arn="arn:aws:kms:us-west-2:123456789012:key/k", puller_role_arns=[NODE_ROLE])
    args.update(overrides)
    return lambda: registry.ContainerRegistry("reg", registry.ContainerRegistryArgs(**args))


def test_repository_is_immutable_scanned_and_kms_encrypted():
    repo = resource(render(build()), "aws:ecr/repository:Repository", "reg-serving-vllm")
    inputs = repo["inputs"]
    assert inputs["name"] == "serving/vllm"
    assert inputs["imageTagMutability"] == "IMMUTABLE"
    assert inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-west-2:123456789012:key/k"}]
    assert inputs["forceDelete"] is False
    assert repo["protect"] is False


def test_force_delete_only_when_asked_and_protection_follows_config():
    plan = render(build(force_delete=True))
    assert resource(plan, "aws:ecr/repository:Repository", "reg-serving-vllm")["inputs"]["forceDelete"] is True
    protected = resource(render(build(protect=True)), "aws:ecr/repository:Repository", "reg-serving-vllm")
    assert protected["protect"] is True and protected["retainOnDelete"] is True


def test_lifecycle_expires_untagged_and_keeps_the_newest_tagged():
    document = registry.lifecycle_policy(7, 30)
    untagged, tagged = document["rules"]
    assert untagged["selection"] == {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}
    assert tagged["selection"] == {"tagStatus": "tagged", "tagPatternList": ["*"], "countType": "imageCountMoreThan", "countNumber": 30}
    assert tagged["rulePriority"] > untagged["rulePriority"]
    plan = render(build(untagged_expiry_days=7, keep_tagged_count=30))
    assert json.loads(resource(plan, "aws:ecr/lifecyclePolicy:LifecyclePolicy", "reg-serving-vllm")["inputs"]["policy"]) == document


def test_nodes_may_pull_and_nothing_more():
    policy = json.loads(resource(render(build()), "aws:ecr/repositoryPolicy:RepositoryPolicy", "reg-serving-vllm")["inputs"]["policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"AWS": [NODE_ROLE]}
    assert set(statement["Action"]) == {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"}


def test_pull_through_cache_rules_and_the_pullers_right_to_fill_them():
    cache = registry.PullThroughCache(key="ecr-public", prefix="dev/ecr-public", upstream_url="public.ecr.aws")
    plan = render(build(pull_through_caches=[cache], puller_role_names=["nodes"], account_id="123456789012", region="us-west-2"))
    rule = resource(plan, "aws:ecr/pullThroughCacheRule:PullThroughCacheRule", "reg-cache-ecr-public")
    assert rule["inputs"]["ecrRepositoryPrefix"] == "dev/ecr-public" and rule["inputs"]["upstreamRegistryUrl"] == "public.ecr.aws"
    grant = resource(plan, "aws:iam/rolePolicy:RolePolicy", "reg-cache-pull-0")["inputs"]
    assert grant["role"] == "nodes"
    (statement,) = json.loads(grant["policy"])["Statement"]
    assert statement["Action"] == ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"]
    assert statement["Resource"] == ["arn:aws:ecr:us-west-2:123456789012:repository/dev/ecr-public/*"]


def test_no_cache_no_extra_grant():
    assert render(build(puller_role_names=["nodes"])).by_type("aws:iam/rolePolicy:RolePolicy") == []


@pulumi.runtime.test
def test_repository_urls_output(pulumi_mocks):
    reg = registry.ContainerRegistry(
        "reg", registry.ContainerRegistryArgs(repositories=("a/b", "c"), kms_key_arn="k", puller_role_arns=[NODE_ROLE])
    )

    def check(urls):
        assert urls == {
            "a/b": "123456789012.dkr.ecr.us-west-2.amazonaws.com/a/b",
            "c": "123456789012.dkr.ecr.us-west-2.amazonaws.com/c",
        }

    return reg.repository_urls.apply(check)


def test_repository_names_carry_the_prefix_but_urns_do_not():
    plan = render(build(name_prefix="dev"))
    repo = resource(plan, "aws:ecr/repository:Repository", "reg-serving-vllm")
    assert repo["inputs"]["name"] == "dev/serving/vllm"
