"""ModelService: one served model. Its namespace, service account and AWS identity (Pod Identity, reading
only its own S3 prefix), a Deployment from a runtime preset (vLLM, Triton, custom image), a Service, an
optional ALB Ingress, autoscaling (KEDA on the runtime's queue metric for GPU models, an HPA on CPU for CPU
models), a PodDisruptionBudget, a NetworkPolicy, a ServiceMonitor and the model's SLO alerts.

The Kubernetes objects are built by plain functions (`manifests`), so the tests validate and snapshot
exactly what the component applies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from ml_platform.components.model_service import capture, monitor_job
from ml_platform.components.model_service.alerts import prometheus_rule, service_monitor, slo_rules
from ml_platform.components.model_service.autoscaling import (
    FALLBACK_FAILURES,
    cpu_autoscaler,
    disruption_budget,
    fallback,
    load_expression,
    load_query,
    scaled_object,
)
from ml_platform.components.model_service.manifests import ingress, manifests, namespace, network_policy, service
from ml_platform.components.model_service.pods import (
    SHM_MIB,
    SHM_MIB_PER_TENSOR_PARALLEL_GPU,
    SHM_SHARE_OF_MEMORY,
    deployment,
    shared_memory_mib,
)
from ml_platform.components.model_service.spec import CACHE_DIR, DRAIN_SECONDS, HOME_DIR, MODELS_DIR, ModelSpec, labels
from ml_platform.components.pod_defaults import UID
from ml_platform.components.pod_identity import pod_identity_role

TYPE = "mlplatform:k8s:ModelService"


def model_store_policy(
    bucket_arn: str, kms_key_arn: str, region: str, read_prefix: str | None, cache_prefix: str | None, capture_prefix: str | None = None
) -> dict:
    """The model's access to the model store: read only its own `read_prefix` (its weights; None: none), read and
    write only its own `cache_prefix` (its compile cache; None: none), write (never read) only its own
    `capture_prefix` (the capture proxy's records; None: none), and the store's key through S3 (decrypt to read,
    data keys to write). A compile cache can run code when loaded (vLLM docs/usage/security.md), so no other model,
    nor a preview of this one (another namespace), may write the prefix this model reads."""
    statements: list[dict] = []
    prefixes = [prefix for prefix in (read_prefix, cache_prefix) if prefix is not None]
    if read_prefix is not None:
        statements.append(
            {"Sid": "ReadModelObjects", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/{read_prefix}*"}
        )
    if cache_prefix is not None:
        statements.append(
            {
                "Sid": "ReadWriteCompileCache",
                "Effect": "Allow",
                # AbortMultipartUpload: the CLI cleans up an upload it could not finish.
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": f"{bucket_arn}/{cache_prefix}*",
            }
        )
    if capture_prefix is not None:
        # A pod has one identity, so the proxy's writes are the model's: only under its own capture prefix, and
        # nothing it wrote can be read back through it.
        statements.append(
            {"Sid": "WriteCapturedTraffic", "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{bucket_arn}/{capture_prefix}*"}
        )
    writes = cache_prefix is not None or capture_prefix is not None
    if prefixes:
        statements.append(
            {
                "Sid": "ListModelPrefixes",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
            }
        )
    statements += [
        {
            "Sid": "UseKeyThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"] if writes else "kms:Decrypt",
            "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}


# Which CRD-installing release a custom resource waits for, by API group.
CRD_GROUPS = {"keda.sh": "keda", "monitoring.coreos.com": "monitoring"}


@dataclass
class ModelServiceArgs:
    spec: ModelSpec
    """The model, in Kubernetes' terms."""
    cluster_name: pulumi.Input[str]
    """Cluster of the Pod Identity association."""
    kubernetes_provider: k8s.Provider
    """Provider for the cluster's API."""
    bucket_arn: pulumi.Input[str]
    """Model store bucket."""
    s3_prefix: str | None
    """The model's prefix in the store; None for a hub model (no AWS access at all, unless it keeps a compile
    cache in the store: spec.compile_cache_uri)."""
    kms_key_arn: pulumi.Input[str]
    """Key of the model store."""
    region: str
    """Region of the model store (S3's KMS calls come from s3.<region>.amazonaws.com)."""
    crd_releases: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    """Releases installing the CRDs, by CRD_GROUPS value (`keda`, `monitoring`)."""
    alb_controller: pulumi.Resource | None = None
    """The load balancer controller's release, which the Ingress waits for (its webhooks must answer)."""
    shared_namespace: pulumi.Resource | None = None
    """The namespace resource of `spec.shared_namespace`, which everything here waits for."""
    capacity: Sequence[pulumi.Resource] = ()
    """What gives the model nodes to run on (Karpenter and its NodePools, node groups, the GPU device plugin):
    the Deployment is created after them, so Pulumi's wait for its readiness starts when a pod can be placed."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for AWS resources."""


class ModelService(pulumi.ComponentResource):
    """One served model. Its namespace, service account and AWS identity (Pod Identity, reading only its own S3
    prefix), a Deployment from a runtime preset (vLLM, Triton, custom image), a Service, an optional ALB Ingress,
    autoscaling (KEDA on the runtime's queue metric for GPU models, an HPA on CPU for CPU models), a
    PodDisruptionBudget, a NetworkPolicy, a ServiceMonitor and the model's SLO alerts.

    Arguments: ModelServiceArgs, documented field by field."""

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        spec = args.spec
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider)

        objects = manifests(spec)
        if spec.shared_namespace:
            if args.shared_namespace is None:
                raise ValueError(f"{name}: spec.shared_namespace is set but args.shared_namespace is not")
            namespace = args.shared_namespace
        else:
            namespace_object = objects.pop(0)
            namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=namespace_object["metadata"], opts=k8s_opts)
        in_namespace = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[namespace]))

        identity: list[pulumi.Resource] = []
        capture_prefix = capture.prefix(spec.name, spec.capture.version) if spec.capture is not None else None
        if args.s3_prefix is not None or spec.compile_cache_prefix is not None or capture_prefix is not None:
            identity = pod_identity_role(
                f"{name}-model-reader",
                args.cluster_name,
                spec.namespace,
                spec.name,
                pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
                    lambda values: json.dumps(
                        model_store_policy(values[0], values[1], args.region, args.s3_prefix, spec.compile_cache_prefix, capture_prefix)
                    )
                ),
                parent=self,
                tags=args.tags,
                association_depends_on=[namespace],
            )

        monitor_identity: list[pulumi.Resource] = []
        if spec.monitor is not None:
            # The monitor job's own identity: it reads captures, reference data and labels, which the model cannot.
            monitor_identity = pod_identity_role(
                f"{name}-monitor",
                args.cluster_name,
                spec.namespace,
                monitor_job.name(spec),
                pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
                    lambda values: json.dumps(monitor_job.store_policy(spec, values[0], values[1]))
                ),
                parent=self,
                tags=args.tags,
                association_depends_on=[namespace],
            )

        for manifest in objects:
            kind = manifest["kind"]
            resource_name = f"{name}-{kind.lower()}"
            if manifest["metadata"]["name"] != spec.name:
                resource_name = f"{name}-{kind.lower()}-{manifest['metadata']['name'].removeprefix(spec.name + '-')}"
            group = manifest["apiVersion"].split("/")[0]
            if group in CRD_GROUPS:
                # Never applied before the release that installs its CRD (pulumi-kubernetes #3247).
                release = args.crd_releases.get(CRD_GROUPS[group])
                k8s.apiextensions.CustomResource(
                    resource_name,
                    api_version=manifest["apiVersion"],
                    kind=kind,
                    metadata=manifest["metadata"],
                    spec=manifest["spec"],
                    opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(depends_on=[release] if release else [])),
                )
            else:
                waits: list[pulumi.Resource] = []
                extra = pulumi.ResourceOptions()
                if kind == "Deployment":
                    waits = [*identity, *args.capacity]
                    # A GPU replica may need a new node, a multi-GB image and the weights before it is ready;
                    # the provider's default 10-minute wait would fail the update.
                    wait = f"{math.ceil(max(spec.rollout_seconds, spec.startup_seconds) / 60) + 20}m"
                    extra = pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=wait, update=wait))
                if kind == "CronJob":
                    waits = monitor_identity
                if kind == "Ingress" and args.alb_controller is not None:
                    waits = [args.alb_controller]
                options = pulumi.ResourceOptions.merge(
                    in_namespace, pulumi.ResourceOptions.merge(extra, pulumi.ResourceOptions(depends_on=waits))
                )
                _CORE_KINDS[kind](resource_name, **{k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}, opts=options)
        self.register_outputs({})


