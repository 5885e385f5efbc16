"""What the platform knows about EC2 instance types: existence, CPU architecture, NVIDIA GPUs.

Existence comes from botocore's EC2 service model (pinned through requirements.txt), so a typo such as
`g5.xlarg` is caught offline. GPU facts are a hand-kept table for the NVIDIA families EKS serves models
on; source: https://aws.amazon.com/ec2/instance-types/ (accelerated computing), checked 2026-11.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
import os
import re
from dataclasses import dataclass

import botocore


@dataclass(frozen=True)
class GpuInfo:
    """NVIDIA GPUs of one instance type."""

    model: str
    count: int
    memory_gib: int  # per GPU
    mig: bool  # supports Multi-Instance GPU partitioning (A100/H100/H200 class)


# family -> (GPU model, GiB per GPU, MIG capable, {size: GPU count}); sizes missing from the map have 1 GPU.
_NVIDIA_FAMILIES: dict[str, tuple[str, int, bool, dict[str, int]]] = {
    "g4dn": ("T4", 16, False, {"12xlarge": 4, "metal": 8}),
    "g5": ("A10G", 24, False, {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "g5g": ("T4G", 16, False, {"16xlarge": 2, "metal": 2}),
    "g6": ("L4", 24, False, {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "gr6": ("L4", 24, False, {}),
    "g6e": ("L40S", 48, False, {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "p3": ("V100", 16, False, {"8xlarge": 4, "16xlarge": 8}),
    "p3dn": ("V100", 32, False, {"24xlarge": 8}),
    "p4d": ("A100", 40, True, {"24xlarge": 8}),
    "p4de": ("A100", 80, True, {"24xlarge": 8}),
    "p5": ("H100", 80, True, {"48xlarge": 8}),
    "p5e": ("H200", 141, True, {"48xlarge": 8}),
    "p5en": ("H200", 141, True, {"48xlarge": 8}),
}

# Accelerated families the platform deliberately does not schedule on: no NVIDIA device plugin serves them.
_UNSUPPORTED_ACCELERATED = re.compile(r"^(inf\d|trn\d|dl\d|f\d|vt\d|g6f|gr6f|mac)")

_FAMILY = re.compile(r"^(?P<prefix>[a-z]+)(?P<generation>\d+)(?P<suffix>[a-z-]*)\Z")


@functools.cache
def known_instance_types() -> frozenset[str]:
    """Every EC2 instance type name in the pinned botocore's EC2 model."""
    path = os.path.join(os.path.dirname(botocore.__file__), "data", "ec2", "2016-11-15", "service-2.json.gz")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        model = json.load(handle)
    return frozenset(model["shapes"]["InstanceType"]["enum"])


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def suggest_instance_type(name: str) -> str | None:
    """The closest known instance type to a misspelt one, if any is close."""
    matches = difflib.get_close_matches(name, sorted(known_instance_types()), n=1, cutoff=0.8)
    return matches[0] if matches else None


def architecture(instance_type: str) -> str:
    """`arm64` for Graviton families (a `g` after the generation digit: m7g, c7gn, g5g), else `x86_64`."""
    match = _FAMILY.match(family_of(instance_type))
    if match and "g" in match.group("suffix"):
        return "arm64"
    return "x86_64"


def gpu_info(instance_type: str) -> GpuInfo | None:
    """NVIDIA GPU facts for a GPU instance type, None for a CPU-only type."""
    family, _, size = instance_type.partition(".")
    entry = _NVIDIA_FAMILIES.get(family)
    if entry is None:
        return None
    model, memory, mig, counts = entry
    return GpuInfo(model=model, count=counts.get(size, 1), memory_gib=memory, mig=mig)


# Every g and p family is an accelerated family (EC2 "Accelerated computing"): one the table above does not
# describe (g7e, p6-b200, AMD's g4ad, the K80-era p2 ...) must not pass as a CPU pool, untainted, on the
# wrong AMI. Adding its GPU facts to _NVIDIA_FAMILIES is how the platform learns a new family.
_GPU_CATEGORY = re.compile(r"^(g|gr|p)\d")


def is_unsupported_accelerator(instance_type: str) -> bool:
    """Accelerated types the platform cannot serve on: Inferentia, Trainium, Gaudi, FPGA, fractional GPUs, and
    any GPU family not in the table above."""
    family = family_of(instance_type)
    return bool(_UNSUPPORTED_ACCELERATED.match(family)) or (bool(_GPU_CATEGORY.match(family)) and family not in _NVIDIA_FAMILIES)


@functools.cache
def known_families() -> frozenset[str]:
    """Every EC2 instance family (the part before the dot) in the pinned botocore's EC2 model."""
    return frozenset(family_of(t) for t in known_instance_types())


@functools.cache
def family_gpu(family: str) -> GpuInfo | None:
    """GPU facts of an instance family, with `count` the most GPUs any of its sizes has; None for CPU families."""
    if family not in _NVIDIA_FAMILIES:
        return None
    model, memory, mig, _ = _NVIDIA_FAMILIES[family]
    counts = [gpu_info(t).count for t in known_instance_types() if family_of(t) == family]  # type: ignore[union-attr]
    return GpuInfo(model=model, count=max(counts, default=1), memory_gib=memory, mig=mig)


@functools.cache
def family_gpu_counts(family: str) -> frozenset[int]:
    """The GPU counts of a GPU family's sizes (g5: {1, 4, 8}; p5: {8}); empty for CPU families."""
    if family not in _NVIDIA_FAMILIES:
        return frozenset()
    return frozenset(gpu_info(t).count for t in known_instance_types() if family_of(t) == family)  # type: ignore[union-attr]


# GPU families with local NVMe instance store, and the smallest total size of any of their sizes, in GB
# (DescribeInstanceTypes InstanceStorageInfo.TotalSizeInGB, which botocore's model does not carry per type).
# Sources: Amazon EC2 user guide, "Instance store volumes" (g4dn, g5, p3dn, p4d, p4de); Karpenter v1.14.1's
# instance-types reference, label karpenter.k8s.aws/instance-local-nvme (g6, g6e, gr6, p5, p5e, p5en). Families
# not listed (g5g, p3, CPU families) have none as far as the platform knows.
LOCAL_NVME_MIN_GB = {
    "g4dn": 125,
    "g5": 250,
    "g6": 250,
    "g6e": 250,
    "g6f": 100,
    "gr6": 600,
    "p3dn": 1800,
    "p4d": 8000,
    "p4de": 8000,
    "p5": 3800,
    "p5e": 30400,
    "p5en": 30400,
}


def local_nvme_gb(family: str) -> int | None:
    """The smallest local NVMe instance store of a family's sizes, in GB; None when it has none."""
    return LOCAL_NVME_MIN_GB.get(family)
