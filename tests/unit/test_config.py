"""The typed stack config: good configs parse; every bad one names the key path and says what is wrong."""

from __future__ import annotations

import pytest

from ml_platform.infra import config
from tests.helpers import ADMIN, minimal_sections, prod_sections, raw_config


def problems_of(**sections) -> list[tuple[str, str]]:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(raw_config(**sections), "test")
    return caught.value.problems


def assert_problem(problems: list[tuple[str, str]], path: str, fragment: str) -> None:
    assert any(p == path and fragment in message for p, message in problems), f"no ({path!r}, ...{fragment!r}...) in {problems}"


def test_minimal_dev_config_parses_with_defaults():
    cfg = config.parse(raw_config(**minimal_sections()), "test")
    assert cfg.environment == "dev"
    assert cfg.network.azCount == 2 and cfg.network.natGateways == "single"
    assert cfg.cluster.version == "1.36"
    assert cfg.protectStatefulResources is False
    assert cfg.nodePools["system"].gpu is None


def test_config_is_frozen():
    cfg = config.parse(raw_config(**minimal_sections()), "test")
    with pytest.raises(Exception, match="frozen"):
        cfg.environment = "prod"


def test_gpu_pool_knows_its_gpus():
    pools = {
        "system": {"instanceTypes": ["m6i.large"], "maxSize": 2},
        "gpu": {"instanceTypes": ["g5.12xlarge"], "minSize": 0, "maxSize": 2},
    }
    cfg = config.parse(raw_config(**minimal_sections(nodePools=pools)), "test")
    assert cfg.nodePools["gpu"].gpu.model == "A10G"
    assert cfg.nodePools["gpu"].gpu.count == 4


def test_minimal_prod_config_parses():
    cfg = config.parse(raw_config(**prod_sections()), "test")
    assert cfg.protectStatefulResources is True


