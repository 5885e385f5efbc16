"""ml_platform.components: the platform's reusable Pulumi ComponentResources, usable by any Pulumi Python program.

The public API is the names in `__all__`, importable from this package; each component is a
`pulumi.ComponentResource` taking a dataclass of arguments (`<Name>Args`), documented field by field. Everything
else (the modules, the pure functions they are built from) is internal and may change in any release.

- Network (NetworkArgs): a VPC with public and private subnets across zones, NAT, the S3 endpoint, flow logs.
- KmsKey (KmsKeyArgs): a customer-managed key with rotation and an alias.
- ContainerRegistry (ContainerRegistryArgs): ECR repositories with immutable tags, scanning and lifecycle rules.
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

Names resolve on first use (PEP 562 module __getattr__), so that importing one submodule, as the config checks
do for `components.instance_types`, does not load every component and the AWS SDK behind it.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "Network": "network",
    "NetworkArgs": "network",
    "KmsKey": "kms",
    "KmsKeyArgs": "kms",
    "ContainerRegistry": "registry",
    "ContainerRegistryArgs": "registry",
    "ModelStore": "model_store",
    "ModelStoreArgs": "model_store",
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
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
