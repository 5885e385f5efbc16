"""One model served on an EKS cluster you already run, with ml_platform.components.ModelService.

The cluster is reached through its kubeconfig (config `kubeconfig`, `context`), as kubectl reaches it. The model
is a custom image on CPU that reads its weights from an S3 prefix you own (config `modelStore`, `model`): the
component gives it a namespace, a service account with an EKS Pod Identity role that can read only that prefix,
a Deployment (an init container copies the weights), a Service, a CPU HorizontalPodAutoscaler, a
PodDisruptionBudget, a NetworkPolicy, a ServiceMonitor and its alert rules.

What the cluster must already run (the platform's own stacks install all of it): the eks-pod-identity-agent
add-on, metrics-server (the HPA reads the resource metrics API) and the Prometheus operator's CRDs (the
ServiceMonitor and PrometheusRule are its custom resources) with Prometheus in `monitoringNamespace`.
"""

import pulumi
import pulumi_kubernetes as k8s

from ml_platform.components import ModelService, ModelServiceArgs, ModelSpec

# The AWS CLI image the platform pins for the weight-copying init container (infra/versions.py LOADER_IMAGE).
LOADER_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.37.11"

config = pulumi.Config()
region = pulumi.Config("aws").require("region")
store = config.require_object("modelStore")
model = config.require_object("model")
monitoring_namespace = config.get("monitoringNamespace") or "monitoring"

# Empty kubeconfig/context: the provider reads $KUBECONFIG or ~/.kube/config and its current context.
cluster = k8s.Provider(
    "cluster",
    kubeconfig=config.get("kubeconfig") or None,
    context=config.get("context") or None,
    enable_server_side_apply=True,
)

bucket = store["bucketArn"].removeprefix("arn:aws:s3:::")
spec = ModelSpec(
    name=model["name"],
    runtime="custom",
    image=model["image"],
    loader_image=LOADER_IMAGE,
    cpu=str(model.get("cpu", "1")),
    memory=str(model.get("memory", "2Gi")),
    port=int(model.get("port", 8080)),
    health_path=model.get("healthPath", "/health"),
    metrics_path=model.get("metricsPath", "/metrics"),
    startup_seconds=int(model.get("startupSeconds", 120)),
    min_replicas=int(model.get("minReplicas", 2)),
    max_replicas=int(model.get("maxReplicas", 4)),
    target=float(model.get("cpuTargetPercent", 70)),
    prometheus_url=f"http://kube-prometheus-stack-prometheus.{monitoring_namespace}.svc:9090",
    monitoring_namespace=monitoring_namespace,
    region=region,
    model_uri=f"s3://{bucket}/{model['s3Prefix']}",
    spread_zones=True,
)

ModelService(
    spec.name,
    ModelServiceArgs(
        spec=spec,
        cluster_name=config.require("clusterName"),
        kubernetes_provider=cluster,
        bucket_arn=store["bucketArn"],
        s3_prefix=model["s3Prefix"],
        kms_key_arn=store["kmsKeyArn"],
        region=region,
    ),
)

pulumi.export("namespace", spec.namespace)
pulumi.export("serviceUrl", f"http://{spec.name}.{spec.namespace}.svc:{spec.port}")
