"""An IAM role that one Kubernetes service account assumes through EKS Pod Identity, with its inline policy."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from ml_platform.components import iam


def pod_identity_role(
    name: str,
    cluster: pulumi.Input[str],
    namespace: str,
    service_account: str,
    policy: pulumi.Input[str],
    parent: pulumi.Resource,
    tags: Mapping[str, str],
    association_depends_on: Sequence[pulumi.Resource] = (),
) -> list[pulumi.Resource]:
    """Role, inline policy and association, all named `name`. Returns what pods must be created after: Pod
    Identity adds credentials only when a pod is created."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        name,
        assume_role_policy=json.dumps(iam.service_trust_policy(iam.POD_IDENTITY_SERVICE, tag_session=True)),
        tags=dict(tags),
        opts=child,
    )
    access = aws.iam.RolePolicy(name, role=role.id, policy=policy, opts=child)
    association = aws.eks.PodIdentityAssociation(
        name,
        cluster_name=cluster,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(association_depends_on)),
    )
    return [access, association]
