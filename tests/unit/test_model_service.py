import json
import re

import pulumi_kubernetes as k8s
import pytest
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from ml_platform.components import model_service
from ml_platform.components.model_service import ModelSpec
from ml_platform.components.model_service import pods as pods_module
from tests.helpers import MODEL_SPEC, render, resource

BASE = MODEL_SPEC


def spec(**overrides) -> ModelSpec:
    return ModelSpec(**{**BASE, **overrides})


def service_args(model: ModelSpec, provider: k8s.Provider, **extra) -> model_service.ModelServiceArgs:
    return model_service.ModelServiceArgs(
        spec=model,
        cluster_name="c",
        kubernetes_provider=provider,
        bucket_arn="arn:aws:s3:::store",
        s3_prefix="llama/",
        kms_key_arn="arn:aws:kms:us-west-2:123456789012:key/k",
        region="us-west-2",
        **extra,
    )


def by_kind(objects, kind):
    return next(o for o in objects if o["kind"] == kind)


def test_vllm_preset():
    pod = model_service.deployment(spec())["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["args"][:2] == ["/models", "--host"]
    assert server["args"][server["args"].index("--tensor-parallel-size") + 1] == "2"
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "2" and server["resources"]["requests"]["nvidia.com/gpu"] == "2"
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/home/app"
    # tensor parallel over 2 GPUs: 2 GiB of /dev/shm per GPU, within a quarter of the 24Gi limit
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}} in pod["volumes"]
    # weights come from the model store, before the server starts
    (loader,) = pod["initContainers"]
    assert loader["command"] == ["/bin/sh", "-c", model_service.pods.SYNC_SCRIPT]
    assert loader["args"] == ["crt", "s3://bucket/llama/", "/models"]


def test_startup_budget_comes_from_the_expected_startup_time():
    server = model_service.deployment(spec(startup_seconds=1200))["spec"]["template"]["spec"]["containers"][0]
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1200
    assert server["readinessProbe"]["httpGet"]["path"] == "/health"


