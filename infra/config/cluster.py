"""`cluster`: the EKS control plane, its endpoint access and its admins."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import field_validator, model_validator

from ml_platform.infra import versions
from ml_platform.infra.config.base import _IAM_PRINCIPAL, _K8S_NAMESPACE, _check_cidr, _check_retention, _fail, _Model

_RFC1918 = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class AdminAccess(_Model):
    principalArn: str
    """IAM role or user ARN given cluster access through an EKS access entry."""
    access: Literal["cluster-admin", "admin", "view"] = "cluster-admin"
    """Which EKS access policy to associate: AmazonEKSClusterAdminPolicy, AmazonEKSAdminPolicy, AmazonEKSViewPolicy."""
    namespaces: list[str] = []
    """Limit `admin`/`view` to these namespaces; empty means the whole cluster."""

    @field_validator("principalArn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not _IAM_PRINCIPAL.match(value):
            raise _fail(f"'{value}' is not an IAM role or user ARN (arn:aws:iam::<12-digit account>:role/<name>)")
        return value

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        for namespace in value:
            if not _K8S_NAMESPACE.match(namespace):
                raise _fail(f"'{namespace}' is not a Kubernetes namespace name")
        return value

    @model_validator(mode="after")
    def _scope(self) -> AdminAccess:
        if self.access == "cluster-admin" and self.namespaces:
            raise _fail("cluster-admin is cluster-wide; namespaces apply only to access 'admin' or 'view'")
        return self


class ClusterConfig(_Model):
    version: str = versions.DEFAULT_KUBERNETES_VERSION
    """Kubernetes version of the control plane; one of the versions in infra/kubernetes-versions.yaml."""
    publicAccessCidrs: list[str] = []
    """CIDRs allowed to reach the public API endpoint; empty turns the public endpoint off (required in prod)."""
    privateAccessCidrs: list[str] = []
    """CIDRs outside the cluster (CI runners, VPN) allowed to the private endpoint on 443; prod deployers need one."""
    admins: list[AdminAccess] = []
    """Principals given access entries; nobody else (not even the creator) is admin. Include the role that runs
    `pulumi up`: it applies the in-cluster resources."""
    logRetentionDays: int = 90
    """Retention of the control-plane log group; a CloudWatch retention period."""

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        allowed = ", ".join(sorted(versions.EKS_RELEASES))
        if not re.fullmatch(r"1\.[0-9]+", value):
            raise _fail(f"'{value}' is not a Kubernetes minor version: write it as '1.<minor>' (allowed: {allowed})")
        if value not in versions.EKS_RELEASES:
            raise _fail(
                f"'{value}' is not a pinned Kubernetes version; allowed: {allowed}. To add it, add an entry '{value}' to "
                "infra/kubernetes-versions.yaml in the platform's repository (its add-on builds, AMI release and support "
                "dates, each with its source; README, 'Kubernetes versions')"
            )
        return value

    @field_validator("publicAccessCidrs", "privateAccessCidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        seen = set()
        for cidr in value:
            if "/" not in cidr:
                # ipaddress reads a bare address as a /32; AWS refuses a rule's CidrIpv4 without a prefix length.
                raise _fail(f"'{cidr}' has no prefix length; write it as a CIDR block, e.g. '{cidr}/32'")
            network = _check_cidr(cidr)
            if network in seen:
                raise _fail(f"'{cidr}' is listed twice; each range makes one security group rule, named after it")
            seen.add(network)
            if network.prefixlen == 0:
                raise _fail(f"'{cidr}' opens the API to the whole internet; list office or VPN ranges instead")
        return value

    @field_validator("admins")
    @classmethod
    def _admins(cls, value: list[AdminAccess]) -> list[AdminAccess]:
        principals = [admin.principalArn for admin in value]
        repeated = sorted({p for p in principals if principals.count(p) > 1})
        if repeated:
            raise _fail(f"{', '.join(repeated)} listed more than once; EKS allows one access entry per principal")
        return value

    @field_validator("logRetentionDays")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)
