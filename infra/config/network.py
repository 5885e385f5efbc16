"""`network`: the VPC the platform creates, or an existing one it is given (vpcId and subnet IDs)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ml_platform.infra.config.base import INTERFACE_ENDPOINTS, _check_cidr, _check_retention, _fail, _fail_all, _Model
from ml_platform.infra.config.cluster import _RFC1918

# EC2 resource IDs: a prefix and 8 (older) or 17 lowercase hex digits.
_VPC_ID = re.compile(r"^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
_SUBNET_ID = re.compile(r"^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")
# Fields that shape a VPC the platform creates; with vpcId the network team owns the VPC and they do not apply.
CREATED_ONLY = ("cidr", "azCount", "availabilityZones", "natGateways", "flowLogs", "flowLogRetentionDays", "interfaceEndpoints")


class NetworkConfig(_Model):
    vpcId: str | None = None
    """An existing VPC to place the cluster in (`vpc-...`) instead of creating one: nothing network-related is
    created, and the VPC's CIDR, the subnets' zones and their routes are looked up when the program runs."""
    privateSubnetIds: list[str] = []
    """With vpcId: the private subnets of the cluster, node groups, Karpenter's nodes and internal load balancers
    (at least two zones; three in prod)."""
    publicSubnetIds: list[str] = []
    """With vpcId: public subnets for internet-facing load balancers (only needed when a model has one)."""
    cidr: str = "10.0.0.0/16"
    """VPC IPv4 CIDR, private (RFC 1918), prefix /16 to /20."""
    azCount: Annotated[int, Field(ge=2, le=4)] = 2
    """How many availability zones to spread subnets over: 2 to 4 (EKS needs 2)."""
    availabilityZones: list[str] | None = None
    """Explicit AZ names (recommended in prod, so an AZ outage never moves subnets); else the first azCount available."""
    natGateways: Literal["single", "perAz"] = "single"
    """One shared NAT gateway (cheap) or one per AZ (no cross-AZ dependency)."""
    flowLogs: bool = False
    """VPC flow logs to CloudWatch Logs."""
    flowLogRetentionDays: int = 30
    """Retention of the flow log group; a CloudWatch retention period."""
    interfaceEndpoints: list[Literal[INTERFACE_ENDPOINTS]] = []  # type: ignore[valid-type]
    """Interface VPC endpoints to create (the S3 gateway endpoint is always there)."""

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = _check_cidr(value)
        if not network.is_private or not any(network.subnet_of(block) for block in _RFC1918):
            raise _fail(f"'{value}' is not a private range; use one inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
        if not 16 <= network.prefixlen <= 20:
            raise _fail(f"prefix /{network.prefixlen} is out of range; use /16 to /20 (room for pod IPs per AZ)")
        return value

    @field_validator("flowLogRetentionDays")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @property
    def existing(self) -> bool:
        """True when the stack is given a VPC (vpcId) rather than creating one."""
        return self.vpcId is not None

    @model_validator(mode="after")
    def _existing(self) -> NetworkConfig:
        problems = []
        if self.vpcId is None:
            for field in ("privateSubnetIds", "publicSubnetIds"):
                if getattr(self, field):
                    problems.append((field, "names subnets of an existing VPC: set network.vpcId too, or remove it to create a VPC"))
            if problems:
                raise _fail_all(problems)
            return self
        if not _VPC_ID.match(self.vpcId):
            problems.append(("vpcId", f"'{self.vpcId}' is not a VPC ID (vpc- and 8 or 17 lowercase hex digits)"))
        for field in ("privateSubnetIds", "publicSubnetIds"):
            ids = getattr(self, field)
            for index, subnet in enumerate(ids):
                if not _SUBNET_ID.match(subnet):
                    problems.append((f"{field}[{index}]", f"'{subnet}' is not a subnet ID (subnet- and 8 or 17 lowercase hex digits)"))
            if len(set(ids)) != len(ids):
                problems.append((field, "lists a subnet twice"))
        if len(set(self.privateSubnetIds)) < 2:
            problems.append(("privateSubnetIds", "needs at least two private subnets, in different zones (EKS needs two)"))
        both = sorted(set(self.privateSubnetIds) & set(self.publicSubnetIds))
        if both:
            problems.append(("publicSubnetIds", f"{', '.join(both)} is also listed as private; a subnet is one or the other"))
        for field in CREATED_ONLY:
            if field in self.model_fields_set:
                problems.append(
                    (field, "shapes a VPC the platform creates; with network.vpcId the VPC is not the platform's, so remove it")
                )
        if problems:
            raise _fail_all(problems)
        return self

    @model_validator(mode="after")
    def _zones(self) -> NetworkConfig:
        if self.availabilityZones is not None:
            if len(self.availabilityZones) != self.azCount:
                raise _fail(f"availabilityZones lists {len(self.availabilityZones)} zones but azCount is {self.azCount}")
            if len(set(self.availabilityZones)) != len(self.availabilityZones):
                raise _fail("availabilityZones has duplicates")
        return self