BAD_CONFIGS = [
    # (name, sections, expected path, message fragment)
    (
        "typo instance type",
        minimal_sections(
            nodePools={
                "system": {"instanceTypes": ["m6i.large"], "maxSize": 2},
                "gpu": {"instanceTypes": ["g5.xlarg"], "minSize": 0, "maxSize": 1},
            }
        ),
        "nodePools.gpu.instanceTypes",
        "'g5.xlarg' is not a known EC2 instance type; did you mean 'g5.xlarge'?",
    ),
    ("unknown top-level key", {**minimal_sections(), "nodepools": {}}, "nodepools", "unknown key; did you mean 'nodePools'?"),
    ("unknown nested key", minimal_sections(network={"azcount": 3}), "network.azcount", "unknown key; did you mean 'azCount'?"),
    (
        "unknown pool key",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "minsize": 1}}),
        "nodePools.system.minsize",
        "did you mean 'minSize'?",
    ),
    ("string where int", minimal_sections(network={"azCount": "3"}), "network.azCount", "expected an integer, got str '3'"),
    ("int where bool", minimal_sections(network={"flowLogs": 1}), "network.flowLogs", "expected true or false"),
    (
        "bad boolean scalar",
        minimal_sections(protectStatefulResources="yes"),
        "protectStatefulResources",
        "expected true or false, got 'yes'",
    ),
    ("object key given a string", minimal_sections(network="big"), "network", "expected an object, got the string 'big'"),
    ("unknown environment", minimal_sections(environment="qa"), "environment", "'qa' is not allowed; expected 'dev', 'staging' or 'prod'"),
    ("missing environment", {"nodePools": minimal_sections()["nodePools"]}, "environment", "required key is missing"),
    ("missing region", {**minimal_sections(), "region": None}, "aws:region", "required"),
    ("bad region", minimal_sections(region="us-west-9"), "region", "'us-west-9' is not an AWS region with EKS"),
    ("public vpc cidr", minimal_sections(network={"cidr": "8.8.0.0/16"}), "network.cidr", "is not a private range"),
    ("vpc cidr too small", minimal_sections(network={"cidr": "10.0.0.0/24"}), "network.cidr", "prefix /24 is out of range"),
    ("not a cidr", minimal_sections(network={"cidr": "10.0.0.0/33"}), "network.cidr", "is not an IPv4 CIDR block"),
    ("too many AZs", minimal_sections(network={"azCount": 6}), "network.azCount", "less than or equal to 4"),
    (
        "AZ list length",
        minimal_sections(network={"azCount": 3, "availabilityZones": ["us-west-2a"]}),
        "network",
        "availabilityZones lists 1 zones but azCount is 3",
    ),
    (
        "AZ of other region",
        minimal_sections(network={"availabilityZones": ["us-west-2a", "eu-west-1b"]}),
        "network.availabilityZones[1]",
        "'eu-west-1b' is not an availability zone of us-west-2",
    ),
    ("bad NAT mode", minimal_sections(network={"natGateways": "none"}), "network.natGateways", "expected 'single' or 'perAz'"),
    (
        "bad retention",
        minimal_sections(network={"flowLogRetentionDays": 45}),
        "network.flowLogRetentionDays",
        "45 is not a CloudWatch Logs retention period",
    ),
    ("unpinned k8s version", minimal_sections(cluster={"version": "1.29"}), "cluster.version", "'1.29' is not a pinned Kubernetes version"),
    ("k8s version as number", minimal_sections(cluster={"version": 1.36}), "cluster.version", "expected a string, got float 1.36"),
    (
        "open public endpoint",
        minimal_sections(cluster={"publicAccessCidrs": ["0.0.0.0/0"]}),
        "cluster.publicAccessCidrs",
        "opens the API to the whole internet",
    ),
    (
        "bad admin arn",
        minimal_sections(cluster={"admins": [{"principalArn": "arn:aws:iam::123:role/x"}]}),
        "cluster.admins[0].principalArn",
        "is not an IAM role or user ARN",
    ),
    (
        "namespaced cluster-admin",
        minimal_sections(cluster={"admins": [{"principalArn": "arn:aws:iam::123456789012:role/a", "namespaces": ["models"]}]}),
        "cluster.admins[0]",
        "cluster-admin is cluster-wide",
    ),
    (
        "bad access level",
        minimal_sections(cluster={"admins": [{"principalArn": "arn:aws:iam::123456789012:role/a", "access": "root"}]}),
        "cluster.admins[0].access",
        "'root' is not allowed",
    ),
    (
        "bad repository name",
        minimal_sections(registries={"repositories": ["Serving/VLLM"]}),
        "registries.repositories",
        "'Serving/VLLM' is not an ECR repository name",
    ),
    ("duplicate repositories", minimal_sections(registries={"repositories": ["a1", "a1"]}), "registries.repositories", "repeat"),
    (
        "pull-through needs credential",
        minimal_sections(registries={"pullThroughCache": [{"upstream": "docker-hub"}]}),
        "registries.pullThroughCache[0]",
        "upstream 'docker-hub' requires credentialArn",
    ),
    (
        "unknown upstream",
        minimal_sections(registries={"pullThroughCache": [{"upstream": "nvcr"}]}),
        "registries.pullThroughCache[0].upstream",
        "'nvcr' is not allowed",
    ),
    (
        "bad cache prefix",
        minimal_sections(registries={"pullThroughCache": [{"upstream": "quay", "prefix": "Quay_Cache!"}]}),
        "registries.pullThroughCache[0].prefix",
        "'Quay_Cache!' is not an ECR repository prefix",
    ),
    (
        "cache prefix too long",
        minimal_sections(registries={"prefix": "a-very-long-team-namespace", "pullThroughCache": [{"upstream": "ecr-public"}]}),
        "registries.pullThroughCache[0].prefix",
        "must be 2-30 characters",
    ),
    (
        "bad registry prefix",
        minimal_sections(registries={"prefix": "Team A"}),
        "registries.prefix",
        "'Team A' is not an ECR repository namespace",
    ),
    (
        "duplicate admin",
        minimal_sections(
            cluster={
                "admins": [
                    {"principalArn": "arn:aws:iam::123456789012:role/a"},
                    {"principalArn": "arn:aws:iam::123456789012:role/a", "access": "view"},
                ]
            }
        ),
        "cluster.admins",
        "arn:aws:iam::123456789012:role/a listed more than once",
    ),
    (
        "no cluster admin",
        minimal_sections(cluster={"admins": [{"principalArn": "arn:aws:iam::123456789012:role/a", "access": "view"}]}),
        "cluster.admins",
        "needs at least one cluster-admin",
    ),
    (
        "open private access",
        minimal_sections(cluster={"admins": [{"principalArn": "arn:aws:iam::123456789012:role/a"}], "privateAccessCidrs": ["0.0.0.0/0"]}),
        "cluster.privateAccessCidrs",
        "opens the API to the whole internet",
    ),
    (
        "kubelet may not set node-role labels",
        minimal_sections(
            nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "labels": {"node-role.kubernetes.io/gpu": "x"}}}
        ),
        "nodePools.system.labels",
        "uses a reserved prefix",
    ),
    (
        "empty label value",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "labels": {"team": ""}}}),
        "nodePools.system.labels",
        "which is not a Kubernetes label value (1-63 characters)",
    ),
    (
        "label key too long",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "labels": {"example.com/" + "a" * 60: "x"}}}),
        "nodePools.system.labels",
        "at most 63 characters",
    ),
    (
        "taint value too long",
        minimal_sections(
            nodePools={
                "system": {
                    "instanceTypes": ["m6i.large"],
                    "maxSize": 2,
                    "taints": [{"key": "team", "value": "a" * 64, "effect": "NoSchedule"}],
                }
            }
        ),
        "nodePools.system.taints[0].value",
        "at most 63 characters",
    ),
    ("platform tag override", minimal_sections(tags={"ml-platform/environment": "prod"}), "tags", "is set by the platform"),
    ("cluster tag override", minimal_sections(tags={"kubernetes.io/cluster/x": "owned"}), "tags", "is set by the platform"),
    ("bad tag characters", minimal_sections(tags={"team": "ml#1"}), "tags", "uses characters AWS does not allow"),
    ("no system pool", minimal_sections(nodePools={"cpu": {"instanceTypes": ["m6i.large"], "maxSize": 2}}), "nodePools.system", "required"),
    (
        "gpu system pool",
        minimal_sections(nodePools={"system": {"instanceTypes": ["g5.xlarge"], "maxSize": 2}}),
        "nodePools.system.instanceTypes",
        "must be CPU-only",
    ),
    (
        "spot system pool",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "capacityType": "SPOT"}}),
        "nodePools.system.capacityType",
        "must be ON_DEMAND",
    ),
    (
        "min above max",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "minSize": 5, "maxSize": 2}}),
        "nodePools.system",
        "minSize 5 is larger than maxSize 2",
    ),
    (
        "desired outside range",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "desiredSize": 3}}),
        "nodePools.system",
        "desiredSize 3 is outside minSize..maxSize (1..2)",
    ),
    (
        "missing maxSize",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"]}}),
        "nodePools.system.maxSize",
        "required key is missing",
    ),
    (
        "mixed architectures",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large", "m7g.large"], "maxSize": 2}}),
        "nodePools.system.instanceTypes",
        "mixes x86_64 and arm64",
    ),
    (
        "mixed GPU kinds",
        minimal_sections(
            nodePools={
                "system": {"instanceTypes": ["m6i.large"], "maxSize": 2},
                "gpu": {"instanceTypes": ["g5.xlarge", "g6.xlarge"], "maxSize": 2},
            }
        ),
        "nodePools.gpu.instanceTypes",
        "mixes GPU kinds",
    ),
    (
        "neuron accelerator",
        minimal_sections(
            nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2}, "inf": {"instanceTypes": ["inf2.xlarge"], "maxSize": 2}}
        ),
        "nodePools.inf.instanceTypes",
        "does not know as an NVIDIA GPU",
    ),
    (
        "bad pool name",
        minimal_sections(
            nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2}, "GPU_Pool": {"instanceTypes": ["m6i.large"], "maxSize": 2}}
        ),
        "nodePools",
        "pool name 'GPU_Pool'",
    ),
    (
        "reserved label",
        minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "labels": {"kubernetes.io/role": "x"}}}),
        "nodePools.system.labels",
        "reserved prefix",
    ),
    (
        "platform-owned taint",
        minimal_sections(
            nodePools={
                "system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}
            }
        ),
        "nodePools.system.taints",
        "managed by the platform",
    ),
    (
        "bad taint effect",
        minimal_sections(
            nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "taints": [{"key": "team", "effect": "NO_SCHEDULE"}]}}
        ),
        "nodePools.system.taints[0].effect",
        "'NO_SCHEDULE' is not allowed",
    ),
    ("aws tag prefix", minimal_sections(tags={"aws:owner": "me"}), "tags", "must be 1-128 characters and not start with 'aws:'"),
    ("protected and ephemeral", minimal_sections(protectStatefulResources="true", ephemeral="true"), "ephemeral", "cannot also protect"),
    ("prod unprotected", prod_sections(protectStatefulResources="false"), "protectStatefulResources", "prod must protect"),
    (
        "prod public endpoint",
        prod_sections(cluster={"publicAccessCidrs": ["203.0.113.0/24"]}),
        "cluster.publicAccessCidrs",
        "prod has a private API endpoint only",
    ),
    ("prod two AZs", prod_sections(network={"azCount": 2, "natGateways": "perAz", "flowLogs": True}), "network.azCount", "at least 3 AZs"),
    ("prod single NAT", prod_sections(network={"azCount": 3, "flowLogs": True}), "network.natGateways", "one NAT gateway per AZ"),
    (
        "prod one system node",
        prod_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "minSize": 1, "maxSize": 4}}),
        "nodePools.system.minSize",
        "prod needs at least 2 system nodes",
    ),
]


