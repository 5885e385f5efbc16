"""RegistryDatabase: the self-hosted model registry's backend store, Aurora PostgreSQL Serverless v2 in the
private subnets, reachable only from the cluster's security group, encrypted with the data key, and its password
a generated secret kept (encrypted) in Pulumi's state.

Why a password in Pulumi's state rather than an RDS-managed secret: RDS rotates a managed secret every 7 days
(RDS user guide, "Password management with Amazon RDS and AWS Secrets Manager"), and MLflow opens database
connections with the URI it started with (SQLAlchemy's pool), so every rotation would break the running server
until something restarted it. Here the password changes only when `database.passwordGeneration` is bumped, and
the same `pulumi up` sets it on the cluster, in the server's Secret and restarts the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_random as random

TYPE = "mlplatform:aws:RegistryDatabase"
ENGINE = "aurora-postgresql"
PORT = 5432
DATABASE_NAME = "mlflow"
MASTER_USERNAME = "mlflow"
DEFAULT_AUTO_PAUSE_SECONDS = 3600


def cluster_identifier(stack: str) -> str:
    """`ml-platform-<stack>-registry`: unique per account and region as RDS requires; snapshots are named after it."""
    return f"ml-platform-{stack}-registry"


def migration_snapshot_identifier(stack: str, mlflow_version: str) -> str:
    """The snapshot taken before the schema migration to `mlflow_version` (`…-before-mlflow-3-17-2`): letters,
    digits and single hyphens, as RDS allows."""
    return f"{cluster_identifier(stack)}-before-mlflow-{mlflow_version.replace('.', '-')}"


@dataclass
class RegistryDatabaseArgs:
    stack: str
    """Names the cluster (cluster_identifier)."""
    vpc_id: pulumi.Input[str]
    """The cluster's VPC."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """The private subnets (at least two zones, as an RDS subnet group requires)."""
    client_security_group_id: pulumi.Input[str]
    """The EKS cluster security group: the only source allowed to reach PORT."""
    kms_key_arn: pulumi.Input[str]
    """The data key: storage, snapshots and Performance Insights. Fixed at creation (a new key replaces the cluster)."""
    engine_version: str
    """Aurora PostgreSQL `major.minor`."""
    min_capacity: float
    """Serverless v2 minimum in ACUs; 0 pauses when idle."""
    max_capacity: float
    """Serverless v2 maximum in ACUs."""
    instances: int = 1
    """db.serverless instances (the first is the writer; the others are readers it fails over to)."""
    seconds_until_auto_pause: int | None = None
    """With min_capacity 0; None: DEFAULT_AUTO_PAUSE_SECONDS."""
    backup_retention_days: int = 7
    """Automated backups kept (AWS allows 1 to 35; the platform requires at least 7)."""
    password_generation: int = 1
    """A new value generates a new password (the rotation)."""
    production: bool = False
    """prod: deletion protection and a final snapshot on delete (elsewhere a destroy leaves nothing behind)."""
    protect: bool = False
    """Pulumi protection for the cluster and its instances (protectStatefulResources; prod requires it)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for every resource (copied to snapshots)."""


class RegistryDatabase(pulumi.ComponentResource):
    """Subnet group, security group, the Aurora cluster and its db.serverless instances, and the generated master
    password.

    Outputs: `endpoint` (the writer's DNS name), `password` (secret), `cluster` (the aws.rds.Cluster),
    `instances` (what must be available before anything connects or snapshots)."""

    def __init__(self, name: str, args: RegistryDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        if args.min_capacity > args.max_capacity:
            raise ValueError(f"{name}: min_capacity {args.min_capacity} is above max_capacity {args.max_capacity}")
        self._resource_name = name
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        identifier = cluster_identifier(args.stack)
        # RDS refuses / @ " and spaces in a master password; letters and digits need no escaping in a URI either.
        password = random.RandomPassword(
            f"{name}-password", length=40, special=False, keepers={"generation": str(args.password_generation)}, opts=child
        )
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            name=identifier,
            description="ml-platform model registry database: private subnets",
            subnet_ids=args.subnet_ids,
            tags=dict(args.tags),
            opts=child,
        )
        access = aws.ec2.SecurityGroup(
            f"{name}-access",
            name=f"{identifier}-db",
            description="ml-platform model registry database: PostgreSQL from the EKS cluster only",
            vpc_id=args.vpc_id,
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    description="PostgreSQL from the cluster's nodes and pods",
                    protocol="tcp",
                    from_port=PORT,
                    to_port=PORT,
                    security_groups=[args.client_security_group_id],
                )
            ],
            # Aurora opens no connections of its own: no egress at all.
            egress=[],
            tags={**args.tags, "Name": f"{identifier}-db"},
            opts=child,
        )
        scaling = aws.rds.ClusterServerlessv2ScalingConfigurationArgs(
            min_capacity=args.min_capacity,
            max_capacity=args.max_capacity,
            seconds_until_auto_pause=(args.seconds_until_auto_pause or DEFAULT_AUTO_PAUSE_SECONDS) if args.min_capacity == 0 else None,
        )
        cluster = aws.rds.Cluster(
            f"{name}-cluster",
            cluster_identifier=identifier,
            engine=ENGINE,
            engine_mode="provisioned",
            engine_version=args.engine_version,
            database_name=DATABASE_NAME,
            master_username=MASTER_USERNAME,
            master_password=password.result,
            port=PORT,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[access.id],
            serverlessv2_scaling_configuration=scaling,
            # Off by default for provisioned Aurora; set on day one, since changing either replaces the cluster.
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            backup_retention_period=args.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.production,
            skip_final_snapshot=not args.production,
            final_snapshot_identifier=f"{identifier}-final" if args.production else None,
            # Minor versions move only when the stack file says so.
            allow_major_version_upgrade=False,
            apply_immediately=True,
            tags=dict(args.tags),
            opts=stateful,
        )
        members = [
            aws.rds.ClusterInstance(
                f"{name}-instance-{index}",
                identifier=f"{identifier}-{index}",
                cluster_identifier=cluster.id,
                engine=ENGINE,
                engine_version=cluster.engine_version,
                instance_class="db.serverless",
                db_subnet_group_name=subnets.name,
                publicly_accessible=False,
                auto_minor_version_upgrade=False,
                promotion_tier=index,
                apply_immediately=True,
                tags=dict(args.tags),
                opts=stateful,
            )
            for index in range(args.instances)
        ]
        self.cluster = cluster
        self.instances = members
        self.endpoint = cluster.endpoint
        self.password = pulumi.Output.secret(password.result)
        self.register_outputs({"endpoint": self.endpoint})

    def migration_snapshot(self, stack: str, mlflow_version: str, production: bool, tags: Mapping[str, str]) -> aws.rds.ClusterSnapshot:
        """A manual snapshot named for `mlflow_version`, taken once the instances are available: what the schema
        migration to that version starts from. A new version replaces it (one logical resource); prod keeps the
        old snapshot in AWS (retain_on_delete) so it can be restored after a later migration too."""
        return aws.rds.ClusterSnapshot(
            f"{self._resource_name}-before-migration",
            db_cluster_identifier=self.cluster.id,
            db_cluster_snapshot_identifier=migration_snapshot_identifier(stack, mlflow_version),
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.instances, retain_on_delete=production),
        )
