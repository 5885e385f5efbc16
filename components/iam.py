"""IAM policy documents as plain dicts (tests replay every one into moto's IAM, which rejects bad grammar)."""

from __future__ import annotations

from collections.abc import Sequence

VERSION = "2012-10-17"


POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"

# AWS managed policies of every EKS node role (managed node groups' and Karpenter's alike).
NODE_ROLE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",  # also what the Pod Identity agent needs
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEKS_CNI_Policy",  # vpc-cni must work before any pod identity can: keep it on the node role
    "AmazonSSMManagedInstanceCore",  # shell access through Session Manager instead of SSH keys
)


def service_trust_policy(service: str, tag_session: bool = False, source_account: str | None = None) -> dict:
    """Trust policy letting an AWS service (e.g. `eks.amazonaws.com`) assume a role.

    `tag_session` adds sts:TagSession, which EKS Pod Identity needs (it tags sessions with the pod's
    namespace and service account) and which AWS's current EKS cluster-role trust policy includes.
    `source_account` limits the service to acting for this account (the confused-deputy guard AWS
    recommends for services such as VPC flow logs).
    """
    actions = ["sts:AssumeRole", "sts:TagSession"] if tag_session else "sts:AssumeRole"
    statement: dict = {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}
    if source_account is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return {"Version": VERSION, "Statement": [statement]}


def kms_key_policy(account_id: str, partition: str = "aws", service_principals: Sequence[str] = (), region: str = "") -> dict:
    """Key policy: the account administers the key through IAM; listed services (e.g. CloudWatch Logs) may use it.

    CloudWatch Logs must be named in the key policy itself to encrypt a log group; it is scoped by the
    encryption context to this account's log groups.
    """
    statements: list[dict] = [
        {
            "Sid": "AccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    for service in service_principals:
        statement: dict = {
            "Sid": "Use" + "".join(part.capitalize() for part in service.split(".")[0].split("-")),
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
        }
        if service.startswith("logs."):
            statement["Condition"] = {
                "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account_id}:log-group:*"}
            }
        statements.append(statement)
    return {"Version": VERSION, "Statement": statements}