@pytest.mark.parametrize(("sections", "path", "fragment"), [case[1:] for case in BAD_CONFIGS], ids=[case[0] for case in BAD_CONFIGS])
def test_bad_config_names_the_key_and_the_problem(sections, path, fragment):
    assert_problem(problems_of(**sections), path, fragment)


def test_there_are_at_least_twenty_bad_config_cases():
    assert len(BAD_CONFIGS) >= 20


def test_cross_field_errors_come_in_the_same_pass_as_field_errors():
    """Prod's model scaling to zero without activeHours, by tag, from the hub: all of it at once, with the
    cross-section checks about the rest of the stack (no receiver), instead of one problem per attempt."""
    sections = with_model(
        PROD_MODELS,
        image={"repository": "docker.io/vllm/vllm-openai", "tag": "v0.11.0"},
        replicas={"min": 0, "max": 2},
        source={"hubId": "org/m"},
    )
    problems = problems_of(**{**sections, "monitoring": {}})
    assert_problem(problems, "models.chat.replicas.min", "prod does not scale to zero")
    assert_problem(problems, "models.chat.image.digest", "prod runs images by digest")
    assert_problem(problems, "models.chat.source", "prod loads weights from the model store")
    assert not any("activeHours" in message for _, message in problems), "prod is told it cannot scale to zero, not to add hours"
    assert_problem(problems, "monitoring.receivers", "prod alerts must reach someone")


def test_every_problem_is_reported_at_once():
    sections = minimal_sections(
        environment="qa",
        network={"azCount": "3", "cidr": "8.8.0.0/16"},
        cluster={"version": "1.20"},
    )
    problems = problems_of(**sections)
    paths = {path for path, _ in problems}
    assert {"environment", "network.azCount", "network.cidr", "cluster.version"} <= paths


def test_error_text_lists_every_problem_one_per_line():
    error = config.ConfigError([("b.key", "second"), ("a.key", "first")])
    assert error.render().splitlines() == ["2 problem(s) in the stack configuration:", "  a.key: first", "  b.key: second"]


def test_kubelet_label_prefixes_are_allowed():
    pools = {"system": {"instanceTypes": ["m6i.large"], "maxSize": 2, "labels": {"node.kubernetes.io/role": "system"}}}
    cfg = config.parse(raw_config(**minimal_sections(nodePools=pools)), "test")
    assert cfg.nodePools["system"].labels == {"node.kubernetes.io/role": "system"}


SYSTEM_POOL = {"instanceTypes": ["m6i.large"], "maxSize": 2}
GPU_POOL = {"kind": "karpenter", "instanceFamilies": ["g5"], "limits": {"cpu": 32, "memoryGiB": 128, "gpus": 4}}


def with_pool(**pool):
    return minimal_sections(nodePools={"system": SYSTEM_POOL, "gpu": pool})


