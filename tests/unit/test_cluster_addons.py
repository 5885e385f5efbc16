import json

import pulumi_kubernetes as k8s

from components import cluster_addons
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
