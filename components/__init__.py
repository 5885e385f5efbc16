"""ml_platform.components: the platform's reusable Pulumi ComponentResources, usable by any Pulumi Python program.

The public API is the names in `__all__`, importable from this package; each component is a
`pulumi.ComponentResource` taking a dataclass of arguments (`<Name>Args`), documented field by field. Everything
else (the modules, the pure functions they are built from) is internal and may change in any release.

- Network (NetworkArgs): a VPC with public and private subnets across zones, NAT, the S3 endpoint, flow logs.
- KmsKey (KmsKeyArgs): a customer-managed key with rotation and an alias.
- ContainerRegistry (ContainerRegistryArgs): ECR repositories with immutable tags, scanning and lifecycle rules.
- RegistryScanning (RegistryScanningArgs): the account's ECR enhanced scanning (Amazon Inspector) in a region, with
  Inspector's rescan durations; retained when destroyed.
- ModelStore (ModelStoreArgs): the S3 bucket of model artifacts (versioned, SSE-KMS, TLS only).
- EksCluster (EksClusterArgs): the control plane, access entries, bootstrap add-ons and a Kubernetes provider.
- NodePool (NodePoolArgs): one managed node group with its launch template.
- Karpenter (KarpenterArgs): the controller, its node role and interruption queue, EC2NodeClasses, NodePools.
- ClusterAddons (ClusterAddonsArgs): CoreDNS, the EBS CSI driver, the gp3 StorageClass, metrics-server.
- GpuSupport (GpuSupportArgs): the NVIDIA device plugin with GPU sharing, and the DCGM exporter.
- ServingPlatform (ServingPlatformArgs): the AWS Load Balancer Controller and KEDA.
- Monitoring (MonitoringArgs): kube-prometheus-stack tuned for EKS, alert routing.
- Logging (LoggingArgs): Fluent Bit to CloudWatch Logs, one log group per namespace.
- ModelService (ModelServiceArgs, ModelSpec): one served model (vLLM, Triton or a custom image) with its
  AWS identity, Deployment, Service, autoscaling, disruption budget, network policy, monitoring and alerts;
  it deploys onto any EKS cluster given a Kubernetes provider (examples/model-service-on-existing-cluster).
- PreviewNamespace (PreviewNamespaceArgs): a pull-request preview's namespace in another stack's cluster.
- RunningImages (RunningImagesArgs): a CronJob publishing the scan findings of the images running in model
  namespaces to the Pushgateway, its least-privilege RBAC and Pod Identity role, and its alerts.

Types some arguments take: Chart (a pinned Helm chart), KarpenterPool (one Karpenter NodePool), AccessGrant (an
EKS access entry), PullThroughCache (an ECR pull-through cache rule). `help()` of any public class lists its
fields with their documentation.

Names resolve on first use (PEP 562 module __getattr__), so that importing one submodule, as the config checks
do for `components.instance_types`, does not load every component and the AWS SDK behind it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from typing import Any

_MODULES = {
    "Network": "network",
    "NetworkArgs": "network",
    "KmsKey": "kms",
    "KmsKeyArgs": "kms",
    "ContainerRegistry": "registry",
    "ContainerRegistryArgs": "registry",
    "RegistryScanning": "registry_scanning",
    "RegistryScanningArgs": "registry_scanning",
    "ModelStore": "model_store",
    "ModelStoreArgs": "model_store",
    "SageMakerMlflow": "sagemaker_mlflow",
    "SageMakerMlflowArgs": "sagemaker_mlflow",
    "RegistryDatabase": "registry_database",
    "RegistryDatabaseArgs": "registry_database",
    "MlflowServer": "mlflow_server",
    "MlflowServerArgs": "mlflow_server",
    "EksCluster": "eks_cluster",
    "EksClusterArgs": "eks_cluster",
    "NodePool": "node_pool",
    "NodePoolArgs": "node_pool",
    "Karpenter": "karpenter",
    "KarpenterArgs": "karpenter",
    "ClusterAddons": "cluster_addons",
    "ClusterAddonsArgs": "cluster_addons",
    "GpuSupport": "gpu",
    "GpuSupportArgs": "gpu",
    "ServingPlatform": "serving_platform",
    "ServingPlatformArgs": "serving_platform",
    "Monitoring": "monitoring",
    "MonitoringArgs": "monitoring",
    "Logging": "logging",
    "LoggingArgs": "logging",
    "ModelService": "model_service",
    "ModelServiceArgs": "model_service",
    "ModelSpec": "model_service",
    "PreviewNamespace": "preview_namespace",
    "PreviewNamespaceArgs": "preview_namespace",
    "RunningImages": "running_images",
    "RunningImagesArgs": "running_images",
    "Chart": "helm",
    "KarpenterPool": "karpenter",
    "AccessGrant": "eks_cluster",
    "PullThroughCache": "registry",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    value.__doc__ = _with_field_docs(value)
    globals()[name] = value
    return value


def _with_field_docs(cls: type) -> str:
    """The class's docstring followed by its fields' attribute docstrings (the string under each annotated
    field), which Python keeps only in the source: so `help()` shows what each argument means."""
    doc = cls.__doc__ or ""
    title = "Outputs" if any(base.__name__ == "ComponentResource" for base in cls.__mro__) else "Fields"
    if f"\n{title}:\n" in doc:
        return doc
    body = next(node for node in ast.parse(inspect.getsource(cls)).body if isinstance(node, ast.ClassDef))
    lines = []
    for field, after in zip(body.body, [*body.body[1:], None], strict=True):
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
            text = ast.get_docstring(ast.Module(body=[after], type_ignores=[])) if isinstance(after, ast.Expr) else None
            lines.append(f"  {field.target.id}: {' '.join((text or '(undocumented)').split())}")
    return doc + (f"\n\n{title}:\n" + "\n".join(lines) if lines else "")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