KARPENTER_BAD_CONFIGS = [
    (
        "gpu pool with a cpu family",
        with_pool(**{**GPU_POOL, "instanceFamilies": ["g5", "m6i"]}),
        "nodePools.gpu.instanceFamilies",
        "mixes GPU and non-GPU families (m6i have no GPU)",
    ),
    (
        "gpu pool without gpu limit",
        with_pool(**{**GPU_POOL, "limits": {"cpu": 32, "memoryGiB": 128}}),
        "nodePools.gpu",
        "a GPU pool needs limits.gpus",
    ),
    (
        "gpu limit on cpu pool",
        with_pool(kind="karpenter", instanceCategories=["m"], limits={"cpu": 8, "memoryGiB": 32, "gpus": 1}),
        "nodePools.gpu",
        "limits.gpus applies to GPU pools only",
    ),
    (
        "mig on a10g",
        with_pool(**GPU_POOL, gpuSharing={"mig": {"strategy": "single"}}),
        "nodePools.gpu",
        "MIG needs A100/H100/H200-class GPUs; this pool's A10G cannot be partitioned",
    ),
    (
        "both sharing modes",
        with_pool(**{**GPU_POOL, "instanceFamilies": ["p4d"]}, gpuSharing={"mig": {"strategy": "single"}, "timeSlicing": {"replicas": 2}}),
        "nodePools.gpu.gpuSharing",
        "choose one sharing mode",
    ),
    (
        "sharing on cpu pool",
        minimal_sections(nodePools={"system": {**SYSTEM_POOL, "gpuSharing": {"timeSlicing": {"replicas": 2}}}}),
        "nodePools.system",
        "gpuSharing applies to GPU pools only",
    ),
    (
        "time slicing of one",
        with_pool(**GPU_POOL, gpuSharing={"timeSlicing": {"replicas": 1}}),
        "nodePools.gpu.gpuSharing.timeSlicing.replicas",
        "greater than or equal to 2",
    ),
    (
        "gpu category",
        with_pool(kind="karpenter", instanceCategories=["g"], limits={"cpu": 8, "memoryGiB": 32}),
        "nodePools.gpu",
        "categories g and p are GPU categories",
    ),
    (
        "unknown family",
        with_pool(**{**GPU_POOL, "instanceFamilies": ["g6ee"]}),
        "nodePools.gpu.instanceFamilies",
        "'g6ee' is not a known EC2 instance family; did you mean",
    ),
    (
        "neither families nor categories",
        with_pool(kind="karpenter", limits={"cpu": 8, "memoryGiB": 32}),
        "nodePools.gpu",
        "set instanceFamilies or instanceCategories",
    ),
    (
        "arm family on amd64",
        with_pool(**{**GPU_POOL, "instanceFamilies": ["g5g"]}),
        "nodePools.gpu",
        "instanceFamilies include arm64 families but architecture is amd64",
    ),
    (
        "unknown pool kind",
        with_pool(**{**GPU_POOL, "kind": "fargate"}),
        "nodePools.gpu.kind",
        "'fargate' is not allowed; expected 'managed' or 'karpenter'",
    ),
    (
        "karpenter system pool",
        minimal_sections(nodePools={"system": {"kind": "karpenter", "instanceCategories": ["m"], "limits": {"cpu": 8, "memoryGiB": 32}}}),
        "nodePools.system.kind",
        "the system pool must be 'managed'",
    ),
    (
        "typo in karpenter pool",
        with_pool(**GPU_POOL, capacityType=["spot"]),
        "nodePools.gpu.capacityType",
        "unknown key; did you mean 'capacityTypes'?",
    ),
    ("bad capacity type", with_pool(**GPU_POOL, capacityTypes=["SPOT"]), "nodePools.gpu.capacityTypes[0]", "'SPOT' is not allowed"),
    ("missing limits", with_pool(kind="karpenter", instanceFamilies=["g5"]), "nodePools.gpu.limits", "required key is missing"),
    ("bad duration", with_pool(**GPU_POOL, expireAfter="30d"), "nodePools.gpu.expireAfter", "should match pattern"),
    (
        "budget without duration",
        with_pool(**GPU_POOL, disruptionBudgets=[{"nodes": "0", "schedule": "0 9 * * *"}]),
        "nodePools.gpu.disruptionBudgets[0]",
        "schedule and duration go together",
    ),
    (
        "zone outside the stack",
        minimal_sections(
            network={"availabilityZones": ["us-west-2a", "us-west-2b"]},
            nodePools={"system": SYSTEM_POOL, "gpu": {**GPU_POOL, "zones": ["us-west-2c"]}},
        ),
        "nodePools.gpu.zones[0]",
        "'us-west-2c' is not one of us-west-2a, us-west-2b",
    ),
    (
        "reserved pool name",
        minimal_sections(nodePools={"system": SYSTEM_POOL, "default": GPU_POOL}),
        "nodePools",
        "pool name 'default' is taken",
    ),
    ("karpenter-owned tag", minimal_sections(tags={"karpenter.sh/nodepool": "x"}), "tags", "is set by the platform, EKS or Karpenter"),
    ("weight out of range", with_pool(**GPU_POOL, weight=0), "nodePools.gpu.weight", "greater than or equal to 1"),
    (
        "platform label",
        with_pool(**GPU_POOL, labels={"nvidia.com/device-plugin.config": "x"}),
        "nodePools.gpu.labels",
        "is set by the platform",
    ),
]


@pytest.mark.parametrize(
    ("sections", "path", "fragment"), [case[1:] for case in KARPENTER_BAD_CONFIGS], ids=[case[0] for case in KARPENTER_BAD_CONFIGS]
)
def test_bad_karpenter_and_gpu_config(sections, path, fragment):
    assert_problem(problems_of(**sections), path, fragment)


def test_good_karpenter_gpu_pool_with_mig():
    cfg = config.parse(
        raw_config(
            **with_pool(
                **{**GPU_POOL, "instanceFamilies": ["p4d", "p5"], "limits": {"cpu": 192, "memoryGiB": 2048, "gpus": 16}},
                gpuSharing={"mig": {"strategy": "mixed"}},
            )
        ),
        "test",
    )
    pool = cfg.nodePools["gpu"]
    assert isinstance(pool, config.KarpenterPoolConfig) and pool.gpu.mig and pool.gpu.count == 8


