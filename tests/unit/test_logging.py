import json

import pulumi_kubernetes as k8s
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from ml_platform.components import logging as platform_logging
from ml_platform.components.helm import Chart
from tests.helpers import render, resource

CHART = Chart("aws-for-fluent-bit", "https://aws.github.io/eks-charts", "0.2.0")


def build(**overrides):
    def program():
        args = dict(
            cluster_name="ml-platform-dev",
            cluster="ml-platform-dev",
            kubernetes_provider=k8s.Provider("k8s", kubeconfig="{}"),
            chart=CHART,
            region="us-west-2",
            account_id="123456789012",
            namespaces=["kube-system", "chat"],
        )
        args.update(overrides)
        platform_logging.Logging("logging", platform_logging.LoggingArgs(**args))

    return program


def test_each_namespace_has_its_own_group_with_retention():
    plan = render(build(retention_days=90))
    groups = {g["inputs"]["name"]: g["inputs"] for g in plan.by_type("aws:cloudwatch/logGroup:LogGroup")}
    # and the group of records without Kubernetes metadata, which only Fluent Bit used to create
    assert set(groups) == {f"/ml-platform/ml-platform-dev/{n}" for n in ("kube-system", "chat", "unlabelled")}
    assert all(g["retentionInDays"] == 90 and "kmsKeyId" not in g for g in groups.values())


def test_fluent_bit_tails_only_the_namespaces_whose_groups_exist_and_creates_none():
    plan = render(build(namespace_patterns=["pr-*"]))
    values = resource(plan, "kubernetes:helm.sh/v3:Release", "logging-fluent-bit")["inputs"]["values"]
    assert values["input"]["path"] == (
        "/var/log/containers/*_chat_*.log,/var/log/containers/*_kube-system_*.log,/var/log/containers/*_pr-*_*.log"
    )
    assert values["cloudWatchLogs"]["autoCreateGroup"] is False
    assert values["cloudWatchLogs"]["logGroupName"] == "/ml-platform/ml-platform-dev/unlabelled"
    actions = {a for s in platform_logging.shipping_policy("us-west-2", "1", "/p")["Statement"] for a in s["Action"]}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}


def test_prod_groups_are_encrypted_and_kept():
    plan = render(build(kms_key_arn="arn:aws:kms:us-west-2:123456789012:key/k", protect=True))
    group = resource(plan, "aws:cloudwatch/logGroup:LogGroup", "logging-chat")
    assert group["inputs"]["kmsKeyId"] == "arn:aws:kms:us-west-2:123456789012:key/k" and group["retainOnDelete"] is True


def test_fluent_bit_writes_only_the_stacks_groups_through_pod_identity():
    policy = platform_logging.shipping_policy("us-west-2", "123456789012", "/ml-platform/c")
    IAMPolicyDocumentValidator(json.dumps(policy)).validate()
    assert policy["Statement"][0]["Resource"] == [
        "arn:aws:logs:us-west-2:123456789012:log-group:/ml-platform/c/*",
        "arn:aws:logs:us-west-2:123456789012:log-group:/ml-platform/c/*:*",
    ]
    plan = render(build())
    association = resource(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "logging-fluent-bit")
    release = resource(plan, "kubernetes:helm.sh/v3:Release", "logging-fluent-bit")
    assert association["urn"] in release["dependencies"]
    values = release["inputs"]["values"]
    assert values["cloudWatchLogs"]["logGroupTemplate"] == "/ml-platform/ml-platform-dev/$kubernetes['namespace_name']"
    assert values["serviceAccount"]["name"] == association["inputs"]["serviceAccount"] == "fluent-bit"
    assert values["tolerations"] == [{"operator": "Exists"}]  # GPU nodes' logs too