def test_rollout_never_drops_capacity_and_drains():
    deployment = model_service.deployment(spec())
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
    assert pod["spec"]["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}
    assert pod["spec"]["terminationGracePeriodSeconds"] > 15


def test_pod_security():
    pod = model_service.deployment(spec())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] > 10000 and pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert (
            context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"] and context["capabilities"] == {"drop": ["ALL"]}
        )
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_triton_preset_and_its_queue_metric():
    triton = spec(runtime="triton", name="ranker", gpus=1, target=30)
    server = model_service.deployment(triton)["spec"]["template"]["spec"]["containers"][0]
    assert server["command"] == ["tritonserver"] and "--model-repository=/models" in server["args"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {p["name"] for p in server["ports"]} == {"http", "grpc", "metrics"}
    trigger = model_service.scaled_object(triton)["spec"]["triggers"][0]
    assert "nv_inference_queue_duration_us" in trigger["metadata"]["query"] and trigger["metricType"] == "Value"
    assert model_service.service_monitor(triton)["spec"]["endpoints"][0]["port"] == "metrics"


def test_gpu_models_scale_on_queue_depth_and_wake_in_active_hours():
    scaled = model_service.scaled_object(
        spec(min_replicas=0, active_hours={"start": "0 8 * * 1-5", "end": "0 20 * * 1-5", "timezone": "UTC"})
    )
    prometheus, cron = scaled["spec"]["triggers"]
    assert prometheus["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{namespace="chat"}) or on() (kube_deployment_spec_replicas{namespace="chat", deployment="chat"} == 0)'
    )
    assert prometheus["metadata"]["threshold"] == "5" and prometheus["metricType"] == "AverageValue"
    # an empty result is an error (KEDA's default would read it as zero load)
    assert prometheus["metadata"]["ignoreNullValues"] == "false"
    assert cron["type"] == "cron" and cron["metadata"]["desiredReplicas"] == "1"
    assert scaled["spec"]["minReplicaCount"] == 0
    # a trigger in fallback counts as active: it would wake the model outside its hours
    assert "fallback" not in scaled["spec"]


def test_a_failing_load_metric_holds_the_replicas_of_a_model_with_a_minimum():
    scaled = model_service.scaled_object(spec(min_replicas=2, max_replicas=8))
    assert scaled["spec"]["fallback"] == {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"}


def test_model_pods_get_no_service_links():
    # A Service `vllm` would inject VLLM_PORT=tcp://...:8000, which vLLM reads as its own port and exits.
    for runtime in ("vllm", "triton", "custom"):
        pod = model_service.deployment(spec(name="vllm", runtime=runtime))["spec"]["template"]["spec"]
        assert pod["enableServiceLinks"] is False


def test_shared_memory_never_exceeds_a_quarter_of_the_memory_limit():
    def shm(**overrides):
        return model_service.shared_memory_mib(spec(**overrides))

    assert shm(gpus=1, memory="12Gi") == 1024  # one vLLM process
    assert shm(gpus=4, memory="96Gi") == 4 * 2048  # tensor parallel: 2 GiB per GPU
    assert shm(gpus=4, memory="16Gi") == 4096  # capped at a quarter of the limit it is charged to
    assert shm(runtime="triton", gpus=0, memory="2Gi") == 512  # Triton's Python backend needs it on CPU too
    assert shm(runtime="custom", gpus=0, memory="2Gi") == 0
    pod = model_service.deployment(spec(runtime="custom", gpus=0))["spec"]["template"]["spec"]
    assert "dshm" not in {v["name"] for v in pod["volumes"]}


def test_cpu_models_use_an_hpa_and_no_gpu():
    objects = model_service.manifests(spec(gpus=0, runtime="custom", port=8080, health_path="/healthz", target=70))
    # The server container's CPU (ContainerResource), not the pod's: a sidecar would skew the pod's utilisation.
    (metric,) = by_kind(objects, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metric["type"] == "ContainerResource"
    target = {"type": "Utilization", "averageUtilization": 70}
    assert metric["containerResource"] == {"name": "cpu", "container": "server", "target": target}
    assert not [o for o in objects if o["kind"] == "ScaledObject"]
    pod = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"] and "annotations" not in pod


def test_disruption_budget_only_when_more_than_one_replica():
    assert [o for o in model_service.manifests(spec()) if o["kind"] == "PodDisruptionBudget"]
    assert not [o for o in model_service.manifests(spec(max_replicas=1)) if o["kind"] == "PodDisruptionBudget"]


def test_network_policy_admits_allowed_namespaces_monitoring_and_the_alb():
    policy = model_service.network_policy(spec(allowed_namespaces=("apps",), alb=True, vpc_cidrs=("10.20.0.0/16",)))
    sources = [rule["from"][0] for rule in policy["spec"]["ingress"]]
    assert sources[0] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert sources[1]["namespaceSelector"]["matchExpressions"][0]["values"] == ["apps"]
    assert sources[2] == {"ipBlock": {"cidr": "10.20.0.0/16"}}


def test_alb_ingress_https_when_certificate():
    ingress = model_service.ingress(
        spec(alb=True, vpc_cidrs=("10.0.0.0/16",), alb_scheme="internet-facing", certificate_arn="arn:aws:acm:us-west-2:1:certificate/x")
    )
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTPS": 443}]'
    assert ingress["spec"]["ingressClassName"] == "alb"


def test_slo_alerts_carry_severity_summary_and_runbook():
    rules = model_service.slo_rules(spec())
    assert {r["alert"] for r in rules} == {
        "ModelServerDown",
        "ModelLoadMetricMissing",
        "ModelLatencyHigh",
        "ModelErrorRatioHigh",
        "ModelQueueBacklog",
    }
    assert all(
        r["labels"]["severity"] in ("warning", "critical") and r["annotations"]["summary"] and r["annotations"]["runbook"] for r in rules
    )


def test_s3_policy_reads_only_the_models_prefix():
    policy = model_service.model_store_policy("arn:aws:s3:::store", "arn:aws:kms:us-west-2:1:key/k", "us-west-2", "llama/", None)
    IAMPolicyDocumentValidator(json.dumps(policy)).validate()
    get, listing, decrypt = policy["Statement"]
    assert get["Resource"] == "arn:aws:s3:::store/llama/*" and get["Action"] == "s3:GetObject"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["llama/*"]}}
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}}


