"""Where a stack sits and what it reads: its place in a network (a VPC the platform creates, or one it is given and
looks up) and the model store its models read weights from (a preview's: its base stack's)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from ml_platform.infra import config, existing_network
from ml_platform.infra.naming import model_store_bucket


@dataclass(frozen=True)
class Weights:
    """The model store the models read their weights from."""

    bucket_name: str
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]


@dataclass(frozen=True)
class Placement:
    """Where the stack sits in its network, whether the platform created the VPC (Network) or was given one
    (network.vpcId, looked up: infra/existing_network.py)."""

    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[list[str]]
    public_subnet_ids: pulumi.Input[list[str]]
    zones: list[str]
    """The private subnets' zones."""
    cidrs: tuple[str, ...]
    """The VPC's IPv4 CIDRs."""
    egress: list[pulumi.Resource]
    """What gives the private subnets their routes out, for what must be deleted before them (Karpenter)."""
    alb_subnets: dict[str, list[str]] | None = None
    """An existing VPC's subnets for ALBs by scheme (`internal`, `internet-facing`), one per zone; None when
    created (the controller finds the Network component's subnets by their tags)."""


def existing_placement(cfg: config.StackConfig) -> Placement:
    """The placement in an existing VPC: its facts looked up and judged (existing_network.problems); errors end
    the run as config errors do, warnings are logged. Raises pulumi.RunError."""
    facts = existing_network.look_up(cfg)
    errors, warnings = existing_network.problems(facts, cfg)
    if errors:
        raise pulumi.RunError(f"network.vpcId {facts.vpc_id}, as looked up:\n" + config.ConfigError(errors).render())
    for warning in warnings:
        pulumi.log.warn(warning)
    return Placement(
        vpc_id=facts.vpc_id,
        private_subnet_ids=facts.private_subnet_ids,
        public_subnet_ids=[subnet.id for subnet in facts.public],
        zones=facts.zones,
        cidrs=facts.cidrs,
        egress=[],
        alb_subnets={"internal": facts.one_per_zone(facts.private), "internet-facing": facts.one_per_zone(facts.public)},
    )


def base_weights(preview: config.PreviewConfig, base: pulumi.StackReference, account_id: str, partition: str) -> Weights:
    """A preview's models read the store of the stack it previews (same account): the preview's own, in full
    mode, starts empty."""
    bucket = model_store_bucket(preview.base_stack_name, account_id)
    return Weights(bucket, f"arn:{partition}:s3:::{bucket}", base.require_output("dataKeyArn"))
