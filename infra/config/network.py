"""`network`: the VPC the platform creates."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ml_platform.infra.config.base import INTERFACE_ENDPOINTS, _check_cidr, _check_retention, _fail, _Model
from ml_platform.infra.config.cluster import _RFC1918


class NetworkConfig(_Model):
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

    @model_validator(mode="after")
    def _zones(self) -> NetworkConfig:
        if self.availabilityZones is not None:
            if len(self.availabilityZones) != self.azCount:
                raise _fail(f"availabilityZones lists {len(self.availabilityZones)} zones but azCount is {self.azCount}")
            if len(set(self.availabilityZones)) != len(self.availabilityZones):
                raise _fail("availabilityZones has duplicates")
        return self
