"""The monthly estimate from a plan: floors at pool minimums, ceilings at the binding pool limit."""

import copy
import itertools

import pytest

from ml_platform.components import instance_types
from ml_platform.infra import cli
from ml_platform.infra.delivery import cost, diff, model_floor, prices
from ml_platform.infra.offline import capacity

H = prices.HOURS_PER_MONTH
US = prices.for_region("us-west-2")


def items(plan):
    return {i.name: i for i in cost.estimate(plan.resources)}


def test_dev_floor_is_the_always_on_part(plans):
    estimate = items(plans["dev"])
    system = estimate["pool system (managed, m6i.large)"]
    assert system.floor == pytest.approx(1 * (0.096 * H + 50 * US.gp3_per_gb_month))
    assert system.ceiling == pytest.approx(3 * (0.096 * H + 50 * US.gp3_per_gb_month))
    assert estimate["EKS control plane"].floor == pytest.approx(0.10 * H)
    assert estimate["NAT gateways (1)"].floor == pytest.approx((0.045 + 0.005) * H)
    # GPUs from zero: nothing idle
    assert estimate["pool gpu (Karpenter)"].floor == 0


def integer_ceiling(types: list[str], limits: dict[str, float], spot: bool, disk_gib: int = 0) -> float:
    """The dearest whole-node mix within every limit, by brute force over the multisets of at most `nodes` nodes
    (independent of cost.py's linear programme, which may only be at or above it)."""
    best = 0.0
    for count in range(int(limits["nodes"]) + 1):
        for nodes in itertools.combinations_with_replacement(types, count):
            use = {"cpu": 0.0, "memory": 0.0, "gpu": 0.0, "nodes": float(count)}
            for t in nodes:
                vcpus, gib = capacity.vcpus_and_gib(t)
                use["cpu"] += vcpus
                use["memory"] += gib
                use["gpu"] += instance_types.gpu_info(t).count
            if all(use[k] <= limit for k, limit in limits.items()):
                best = max(best, sum(US.hourly(t, spot) + disk_gib * US.gp3_per_gb_month / H for t in nodes))
    return best


def test_gpu_ceiling_is_the_dearest_mix_its_limits_allow_counting_physical_gpus(plans):
    spot_gpu = items(plans["dev"])["pool gpu (Karpenter)"]
    # dev's spot GPU pool: 1-GPU g5/g6 sizes, limits cpu 64, memory 256Gi, 4 nodes, 16 GPU slices = 4 physical GPUs
    # (time-sliced 4 ways); one node past any limit is never launched, so g5.16xlarge (64 vCPU, 256 GiB) is the
    # largest type and only alone
    one_gpu = [t for t in prices.VCPUS if t.split(".")[0] in ("g5", "g6") and instance_types.gpu_info(t).count == 1]
    assert "g5.48xlarge" not in one_gpu and "g5.16xlarge" in one_gpu
    disk = {s.name: s.disk_gib for s in model_floor.pool_shapes(plans["dev"].resources, list, {})}["gpu"]
    best = integer_ceiling(one_gpu, {"cpu": 64, "memory": 256, "gpu": 4, "nodes": 4}, spot=True, disk_gib=disk)
    assert best * H <= spot_gpu.ceiling <= best * H * 1.05, "the linear programme is at or just above the whole-node optimum"
    assert spot_gpu.note.startswith("from zero; ceiling: the dearest mix of types its ") and spot_gpu.note.endswith(", spot")


def test_prod_costs_more_and_totals_add_up(plans):
    dev_floor, dev_ceiling = cost.totals(cost.estimate(plans["dev"].resources))
    prod = cost.estimate(plans["prod"].resources)
    floor, ceiling = cost.totals(prod)
    assert floor > dev_floor and ceiling > dev_ceiling and floor < ceiling
    assert floor == pytest.approx(sum(i.floor for i in prod))
    names = {i.name for i in prod}
    assert {"NAT gateways (3)", "interface endpoints", "Prometheus storage (gp3)", "load balancers (2 ALBs)"} <= names