VLLM = {
    "runtime": "vllm",
    "image": {"repository": "docker.io/vllm/vllm-openai", "tag": "v0.31.0"},
    "source": {"s3Prefix": "llama/"},
    "gpus": 1,
    "resources": {"cpu": "4", "memory": "24Gi"},
}
GPU_POOLS = {"system": SYSTEM_POOL, "gpu": GPU_POOL}


def with_model(base=None, **model):
    sections = base or minimal_sections(nodePools=GPU_POOLS)
    return {**sections, "models": {"chat": {**VLLM, **model}}}


DIGEST = "sha256:" + "a" * 64
PROD_MODELS = prod_sections(
    nodePools={"system": {**SYSTEM_POOL, "minSize": 2}, "gpu": GPU_POOL},
    serving={"loaderImage": {"repository": "public.ecr.aws/aws-cli/aws-cli", "digest": DIGEST}},
)

NEW_GPU_FAMILIES = [
    # families botocore knows and the GPU table does not: never silently a CPU pool
    ("unknown GPU family in a managed pool", {"instanceTypes": ["g7e.2xlarge"], "maxSize": 1}, "instanceTypes"),
    ("unknown GPU family on Karpenter", {**GPU_POOL, "instanceFamilies": ["p6-b200"]}, "instanceFamilies"),
    ("AMD GPU family", {**GPU_POOL, "instanceFamilies": ["g4ad"]}, "instanceFamilies"),
]


@pytest.mark.parametrize(("pool", "field"), [c[1:] for c in NEW_GPU_FAMILIES], ids=[c[0] for c in NEW_GPU_FAMILIES])
def test_a_gpu_family_the_platform_does_not_know_is_refused(pool, field):
    assert_problem(problems_of(**with_pool(**pool)), f"nodePools.gpu.{field}", "does not know as an NVIDIA GPU")


