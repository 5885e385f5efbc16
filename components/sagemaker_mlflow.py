"""SageMakerMlflow: Amazon SageMaker's managed MLflow tracking server as the stack's model registry
(`modelRegistry.mode: sagemaker`), its artifacts under a prefix of the model store, through a role that
SageMaker assumes and that reaches that prefix only (and the store's key only through S3)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from ml_platform.components import iam

TYPE = "mlplatform:aws:SageMakerMlflow"
ARTIFACT_PREFIX = "mlflow/"
"""Where the tracking server keeps artifacts in the model store."""
SIZES = ("Small", "Medium", "Large")


def artifact_policy(bucket_arn: str, kms_key_arn: str, region: str, prefix: str = ARTIFACT_PREFIX) -> dict:
    """The tracking server's access: read, write and delete objects under `prefix` of the store, list only that
    prefix, and use the store's key only through S3 (data keys to write, decrypt to read). AWS's own guidance
    names AmazonS3FullAccess (SageMaker developer guide, "Set up IAM permissions for MLflow"); this is the
    prefix it needs of it."""
    return {
        "Version": iam.VERSION,
        "Statement": [
            {
                "Sid": "MlflowArtifacts",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": f"{bucket_arn}/{prefix}*",
            },
            {
                "Sid": "ListMlflowPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            {"Sid": "BucketLocation", "Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": bucket_arn},
            {
                "Sid": "UseKeyThroughS3",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            },
        ],
    }


def tracking_server_name(stack: str) -> str:
    """The tracking server's name (part of its ARN, which the lock commands build): `ml-platform-<stack>`."""
    return f"ml-platform-{stack}"


def tracking_server_arn(stack: str, region: str, account_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:sagemaker:{region}:{account_id}:mlflow-tracking-server/{tracking_server_name(stack)}"


@dataclass
class SageMakerMlflowArgs:
    stack: str
    """The stack, which names the server (tracking_server_name)."""
    bucket_name: pulumi.Input[str]
    """The model store; artifacts go under ARTIFACT_PREFIX."""
    bucket_arn: pulumi.Input[str]
    """The model store's ARN, which the artifact policy is scoped within."""
    kms_key_arn: pulumi.Input[str]
    """The store's key."""
    region: str
    """The store's region (S3's KMS calls come from s3.<region>.amazonaws.com)."""
    account_id: str
    """For the trust policy's confused-deputy guard (aws:SourceAccount)."""
    mlflow_version: str
    """The MLflow version SageMaker runs (changing it replaces the server, and with it its records)."""
    size: str = "Small"
    """One of SIZES."""
    weekly_maintenance_window_start: str | None = None
    """`TUE:03:30` (UTC); None: SageMaker's choice."""
    protect: bool = False
    """Protect the server (prod): its records (experiments, registered models, aliases) live in it."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the role and the server."""


class SageMakerMlflow(pulumi.ComponentResource):
    """The managed tracking server with its artifact role. Outputs: `arn`, `url` (the UI's address).

    Arguments: SageMakerMlflowArgs, documented field by field."""

    arn: pulumi.Output[str]
    """The tracking server's ARN: MLflow clients' tracking URI through the sagemaker-mlflow plugin."""
    url: pulumi.Output[str]
    """The address of the server's UI (sign-in through SageMaker's presigned URLs)."""

    def __init__(self, name: str, args: SageMakerMlflowArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        if args.size not in SIZES:
            raise ValueError(f"{name}: size {args.size!r} is not one of {', '.join(SIZES)}")
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(iam.service_trust_policy("sagemaker.amazonaws.com", source_account=args.account_id)),
            tags=dict(args.tags),
            opts=child,
        )
        access = aws.iam.RolePolicy(
            f"{name}-artifacts",
            role=role.id,
            policy=pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
                lambda values: json.dumps(artifact_policy(values[0], values[1], args.region))
            ),
            opts=child,
        )
        server = aws.sagemaker.MlflowTrackingServer(
            f"{name}-server",
            tracking_server_name=tracking_server_name(args.stack),
            artifact_store_uri=pulumi.Output.concat("s3://", args.bucket_name, "/", ARTIFACT_PREFIX),
            role_arn=role.arn,
            mlflow_version=args.mlflow_version,
            tracking_server_size=args.size,
            weekly_maintenance_window_start=args.weekly_maintenance_window_start,
            tags=dict(args.tags),
            # The server checks its role's access when it is created: the policy comes first. Its name is fixed
            # (the lock commands build its ARN), so a replacement must delete the old server before it can
            # create the new one.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access], protect=args.protect, delete_before_replace=True),
        )
        self.arn = server.arn
        self.url = server.tracking_server_url
        self.register_outputs({"arn": self.arn, "url": self.url})