def test_unknown_sizes_are_priced_by_vcpu_and_unknown_families_refused():
    assert US.on_demand("m6i.8xlarge") == (pytest.approx(0.096 / 2 * 32), 32), "CPU sizes: in proportion to vCPUs"
    with pytest.raises(prices.NoPrice, match=r"no price for g5g\.xlarge"):
        US.on_demand("g5g.xlarge")  # GPU sizes are never priced by vCPU
    with pytest.raises(prices.NoPrice, match=r"no price for x9z\.large or its family in us-west-2"):
        US.on_demand("x9z.large")
    with pytest.raises(prices.NoPrice, match=r"g6e\.xlarge is not offered in eu-west-1"):
        prices.for_region("eu-west-1").on_demand("g6e.xlarge")


def test_markdown_and_cli(plans, capsys):
    text = cost.render(cost.estimate(plans["dev"].resources), markdown=True)
    assert text.splitlines()[0] == "| item | idle floor | ceiling | note |" and "**total per month**" in text
    assert cli.main(["cost", "--stack", "staging"]) == 0
    out = capsys.readouterr().out
    assert "estimated monthly cost of stack 'staging'" in out and f"prices: us-west-2, {prices.DATE}" in out


def test_a_billed_resource_without_a_price_is_listed_as_not_priced(plans):
    from ml_platform.infra.delivery import cost

    items = {i.name: i for i in cost.estimate(plans["prod"].resources)}
    for name in ("Aurora Serverless v2 instances (2)", "Aurora storage (1)", "Aurora migration snapshots (1)"):
        assert items[name].note.startswith("not priced:") and items[name].floor == items[name].ceiling == 0, name
    assert not [i for i in cost.estimate(plans["dev"].resources) if i.name.startswith("Aurora")]


def test_the_scanning_owner_lists_inspectors_price_per_use(plans):
    owner = {i.name: i for i in cost.estimate(plans["prod"].resources)}
    scanning = owner["ECR enhanced scanning (Amazon Inspector, the account's)"]
    assert (scanning.floor, scanning.ceiling) == (0.0, 0.0), "billed per use: not in the totals"
    assert f"${prices.INSPECTOR_ECR_INITIAL_SCAN:.2f} per image pushed" in scanning.note
    assert f"${prices.INSPECTOR_ECR_RESCAN:.2f} per rescan" in scanning.note
    assert not [i for i in cost.estimate(plans["staging"].resources) if "Inspector" in i.name], "staging does not own it"


# --- the idle floor counts the models' minimum replicas -------------------------------------------------------------


def fits(instance_type: str, cpu_m: int, memory_mi: int) -> bool:
    """Whether a pod fits one node of the type beside a GPU node's DaemonSets (staging sizes them `standard`)."""
    offered = capacity.allocatable(instance_type)
    overhead = capacity.node_overhead("standard", instance_types.gpu_info(instance_type) is not None)
    return offered[0] - overhead[0] >= cpu_m and offered[1] - overhead[1] >= memory_mi