MODEL_BAD_CONFIGS = [
    ("unknown runtime", with_model(runtime="tgi"), "models.chat.runtime", "'tgi' is not allowed"),
    ("latest tag", with_model(image={"repository": "docker.io/vllm/vllm-openai", "tag": "latest"}), "models.chat.image", "'latest' floats"),
    ("unpinned image", with_model(image={"repository": "docker.io/vllm/vllm-openai"}), "models.chat.image", "set tag or digest"),
    (
        "bad digest",
        with_model(image={"repository": "docker.io/vllm/vllm-openai", "digest": "sha256:abc"}),
        "models.chat.image.digest",
        "should match pattern",
    ),
    (
        "unknown upstream",
        with_model(image={"repository": "ghcr.io/someone/server", "tag": "1"}),
        "models.chat.image.repository",
        "is neither a platform repository nor one of",
    ),
    (
        "undeclared repository",
        with_model(image={"repository": "serving/vllm", "tag": "1"}),
        "models.chat.image.repository",
        "'serving/vllm' is not in registries.repositories",
    ),
    (
        "two sources",
        with_model(source={"s3Prefix": "a/", "hubId": "org/model"}),
        "models.chat.source",
        "exactly one of s3Prefix, registry or hubId",
    ),
    ("prefix without slash", with_model(source={"s3Prefix": "llama"}), "models.chat.source.s3Prefix", "is not a key prefix"),
    (
        "triton without repository",
        with_model(runtime="triton", source={"hubId": "org/model"}),
        "models.chat.source",
        "a triton model needs a model repository",
    ),
    (
        "custom without port",
        with_model(runtime="custom", image={"repository": "docker.io/vllm/vllm-openai", "tag": "1"}, gpus=0),
        "models.chat",
        "a custom model needs port and healthPath",
    ),
    ("preset with port", with_model(port=9000), "models.chat", "port and healthPath are fixed by the vllm preset"),
    (
        "custom gpu without query",
        with_model(runtime="custom", port=8080, healthPath="/h"),
        "models.chat.autoscaling.query",
        "a custom GPU model scales on a queue metric",
    ),
    (
        "zero without hours",
        with_model(replicas={"min": 0, "max": 2}),
        "models.chat.autoscaling.activeHours",
        "replicas.min 0 needs autoscaling.activeHours",
    ),
    (
        "cpu model at zero",
        with_model(gpus=0, replicas={"min": 0, "max": 2}, autoscaling={"activeHours": {"start": "0 8 * * *", "end": "0 18 * * *"}}),
        "models.chat.replicas.min",
        "CPU models scale on CPU with an HPA, which cannot reach zero",
    ),
    ("min above max", with_model(replicas={"min": 3, "max": 2}), "models.chat.replicas", "min 3 is larger than max 2"),
    (
        "public alb without tls",
        with_model(exposure={"type": "alb", "scheme": "internet-facing"}),
        "models.chat.exposure",
        "an internet-facing ALB needs certificateArn",
    ),
    ("bad quantity", with_model(resources={"cpu": "four", "memory": "24Gi"}), "models.chat.resources.cpu", "'four' is not a CPU quantity"),
    ("no CPU", with_model(resources={"cpu": "0", "memory": "24Gi"}), "models.chat.resources.cpu", "more than 0"),
    (
        "memory in bytes",
        with_model(resources={"cpu": "4", "memory": "28"}),
        "models.chat.resources.memory",
        "without one it would be bytes",
    ),
    ("memory in millibytes", with_model(resources={"cpu": "4", "memory": "512m"}), "models.chat.resources.memory", "with a unit"),
    (
        "prometheus memory in bytes",
        minimal_sections(monitoring={"prometheusMemory": "1"}),
        "monitoring.prometheusMemory",
        "not a memory quantity with a unit",
    ),
    (
        "bad model name",
        {**minimal_sections(nodePools=GPU_POOLS), "models": {"Chat_Bot": VLLM}},
        "models.Chat_Bot",
        "model names become namespaces",
    ),
    (
        "model named like a platform namespace",
        {**minimal_sections(nodePools=GPU_POOLS), "models": {"monitoring": VLLM}},
        "models.monitoring",
        "'monitoring' is a namespace the platform or Kubernetes owns",
    ),
    (
        "model named kube-system",
        {**minimal_sections(nodePools=GPU_POOLS), "models": {"kube-system": VLLM}},
        "models.kube-system",
        "a namespace the platform or Kubernetes owns",
    ),
    (
        "active hours with a minimum",
        with_model(autoscaling={"activeHours": {"start": "0 8 * * *", "end": "0 9 * * *"}}),
        "models.chat.autoscaling.activeHours",
        "applies to models that scale to zero",
    ),
    (
        "query on a preset runtime",
        with_model(autoscaling={"query": 'sum(x{namespace="chat"})'}),
        "models.chat.autoscaling.query",
        "the vllm preset scales on its own queue metric",
    ),
    (
        "query on a CPU model",
        with_model(runtime="custom", gpus=0, port=8080, healthPath="/h", autoscaling={"query": 'sum(x{namespace="chat"})'}),
        "models.chat.autoscaling.query",
        "CPU models scale on CPU",
    ),
    (
        "custom query reading missing series as zero",
        with_model(runtime="custom", port=8080, healthPath="/h", autoscaling={"query": 'sum(queue{namespace="chat"}) or vector(0)'}),
        "models.chat.autoscaling.query",
        "vector() turns missing series into a value",
    ),
    (
        "custom query of a constant",
        with_model(runtime="custom", port=8080, healthPath="/h", autoscaling={"query": "vector(7)"}),
        "models.chat.autoscaling.query",
        'must read the model\'s own series, selected with namespace="chat"',
    ),
    (
        "custom query of another model",
        with_model(runtime="custom", port=8080, healthPath="/h", autoscaling={"query": 'sum(queue{namespace="ranker"})'}),
        "models.chat.autoscaling.query",
        'namespace="chat"',
    ),
    (
        "custom query that does not parse",
        with_model(runtime="custom", port=8080, healthPath="/h", autoscaling={"query": 'sum(queue{namespace="chat"}'}),
        "models.chat.autoscaling.query",
        "the query does not parse",
    ),
    (
        "fractional CPU target",
        with_model(runtime="custom", gpus=0, port=8080, healthPath="/h", autoscaling={"target": 0.5}),
        "models.chat.autoscaling.target",
        "a whole percent of its CPU request (1 or more), got 0.5",
    ),
    ("prod by tag", with_model(PROD_MODELS), "models.chat.image.digest", "prod runs images by digest"),
    (
        "prod scale to zero",
        with_model(
            PROD_MODELS,
            image={"repository": "docker.io/vllm/vllm-openai", "digest": DIGEST},
            replicas={"min": 0, "max": 2},
            autoscaling={"activeHours": {"start": "0 8 * * *", "end": "0 9 * * *"}},
        ),
        "models.chat.replicas.min",
        "prod does not scale to zero",
    ),
    (
        "prod from the hub",
        with_model(PROD_MODELS, image={"repository": "docker.io/vllm/vllm-openai", "digest": DIGEST}, source={"hubId": "org/model"}),
        "models.chat.source",
        "prod loads weights from the model store",
    ),
    (
        "prod loader by tag",
        {**with_model(PROD_MODELS, image={"repository": "docker.io/vllm/vllm-openai", "digest": DIGEST}), "serving": {}},
        "serving.loaderImage.digest",
        "prod runs images by digest",
    ),
]


@pytest.mark.parametrize(("sections", "path", "fragment"), [c[1:] for c in MODEL_BAD_CONFIGS], ids=[c[0] for c in MODEL_BAD_CONFIGS])
def test_bad_model_config(sections, path, fragment):
    assert_problem(problems_of(**sections), path, fragment)


def test_a_gpu_model_no_pool_can_take_is_refused():
    from ml_platform.infra import program

    cfg = config.parse(raw_config(**with_model(gpus=16)), "test")
    with pytest.raises(config.ConfigError) as caught:
        program.check_scheduling(cfg)
    assert caught.value.problems == [
        (
            "models.chat.gpus",
            "no node pool can run a pod with 16 GPUs (tensor parallelism needs them on one node); the most one pod can get is 8",
        )
    ]


MONITORING_BAD_CONFIGS = [
    (
        "receiver with two targets",
        minimal_sections(monitoring={"receivers": [{"name": "a", "webhookUrl": "u", "pagerdutyRoutingKey": "k"}], "defaultReceiver": "a"}),
        "monitoring.receivers[0]",
        "set exactly one of slackWebhookUrl, pagerdutyRoutingKey or webhookUrl",
    ),
    (
        "route to unknown receiver",
        minimal_sections(
            monitoring={
                "receivers": [{"name": "a", "webhookUrl": "u"}],
                "defaultReceiver": "a",
                "routes": [{"receiver": "b", "matchers": ['severity="critical"']}],
            }
        ),
        "monitoring",
        "receiver 'b' is not defined in receivers",
    ),
    (
        "no default receiver",
        minimal_sections(monitoring={"receivers": [{"name": "a", "webhookUrl": "u"}]}),
        "monitoring",
        "set defaultReceiver",
    ),
    (
        "bad matcher",
        minimal_sections(
            monitoring={
                "receivers": [{"name": "a", "webhookUrl": "u"}],
                "defaultReceiver": "a",
                "routes": [{"receiver": "a", "matchers": ["severity: critical"]}],
            }
        ),
        "monitoring.routes[0].matchers[0]",
        "should match pattern",
    ),
    ("bad retention", minimal_sections(monitoring={"retention": "15 days"}), "monitoring.retention", "should match pattern"),
    (
        "bad log retention",
        minimal_sections(monitoring={"logRetentionDays": 45}),
        "monitoring.logRetentionDays",
        "not a CloudWatch Logs retention",
    ),
    ("prod without receivers", {**prod_sections(), "monitoring": {}}, "monitoring.receivers", "prod alerts must reach someone"),
    (
        "small prod volume",
        {**prod_sections(), "monitoring": {**prod_sections()["monitoring"], "storageGiB": 20}},
        "monitoring.storageGiB",
        "at least 50 GiB",
    ),
]


