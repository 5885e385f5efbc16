"""The monthly estimate from a plan: floors at pool minimums, ceilings at the binding pool limit."""

import copy

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


def test_gpu_ceiling_is_bound_by_physical_gpus_not_slices(plans):
    spot_gpu = items(plans["dev"])["pool gpu (Karpenter)"]
    # 16 slices = 4 physical GPUs (time-sliced 4 ways) on 1-GPU instances only (the NodePool requires
    # instance-gpu-count 1): the dearest spot GPU hour among the 1-GPU g5/g6 sizes
    one_gpu = [t for t in prices.VCPUS if t.split(".")[0] in ("g5", "g6") and instance_types.gpu_info(t).count == 1]
    assert "g5.48xlarge" not in one_gpu and "g5.4xlarge" in one_gpu
    dearest = max(US.hourly(t, True) for t in one_gpu)
    assert spot_gpu.ceiling == pytest.approx(4 * dearest * H)
    assert "gpu limit, dearest type, spot" in spot_gpu.note


def test_prod_costs_more_and_totals_add_up(plans):
    dev_floor, dev_ceiling = cost.totals(cost.estimate(plans["dev"].resources))
    prod = cost.estimate(plans["prod"].resources)
    floor, ceiling = cost.totals(prod)
    assert floor > dev_floor and ceiling > dev_ceiling and floor < ceiling
    assert floor == pytest.approx(sum(i.floor for i in prod))
    names = {i.name for i in prod}
    assert {"NAT gateways (3)", "interface endpoints", "Prometheus storage (gp3)", "load balancers (2 ALBs)"} <= names


def test_unknown_sizes_are_priced_by_vcpu_and_unknown_families_refused():
    assert US.on_demand("g5.8xlarge") == (pytest.approx(1.624 / 16 * 32), 32)
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
    assert chat.floor == pytest.approx(US.hourly("g5.4xlarge", False) * H) and "chat 1" in chat.note
    assert ranker.floor == pytest.approx(US.hourly("g5.2xlarge", False) * H) and "ranker 1" in ranker.note
    assert chat.ceiling == ranker.ceiling == 0, "the ceiling already counts the pool at its limits"
    # fraud: 2 replicas of 1.1 CPU, 2.1Gi (server and capture proxy) on the CPU pool's cheapest fitting type
    assert estimate["pool cpu: 2 x m6i.large for models"].floor == pytest.approx(2 * US.hourly("m6i.large", False) * H)


def test_a_managed_pools_minimum_nodes_take_replicas_first(plans):
    # prod's chat keeps 2 replicas with one GPU each; the managed GPU pool's one minSize node takes the first
    prod = items(plans["prod"])
    extra = prod["pool gpu: 1 x g5.2xlarge for models"]
    assert "chat 2, 1 on the pool's minimum nodes" in extra.note
    pool = next(shape for shape in model_floor.pool_shapes(plans["prod"].resources, list, {}, US) if shape.name == "gpu")
    assert pool.managed and pool.min_nodes == 1 and pool.disk_gib > 0
    assert extra.floor == pytest.approx(US.hourly("g5.2xlarge", False) * H + pool.disk_gib * US.gp3_per_gb_month)


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
    assert after[0] - before[0] == pytest.approx(US.hourly("g5.2xlarge", False) * H)
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
    assert len(unplaced) == 1 and "model chat: no priced node type of a pool it may run on fits one replica" in unplaced[0].note


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
    assert estimate["pool gpu: 1 x g5.4xlarge for models"].floor == pytest.approx(europe.hourly("g5.4xlarge", False) * H)
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
    out = capsys.readouterr().out
    assert "warning: no prices for ap-south-2" in out and "total per month" not in out
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
