"""MlflowServer: the self-hosted model registry (`modelRegistry.mode: selfHosted`), an MLflow tracking server on
the cluster with basic auth, its backend and user stores in the RegistryDatabase, and artifacts proxied to a prefix
of the model store through a Pod Identity role scoped to that prefix.

Order on every `pulumi up` that changes the MLflow version: database snapshot -> migration Job (stops the server,
migrates) -> the Deployment at the new version. Other changes roll the Deployment only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ml_platform.components.mlflow_server import alerts, manifests
from ml_platform.components.mlflow_server.manifests import ServerSpec
from ml_platform.components.pod_identity import pod_identity_role
from ml_platform.components.registry_database import RegistryDatabase
from ml_platform.components.sagemaker_mlflow import ARTIFACT_PREFIX, artifact_policy

TYPE = "mlplatform:kubernetes:MlflowServer"


@dataclass
class MlflowServerArgs:
    spec: ServerSpec
    """The server in Kubernetes' terms."""
    stack: str
    """Names the migration snapshot."""
    database: RegistryDatabase
    """The backend and user store."""
    kubernetes_provider: pulumi.ProviderResource
    """The cluster's Kubernetes provider."""
    cluster_name: pulumi.Input[str]
    """For the Pod Identity association."""
    bucket_arn: pulumi.Input[str]
    """The model store; the server reads and writes ARTIFACT_PREFIX only."""
    kms_key_arn: pulumi.Input[str]
    """The store's key, usable only through S3."""
    default_permission: str = "READ"
    """basic auth's default_permission (READ or NO_PERMISSIONS)."""
    monitoring_crds: pulumi.Resource | None = None
    """The release installing the Prometheus operator's CRDs (ServiceMonitor, PrometheusRule)."""
    alb_controller: pulumi.Resource | None = None
    """With an ingress: the controller that acts on it (created before, deleted after, so it removes the ALB)."""
    production: bool = False
    """Keeps migration snapshots when the version moves on."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the AWS resources (the artifact role, the snapshot)."""


class MlflowServer(pulumi.ComponentResource):
    """The tracking server and everything around it (see the module's docstring).

    Outputs: `url` (in-cluster, or https://<ingress host>), `admin_password` (secret; the admin's first
    password: change it through MLflow's API after the first sign-in; README "The model registry on the
    platform", Reaching it and signing in)."""

    def __init__(self, name: str, args: MlflowServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider)

        def secret_value(resource_name: str, length: int) -> pulumi.Output[str]:
            # Letters and digits: no quoting in an ini file, a URI or a shell.
            return random.RandomPassword(resource_name, length=length, special=False, opts=child).result

        flask_key = secret_value(f"{name}-flask-secret-key", 48)
        admin_password = secret_value(f"{name}-admin-password", 32)

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=manifests.namespace(alb=bool(spec.ingress_host))["metadata"], opts=k8s_opts
        )
        in_ns = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[ns]))

        accounts = [
            k8s.core.v1.ServiceAccount(
                f"{name}-{account['metadata']['name']}-account",
                metadata=account["metadata"],
                automount_service_account_token=account["automountServiceAccountToken"],
                opts=in_ns,
            )
            for account in manifests.service_accounts()
        ]
        identity = pod_identity_role(
            f"{name}-artifacts",
            args.cluster_name,
            manifests.NAMESPACE,
            manifests.NAME,
            pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(lambda v: json.dumps(artifact_policy(v[0], v[1], spec.region))),
            parent=self,
            tags=args.tags,
            association_depends_on=[ns],
        )

        uri = pulumi.Output.all(args.database.endpoint, args.database.password).apply(lambda v: manifests.backend_store_uri(v[0], v[1]))
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": manifests.CREDENTIALS_SECRET, "namespace": manifests.NAMESPACE, "labels": dict(manifests.LABELS)},
            type="Opaque",
            string_data={
                "backend-store-uri": uri,
                "basic_auth.ini": uri.apply(lambda value: manifests.auth_config(value, args.default_permission)),
                "flask-secret-key": flask_key,
                "admin-password": admin_password,
            },
            opts=in_ns,
        )
        script = manifests.migration_script()
        config_map = k8s.core.v1.ConfigMap(f"{name}-migrate-script", metadata=script["metadata"], data=script["data"], opts=in_ns)
        role, binding = manifests.migration_rbac()
        rbac_role = k8s.rbac.v1.Role(f"{name}-migrate-role", metadata=role["metadata"], rules=role["rules"], opts=in_ns)
        rbac_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-migrate-binding",
            metadata=binding["metadata"],
            role_ref=binding["roleRef"],
            subjects=binding["subjects"],
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[rbac_role])),
        )

        snapshot = args.database.migration_snapshot(args.stack, spec.mlflow_version, args.production, args.tags)
        job = manifests.migration_job(spec)
        wait = f"{manifests.MIGRATION_DEADLINE_SECONDS // 60 + 5}m"
        migration = k8s.batch.v1.Job(
            f"{name}-migrate",
            metadata=job["metadata"],
            spec=job["spec"],
            opts=pulumi.ResourceOptions.merge(
                in_ns,
                pulumi.ResourceOptions(
                    depends_on=[snapshot, credentials, config_map, rbac_binding, *accounts, *args.database.instances],
                    custom_timeouts=pulumi.CustomTimeouts(create=wait, update=wait),
                    # A Job's pod template cannot change: a new spec is a new Job, after the old one is gone.
                    delete_before_replace=True,
                ),
            ),
        )
        server = manifests.deployment(spec)
        k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=server["metadata"],
            spec=server["spec"],
            opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[migration, credentials, *accounts, *identity])),
        )
        svc = manifests.service()
        k8s.core.v1.Service(f"{name}-service", metadata=svc["metadata"], spec=svc["spec"], opts=in_ns)
        pdb = manifests.disruption_budget()
        k8s.policy.v1.PodDisruptionBudget(f"{name}-disruption-budget", metadata=pdb["metadata"], spec=pdb["spec"], opts=in_ns)
        for resource_name, policy in (
            (f"{name}-network-policy", manifests.network_policy(spec)),
            (f"{name}-migrate-network-policy", manifests.migration_network_policy()),
        ):
            k8s.networking.v1.NetworkPolicy(resource_name, metadata=policy["metadata"], spec=policy["spec"], opts=in_ns)
        route = manifests.ingress(spec)
        if route is not None:
            if args.alb_controller is None:
                raise ValueError(f"{name}: an ingress needs args.alb_controller, the controller that acts on it")
            k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=route["metadata"],
                spec=route["spec"],
                opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[args.alb_controller])),
            )
        crds = pulumi.ResourceOptions.merge(
            in_ns, pulumi.ResourceOptions(depends_on=[args.monitoring_crds] if args.monitoring_crds else [])
        )
        for resource_name, manifest in (
            (f"{name}-service-monitor", manifests.service_monitor()),
            (f"{name}-alerts", alerts.prometheus_rule()),
        ):
            k8s.apiextensions.CustomResource(
                resource_name,
                api_version=manifest["apiVersion"],
                kind=manifest["kind"],
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=crds,
            )

        self.url = pulumi.Output.from_input(f"https://{spec.ingress_host}" if spec.ingress_host else manifests.service_url())
        self.admin_password = pulumi.Output.secret(admin_password)
        self.register_outputs({"url": self.url})


__all__ = ["ARTIFACT_PREFIX", "TYPE", "MlflowServer", "MlflowServerArgs", "ServerSpec"]
