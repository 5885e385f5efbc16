"""KmsKey: a customer-managed KMS key with rotation on, an alias, and a key policy naming the AWS services
that may use it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from ml_platform.components import iam

TYPE = "mlplatform:aws:KmsKey"


@dataclass
class KmsKeyArgs:
    description: str
    """What the key encrypts."""
    alias: str
    """Alias name without `alias/`; unique per account and region, so it carries the stack's name."""
    account_id: pulumi.Input[str]
    """Account that administers the key through IAM."""
    partition: pulumi.Input[str] = "aws"
    """AWS partition of the account."""
    region: str = ""
    """Region, to scope CloudWatch Logs' use of the key."""
    service_principals: Sequence[str] = ()
    """Services named in the key policy (e.g. `logs.<region>.amazonaws.com`)."""
    deletion_window_days: int = 30
    """Waiting period before a deleted key is gone (7-30); the longest gives time to undo a mistake."""
    protect: bool = False
    """Protect and retain the key (prod): data encrypted with a lost key is lost."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the key."""


class KmsKey(pulumi.ComponentResource):
    """A customer-managed KMS key with rotation on, an alias, and a key policy naming the AWS services that may use it.

    Arguments: KmsKeyArgs, documented field by field."""

    arn: pulumi.Output[str]
    """The key's ARN."""

    def __init__(self, name: str, args: KmsKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        policy = pulumi.Output.all(args.account_id, args.partition).apply(
            lambda values: json.dumps(iam.kms_key_policy(values[0], values[1], args.service_principals, args.region))
        )
        key = aws.kms.Key(
            f"{name}-key",
            description=args.description,
            enable_key_rotation=True,
            deletion_window_in_days=args.deletion_window_days,
            policy=policy,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect),
        )
        aws.kms.Alias(f"{name}-alias", name=f"alias/{args.alias}", target_key_id=key.key_id, opts=pulumi.ResourceOptions(parent=self))
        self.arn = key.arn
        self.register_outputs({"arn": self.arn})
