"""ContainerRegistry: ECR repositories for serving images, with immutable tags, scanning, KMS, lifecycle
rules and pull access for the node roles; optional pull-through cache rules for public registries."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

TYPE = "mlplatform:aws:ContainerRegistry"


def lifecycle_policy(untagged_expiry_days: int, keep_tagged_count: int) -> dict:
    """Expire untagged images after N days; keep only the newest N tagged images."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images after {untagged_expiry_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_expiry_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the newest {keep_tagged_count} tagged images",
                # `tagged` with the wildcard pattern counts tagged images only (`any` would count untagged too).
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_tagged_count,
                },
                "action": {"type": "expire"},
            },
        ]
    }


def cache_pull_policy(repository_arns: Sequence[str]) -> dict:
    """What a puller needs for a pull-through cache: the first pull of an image creates its repository
    and imports it from upstream (ECR "pull through cache" IAM requirements)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PullThroughCache",
                "Effect": "Allow",
                "Action": ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
                "Resource": sorted(repository_arns),
            }
        ],
    }


def pull_policy(puller_role_arns: Sequence[str]) -> dict:
    """Repository policy: the node roles may pull images (and nothing else)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "NodesPull",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(puller_role_arns)},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            }
        ],
    }


@dataclass(frozen=True)
class PullThroughCache:
    key: str
    """Short name of the rule in its stack (names the resource, so it is the same in every stack)."""
    prefix: str
    """ECR repository prefix under which the upstream is cached."""
    upstream_url: str
    """Upstream registry host, e.g. `public.ecr.aws`."""
    credential_arn: str | None = None
    """Secrets Manager ARN (`ecr-pullthroughcache/...`) for upstreams that need credentials."""


@dataclass
class ContainerRegistryArgs:
    repositories: Sequence[str]
    """Repository names to create (below name_prefix)."""
    kms_key_arn: pulumi.Input[str]
    """KMS key encrypting images at rest."""
    puller_role_arns: pulumi.Input[Sequence[pulumi.Input[str]]]
    """IAM roles (the node roles) allowed to pull."""
    puller_role_names: Sequence[pulumi.Input[str]] = ()
    """Names of the same roles, to grant them the pull-through cache permissions."""
    account_id: pulumi.Input[str] = ""
    """Account of the registry (for the cache repositories' ARNs)."""
    region: str = ""
    """Region of the registry."""
    partition: str = "aws"
    """AWS partition."""
    name_prefix: str = ""
    """Namespace in front of every repository name (`<prefix>/<name>`); empty for none."""
    untagged_expiry_days: int = 14
    """Untagged images expire after this many days."""
    keep_tagged_count: int = 100
    """Tagged images kept per repository."""
    pull_through_caches: Sequence[PullThroughCache] = ()
    """Pull-through cache rules."""
    force_delete: bool = False
    """Delete repositories even when they hold images: only for ephemeral stacks."""
    protect: bool = False
    """Protect and retain repositories (prod)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for every resource."""


class ContainerRegistry(pulumi.ComponentResource):
    """ECR repositories for serving images, with immutable tags, scanning, KMS, lifecycle rules and pull access for
    the node roles; optional pull-through cache rules for public registries.

    Arguments: ContainerRegistryArgs, documented field by field."""

    repository_urls: pulumi.Output[dict[str, str]]
    """Repository URL by repository name (`<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<name>`)."""

    def __init__(self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # A registry holds the only copy of release images: protect and keep it where the stack says so.
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect)
        pull_document = pulumi.Output.from_input(args.puller_role_arns).apply(lambda arns: json.dumps(pull_policy(arns)))
        lifecycle_document = json.dumps(lifecycle_policy(args.untagged_expiry_days, args.keep_tagged_count))

        urls = {}
        for repository in args.repositories:
            resource_name = f"{name}-{repository.replace('/', '-')}"
            repo = aws.ecr.Repository(
                resource_name,
                name=f"{args.name_prefix}/{repository}" if args.name_prefix else repository,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=args.kms_key_arn)],
                force_delete=args.force_delete,
                tags=dict(args.tags),
                opts=stateful,
            )
            aws.ecr.LifecyclePolicy(resource_name, repository=repo.name, policy=lifecycle_document, opts=child)
            aws.ecr.RepositoryPolicy(resource_name, repository=repo.name, policy=pull_document, opts=child)
            urls[repository] = repo.repository_url

        for cache in args.pull_through_caches:
            aws.ecr.PullThroughCacheRule(
                f"{name}-cache-{cache.key.replace('/', '-')}",
                ecr_repository_prefix=cache.prefix,
                upstream_registry_url=cache.upstream_url,
                credential_arn=cache.credential_arn,
                opts=child,
            )

        if args.pull_through_caches:
            cache_repositories = pulumi.Output.from_input(args.account_id).apply(
                lambda account: [
                    f"arn:{args.partition}:ecr:{args.region}:{account}:repository/{cache.prefix}/*" for cache in args.pull_through_caches
                ]
            )
            for index, role_name in enumerate(args.puller_role_names):
                aws.iam.RolePolicy(
                    f"{name}-cache-pull-{index}",
                    role=role_name,
                    policy=cache_repositories.apply(lambda arns: json.dumps(cache_pull_policy(arns))),
                    opts=child,
                )

        self.repository_urls = pulumi.Output.all(**urls) if urls else pulumi.Output.from_input({})
        self.register_outputs({"repository_urls": self.repository_urls})
