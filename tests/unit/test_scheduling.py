"""The scheduling contract, on its own: Kubernetes' toleration rules, pool choice, device-plugin coverage."""

from hypothesis import given
from hypothesis import strategies as st

from ml_platform.components import gpu, scheduling
from ml_platform.components.scheduling import Pool, Workload

GPU_TAINT = scheduling.GPU_TAINT
GPU_POOL = Pool("gpu", scheduling.node_labels("gpu", True, None, {}), scheduling.node_taints(True, []), gpus_per_node=4, gpu=True)
SLICED_POOL = Pool(
    "sliced", scheduling.node_labels("sliced", True, "time-slicing", {}), scheduling.node_taints(True, []), gpus_per_node=16, gpu=True
)
MIG_MIXED_POOL = Pool("mig", scheduling.node_labels("mig", True, "mig", {}), scheduling.node_taints(True, []), gpus_per_node=0, gpu=True)
CPU_POOL = Pool("cpu", scheduling.node_labels("cpu", False, None, {}), [])
TEAM_POOL = Pool(
    "team", scheduling.node_labels("team", False, None, {"team": "a"}), [{"key": "team", "value": "a", "effect": "NoSchedule"}]
)
POOLS = [CPU_POOL, GPU_POOL, SLICED_POOL, TEAM_POOL]


def test_toleration_rules():
    assert scheduling.tolerates([{"key": "nvidia.com/gpu", "operator": "Exists"}], GPU_TAINT)
    assert scheduling.tolerates([{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}], GPU_TAINT)
    assert scheduling.tolerates([{"operator": "Exists"}], GPU_TAINT)  # the tolerate-everything toleration
    assert not scheduling.tolerates([{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}], GPU_TAINT)  # #1934
    assert not scheduling.tolerates([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}], GPU_TAINT)
    assert not scheduling.tolerates([{"key": "other", "operator": "Exists"}], GPU_TAINT)
    assert not scheduling.tolerates([], GPU_TAINT)


@given(st.text(min_size=1, max_size=20), st.text(max_size=20), st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"]))
def test_an_exists_toleration_of_a_key_tolerates_every_value_and_effect_of_it(key, value, effect):
    assert scheduling.tolerates([{"key": key, "operator": "Exists"}], {"key": key, "value": value, "effect": effect})


def test_gpu_workload_goes_only_to_gpu_pools_with_enough_gpus():
    selector, _, pools = scheduling.gpu_placement(1, POOLS)
    assert selector == {"nvidia.com/gpu.present": "true"}
    assert pools == ["gpu", "sliced"]
    assert scheduling.gpu_placement(8, POOLS)[2] == []


def test_multi_gpu_workload_only_on_unshared_gpus():
    # 16 slices per node, yet a time-sliced node refuses a pod asking for 2 (UnexpectedAdmissionError)
    selector, _, pools = scheduling.gpu_placement(2, POOLS)
    assert selector == {"nvidia.com/gpu.present": "true", "ml-platform/gpu-sharing": "none"}
    assert pools == ["gpu"]
    assert scheduling.pools_for(Workload(2, {"nvidia.com/gpu.present": "true"}, [{"operator": "Exists"}]), POOLS) == ["gpu"]


def test_mig_mixed_pools_are_checked_for_device_plugin_coverage_too():
    nfd_default = [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}]
    assert scheduling.device_plugin_gaps([MIG_MIXED_POOL], {}, nfd_default) != []


def test_cpu_workload_never_lands_on_tainted_pools():
    assert scheduling.gpu_placement(0, POOLS)[2] == ["cpu"]
    assert scheduling.pools_for(Workload(0, {"team": "a"}, [{"key": "team", "operator": "Exists"}]), POOLS) == ["team"]


def test_a_gpu_pod_without_the_toleration_stays_pending():
    assert scheduling.pools_for(Workload(gpus=1, node_selector={"nvidia.com/gpu.present": "true"}), POOLS) == []


def test_device_plugin_covers_the_platforms_gpu_pools():
    assert scheduling.device_plugin_gaps(POOLS, gpu.GPU_NODE_SELECTOR, gpu.GPU_TOLERATIONS) == []


def test_device_plugin_gap_when_a_gpu_pool_has_an_extra_taint():
    dedicated = Pool(
        "dedicated", GPU_POOL.labels, [*GPU_POOL.taints, {"key": "team", "value": "a", "effect": "NoSchedule"}], gpus_per_node=1, gpu=True
    )
    (gap,) = scheduling.device_plugin_gaps([dedicated], gpu.GPU_NODE_SELECTOR, gpu.GPU_TOLERATIONS)
    assert gap == ("dedicated", "the device plugin does not tolerate team=a:NoSchedule; it would sit at 0 pods there")


def test_device_plugin_gap_with_the_upstream_nfd_toleration():
    nfd_default = [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}]
    assert scheduling.device_plugin_gaps([GPU_POOL], {}, nfd_default) == [
        ("gpu", "the device plugin does not tolerate nvidia.com/gpu=true:NoSchedule; it would sit at 0 pods there")
    ]


def test_device_plugin_gap_when_its_selector_misses_the_pool():
    unlabelled = Pool("bare", {"ml-platform/pool": "bare"}, GPU_POOL.taints, gpus_per_node=1, gpu=True)
    assert scheduling.device_plugin_gaps([unlabelled], gpu.GPU_NODE_SELECTOR, gpu.GPU_TOLERATIONS) == [
        ("bare", "the device plugin selects {'nvidia.com/gpu.present': 'true'}, which its nodes do not carry")
    ]
