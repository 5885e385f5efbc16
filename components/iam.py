"""IAM policy documents as plain dicts (tests replay every one into moto's IAM, which rejects bad grammar)."""

from __future__ import annotations

from collections.abc import Sequence

VERSION = "2012-10-17"


def service_trust_policy(*services: str) -> dict:
    """Trust policy letting AWS services (e.g. `eks.amazonaws.com`) assume a role."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": list(services) if len(services) > 1 else services[0]},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def eks_cluster_trust_policy() -> dict:
    """The EKS control plane assumes the cluster role (AWS's current cluster-role trust policy adds TagSession)."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }


def pod_identity_trust_policy() -> dict:
    """EKS Pod Identity: the agent assumes the role for a service account and tags the session."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }


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