def test_stagings_floor_includes_its_gpu_models_on_the_cheapest_type_that_fits(plans):
    estimate = items(plans["staging"])
    pods = {p.model: p for p in model_floor.model_pods(plans["staging"].resources)}
    # chat: the server's 6 CPU and 28Gi plus the compile cache's native sidecar (100m, 256Mi), 1 GPU: a g5.2xlarge
    # offers less memory once kube-reserved and the DaemonSets are taken, so the cheapest g5 that fits is the
    # 4xlarge; ranker (4 CPU, 16Gi) misses the xlarge's 4 vCPUs by the reserved share and fits the 2xlarge. The GPU
    # NodePool launches from zero: both are new nodes.
    chat_pod, ranker_pod = pods["chat"], pods["ranker"]
    assert (chat_pod.cpu_m, chat_pod.memory_mi, chat_pod.gpus, chat_pod.replicas) == (6100, 28 * 1024 + 256, 1, 1)
    assert not fits("g5.2xlarge", chat_pod.cpu_m, chat_pod.memory_mi) and fits("g5.4xlarge", chat_pod.cpu_m, chat_pod.memory_mi)
    assert not fits("g5.xlarge", ranker_pod.cpu_m, ranker_pod.memory_mi) and fits("g5.2xlarge", ranker_pod.cpu_m, ranker_pod.memory_mi)
    chat = estimate["pool gpu: 1 x g5.4xlarge for models"]
    ranker = estimate["pool gpu: 1 x g5.2xlarge for models"]
    disk = {shape.name: shape.disk_gib for shape in model_floor.pool_shapes(plans["staging"].resources, list, {})}
    assert disk["gpu"] == 200 and disk["cpu"] == 50, "the EC2NodeClasses' root volumes"
    assert chat.floor == pytest.approx(US.hourly("g5.4xlarge", False) * H + 200 * US.gp3_per_gb_month) and "chat 1" in chat.note
    assert ranker.floor == pytest.approx(US.hourly("g5.2xlarge", False) * H + 200 * US.gp3_per_gb_month) and "ranker 1" in ranker.note
    assert chat.ceiling == ranker.ceiling == 0, "the ceiling already counts the pool at its limits"
    # fraud: 2 replicas of 1.1 CPU and 2.1 GiB (server and capture proxy). A c6i.large ($0.085/h) holds one (two
    # need 2.2 CPU of its ~1.9 allocatable); a c6i.xlarge ($0.17/h) holds both on one root volume: cheaper per replica
    fraud = estimate["pool cpu: 1 x c6i.xlarge for models"]
    assert fraud.floor == pytest.approx(US.hourly("c6i.xlarge", False) * H + 50 * US.gp3_per_gb_month)


def test_a_managed_pools_running_nodes_take_replicas_first_and_never_grow(plans):
    # prod's chat keeps 2 replicas of one GPU each. The managed GPU group runs its desiredSize (1 node, nothing
    # grows it: no autoscaler for managed groups), which takes the first; the second goes where Karpenter would
    # launch it: gpu-large (g6e), its cheapest fitting size, the 2xlarge.
    prod = items(plans["prod"])
    assert prod["pool gpu: models on its running nodes"].note.startswith("chat 1: on its running g5.2xlarge nodes")
    extra = prod["pool gpu-large: 1 x g6e.2xlarge for models"]
    assert "chat 1" in extra.note and not [name for name in prod if name.startswith("pool gpu: 1 x")]
    assert extra.floor == pytest.approx(US.hourly("g6e.2xlarge", False) * H + 200 * US.gp3_per_gb_month)


def copy_model(resources: list[dict], model: str, as_name: str) -> list[dict]:
    """The plan with `model`'s Deployment and ScaledObject copied to a new model (a GPU model added)."""
    added = []
    for resource in resources:
        meta = resource["inputs"].get("metadata") if isinstance(resource["inputs"], dict) else None
        if (
            resource["type"] in ("kubernetes:apps/v1:Deployment", "kubernetes:keda.sh/v1alpha1:ScaledObject")
            and (meta or {}).get("namespace") == model
        ):
            clone = copy.deepcopy(resource)
            clone["urn"] = clone["urn"] + "-copy"
            clone["inputs"]["metadata"]["namespace"] = as_name
            added.append(clone)
    assert len(added) == 2
    return resources + added