def test_s3_policy_writes_only_the_models_own_compile_cache():
    cache = "compile-cache/chat/chat/"
    policy = model_service.model_store_policy("arn:aws:s3:::store", "arn:aws:kms:us-west-2:1:key/k", "us-west-2", "llama/", cache)
    IAMPolicyDocumentValidator(json.dumps(policy)).validate()
    by_sid = {statement["Sid"]: statement for statement in policy["Statement"]}
    writes = [s for s in policy["Statement"] if "s3:PutObject" in s["Action"]]
    assert [w["Resource"] for w in writes] == [f"arn:aws:s3:::store/{cache}*"], "the model writes its own cache prefix and nothing else"
    assert by_sid["ReadModelObjects"]["Action"] == "s3:GetObject", "the weights stay read-only"
    assert by_sid["ListModelPrefixes"]["Condition"] == {"StringLike": {"s3:prefix": ["llama/*", f"{cache}*"]}}
    assert by_sid["UseKeyThroughS3"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    hub = model_service.model_store_policy("arn:aws:s3:::store", "arn:aws:kms:us-west-2:1:key/k", "us-west-2", None, cache)
    assert "ReadModelObjects" not in {s["Sid"] for s in hub["Statement"]}


def test_component_creates_identity_and_waits_for_crd_releases():
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        keda = k8s.helm.v3.Release("keda", chart="keda", version="2.20.2", opts=None)
        monitoring = k8s.helm.v3.Release("kps", chart="kube-prometheus-stack", version="88.5.3")
        model_service.ModelService(
            "model-chat",
            service_args(spec(), provider, crd_releases={"keda": keda, "monitoring": monitoring}),
        )

    plan = render(program)
    association = resource(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "model-chat-model-reader")["inputs"]
    assert (association["namespace"], association["serviceAccount"]) == ("chat", "chat")
    keda = resource(plan, "kubernetes:helm.sh/v3:Release", "keda")["urn"]
    monitoring = resource(plan, "kubernetes:helm.sh/v3:Release", "kps")["urn"]
    assert keda in resource(plan, "kubernetes:keda.sh/v1alpha1:ScaledObject", "model-chat-scaledobject")["dependencies"]
    assert monitoring in resource(plan, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "model-chat-servicemonitor")["dependencies"]
    assert monitoring in resource(plan, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "model-chat-prometheusrule")["dependencies"]
    namespace = resource(plan, "kubernetes:core/v1:Namespace", "model-chat-namespace")
    assert namespace["inputs"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["urn"] in resource(plan, "kubernetes:apps/v1:Deployment", "model-chat-deployment")["dependencies"]


def test_pods_come_after_their_identity_and_get_time_to_start():
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        alb = k8s.helm.v3.Release("alb", chart="aws-load-balancer-controller", version="3.5.0")
        model_service.ModelService(
            "model-chat",
            service_args(spec(alb=True, vpc_cidrs=("10.0.0.0/16",)), provider, alb_controller=alb),
        )

    plan = render(program)
    deployment = resource(plan, "kubernetes:apps/v1:Deployment", "model-chat-deployment")
    association = resource(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "model-chat-model-reader")
    assert association["urn"] in deployment["dependencies"]
    assert deployment["customTimeouts"] == {"create": "35m", "update": "35m"}
    alb = resource(plan, "kubernetes:helm.sh/v3:Release", "alb")["urn"]
    assert alb in resource(plan, "kubernetes:networking.k8s.io/v1:Ingress", "model-chat-ingress")["dependencies"]
    namespace = resource(plan, "kubernetes:core/v1:Namespace", "model-chat-namespace")["inputs"]["metadata"]["labels"]
    assert namespace["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


def test_server_down_alert_waits_out_the_startup_budget():
    (down,) = [r for r in model_service.slo_rules(spec(startup_seconds=900)) if r["alert"] == "ModelServerDown"]
    assert down["for"] == "20m" and "kube_deployment_status_replicas_available" in down["expr"]


def test_models_sharing_a_namespace_see_only_their_own_series():
    shared = spec(shared_namespace="pr-12")
    objects = model_service.manifests(shared)
    assert "Namespace" not in {o["kind"] for o in objects}
    assert {o["metadata"]["namespace"] for o in objects} == {"pr-12"}
    query, _ = model_service.load_query(shared)
    assert query.startswith('sum(vllm:num_requests_waiting{namespace="pr-12", service="chat"}) or on() ')
    assert query.endswith('kube_deployment_spec_replicas{namespace="pr-12", deployment="chat"} == 0)')
    assert all('namespace="pr-12", service="chat"' in rule["expr"] for rule in model_service.slo_rules(shared))
    # a model in its own namespace keeps the plain selector
    assert model_service.load_expression(spec())[0] == 'sum(vllm:num_requests_waiting{namespace="chat"})'


def test_a_shared_namespace_is_waited_for_and_not_created():
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        namespace = k8s.core.v1.Namespace("preview-namespace", metadata={"name": "pr-12"}, opts=None)
        model_service.ModelService(
            "model-chat",
            service_args(spec(shared_namespace="pr-12"), provider, shared_namespace=namespace),
        )

    plan = render(program)
    assert [r["name"] for r in plan.by_type("kubernetes:core/v1:Namespace")] == ["preview-namespace"]
    namespace = resource(plan, "kubernetes:core/v1:Namespace", "preview-namespace")["urn"]
    assert namespace in resource(plan, "kubernetes:apps/v1:Deployment", "model-chat-deployment")["dependencies"]
    association = resource(plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "model-chat-model-reader")["inputs"]
    assert (association["namespace"], association["serviceAccount"]) == ("pr-12", "chat")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "kube-system"}, "a namespace Kubernetes or the platform owns"),
        ({"name": "Scorer_1"}, "must be 1-40 lowercase letters"),
        ({"runtime": "tgi"}, "runtime 'tgi' is not one of vllm, triton, custom"),
        ({"image": "repo/model:latest"}, "needs a fixed tag or a digest"),
        ({"image": "repo/model"}, "needs a fixed tag or a digest"),
        ({"gpus": -1}, "gpus -1 is negative"),
        ({"min_replicas": 5, "max_replicas": 2}, "need 0 <= min_replicas <= max_replicas"),
        ({"port": 0}, "port 0 is not 1-65535"),
        ({"alb": True, "vpc_cidrs": ("10.0.0.0/16",), "alb_scheme": "public"}, "alb_scheme 'public' is not one of"),
        ({"alb": True, "vpc_cidrs": ("10.0.0.0/16",), "alb_scheme": "internet-facing"}, "serves HTTPS only: give certificate_arn"),
        ({"alb": True}, "needs vpc_cidrs"),
        ({"vpc_cidrs": ("10.0.0.0/33",)}, "'10.0.0.0/33' is not a CIDR"),
    ],
)
def test_a_model_spec_refuses_what_kubernetes_or_the_controller_would(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        spec(**change)


def test_streamed_weights_skip_the_copy_and_the_disk():
    pod = model_service.deployment(spec(load_format="runai_streamer", weights_gib=16))["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["args"][0] == "s3://bucket/llama/" and server["args"][-2:] == ["--load-format", "runai_streamer"]
    env = {e["name"]: e["value"] for e in server["env"]}
    # a quarter of the 24Gi limit for the streamers' CPU buffers, split between the 2 GPUs' workers; the store's region
    assert env["RUNAI_STREAMER_MEMORY_LIMIT"] == str(3 * 2**30) and env["AWS_REGION"] == "us-west-2"
    assert env["RUNAI_STREAMER_CONCURRENCY"] == "16" and env["HF_HUB_OFFLINE"] == "1"
    assert pod["initContainers"] == [], "nothing to copy"
    sizes = {v["name"]: v["emptyDir"].get("sizeLimit") for v in pod["volumes"]}
    assert (
        sizes["models"] == "1Gi"
        and server["resources"]["requests"]["ephemeral-storage"] == f"{1 + 8 + pods_module.HOME_GIB + pods_module.TMP_GIB}Gi"
    )
    with pytest.raises(ValueError, match="runai_streamer is vLLM's loader"):
        spec(runtime="triton", load_format="runai_streamer")


def test_a_kept_compile_cache_restores_before_and_saves_beside_the_server():
    model = spec(compile_cache_uri="s3://bucket/compile-cache/chat/chat/")
    assert model.compile_cache_prefix == "compile-cache/chat/chat/"
    names = [c["name"] for c in model_service.deployment(model)["spec"]["template"]["spec"]["initContainers"]]
    assert names == ["restore-compile-cache", "load-weights", "save-compile-cache"]
    with pytest.raises(ValueError, match="compile_cache_uri"):
        spec(runtime="triton", compile_cache_uri="s3://bucket/c/")
