import pytest

from ml_platform.components import instance_types


def test_known_types_come_from_botocore():
    known = instance_types.known_instance_types()
    assert {"m6i.large", "g5.xlarge", "p5.48xlarge"} <= known
    assert "g5.xlarg" not in known
    assert instance_types.suggest_instance_type("g5.xlarg") == "g5.xlarge"
    assert instance_types.suggest_instance_type("zzzz") is None


@pytest.mark.parametrize(
    ("name", "arch"),
    [
        ("m6i.large", "x86_64"),
        ("m7g.large", "arm64"),
        ("c7gn.xlarge", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("g4dn.xlarge", "x86_64"),
        ("g6e.xlarge", "x86_64"),
        ("r8g.large", "arm64"),
        ("inf2.xlarge", "x86_64"),
    ],
)
def test_architecture(name, arch):
    assert instance_types.architecture(name) == arch


@pytest.mark.parametrize(
    ("name", "model", "count", "mig"),
    [
        ("g5.xlarge", "A10G", 1, False),
        ("g5.12xlarge", "A10G", 4, False),
        ("g5.48xlarge", "A10G", 8, False),
        ("g6e.12xlarge", "L40S", 4, False),
        ("p4d.24xlarge", "A100", 8, True),
        ("p5.48xlarge", "H100", 8, True),
        ("g4dn.metal", "T4", 8, False),
    ],
)
def test_gpu_info(name, model, count, mig):
    info = instance_types.gpu_info(name)
    assert (info.model, info.count, info.mig) == (model, count, mig)


def test_cpu_types_have_no_gpu_and_neuron_is_unsupported():
    assert instance_types.gpu_info("m6i.large") is None
    assert instance_types.is_unsupported_accelerator("inf2.xlarge")
    assert instance_types.is_unsupported_accelerator("trn1.2xlarge")
    assert not instance_types.is_unsupported_accelerator("g5.xlarge")


def test_every_gpu_family_in_the_table_exists_in_ec2():
    families = {instance_types.family_of(t) for t in instance_types.known_instance_types()}
    assert set(instance_types._NVIDIA_FAMILIES) <= families
