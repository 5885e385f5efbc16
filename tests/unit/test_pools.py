"""From pool config to Karpenter NodePools, device-plugin configs and the scheduling contract."""

import pytest

from components import scheduling
from infra import config, pools, program
from infra.offline import stack_files
from tests.helpers import minimal_sections, raw_config

SYSTEM = {"instanceTypes": ["m6i.large"], "maxSize": 2}


def parse(**extra_pools):
    return config.parse(raw_config(**minimal_sections(nodePools={"system": SYSTEM, **extra_pools})), "test")


GPU = {"kind": "karpenter", "instanceFamilies": ["g6", "g5"], "capacityTypes": ["spot"], "limits": {"cpu": 32, "memoryGiB": 128, "gpus": 4}}
CPU = {"kind": "karpenter", "instanceCategories": ["m", "c"], "minGeneration": 6, "limits": {"cpu": 16, "memoryGiB": 64}}


def test_gpu_karpenter_pool():
    cfg = parse(gpu={**GPU, "gpuSharing": {"timeSlicing": {"replicas": 4}}})
    pool = pools.karpenter_pool("gpu", cfg.nodePools["gpu"], ["us-west-2a", "us-west-2b"])
    assert {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5", "g6"]} in pool.requirements
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]} in pool.requirements
    assert {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-west-2a", "us-west-2b"]} in pool.requirements
    # 4 physical GPUs, each advertised 4 times: Karpenter counts the advertised slices against the limit
    assert pool.limits == {"cpu": "32", "memory": "128Gi", "nvidia.com/gpu": "16"}
    assert pool.taints == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert pool.labels == {
        "ml-platform/pool": "gpu",
        "nvidia.com/gpu.present": "true",
        "ml-platform/gpu-sharing": "time-slicing",
        "nvidia.com/device-plugin.config": "gpu",
    }
    # GPU pools never repack a loaded model and lose at most one node at a time
    assert pool.consolidation_policy == "WhenEmpty" and pool.budgets == [{"nodes": "1"}]
    assert pool.disk_size_gib == 200
    # expiry ignores budgets: GPU nodes only leave through drift (within budgets) or when empty
    assert pool.expire_after == "Never"


def test_cpu_karpenter_pool():
    pool = pools.karpenter_pool("cpu", parse(cpu=CPU).nodePools["cpu"], ["us-west-2a"])
    assert {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m"]} in pool.requirements
    assert {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["5"]} in pool.requirements
    assert pool.limits == {"cpu": "16", "memory": "64Gi"}
    assert pool.taints == [] and pool.consolidation_policy == "WhenEmptyOrUnderutilized" and pool.budgets == [{"nodes": "10%"}]
    assert pool.expire_after == "720h"


def test_configured_budgets_and_zones_win():
    budgets = [{"nodes": "0", "schedule": "0 9 * * 1-5", "duration": "8h", "reasons": ["Underutilized"]}]
    cfg = parse(gpu={**GPU, "zones": ["us-west-2c"], "disruptionBudgets": budgets})
    pool = pools.karpenter_pool("gpu", cfg.nodePools["gpu"], ["us-west-2a"])
    assert pool.budgets == budgets
    assert {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-west-2c"]} in pool.requirements


def test_schedulable_gpus_count_time_slices():
    cfg = parse(gpu={**GPU, "gpuSharing": {"timeSlicing": {"replicas": 4}}}, big={**GPU, "instanceFamilies": ["p4d"]})
    by_name = {p.name: p for p in pools.scheduling_pools(cfg)}
    assert by_name["gpu"].gpus_per_node == 8 * 4  # g5.48xlarge / g6.48xlarge have 8 GPUs
    assert by_name["big"].gpus_per_node == 8
    assert by_name["system"].gpus_per_node == 0


def test_sharing_configs_per_pool():
    cfg = parse(
        gpu={**GPU, "gpuSharing": {"timeSlicing": {"replicas": 2}}},
        a100={**GPU, "instanceFamilies": ["p4d"], "gpuSharing": {"mig": {"strategy": "single"}}},
    )
    configs = pools.sharing_configs(cfg)
    assert configs["gpu"]["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 2}]
    assert configs["a100"]["flags"]["migStrategy"] == "single" and "sharing" not in configs["a100"]


def test_a_gpu_pool_the_device_plugin_cannot_reach_is_a_config_error():
    cfg = parse(gpu={**GPU, "taints": [{"key": "team", "value": "a", "effect": "NoSchedule"}]})
    with pytest.raises(config.ConfigError) as caught:
        program.check_scheduling(cfg)
    assert caught.value.problems == [
        ("nodePools.gpu.taints", "the device plugin does not tolerate team=a:NoSchedule; it would sit at 0 pods there")
    ]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_committed_stacks_honour_the_contract(stack):
    cfg = config.parse(stack_files.read_stack(stack).values, stack)
    program.check_scheduling(cfg)
    contract_pools = pools.scheduling_pools(cfg)
    assert scheduling.gpu_placement(1, contract_pools)[2], "a 1-GPU model has somewhere to run"
    cpu_targets = scheduling.gpu_placement(0, contract_pools)[2]
    assert cpu_targets and all(p.gpus_per_node == 0 for p in contract_pools if p.name in cpu_targets)