@pytest.mark.parametrize(
    ("sections", "path", "fragment"), [c[1:] for c in MONITORING_BAD_CONFIGS], ids=[c[0] for c in MONITORING_BAD_CONFIGS]
)
def test_bad_monitoring_config(sections, path, fragment):
    assert_problem(problems_of(**sections), path, fragment)


PREVIEW = {"mode": "namespace", "baseStack": "dev", "ttlHours": 72, "pr": 12, "expiresAt": "2026-11-26T10:00:00Z"}


def preview_sections(base=None, **preview):
    return {**(base or with_model()), "ephemeral": "true", "preview": {**PREVIEW, **preview}}


def test_a_preview_stack_parses_and_knows_its_namespace():
    cfg = config.parse(raw_config(**preview_sections()), "pr-12")
    assert cfg.preview is not None and cfg.preview.namespace == "pr-12" and cfg.preview.base_stack_name == "dev"
    assert config.parse(raw_config(**preview_sections(baseStack="acme/ml-platform/dev")), "pr-12").preview.base_stack_name == "dev"


def test_an_empty_preview_object_is_no_preview():
    # Pulumi.yaml's default for every stack that is not a preview.
    assert config.parse(raw_config(**minimal_sections(preview={})), "dev").preview is None


def test_images_come_from_another_prefix_when_told():
    cfg = config.parse(raw_config(**minimal_sections(serving={"imageRegistryPrefix": "dev"})), "pr-1")
    assert (cfg.registry_prefix, cfg.image_registry_prefix) == ("pr-1", "dev")


PREVIEW_BAD_CONFIGS = [
    ("preview of prod", preview_sections(prod_sections(ephemeral="false")), "environment", "a preview stack cannot be prod"),
    ("preview not ephemeral", {**preview_sections(), "ephemeral": "false"}, "ephemeral", "a preview stack is ephemeral"),
    ("preview unknown mode", preview_sections(mode="cluster"), "preview.mode", "'cluster' is not allowed"),
    ("preview without pr", preview_sections(pr=None), "preview.pr", "required: the pull request's number"),
    ("preview pr zero", preview_sections(pr=0), "preview.pr", "greater than or equal to 1"),
    ("preview without expiry", preview_sections(expiresAt=None), "preview.expiresAt", "required: when the preview expires"),
    ("preview bad expiry", preview_sections(expiresAt="tomorrow"), "preview.expiresAt", "not a UTC time"),
    ("preview bad base", preview_sections(baseStack="Dev Stack"), "preview.baseStack", "is not a stack name"),
    ("preview ttl too long", preview_sections(ttlHours=1000), "preview.ttlHours", "less than or equal to 720"),
    ("preview typo", preview_sections(ttlHour=3), "preview.ttlHour", "unknown key; did you mean 'ttlHours'?"),
    ("namespace preview without models", preview_sections(minimal_sections()), "models", "there are none"),
    (
        "namespace preview with an ALB",
        preview_sections(with_model(exposure={"type": "alb", "scheme": "internal"})),
        "models.chat.exposure",
        "creates no load balancers",
    ),
    (
        "full preview with an idle GPU node",
        preview_sections(
            minimal_sections(nodePools={"system": SYSTEM_POOL, "gpu": {"instanceTypes": ["g5.xlarge"], "minSize": 1, "maxSize": 2}}),
            mode="full",
        ),
        "nodePools.gpu.minSize",
        "keeps no idle GPU node",
    ),
    ("bad image prefix", minimal_sections(serving={"imageRegistryPrefix": "Dev/"}), "serving.imageRegistryPrefix", "not an ECR"),
]


@pytest.mark.parametrize(("sections", "path", "fragment"), [c[1:] for c in PREVIEW_BAD_CONFIGS], ids=[c[0] for c in PREVIEW_BAD_CONFIGS])
def test_bad_preview_config(sections, path, fragment):
    assert_problem(problems_of(**sections), path, fragment)


def test_a_custom_gpu_model_scales_on_its_own_series_and_a_preview_on_its_own_service():
    from ml_platform.infra import models

    query = 'sum(rate(queue_depth{namespace="chat"}[1m]))'
    cfg = config.parse(
        raw_config(**with_model(runtime="custom", port=8080, healthPath="/h", autoscaling={"query": query, "target": 3})), "test"
    )
    assert cfg.models["chat"].autoscaling.query == query
    assert models.scale_query("chat", query, None) == query
    assert models.scale_query("chat", query, "pr-7") == 'sum(rate(queue_depth{namespace="pr-7", service="chat"}[1m]))'


def test_listed_namespaces_have_their_logs_shipped_to_a_declared_group():
    cfg = config.parse(raw_config(**minimal_sections(monitoring={"logNamespaces": ["apps"]})), "test")
    assert cfg.monitoring.logNamespaces == ["apps"]
    for listed, fragment in ((["Apps_1"], "not a namespace name"), (["apps", "apps"], "listed twice")):
        assert_problem(problems_of(**minimal_sections(monitoring={"logNamespaces": listed})), "monitoring.logNamespaces", fragment)


