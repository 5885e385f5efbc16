import json

import pulumi_kubernetes as k8s

from ml_platform.components import iam, karpenter
from ml_platform.components.helm import Chart
from tests.helpers import render, resource

POOL = karpenter.KarpenterPool(
    name="gpu",
    requirements=[{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5"]}],
    labels={"ml-platform/pool": "gpu"},
    taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
    limits={"cpu": "32", "memory": "128Gi", "nvidia.com/gpu": "4"},
    consolidation_policy="WhenEmpty",
    consolidate_after="5m",
    budgets=[{"nodes": "1"}],
    expire_after="720h",
    termination_grace_period="1h",
    disk_size_gib=200,
    weight=100,
)


def build(**overrides):
    def program():
        args = dict(
            cluster_name="ml-platform-test",
            cluster="ml-platform-test",
            cluster_security_group_id="sg-123",
            kubernetes_provider=k8s.Provider("k8s", kubeconfig="{}"),
            chart=Chart("oci://public.ecr.aws/karpenter/karpenter", "", "1.14.1", crd_chart="oci://public.ecr.aws/karpenter/karpenter-crd"),
            ami_alias="al2023@v20260903",
            region="us-west-2",
            account_id="123456789012",
            pools=[POOL],
            controller_node_selector={"ml-platform/pool": "system"},
        )
        args.update(overrides)
        karpenter.Karpenter("karpenter", karpenter.KarpenterArgs(**args))

    return program


def test_node_role_joins_through_an_ec2_linux_access_entry():
    plan = render(build())
    entry = resource(plan, "aws:eks/accessEntry:AccessEntry", "karpenter-node-access")
    role = resource(plan, "aws:iam/role:Role", "karpenter-node-role")
    assert entry["inputs"]["type"] == "EC2_LINUX" and role["urn"] in entry["dependencies"]
    attached = {
        a["inputs"]["policyArn"].rsplit("/", 1)[-1]
        for a in plan.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a["name"] in {f"karpenter-node-{p}" for p in iam.NODE_ROLE_POLICIES}
    }
    assert attached == set(iam.NODE_ROLE_POLICIES)


def test_interruption_queue_rules_and_policy():
    plan = render(build())
    queue = resource(plan, "aws:sqs/queue:Queue", "karpenter-interruptions")["inputs"]
    assert queue["name"] == "ml-platform-test" and queue["sqsManagedSseEnabled"] is True and queue["messageRetentionSeconds"] == 300
    patterns = {r["name"]: json.loads(r["inputs"]["eventPattern"]) for r in plan.by_type("aws:cloudwatch/eventRule:EventRule")}
    assert patterns["karpenter-spot-interruption"] == {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
    assert len(patterns) == 5 and len(plan.by_type("aws:cloudwatch/eventTarget:EventTarget")) == 5
    policy = json.loads(resource(plan, "aws:sqs/queuePolicy:QueuePolicy", "karpenter-interruptions")["inputs"]["policy"])
    assert policy["Statement"][1]["Effect"] == "Deny" and policy["Statement"][1]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_controller_gets_the_upstream_policies_through_pod_identity():
    plan = render(build())
    association = resource(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-controller")["inputs"]
    assert (association["namespace"], association["serviceAccount"]) == ("kube-system", "karpenter")
    policies = {p["name"]: json.loads(p["inputs"]["policy"]) for p in plan.by_type("aws:iam/policy:Policy")}
    assert set(policies) == {
        f"karpenter-{n}"
        for n in ("node-lifecycle", "iam-integration", "eks-integration", "interruption", "zonal-shift", "resource-discovery")
    }
    pass_role = policies["karpenter-iam-integration"]["Statement"][0]
    assert pass_role["Action"] == "iam:PassRole" and pass_role["Resource"].startswith("arn:aws:iam::123456789012:role/karpenter-node-role-")
    queue = policies["karpenter-interruption"]["Statement"][0]
    assert queue["Resource"] == "arn:aws:sqs:us-west-2:123456789012:ml-platform-test"
    attached = {a["inputs"]["policyArn"] for a in plan.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert sum(arn.startswith("arn:aws:iam::123456789012:policy/karpenter-") for arn in attached) == 6
    deletion = policies["karpenter-node-lifecycle"]["Statement"][-1]
    assert deletion["Condition"]["StringEquals"] == {"aws:ResourceTag/kubernetes.io/cluster/ml-platform-test": "owned"}


def test_chart_release_and_values():
    plan = render(build(controller_replicas=1))
    release = resource(plan, "kubernetes:helm.sh/v3:Release", "karpenter-controller")["inputs"]
    assert release["chart"] == "oci://public.ecr.aws/karpenter/karpenter" and release["version"] == "1.14.1"
    assert release["name"] == "karpenter" and release["namespace"] == "kube-system" and release["skipCrds"] is True
    crds = resource(plan, "kubernetes:helm.sh/v3:Release", "karpenter-crds")
    assert crds["inputs"]["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd" and crds["inputs"]["version"] == "1.14.1"
    assert crds["urn"] in resource(plan, "kubernetes:helm.sh/v3:Release", "karpenter-controller")["dependencies"]
    values = release["values"]
    assert values["settings"] == {"clusterName": "ml-platform-test", "interruptionQueue": "ml-platform-test"}
    assert values["serviceAccount"] == {"name": "karpenter"} and values["replicas"] == 1
    assert values["nodeSelector"] == {"kubernetes.io/os": "linux", "ml-platform/pool": "system"}
    assert values["dnsPolicy"] == "Default"


def test_cluster_security_group_is_the_one_tagged_for_discovery():
    tag = resource(render(build()), "aws:ec2/tag:Tag", "karpenter-sg-discovery")["inputs"]
    assert tag == {"resourceId": "sg-123", "key": "karpenter.sh/discovery", "value": "ml-platform-test"}


def test_node_class_and_pool_manifests():
    plan = render(build())
    manifests = plan.manifests()
    node_class = manifests["_cluster/EC2NodeClass-gpu.yaml"]["spec"]
    assert node_class["amiSelectorTerms"] == [{"alias": "al2023@v20260903"}]
    assert node_class["metadataOptions"]["httpTokens"] == "required" and node_class["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "ml-platform-test"}}]
    assert node_class["blockDeviceMappings"][0]["ebs"] == {
        "volumeSize": "200Gi",
        "volumeType": "gp3",
        "encrypted": True,
        "deleteOnTermination": True,
    }
    assert node_class["role"].startswith("karpenter-node-role-")
    node_pool = manifests["_cluster/NodePool-gpu.yaml"]["spec"]
    assert node_pool["template"]["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"}
    assert node_pool["limits"]["nvidia.com/gpu"] == "4" and node_pool["weight"] == 100
    release = resource(plan, "kubernetes:helm.sh/v3:Release", "karpenter-controller")["urn"]
    assert release in resource(plan, "kubernetes:karpenter.sh/v1:NodePool", "karpenter-gpu-nodepool")["dependencies"]


def test_controller_policies_are_accepted_by_iam_grammar():
    from moto.iam.policy_validation import IAMPolicyDocumentValidator

    documents = karpenter.controller_policies("c", "us-west-2", "123456789012", "aws", "arn:aws:iam::123456789012:role/n", "arn:aws:sqs:q")
    for document in documents.values():
        IAMPolicyDocumentValidator(json.dumps(document)).validate()
