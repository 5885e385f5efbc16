"""The monthly estimate from a plan: floors at pool minimums, ceilings at the binding pool limit."""

import pytest

from ml_platform.components import instance_types
from ml_platform.infra import cli
from ml_platform.infra.delivery import cost, prices

H = prices.HOURS_PER_MONTH


def items(plan):
    return {i.name: i for i in cost.estimate(plan.resources)}


def test_dev_floor_is_the_always_on_part(plans):
    estimate = items(plans["dev"])
    system = estimate["pool system (managed, m6i.large)"]
    assert system.floor == pytest.approx(1 * (0.096 * H + 50 * prices.GP3_PER_GB_MONTH))
    assert system.ceiling == pytest.approx(3 * (0.096 * H + 50 * prices.GP3_PER_GB_MONTH))
    assert estimate["EKS control plane"].floor == pytest.approx(0.10 * H)
    assert estimate["NAT gateways (1)"].floor == pytest.approx((0.045 + 0.005) * H)
    # GPUs from zero: nothing idle
    assert estimate["pool gpu (Karpenter)"].floor == 0


def test_gpu_ceiling_is_bound_by_physical_gpus_not_slices(plans):
    spot_gpu = items(plans["dev"])["pool gpu (Karpenter)"]
    # 16 slices = 4 physical GPUs (time-sliced 4 ways) on 1-GPU instances only (the NodePool requires
    # instance-gpu-count 1): the dearest spot GPU hour among the 1-GPU g5/g6 sizes
    one_gpu = [t for t in prices.EC2 if t.split(".")[0] in ("g5", "g6") and instance_types.gpu_info(t).count == 1]
    assert "g5.48xlarge" not in one_gpu and "g5.4xlarge" in one_gpu
    dearest = max(prices.hourly(t, True) for t in one_gpu)
    assert spot_gpu.ceiling == pytest.approx(4 * dearest * H)
    assert "gpu limit, spot" in spot_gpu.note


def test_prod_costs_more_and_totals_add_up(plans):
    dev_floor, dev_ceiling = cost.totals(cost.estimate(plans["dev"].resources))
    prod = cost.estimate(plans["prod"].resources)
    floor, ceiling = cost.totals(prod)
    assert floor > dev_floor and ceiling > dev_ceiling and floor < ceiling
    assert floor == pytest.approx(sum(i.floor for i in prod))
    names = {i.name for i in prod}
    assert {"NAT gateways (3)", "interface endpoints", "Prometheus storage (gp3)", "load balancers (2 ALBs)"} <= names


def test_unknown_sizes_are_priced_by_vcpu_and_unknown_families_refused():
    assert prices.on_demand("g5.8xlarge") == (pytest.approx(1.624 / 16 * 32), 32)
    with pytest.raises(KeyError, match=r"no price for x9z\.large"):
        prices.on_demand("x9z.large")


def test_markdown_and_cli(plans, capsys):
    text = cost.render(cost.estimate(plans["dev"].resources), markdown=True)
    assert text.splitlines()[0] == "| item | idle floor | ceiling | note |" and "**total per month**" in text
    assert cli.main(["cost", "--stack", "staging"]) == 0
    out = capsys.readouterr().out
    assert "estimated monthly cost of stack 'staging'" in out and "prices: us-west-2, 2026-11-23" in out


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