def test_the_system_pool_takes_no_taint_its_controllers_do_not_tolerate():
    taint = {"key": "dedicated", "value": "system", "effect": "NoSchedule"}
    sections = minimal_sections(nodePools={"system": {"instanceTypes": ["m6i.large"], "maxSize": 3, "taints": [taint]}})
    assert_problem(problems_of(**sections), "nodePools.system.taints", "the platform's controllers tolerate no dedicated=system:NoSchedule")


def test_a_preview_namespace_is_not_a_listed_log_namespace():
    assert_problem(problems_of(**minimal_sections(monitoring={"logNamespaces": ["pr-7"]})), "monitoring.logNamespaces", "previews'")


def test_a_receiver_secret_in_plain_text_is_refused_with_the_command_that_encrypts_it():
    plain = {"receivers": [{"name": "pd", "pagerdutyRoutingKey": "0123456789abcdef0123456789abcdef"}], "defaultReceiver": "pd"}
    sections = prod_sections(monitoring=plain)
    expected = (
        "a secret in plain text in the stack file; encrypt it: "
        "pulumi config set --secret --path 'ml-platform:monitoring.receivers[0].pagerdutyRoutingKey' <value>"
    )
    assert_problem(problems_of(**sections), "monitoring.receivers[0].pagerdutyRoutingKey", expected)
    # under `pulumi up` values arrive decrypted: a key the engine marks secret holds encrypted values
    config.parse(raw_config(**sections), "test", secret_keys=["ml-platform:monitoring"])
    # offline, an encrypted value is its masked digest, so a plain one beside it is still caught
    mixed = {"receivers": [*plain["receivers"], {"name": "hook", "webhookUrl": "[secret:0123456789ab]"}], "defaultReceiver": "pd"}
    with pytest.raises(config.ConfigError) as caught:
        config.parse(raw_config(**prod_sections(monitoring=mixed)), "test", secret_keys=["ml-platform:monitoring"])
    assert [p for p, _ in caught.value.problems] == ["monitoring.receivers[0].pagerdutyRoutingKey"]


def with_hours(**hours):
    window = {"start": "0 8 * * 1-5", "end": "0 20 * * 1-5", "timezone": "Europe/Berlin", **hours}
    return with_model(replicas={"min": 0, "max": 2}, autoscaling={"activeHours": window})


@pytest.mark.parametrize(
    ("sections", "path", "fragment"),
    [
        (with_hours(start="8am"), "models.chat.autoscaling.activeHours.start", "'8am' is not a five-field cron expression"),
        (with_hours(end="61 25 * * *"), "models.chat.autoscaling.activeHours.end", "not a five-field cron expression"),
        (with_hours(start="0 0 8 * * 1-5"), "models.chat.autoscaling.activeHours.start", "five-field"),
        (with_hours(timezone="Europe/Berln"), "models.chat.autoscaling.activeHours.timezone", "did you mean 'Europe/Berlin'?"),
        (with_hours(timezone="Mars/Olympus"), "models.chat.autoscaling.activeHours.timezone", "'Mars/Olympus' is not an IANA time zone"),
        (with_hours(end="0 8 * * 1-5"), "models.chat.autoscaling.activeHours", "the window would never open"),
        (
            minimal_sections(network={"cidr": "10.0.0.0/16"}, cluster={"admins": [ADMIN], "privateAccessCidrs": ["10.0.0.0/16"]}),
            "cluster.privateAccessCidrs[0]",
            "10.0.0.0/16 overlaps the VPC (10.0.0.0/16)",
        ),
        (
            minimal_sections(cluster={"admins": [ADMIN], "privateAccessCidrs": ["10.0.128.0/20"]}),
            "cluster.privateAccessCidrs[0]",
            "overlaps the VPC",
        ),
    ],
    ids=["8am", "minute 61", "seconds field", "zone typo", "no such zone", "empty window", "access list is the VPC", "inside the VPC"],
)
def test_schedules_zones_and_access_ranges_are_checked_before_deploying(sections, path, fragment):
    assert_problem(problems_of(**sections), path, fragment)


def test_a_good_schedule_and_an_outside_range_pass():
    config.parse(raw_config(**with_hours()), "test")
    config.parse(raw_config(**minimal_sections(cluster={"admins": [ADMIN], "privateAccessCidrs": ["10.100.0.0/16"]})), "test")


@pytest.mark.parametrize("prefix", ["registry/", "registry/chat/1/", "compile-cache/x/", "mlflow/0/", "capture/fraud/", "drift/fraud/1/"])
def test_a_model_may_not_read_the_platforms_own_prefixes(prefix):
    from ml_platform.components import model_store, sagemaker_mlflow
    from ml_platform.components.model_service import capture, monitor_job
    from ml_platform.infra.config.models import PLATFORM_PREFIXES, ModelSource
    from ml_platform.infra.model_registry import artifacts

    assert set(PLATFORM_PREFIXES) == {
        artifacts.STORE_PREFIX,
        model_store.COMPILE_CACHE_PREFIX,
        sagemaker_mlflow.ARTIFACT_PREFIX,
        capture.STORE_PREFIX,
        monitor_job.REPORT_PREFIX,
    }
    with pytest.raises(Exception, match="under one of the platform's prefixes"):
        ModelSource.model_validate({"s3Prefix": prefix})


def test_a_stack_name_ending_in_a_dash_is_refused():
    # AWS names the cluster, the bucket and SageMaker's tracking server after it; none may end in '-'.
    with pytest.raises(config.ConfigError, match="not ending in '-'"):
        config.parse(raw_config(**minimal_sections()), "staging-")
