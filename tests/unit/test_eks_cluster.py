import json

import pulumi

from ml_platform.components import eks_cluster, iam
from tests.helpers import render, resource

ADDONS = {"vpc-cni": "v1", "kube-proxy": "v2", "eks-pod-identity-agent": "v3"}


def build(**overrides):
    args = dict(
        cluster_name="ml-platform-test",
        kubernetes_version="1.36",
        addon_versions=ADDONS,
        subnet_ids=["subnet-a", "subnet-b"],
        region="us-west-2",
        account_id="123456789012",
    )
    args.update(overrides)
    return lambda: eks_cluster.EksCluster("eks", eks_cluster.EksClusterArgs(**args))


def cluster_of(plan):
    return resource(plan, "aws:eks/cluster:Cluster", "eks-cluster")


def test_cluster_uses_api_auth_without_creator_admin():
    inputs = cluster_of(render(build()))["inputs"]
    assert inputs["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    assert inputs["version"] == "1.36"
    assert inputs["upgradePolicy"] == {"supportType": "STANDARD"}
    assert inputs["bootstrapSelfManagedAddons"] is False


def test_secrets_encrypted_and_all_logs_on_with_encrypted_retained_log_group():
    plan = render(build(log_retention_days=30))
    inputs = cluster_of(plan)["inputs"]
    assert inputs["encryptionConfig"]["resources"] == ["secrets"]
    assert inputs["encryptionConfig"]["provider"]["keyArn"].startswith("arn:aws:kms:")
    assert set(inputs["enabledClusterLogTypes"]) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    log_group = resource(plan, "aws:cloudwatch/logGroup:LogGroup", "eks-control-plane-logs")
    assert log_group["inputs"]["name"] == "/aws/eks/ml-platform-test/cluster"
    assert log_group["inputs"]["retentionInDays"] == 30 and log_group["inputs"]["kmsKeyId"].startswith("arn:aws:kms:")
    assert log_group["urn"] in cluster_of(plan)["dependencies"]


def test_endpoint_private_only_without_cidrs_and_restricted_with_them():
    private = cluster_of(render(build()))["inputs"]["vpcConfig"]
    assert private["endpointPrivateAccess"] is True and private["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in private
    public = cluster_of(render(build(public_access_cidrs=("203.0.113.0/24",))))["inputs"]["vpcConfig"]
    assert public["endpointPublicAccess"] is True and public["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_access_entries_and_scoped_policies():
    grants = [
        eks_cluster.AccessGrant("arn:aws:iam::123456789012:role/admins", "cluster-admin"),
        eks_cluster.AccessGrant("arn:aws:iam::123456789012:role/deployers", "admin", ("models",)),
    ]
    plan = render(build(access_grants=grants))
    entries = plan.by_type("aws:eks/accessEntry:AccessEntry")
    assert [e["inputs"]["type"] for e in entries] == ["STANDARD", "STANDARD"]
    associations = {a["inputs"]["principalArn"]: a for a in plan.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")}
    admin = associations["arn:aws:iam::123456789012:role/admins"]["inputs"]
    assert admin["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert admin["accessScope"] == {"type": "cluster"}
    scoped = associations["arn:aws:iam::123456789012:role/deployers"]["inputs"]
    assert scoped["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy"
    assert scoped["accessScope"] == {"type": "namespace", "namespaces": ["models"]}


def test_protection_and_deletion_protection_follow_args():
    plain = cluster_of(render(build()))
    assert plain["protect"] is False and plain["inputs"]["deletionProtection"] is False
    plan = render(build(protect=True))
    protected = cluster_of(plan)
    assert protected["protect"] is True and protected["retainOnDelete"] is True and protected["inputs"]["deletionProtection"] is True
    assert resource(plan, "aws:kms/key:Key", "eks-secrets-key")["protect"] is True


def test_bootstrap_addons_pinned_and_roles_carry_the_managed_policies():
    plan = render(build())
    addons = {a["inputs"]["addonName"]: a["inputs"]["addonVersion"] for a in plan.by_type("aws:eks/addon:Addon")}
    assert addons == ADDONS
    attached = {a["inputs"]["policyArn"].rsplit("/", 1)[-1] for a in plan.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert set(iam.NODE_ROLE_POLICIES) | {"AmazonEKSClusterPolicy"} == attached
    trust = json.loads(resource(plan, "aws:iam/role:Role", "eks-cluster-role")["inputs"]["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "eks.amazonaws.com"}
    oidc = resource(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider", "eks-oidc")["inputs"]
    assert oidc["url"].startswith("https://oidc.eks.us-west-2.amazonaws.com/id/") and oidc["clientIdLists"] == ["sts.amazonaws.com"]


def test_kubeconfig_has_no_secret_and_gets_its_token_from_aws_cli():
    config = eks_cluster.kubeconfig("c", "https://x", "Q0E=", "us-west-2")
    (user,) = config["users"]
    assert not {"token", "client-key-data", "password"} & set(user["user"])
    assert user["user"]["exec"]["command"] == "aws"
    assert user["user"]["exec"]["args"] == ["eks", "get-token", "--cluster-name", "c", "--region", "us-west-2", "--output", "json"]


def test_kubernetes_provider_uses_the_clusters_kubeconfig():
    plan = render(build())
    provider = resource(plan, "pulumi:providers:kubernetes", "eks-k8s")
    config = json.loads(provider["inputs"]["kubeconfig"])
    assert config["clusters"][0]["cluster"]["server"].endswith(".gr7.us-west-2.eks.amazonaws.com")


@pulumi.runtime.test
def test_cluster_outputs(pulumi_mocks):
    cluster = eks_cluster.EksCluster(
        "eks",
        eks_cluster.EksClusterArgs(
            cluster_name="c1", kubernetes_version="1.36", addon_versions=ADDONS, subnet_ids=["s"], region="us-west-2", account_id="1" * 12
        ),
    )

    def check(values):
        name, endpoint, oidc_arn = values
        assert name == "c1"
        assert endpoint.startswith("https://")
        assert oidc_arn.startswith("arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/")

    return pulumi.Output.all(cluster.name, cluster.endpoint, cluster.oidc_provider_arn).apply(check)


def test_protected_cluster_log_group_cannot_be_deleted():
    assert (
        resource(render(build()), "aws:cloudwatch/logGroup:LogGroup", "eks-control-plane-logs")["inputs"]["deletionProtectionEnabled"]
        is False
    )
    protected = resource(render(build(protect=True)), "aws:cloudwatch/logGroup:LogGroup", "eks-control-plane-logs")
    assert protected["inputs"]["deletionProtectionEnabled"] is True


def test_access_entries_are_named_by_principal_so_reordering_changes_nothing():
    first = eks_cluster.AccessGrant("arn:aws:iam::123456789012:role/a", "cluster-admin")
    second = eks_cluster.AccessGrant("arn:aws:iam::123456789012:role/b", "view")
    names = lambda plan: {r["inputs"]["principalArn"]: r["urn"] for r in plan.by_type("aws:eks/accessEntry:AccessEntry")}  # noqa: E731
    assert names(render(build(access_grants=[first, second]))) == names(render(build(access_grants=[second, first])))


def test_kubernetes_provider_waits_for_access_and_private_endpoint_admits_listed_cidrs():
    grant = eks_cluster.AccessGrant("arn:aws:iam::123456789012:role/a", "cluster-admin")
    plan = render(build(access_grants=[grant], private_access_cidrs=("10.99.0.0/16",)))
    provider = resource(plan, "pulumi:providers:kubernetes", "eks-k8s")
    association = plan.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")[0]
    assert association["urn"] in provider["dependencies"]
    (rule,) = plan.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule["inputs"]["cidrIpv4"] == "10.99.0.0/16" and rule["inputs"]["fromPort"] == 443
    assert rule["inputs"]["securityGroupId"].startswith("sg-")


def test_vpc_cni_enforces_network_policies():
    addon = resource(render(build()), "aws:eks/addon:Addon", "eks-vpc-cni")["inputs"]
    assert json.loads(addon["configurationValues"]) == {"enableNetworkPolicy": "true"}
