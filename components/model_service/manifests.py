"""Every Kubernetes object of a model, in apply order: namespace, service account, Deployment, Service,
NetworkPolicy, ServiceMonitor, PrometheusRule, Ingress, autoscaler and disruption budget."""

from __future__ import annotations

from collections.abc import Mapping

from ml_platform.components.model_service import capture, monitor_job
from ml_platform.components.model_service.alerts import prometheus_rule, service_monitor
from ml_platform.components.model_service.autoscaling import cpu_autoscaler, disruption_budget, scaled_object
from ml_platform.components.model_service.pods import deployment, runtime
from ml_platform.components.model_service.spec import TRITON_GRPC_PORT, TRITON_METRICS_PORT, ModelSpec, labels, meta
from ml_platform.components.pod_defaults import ingress_policy


def service(spec: ModelSpec) -> dict:
    """The model's Service: `http` on the server's port number, targeting the capture proxy when there is one;
    then the server's own port (`server`) and the proxy's metrics for Prometheus, which scrapes them directly."""
    if spec.capture is None:
        ports = [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}]
    else:
        ports = [
            # The proxy's ports by number: a named target port is looked up among the pod's containers, and only
            # recent Kubernetes releases look among native sidecars too.
            {"name": "http", "port": spec.port, "targetPort": capture.PORT, "protocol": "TCP"},
            # The server itself, for Prometheus; its number only names a Service port (the config keeps the server's
            # own port off the proxy's, so the numbers never clash).
            {"name": "server", "port": capture.PORT, "targetPort": "http", "protocol": "TCP"},
            {"name": capture.METRICS_PORT_NAME, "port": capture.METRICS_PORT, "targetPort": capture.METRICS_PORT, "protocol": "TCP"},
        ]
    if spec.runtime == "triton":
        ports += [
            {"name": "grpc", "port": TRITON_GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
            {"name": "metrics", "port": TRITON_METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(spec),
        "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": spec.name}, "ports": ports},
    }


def ingress(spec: ModelSpec) -> dict:
    annotations = {
        "alb.ingress.kubernetes.io/scheme": spec.alb_scheme,
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/healthcheck-path": runtime(spec)[5],
        # Long generations: the default 60 s idle timeout would cut streaming responses.
        "alb.ingress.kubernetes.io/load-balancer-attributes": "idle_timeout.timeout_seconds=600",
    }
    if spec.alb_subnet_ids:
        # Subnets the platform did not create carry no discovery tags: name them (at least two zones).
        annotations["alb.ingress.kubernetes.io/subnets"] = ",".join(spec.alb_subnet_ids)
    if spec.certificate_arn:
        annotations.update(
            {
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
                "alb.ingress.kubernetes.io/certificate-arn": spec.certificate_arn,
                "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            }
        )
    else:
        annotations["alb.ingress.kubernetes.io/listen-ports"] = '[{"HTTP": 80}]'
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(spec, annotations=annotations),
        "spec": {
            "ingressClassName": "alb",
            "rules": [
                {
                    "http": {
                        "paths": [
                            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": spec.name, "port": {"name": "http"}}}}
                        ]
                    }
                }
            ],
        },
    }


def network_policy(spec: ModelSpec) -> dict:
    """Who reaches the model's pods: callers (allowed namespaces, the ALB) its serving port, the capture proxy's
    when there is one (so no caller bypasses it); Prometheus the metrics ports."""
    serving_ports = [spec.port, TRITON_GRPC_PORT] if spec.runtime == "triton" else [spec.port]
    metrics_ports = [TRITON_METRICS_PORT if spec.runtime == "triton" else spec.port]
    if spec.capture is not None:
        serving_ports, metrics_ports = [capture.PORT], [*metrics_ports, capture.METRICS_PORT]
    # ALB targets are pod IPs (target type ip): the load balancer's nodes reach them from inside the VPC.
    return ingress_policy(
        meta(spec),
        spec.name,
        spec.monitoring_namespace,
        metrics_ports,
        serving_ports,
        spec.allowed_namespaces,
        spec.vpc_cidrs if spec.alb else (),
    )


def namespace(name: str, extra_labels: Mapping[str, str], alb: bool = False) -> dict:
    """A namespace for model servers."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                **extra_labels,
                # Admission refuses any pod here that is not non-root, seccomp-confined and capability-free.
                "pod-security.kubernetes.io/enforce": "restricted",
                "ml-platform/monitoring": "true",
                # With an ALB, a rollout waits until the new pod is a healthy target before the old one goes.
                **({"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"} if alb else {}),
            },
        },
    }


def manifests(spec: ModelSpec) -> list[dict]:
    """Every Kubernetes object of the model, in apply order (its own namespace first, unless it shares one)."""
    objects = [] if spec.shared_namespace else [namespace(spec.name, labels(spec), spec.alb)]
    objects += [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(spec), "automountServiceAccountToken": False},
        deployment(spec),
        service(spec),
        network_policy(spec),
        service_monitor(spec),
        prometheus_rule(spec),
    ]
    if spec.alb:
        objects.append(ingress(spec))
    objects.append(scaled_object(spec) if spec.gpus else cpu_autoscaler(spec))
    if spec.max_replicas > 1:
        objects.append(disruption_budget(spec))
    if spec.monitor is not None:
        objects += monitor_job.manifests(spec)
    return objects