def test_adding_a_gpu_model_raises_the_floor_by_its_node_and_the_diff_says_so(plans):
    base = plans["staging"].resources
    head = copy_model(base, "ranker", "ranker2")
    before, after = cost.totals(cost.estimate(base)), cost.totals(cost.estimate(head))
    # one GPU per g5.2xlarge: ranker2's replica needs a node of its own
    assert after[0] - before[0] == pytest.approx(US.hourly("g5.2xlarge", False) * H + 200 * US.gp3_per_gb_month)
    line = diff._cost_line(
        {"resources": base, "outputs": {"region": "us-west-2"}}, {"resources": head, "outputs": {"region": "us-west-2"}}, False
    )
    assert f"({after[0] - before[0]:+,.0f})" in line


def test_a_model_no_pool_can_take_is_said_not_left_out(plans):
    head = copy.deepcopy(plans["staging"].resources)
    for resource in head:
        if resource["type"] == "kubernetes:apps/v1:Deployment" and resource["inputs"]["metadata"].get("namespace") == "chat":
            resource["inputs"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "8"
    unplaced = [i for i in cost.estimate(head) if i.name == "models not in the floor"]
    assert len(unplaced) == 1 and "model chat: no node type of the pools that admit it fits one replica" in unplaced[0].note


# --- ceilings at the dearest type, prices per region, every type accounted ----------------------------------------------


def test_a_managed_pools_ceiling_is_its_dearest_type(plans):
    resources = copy.deepcopy(plans["dev"].resources)
    group = next(r for r in resources if r["type"] == "aws:eks/nodeGroup:NodeGroup")
    group["inputs"]["instanceTypes"] = ["m6i.large", "m6i.2xlarge"]
    system = next(i for i in cost.estimate(resources) if i.name.startswith("pool system"))
    scaling = group["inputs"]["scalingConfig"]
    assert system.floor == pytest.approx(scaling["minSize"] * (US.hourly("m6i.large", False) * H + 50 * US.gp3_per_gb_month))
    assert system.ceiling == pytest.approx(scaling["maxSize"] * (US.hourly("m6i.2xlarge", False) * H + 50 * US.gp3_per_gb_month))
    assert system.note == "floor at m6i.large, ceiling at its dearest type, m6i.2xlarge"


def test_a_stack_is_priced_at_its_regions_rates(plans):
    europe = prices.for_region("eu-central-1")
    estimate = {i.name: i for i in cost.estimate(plans["staging"].resources, region="eu-central-1")}
    assert estimate["NAT gateways (3)"].floor == pytest.approx(3 * (europe.nat_gateway + europe.public_ipv4) * H)
    expected = europe.hourly("g5.4xlarge", False) * H + 200 * europe.gp3_per_gb_month
    assert estimate["pool gpu: 1 x g5.4xlarge for models"].floor == pytest.approx(expected)
    ireland = {i.name: i for i in cost.estimate(plans["staging"].resources, region="eu-west-1")}
    assert ireland["CloudWatch Logs"].note.startswith("not priced in eu-west-1"), "no sourced figure: said, not zero in silence"
    with pytest.raises(prices.UnknownRegion, match="no prices for ap-south-2"):
        cost.estimate(plans["staging"].resources, region="ap-south-2")


def test_the_command_refuses_another_regions_rates_unless_asked(plans, capsys, monkeypatch):
    plan = plans["staging"]
    monkeypatch.setattr(
        cli, "_planned", lambda stack, project_dir: type(plan)(**{**plan.__dict__, "outputs": {**plan.outputs, "region": "ap-south-2"}})
    )
    assert cli.main(["cost", "--stack", "staging"]) == 0
    said = capsys.readouterr()
    assert "warning: no prices for ap-south-2" in said.err and "total per month" not in said.out
    assert cli.main(["cost", "--stack", "staging", "--price-region", "us-east-1"]) == 0
    out = capsys.readouterr().out
    assert "at us-east-1's prices (it runs in ap-south-2)" in out and "prices: us-east-1" in out
    line = diff._cost_line(
        {"resources": [], "outputs": {"region": "ap-south-2"}}, {"resources": [], "outputs": {"region": "ap-south-2"}}, False
    )
    assert line.startswith("estimated monthly cost: not estimated (no prices for ap-south-2")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--log-gb-per-day", "-3"], "--log-gb-per-day -3: give the GB of logs ingested per day"),
        (["--price-region", "mars-1"], "--price-region mars-1: give one of eu-central-1, eu-west-1, us-east-1"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(capsys, argv, message):
    assert cli.main(["cost", "--stack", "dev", *argv]) == 2
    assert message in capsys.readouterr().err


def test_every_type_the_program_declares_is_priced_listed_or_free(plans):
    declared = {r["type"] for plan in plans.values() for r in plan.resources if r.get("custom", True)}
    accounted = cost.PRICED_TYPES | cost.FREE_TYPES | set(cost.NOT_PRICED)
    assert declared - accounted == set(), "price it, list it in cost.NOT_PRICED, or add it to cost.FREE_TYPES"
    assert not (cost.PRICED_TYPES & cost.FREE_TYPES) and not (set(cost.NOT_PRICED) & (cost.PRICED_TYPES | cost.FREE_TYPES))
    # and each NOT_PRICED type present is in the output, never left out
    names = {i.name for i in cost.estimate(plans["prod"].resources)}
    for token, (what, _) in cost.NOT_PRICED.items():
        count = sum(1 for r in plans["prod"].resources if r["type"] == token)
        assert not count or f"{what} ({count})" in names, token


def test_karpenter_tries_the_heavier_pool_first_and_keeps_to_its_architecture(plans):
    resources = copy.deepcopy(plans["dev"].resources)
    chat = next(
        r for r in resources if r["type"] == "kubernetes:keda.sh/v1alpha1:ScaledObject" and r["inputs"]["metadata"]["namespace"] == "chat"
    )
    chat["inputs"]["spec"]["minReplicaCount"] = 1
    floors = {i.name for i in cost.estimate(resources) if "for models" in i.name}
    assert any(name.startswith("pool gpu: 1 x") for name in floors), "dev's spot pool weighs 100, the on-demand one 10"
    pools = {r["inputs"]["metadata"]["name"]: r for r in resources if r["type"] == "kubernetes:karpenter.sh/v1:NodePool"}
    pools["gpu-on-demand"]["inputs"]["spec"]["weight"] = 200
    floors = {i.name for i in cost.estimate(resources) if "for models" in i.name}
    assert any(name.startswith("pool gpu-on-demand: 1 x") for name in floors), "Karpenter tries the higher weight first"
    # an arm64 CPU pool: the table prices no Graviton type, so nothing is placed at an x86 price
    requirements = pools["cpu"]["inputs"]["spec"]["template"]["spec"]["requirements"]
    requirements[:] = [r for r in requirements if r["key"] != "kubernetes.io/arch"] + [
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}
    ]
    estimate = {i.name: i for i in cost.estimate(resources)}
    assert estimate["pool cpu (Karpenter)"].note.startswith("not priced: no type it may launch has a price")
    assert "model fraud: no node type of the pools that admit it fits one replica" in estimate["models not in the floor"].note


def test_a_pool_past_its_limits_sends_replicas_to_the_next_and_storage_counts(plans):
    resources = copy.deepcopy(plans["dev"].resources)
    chat = next(
        r for r in resources if r["type"] == "kubernetes:keda.sh/v1alpha1:ScaledObject" and r["inputs"]["metadata"]["namespace"] == "chat"
    )
    chat["inputs"]["spec"]["minReplicaCount"] = 18
    chat["inputs"]["spec"]["triggers"] = [t for t in chat["inputs"]["spec"]["triggers"] if t["type"] != "cron"]
    estimate = {i.name: i for i in cost.estimate(resources)}
    spot = [i for name, i in estimate.items() if name.startswith("pool gpu: ") and "for models" in name]
    on_demand = [i for name, i in estimate.items() if name.startswith("pool gpu-on-demand: ") and "for models" in name]
    # chat asks one slice of a GPU time-sliced 4 ways: a 1-GPU node takes 4 replicas. dev's spot pool (weight 100)
    # stops at its 4 nodes (16 slices); the other 2 replicas go to the on-demand pool (weight 10), as Karpenter
    # falls through to the next NodePool
    assert sum(int(i.name.split(": ")[1].split(" x ")[0]) for i in spot) == 4 and on_demand, estimate.keys()
    assert "models not in the floor" not in estimate
    # ephemeral storage: fraud's replicas each ask its weights' emptyDir; a 50 GiB root volume takes two of 21 GiB
    fraud = next(r for r in resources if r["type"] == "kubernetes:apps/v1:Deployment" and r["inputs"]["metadata"]["namespace"] == "fraud")
    fraud["inputs"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = "21Gi"
    hpa_or_scaled = next(
        r
        for r in resources
        if r["type"] in ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler",) and r["inputs"]["metadata"]["namespace"] == "fraud"
    )
    hpa_or_scaled["inputs"]["spec"]["minReplicas"] = 6
    cpu_nodes = sum(int(i.name.split(": ")[1].split(" x ")[0]) for i in cost.estimate(resources) if i.name.startswith("pool cpu: "))
    assert cpu_nodes >= 3, "six 21 GiB replicas need three 50 GiB root volumes at least"


def test_sizes_the_table_cannot_price_are_said_not_crashed(plans):
    resources = copy.deepcopy(plans["staging"].resources)
    group = next(r for r in resources if r["type"] == "aws:eks/nodeGroup:NodeGroup")
    group["inputs"]["instanceTypes"] = ["t3.medium"]
    system = next(i for i in cost.estimate(resources) if i.name.startswith("pool system"))
    assert system.note.startswith("not priced: no price for t3.medium")


def test_a_nodepools_nodes_limit_bounds_the_floor_too(plans):
    resources = copy.deepcopy(plans["dev"].resources)
    chat = next(
        r for r in resources if r["type"] == "kubernetes:keda.sh/v1alpha1:ScaledObject" and r["inputs"]["metadata"]["namespace"] == "chat"
    )
    chat["inputs"]["spec"]["minReplicaCount"] = 12
    chat["inputs"]["spec"]["triggers"] = [t for t in chat["inputs"]["spec"]["triggers"] if t["type"] != "cron"]
    pools = {r["inputs"]["metadata"]["name"]: r for r in resources if r["type"] == "kubernetes:karpenter.sh/v1:NodePool"}
    pools["gpu"]["inputs"]["spec"]["limits"]["nodes"] = "2"
    estimate = {i.name: i for i in cost.estimate(resources)}
    # 12 replicas of one slice, 4 slices a node: the spot pool stops at its 2 nodes (8 replicas), the rest fall through
    spot = [i for name, i in estimate.items() if name.startswith("pool gpu: ") and "for models" in name]
    assert sum(int(i.name.split(": ")[1].split(" x ")[0]) for i in spot) == 2
    assert any(name.startswith("pool gpu-on-demand: ") and "for models" in name for name in estimate)


def test_karpenter_launches_for_the_largest_pending_replica_first():
    # a 48-vCPU limit: a small replica first on its own cheap node would leave no room for the large one; Karpenter
    # sorts pending pods by size, so the large one gets its node and the small one waits
    pool = model_floor.PoolShape("cpu", {}, (), ("m6i.2xlarge", "m6i.12xlarge"), False, False, limits={"cpu": 48.0})
    big = model_floor.ModelPod("big", 1, 40_000, 8 * 1024, 0, {}, (), ())
    small = model_floor.ModelPod("small", 1, 4_000, 2 * 1024, 0, {}, (), ())
    placed, problems = model_floor.place([small, big], [pool], US, "staging")
    assert [(f.instance_type, f.models) for f in placed] == [("m6i.12xlarge", {"big": 1, "small": 1})] and problems == []