def _service_account(resource_name: str, metadata: dict, automountServiceAccountToken: bool, opts):
    return k8s.core.v1.ServiceAccount(
        resource_name, metadata=metadata, automount_service_account_token=automountServiceAccountToken, opts=opts
    )


_CORE_KINDS = {
    "ServiceAccount": _service_account,
    "Deployment": lambda n, metadata, spec, opts: k8s.apps.v1.Deployment(n, metadata=metadata, spec=spec, opts=opts),
    "Service": lambda n, metadata, spec, opts: k8s.core.v1.Service(n, metadata=metadata, spec=spec, opts=opts),
    "ConfigMap": lambda n, metadata, data, opts: k8s.core.v1.ConfigMap(n, metadata=metadata, data=data, opts=opts),
    "CronJob": lambda n, metadata, spec, opts: k8s.batch.v1.CronJob(n, metadata=metadata, spec=spec, opts=opts),
    "Ingress": lambda n, metadata, spec, opts: k8s.networking.v1.Ingress(n, metadata=metadata, spec=spec, opts=opts),
    "NetworkPolicy": lambda n, metadata, spec, opts: k8s.networking.v1.NetworkPolicy(n, metadata=metadata, spec=spec, opts=opts),
    "PodDisruptionBudget": lambda n, metadata, spec, opts: k8s.policy.v1.PodDisruptionBudget(n, metadata=metadata, spec=spec, opts=opts),
    "HorizontalPodAutoscaler": lambda n, metadata, spec, opts: k8s.autoscaling.v2.HorizontalPodAutoscaler(
        n, metadata=metadata, spec=spec, opts=opts
    ),
}


__all__ = [
    "CACHE_DIR",
    "DRAIN_SECONDS",
    "FALLBACK_FAILURES",
    "HOME_DIR",
    "MODELS_DIR",
    "SHM_MIB",
    "SHM_MIB_PER_TENSOR_PARALLEL_GPU",
    "SHM_SHARE_OF_MEMORY",
    "TYPE",
    "UID",
    "ModelService",
    "ModelServiceArgs",
    "ModelSpec",
    "cpu_autoscaler",
    "deployment",
    "disruption_budget",
    "fallback",
    "ingress",
    "labels",
    "load_expression",
    "load_query",
    "manifests",
    "model_store_policy",
    "namespace",
    "network_policy",
    "prometheus_rule",
    "scaled_object",
    "service",
    "service_monitor",
    "shared_memory_mib",
    "slo_rules",
]
