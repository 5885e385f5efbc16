"""From pool config to Karpenter NodePools, device-plugin configs and the scheduling contract."""

import pytest

from ml_platform.components import model_service, scheduling
from ml_platform.infra import config, pools, program
from ml_platform.infra.offline import stack_files
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
    # Karpenter sizes a node by physical GPUs: slices pending together must never buy a 4- or 8-GPU instance
    assert {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": ["1"]} in pool.requirements
    # 4 physical GPUs: 4 one-GPU nodes whether launching (physical) or registered (each advertises 4 slices)
    assert pool.limits == {"cpu": "32", "memory": "128Gi", "nodes": "4", "nvidia.com/gpu": "16"}
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
    managed = {"instanceTypes": ["g5.12xlarge"], "maxSize": 2, "gpuSharing": {"timeSlicing": {"replicas": 2}}}
    cfg = parse(gpu={**GPU, "gpuSharing": {"timeSlicing": {"replicas": 4}}}, big={**GPU, "instanceFamilies": ["p4d"]}, fixed=managed)
    by_name = {p.name: p for p in pools.scheduling_pools(cfg)}
    assert by_name["gpu"].gpus_per_node == 1 * 4  # a time-sliced Karpenter pool launches 1-GPU instances only
    assert by_name["fixed"].gpus_per_node == 4 * 2  # a managed pool runs the types it names
    assert by_name["big"].gpus_per_node == 8
    assert by_name["system"].gpus_per_node == 0


def test_unshared_gpu_pools_keep_their_physical_gpu_limit_and_every_size():
    pool = pools.karpenter_pool("gpu", parse(gpu=GPU).nodePools["gpu"], ["us-west-2a"])
    assert pool.limits == {"cpu": "32", "memory": "128Gi", "nvidia.com/gpu": "4"}
    assert not any(r["key"] == "karpenter.k8s.aws/instance-gpu-count" for r in pool.requirements)


def test_a_mig_pool_is_limited_in_whole_nodes():
    mig = {**GPU, "instanceFamilies": ["p4d"], "capacityTypes": ["on-demand"], "gpuSharing": {"mig": {"strategy": "single"}}}
    pool = pools.karpenter_pool("a100", parse(a100={**mig, "limits": {"cpu": 192, "memoryGiB": 2304, "gpus": 16}}).nodePools["a100"], ["z"])
    # MIG devices per GPU depend on the partitioning: Karpenter's nvidia.com/gpu count would jump at registration
    assert pool.limits == {"cpu": "192", "memory": "2304Gi", "nodes": "2"}
    # 8-GPU nodes only, so 2 nodes are the 16 GPUs (p5 also has a 1-GPU size)
    assert {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In", "values": ["8"]} in pool.requirements
    with pytest.raises(config.ConfigError) as caught:
        parse(a100={**mig, "limits": {"cpu": 192, "memoryGiB": 2304, "gpus": 12}})
    ((path, message),) = caught.value.problems
    assert path == "nodePools.a100"
    assert "limits.gpus 12: a MIG pool is limited in whole nodes of 8 GPUs" in message


def test_a_time_sliced_karpenter_pool_needs_a_family_with_one_gpu_sizes():
    with pytest.raises(config.ConfigError) as caught:
        parse(a100={**GPU, "instanceFamilies": ["p4d"], "gpuSharing": {"timeSlicing": {"replicas": 2}}})
    ((path, message),) = caught.value.problems
    assert path == "nodePools.a100"
    assert "launches 1-GPU instances only" in message and "p4d has no 1-GPU size" in message


def test_sharing_configs_per_pool():
    cfg = parse(
        gpu={**GPU, "gpuSharing": {"timeSlicing": {"replicas": 2}}},
        a100={
            **GPU,
            "instanceFamilies": ["p4d"],
            "limits": {"cpu": 96, "memoryGiB": 1152, "gpus": 8},
            "gpuSharing": {"mig": {"strategy": "single"}},
        },
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


def test_vllm_on_a_time_sliced_gpu_must_leave_memory_for_the_other_slices():
    from ml_platform.infra import models

    vllm = {
        "runtime": "vllm",
        "image": {"repository": "docker.io/vllm/vllm-openai", "tag": "v0.31.0"},
        "source": {"s3Prefix": "m/"},
        "gpus": 1,
        "resources": {"cpu": "2", "memory": "12Gi"},
    }
    shared = {**GPU, "gpuSharing": {"timeSlicing": {"replicas": 4}}}

    def problems(args):
        sections = minimal_sections(nodePools={"system": SYSTEM, "gpu": shared}, models={"chat": {**vllm, "args": args}})
        return models.placement_problems(config.parse(raw_config(**sections), "test"))

    ((path, message),) = problems([])
    assert path == "models.chat.args"
    assert "shares each GPU 4 ways, and vLLM reserves 0.9 (vLLM's default)" in message and "at most 0.25" in message
    assert problems(["--gpu-memory-utilization", "0.3"])[0][1].count("reserves 0.3 of") == 1
    assert problems(["--gpu-memory-utilization=0.25"]) == []
    assert problems(["--max-model-len", "4096", "--gpu-memory-utilization", "0.2"]) == []


def test_models_keep_off_the_system_pool_and_a_cpu_model_needs_another_pool():
    from ml_platform.infra import models

    fraud = {
        "runtime": "custom",
        "image": {"repository": "docker.io/vllm/vllm-openai", "tag": "1"},
        "source": {"s3Prefix": "f/"},
        "port": 8080,
        "healthPath": "/h",
        "resources": {"cpu": "1", "memory": "2Gi"},
    }
    alone = config.parse(raw_config(**minimal_sections(nodePools={"system": SYSTEM}, models={"fraud": fraud})), "test")
    ((path, message),) = models.placement_problems(alone)
    assert path == "models.fraud" and "models stay off the system pool" in message
    with_cpu = config.parse(raw_config(**minimal_sections(nodePools={"system": SYSTEM, "cpu": CPU}, models={"fraud": fraud})), "test")
    assert models.placement_problems(with_cpu) == []
    spec = models.model_spec("fraud", with_cpu.models["fraud"], with_cpu, "r", "b")
    pod = model_service.deployment(spec)["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {"matchExpressions": [{"key": "ml-platform/pool", "operator": "NotIn", "values": ["system"]}]}


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        # a managed g5.2xlarge (8 vCPU, 32 GiB) cannot hold 200 CPUs or 900Gi
        ({"resources": {"cpu": "200", "memory": "24Gi"}}, "models.chat.resources", "200 CPU and 24Gi fit no node"),
        ({"resources": {"cpu": "4", "memory": "900Gi"}}, "models.chat.resources", "the largest (g5.xlarge)"),
    ],
)
def test_a_model_that_fits_no_node_is_refused(change, path, fragment):
    from ml_platform.infra import models

    vllm = {
        "runtime": "vllm",
        "image": {"repository": "docker.io/vllm/vllm-openai", "tag": "v0.31.0"},
        "source": {"s3Prefix": "m/"},
        "gpus": 1,
        "resources": {"cpu": "2", "memory": "8Gi"},
        "args": ["--gpu-memory-utilization", "0.2"],
    }
    small = {**GPU, "instanceFamilies": ["g5"], "limits": {"cpu": 4, "memoryGiB": 16, "gpus": 1}}

    def problems(model):
        sections = minimal_sections(nodePools={"system": SYSTEM, "gpu": small}, models={"chat": model})
        return models.placement_problems(config.parse(raw_config(**sections), "test"))

    found = problems({**vllm, **change})
    assert any(p == path and fragment in m for p, m in found), found
    assert problems(vllm) == []  # the same model at its own size fits


def test_a_model_asking_more_gpus_than_the_pool_may_launch_is_refused():
    from ml_platform.infra import models

    big = {
        "runtime": "vllm",
        "image": {"repository": "docker.io/vllm/vllm-openai", "tag": "v0.31.0"},
        "source": {"s3Prefix": "m/"},
        "gpus": 8,
        "resources": {"cpu": "8", "memory": "64Gi"},
    }
    cfg = config.parse(raw_config(**minimal_sections(nodePools={"system": SYSTEM, "gpu": GPU}, models={"chat": big})), "test")
    ((path, message),) = models.placement_problems(cfg)
    assert path == "models.chat.gpus" and "no node the pools may launch within their limits has 8 GPUs" in message
