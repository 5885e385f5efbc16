import json

import pulumi_kubernetes as k8s

from ml_platform.components import cluster_addons
from ml_platform.infra import versions
from tests.helpers import render, resource

KEY = "arn:aws:kms:us-west-2:123456789012:key/k"


def build(**overrides):
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        args = dict(
            cluster_name="c",
            addon_versions={"coredns": "v1.14.3-eksbuild.3", "aws-ebs-csi-driver": "v1.66.0-eksbuild.1"},
            kubernetes_provider=provider,
            volume_kms_key_arn=KEY,
            metrics_server_chart=versions.CHARTS["metrics-server"],
        )
        args.update(overrides)
        cluster_addons.ClusterAddons("addons", cluster_addons.ClusterAddonsArgs(**args))

    return program


def test_ebs_csi_driver_gets_its_role_through_pod_identity():
    plan = render(build())
    addon = resource(plan, "aws:eks/addon:Addon", "addons-aws-ebs-csi-driver")["inputs"]
    assert addon["addonVersion"] == "v1.66.0-eksbuild.1"
    (association,) = addon["podIdentityAssociations"]
    assert association["serviceAccount"] == "ebs-csi-controller-sa"
    role = resource(plan, "aws:iam/role:Role", "addons-ebs-csi")["inputs"]
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    attachment = resource(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "addons-ebs-csi")["inputs"]
    assert attachment["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    kms = json.loads(resource(plan, "aws:iam/rolePolicy:RolePolicy", "addons-ebs-csi-kms")["inputs"]["policy"])
    assert all(statement["Resource"] == KEY for statement in kms["Statement"])


def test_default_storage_class_is_encrypted_gp3_bound_late():
    plan = render(build())
    manifest = plan.manifests()["_cluster/StorageClass-gp3.yaml"]
    assert manifest["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert manifest["provisioner"] == "ebs.csi.aws.com"
    assert manifest["parameters"] == {"type": "gp3", "encrypted": "true", "kmsKeyId": KEY, "fsType": "ext4"}
    assert manifest["volumeBindingMode"] == "WaitForFirstConsumer"
    assert manifest["reclaimPolicy"] == "Delete"
    storage_class = resource(plan, "kubernetes:storage.k8s.io/v1:StorageClass", "addons-gp3")
    assert storage_class["provider"].endswith("pulumi:providers:kubernetes::k8s")


def test_prod_keeps_volume_data():
    manifest = render(build(retain_volumes=True)).manifests()["_cluster/StorageClass-gp3.yaml"]
    assert manifest["reclaimPolicy"] == "Retain"


def test_metrics_server_serves_the_resource_metrics_api_for_hpas():
    plan = render(build(metrics_server_replicas=2, node_selector={"ml-platform/pool": "system"}))
    (release,) = [r["inputs"] for r in plan.by_type("kubernetes:helm.sh/v3:Release")]
    assert (release["chart"], release["version"], release["namespace"]) == ("metrics-server", "3.13.1", "kube-system")
    values = release["values"]
    assert values["replicas"] == 2
    assert values["nodeSelector"] == {"ml-platform/pool": "system"}
    # An aggregated API with no replica answering fails every HPA and stalls namespace deletion.
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    assert values["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"


def test_a_single_metrics_server_has_no_budget_that_would_block_every_drain():
    values = cluster_addons.metrics_server_values(1, {})
    assert values["podDisruptionBudget"]["enabled"] is False
    assert "topologySpreadConstraints" not in values
