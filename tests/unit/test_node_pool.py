import pulumi
import pytest

from ml_platform.components import node_pool, scheduling
from tests.helpers import render, resource

BASE = dict(
    cluster_name="c",
    node_role_arn="arn:aws:iam::123456789012:role/nodes",
    subnet_ids=["subnet-a"],
    instance_types=("m6i.large",),
    architecture="x86_64",
    gpu=False,
    release_version="1.36.3-20260903",
    min_size=1,
    max_size=3,
)


def build(**overrides):
    return lambda: node_pool.NodePool("pool", node_pool.NodePoolArgs(**{**BASE, **overrides}))


@pytest.mark.parametrize(
    ("architecture", "gpu", "expected"),
    [
        ("x86_64", False, "AL2023_x86_64_STANDARD"),
        ("x86_64", True, "AL2023_x86_64_NVIDIA"),
        ("arm64", False, "AL2023_ARM_64_STANDARD"),
        ("arm64", True, "AL2023_ARM_64_NVIDIA"),
    ],
)
def test_ami_type(architecture, gpu, expected):
    assert node_pool.ami_type(architecture, gpu) == expected


def test_launch_template_requires_imdsv2_and_encrypts_gp3_root():
    plan = render(build())
    template = resource(plan, "aws:ec2/launchTemplate:LaunchTemplate", "pool-lt")["inputs"]
    assert template["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}
    (device,) = template["blockDeviceMappings"]
    assert device["deviceName"] == "/dev/xvda"
    assert device["ebs"]["volumeType"] == "gp3" and device["ebs"]["encrypted"] == "true" and device["ebs"]["volumeSize"] == 50
    assert "userData" not in template and "imageId" not in template and "iamInstanceProfile" not in template


def test_cpu_pool_and_autoscaler_owns_desired_size():
    group = resource(render(build(labels=scheduling.node_labels("pool", False, None, {}))), "aws:eks/nodeGroup:NodeGroup", "pool-ng")
    assert group["inputs"]["amiType"] == "AL2023_x86_64_STANDARD"
    assert group["inputs"].get("taints", []) == []
    assert group["inputs"]["labels"] == {"ml-platform/pool": "pool"}
    assert group["inputs"]["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 1}
    assert group["inputs"]["releaseVersion"] == "1.36.3-20260903"
    assert group["ignoreChanges"] == ["scalingConfig.desiredSize"]
    assert "diskSize" not in group["inputs"]


def test_gpu_pool_is_tainted_labelled_big_disk_spot_from_zero():
    plan = render(
        build(
            instance_types=("g5.xlarge",),
            gpu=True,
            min_size=0,
            max_size=2,
            capacity_type="SPOT",
            labels=scheduling.node_labels("pool", True, None, {}),
            taints=scheduling.node_taints(True, []),
        )
    )
    group = resource(plan, "aws:eks/nodeGroup:NodeGroup", "pool-ng")["inputs"]
    assert group["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert group["labels"]["nvidia.com/gpu.present"] == "true"
    assert group["capacityType"] == "SPOT"
    assert group["scalingConfig"]["minSize"] == 0 and group["scalingConfig"]["desiredSize"] == 0
    disk = resource(plan, "aws:ec2/launchTemplate:LaunchTemplate", "pool-lt")["inputs"]["blockDeviceMappings"][0]["ebs"]
    assert disk["volumeSize"] == node_pool.GPU_DISK_GIB


def test_extra_taints_are_translated_to_the_eks_spelling():
    taints = [{"key": "team", "value": "ml", "effect": "NoExecute"}, {"key": "dedicated", "value": "", "effect": "PreferNoSchedule"}]
    group = resource(render(build(taints=taints)), "aws:eks/nodeGroup:NodeGroup", "pool-ng")["inputs"]
    assert group["taints"] == [{"key": "team", "value": "ml", "effect": "NO_EXECUTE"}, {"key": "dedicated", "effect": "PREFER_NO_SCHEDULE"}]


@pulumi.runtime.test
def test_node_group_name_output(pulumi_mocks):
    pool = node_pool.NodePool("gpu", node_pool.NodePoolArgs(**{**BASE, "instance_types": ("g5.xlarge",), "gpu": True, "min_size": 0}))
    return pool.node_group_name.apply(lambda name: _assert_startswith(name, "gpu-ng-"))


def _assert_startswith(value: str, prefix: str) -> None:
    assert value.startswith(prefix), value
