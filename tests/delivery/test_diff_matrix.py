"""The offline diff against realistic changes, each made where a user makes it (the stack's config, or a rename
in the code) and planned by the real program, with the classification the providers' documentation gives:
`stateful` (a stateful resource replaced or deleted: --fail-on-replace fails), `refused` (an update the API
server rejects: fails too), `replace` (only non-stateful replacements), `update`, `add`, `remove`. Plus a
property test: a random change to a replacement-forcing property is never classified as an update."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_platform.infra import aliases, cli, program
from ml_platform.infra.delivery import diff, replacements
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline import stack_files
from ml_platform.infra.offline.stack_files import RawStackConfig

KEY = "ml-platform:"


def document(plan) -> dict:
    return json.loads(plan.to_json())


def section(name: str, change: Callable[[dict], None]) -> Callable[[dict], None]:
    """A change to one top-level config key, made on its parsed value."""

    def apply(values: dict) -> None:
        value = json.loads(values.get(KEY + name, "{}"))
        change(value)
        values[KEY + name] = json.dumps(value)

    return apply


def planned(stack: str, change: Callable[[dict], None], run_program: Callable[[], None] | None = None) -> dict:
    raw = stack_files.read_stack(stack)
    values = dict(raw.values)
    change(values)
    return document(offline_plan.run(stack, RawStackConfig(values, raw.secret_keys), run_program))


def classify(changes: list[diff.Change]) -> str:
    if diff.stateful_replacements(changes):
        return "stateful"
    if diff.refused_updates(changes):
        return "refused"
    if any(c.replaces for c in changes):
        return "replace"
    actions = {c.action for c in changes}
    if "added" in actions and "removed" not in actions:
        return "add"  # with the updates that wire the new resources in
    if "removed" in actions and "added" not in actions:
        return "remove"
    return "update" if changes else "none"


def renamed_component(old: str, new: str, with_alias: bool):
    """Run the program with the top-level component `old` renamed to `new` (as a refactor would), with or
    without its alias recorded in infra/aliases.py."""
    component = {"network": "Network"}[old]
    real = getattr(program, component)

    def rename(name, args, opts=None):
        return real(new if name == old else name, args, aliases.options(new) if name == old else opts)

    def run() -> None:
        saved = dict(aliases.RENAMED)
        aliases.RENAMED.clear()
        if with_alias:
            aliases.RENAMED[new] = (old,)
        setattr(program, component, rename)
        try:
            program.main()
        finally:
            setattr(program, component, real)
            aliases.RENAMED.clear()
            aliases.RENAMED.update(saved)

    return run


def renamed_pool(stack: str, old: str, new: str):
    def change(values: dict) -> None:
        pools = json.loads(values[KEY + "nodePools"])
        pools[new] = pools.pop(old)
        values[KEY + "nodePools"] = json.dumps(pools)

    return change


def with_alias(new: str, old: str):
    def run() -> None:
        aliases.RENAMED[new] = (old,)
        try:
            program.main()
        finally:
            aliases.RENAMED.pop(new)

    return run


def add_model(values: dict) -> None:
    models = json.loads(values[KEY + "models"])
    models["embed"] = {**models["fraud"], "source": {"s3Prefix": "embed/v1/"}}
    values[KEY + "models"] = json.dumps(models)


def drop_model(values: dict) -> None:
    models = json.loads(values[KEY + "models"])
    del models["fraud"]
    values[KEY + "models"] = json.dumps(models)


def new_routing_key(values: dict) -> None:
    # `pulumi config set --secret` wrote a new ciphertext; offline it is masked as its keyed digest
    monitoring = json.loads(values[KEY + "monitoring"])
    monitoring["receivers"][0]["pagerdutyRoutingKey"] = "[secret:0123456789ab]"
    values[KEY + "monitoring"] = json.dumps(monitoring)


def staging_protected(values: dict) -> None:
    values[KEY + "protectStatefulResources"] = "true"


def internet_facing(values: dict) -> None:
    models = json.loads(values[KEY + "models"])
    certificate = "arn:aws:acm:us-west-2:123456789012:certificate/0b7c7c3e-1111-2222-3333-444444444444"
    models["chat"]["exposure"] = {"type": "alb", "scheme": "internet-facing", "certificateArn": certificate}
    values[KEY + "models"] = json.dumps(models)


# name -> (stack, config change, program, expected class, a fragment the diff must say (or None))
MATRIX: dict[str, tuple] = {
    "prod VPC CIDR": (
        "prod",
        section("network", lambda n: n.update(cidr="10.30.0.0/16")),
        None,
        "stateful",
        "cidrBlock forces replacement",
    ),
    "a zone replaced in staging": (
        "staging",
        section("network", lambda n: n.update(availabilityZones=["us-west-2a", "us-west-2b", "us-west-2d"])),
        None,
        "stateful",
        "its URN is gone",
    ),
    "flow log retention": ("prod", section("network", lambda n: n.update(flowLogRetentionDays=365)), None, "update", "90 → 365"),
    "one more interface endpoint": (
        "prod",
        section("network", lambda n: n["interfaceEndpoints"].append("ec2")),
        None,
        "add",
        None,
    ),
    "control plane log retention": ("prod", section("cluster", lambda c: c.update(logRetentionDays=400)), None, "update", "365 → 400"),
    "one more admin": (
        "prod",
        section("cluster", lambda c: c["admins"].append({"principalArn": "arn:aws:iam::123456789012:role/auditors", "access": "view"})),
        None,
        "add",
        None,
    ),
    # access entries are named by a hash of the principal, so their order in the file is not an identity
    "admins reordered": ("prod", section("cluster", lambda c: c["admins"].reverse()), None, "none", None),
    "another private access range": (
        "prod",
        section("cluster", lambda c: c["privateAccessCidrs"].append("10.101.0.0/16")),
        None,
        "add",
        None,
    ),
    "managed GPU pool instance types": (
        "prod",
        section("nodePools", lambda p: p["gpu"].update(instanceTypes=["g5.2xlarge"])),
        None,
        "stateful",
        "instanceTypes[1] forces replacement",
    ),
    "managed pool max size": ("prod", section("nodePools", lambda p: p["gpu"].update(maxSize=12)), None, "update", "8 → 12"),
    "system pool instance type": (
        "prod",
        section("nodePools", lambda p: p["system"].update(instanceTypes=["m6i.2xlarge"])),
        None,
        "stateful",
        "instanceTypes[0] forces replacement",
    ),
    "system pool disk size": ("prod", section("nodePools", lambda p: p["system"].update(diskSizeGiB=100)), None, "update", None),
    "Karpenter pool GPU limit": (
        "prod",
        section("nodePools", lambda p: p["gpu-large"]["limits"].update(gpus=24)),
        None,
        "update",
        '"16" → "24"',
    ),
    "one more repository": ("prod", section("registries", lambda r: r["repositories"].append("tools/extra")), None, "add", None),
    "registry prefix": ("prod", section("registries", lambda r: r.update(prefix="platform")), None, "stateful", "name forces replacement"),
    "tagged images kept": ("prod", section("registries", lambda r: r.update(keepTaggedCount=600)), None, "update", None),
    "noncurrent model versions kept": (
        "prod",
        section("modelStore", lambda m: m.update(noncurrentVersionExpiryDays=120)),
        None,
        "update",
        None,
    ),
    "model replicas": ("prod", section("models", lambda m: m["chat"]["replicas"].update(max=10)), None, "update", "8 → 10"),
    "a new model": ("prod", add_model, None, "add", None),
    "a model removed": ("prod", drop_model, None, "remove", None),
    "chart pin": ("dev", section("pins", lambda p: p.update(charts={"keda": "2.20.1"})), None, "update", '"2.20.2" → "2.20.1"'),
    "AMI release pin": ("prod", section("pins", lambda p: p.update(amiRelease="1.36.3-20261001")), None, "update", "20261001"),
    "staging protected": ("staging", staging_protected, None, "replace", "reclaimPolicy forces replacement"),
    "ALB made internet-facing": ("prod", internet_facing, None, "update", "internet-facing"),
    "alert routing key": ("prod", new_routing_key, None, "replace", "[secret:"),
    # the resources stay; only their Name tags, made from the component's name, change in place
    "network renamed with an alias": ("prod", lambda v: None, renamed_component("network", "net", True), "update", "tags.Name"),
    "network renamed without an alias": ("prod", lambda v: None, renamed_component("network", "net", False), "stateful", "its URN is gone"),
    "managed pool renamed with an alias": (
        "prod",
        renamed_pool("prod", "gpu", "gpu-a10"),
        with_alias("gpu-a10", "gpu"),
        "update",
        '"gpu" → "gpu-a10"',
    ),
    "managed pool renamed without an alias": ("prod", renamed_pool("prod", "gpu", "gpu-a10"), None, "stateful", "its URN is gone"),
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_a_realistic_change_is_classified_as_the_providers_would(plans, case):
    stack, change, run_program, expected, said = MATRIX[case]
    base = document(plans[stack])
    head = planned(stack, change, run_program)
    changes = diff.compare(base, head)
    assert classify(changes) == expected, [(c.label, c.replaces, c.refused, c.properties[:3]) for c in changes][:8]
    if said is not None:
        assert said in diff.render(base, head, changes)


def test_the_matrix_covers_every_kind_of_change():
    assert len(MATRIX) >= 25
    assert {case[3] for case in MATRIX.values()} >= {"stateful", "replace", "update", "add", "remove", "none"}


def test_a_prod_vpc_replacement_fails_the_pull_request_check(plans, tmp_path):
    (tmp_path / "base.json").write_text(plans["prod"].to_json())
    head = planned("prod", MATRIX["prod VPC CIDR"][1])
    (tmp_path / "head.json").write_text(json.dumps(head))
    changes = diff.compare(document(plans["prod"]), head)
    replaced = {c.resource["type"] for c in diff.stateful_replacements(changes)}
    # the VPC, then what reads it: subnets, NAT gateways, the node groups in them, and the cluster (no other VPC)
    assert {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway", "aws:eks/nodeGroup:NodeGroup"} <= replaced
    assert "aws:eks/cluster:Cluster" in replaced
    arguments = ["diff", "--base", str(tmp_path / "base.json"), "--head", str(tmp_path / "head.json")]
    assert cli.main([*arguments, "--fail-on-replace"]) == 3


def test_an_update_the_api_refuses_is_its_own_class_and_fails_the_check(plans):
    head = planned("staging", staging_protected)
    for resource in head["resources"]:
        if resource["type"] == "kubernetes:storage.k8s.io/v1:StorageClass":
            resource["replaceOnChanges"] = []  # the program before it replaced the class on these fields
    changes = diff.compare(document(plans["staging"]), head)
    assert classify(changes) == "refused" and diff.blocking(changes)
    assert "reclaimPolicy cannot change in place" in diff.render(document(plans["staging"]), head, changes)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_change_to_a_replacement_forcing_property_is_never_an_update(plans, data):
    base = document(plans["prod"])
    candidates = [
        (index, prop)
        for index, resource in enumerate(base["resources"])
        for prop in replacements.FORCE_NEW.get(resource["type"], ())
        if prop in resource["inputs"] and not isinstance(resource["inputs"][prop], dict | list)
    ]
    index, prop = data.draw(st.sampled_from(candidates))
    head = copy.deepcopy(base)
    value = head["resources"][index]["inputs"][prop]
    head["resources"][index]["inputs"][prop] = data.draw(st.text(min_size=1, max_size=20).filter(lambda v: v != value))
    (changed, *_) = [c for c in diff.compare(base, head) if c.resource["urn"] == base["resources"][index]["urn"]]
    assert changed.replaces, (base["resources"][index]["type"], prop)
    if base["resources"][index]["type"] in replacements.STATEFUL_TYPES:
        assert diff.stateful_replacements([changed])
