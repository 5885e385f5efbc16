"""What the program names and tags, from the stack's config alone: the cluster, the model store's bucket, the
registry's host, the tags every AWS resource carries, and the availability zones the network spans."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from ml_platform.infra import config


def stack_tags(cfg: config.StackConfig) -> dict[str, str]:
    """Tags on every AWS resource: who owns it, which stack and environment (policies read these); on a
    preview, also its pull request and when it expires."""
    tags = {
        **cfg.tags,
        "ml-platform/stack": cfg.stack,
        "ml-platform/environment": cfg.environment,
        "managed-by": "pulumi",
    }
    if cfg.preview is not None:
        tags["ml-platform/preview-pr"] = str(cfg.preview.pr)
        tags["ml-platform/expires-at"] = str(cfg.preview.expiresAt)
    return tags


def availability_zones(cfg: config.StackConfig) -> list[str]:
    """`network.availabilityZones`, else the first `network.azCount` zones of the region that need no opt-in
    (sorted by name); a region with fewer ends the run naming the field."""
    if cfg.network.availabilityZones is not None:
        return list(cfg.network.availabilityZones)
    available = aws.get_availability_zones(state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}])
    names = sorted(available.names)
    if len(names) < cfg.network.azCount:
        raise pulumi.RunError(f"network.azCount: {cfg.region} offers {len(names)} zones, fewer than {cfg.network.azCount}")
    return names[: cfg.network.azCount]


def cluster_name(stack: str) -> str:
    """`ml-platform-<stack>`: the EKS cluster's name, and the prefix of what is named after it."""
    return f"{config.PROJECT}-{stack}"


def model_store_bucket(stack: str, account_id: str) -> str:
    """`ml-platform-<stack>-models-<account id>`: globally unique, and known before the bucket exists."""
    # Named, not auto-named, so weight URIs (s3://bucket/prefix) are known before the bucket exists.
    return f"{cluster_name(stack)}-models-{account_id}"


def registry_host(account_id: str, region: str) -> str:
    """The account's ECR registry host in `region`."""
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"
