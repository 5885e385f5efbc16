import pulumi_kubernetes as k8s
import yaml

from ml_platform.components import gpu
from ml_platform.components.helm import Chart
from tests.helpers import render, resource

DEVICE_PLUGIN = Chart("nvidia-device-plugin", "https://nvidia.github.io/k8s-device-plugin", "0.20.0")
DCGM = Chart("dcgm-exporter", "https://nvidia.github.io/dcgm-exporter/helm-charts", "4.8.2")


def build(**overrides):
    def program():
        args = dict(kubernetes_provider=k8s.Provider("k8s", kubeconfig="{}"), device_plugin_chart=DEVICE_PLUGIN, dcgm_exporter_chart=DCGM)
        args.update(overrides)
        gpu.GpuSupport("nvidia", gpu.GpuSupportArgs(**args))

    return program


def test_time_slicing_config_format():
    assert gpu.sharing_config(time_slicing_replicas=4) == {
        "version": "v1",
        "flags": {"migStrategy": "none"},
        "sharing": {
            "timeSlicing": {
                "renameByDefault": False,
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
            }
        },
    }
    assert gpu.sharing_config(mig_strategy="mixed") == {"version": "v1", "flags": {"migStrategy": "mixed"}}


def test_device_plugin_runs_on_gpu_nodes_through_the_taint_with_named_configs():
    plan = render(build(sharing_configs={"gpu": gpu.sharing_config(time_slicing_replicas=2)}))
    release = resource(plan, "kubernetes:helm.sh/v3:Release", "nvidia-nvidia-device-plugin")["inputs"]
    assert release["version"] == "0.20.0" and release["namespace"] == "nvidia"
    assert release["repositoryOpts"] == {"repo": "https://nvidia.github.io/k8s-device-plugin"}
    values = release["values"]
    assert values["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    assert values["nfd"]["worker"]["tolerations"] == values["tolerations"]
    assert values["config"]["default"] == "default"
    assert yaml.safe_load(values["config"]["map"]["gpu"])["sharing"]["timeSlicing"]["resources"][0]["replicas"] == 2
    assert yaml.safe_load(values["config"]["map"]["default"]) == {"version": "v1", "flags": {"migStrategy": "none"}}


def test_dcgm_exporter_on_gpu_nodes_with_the_service_monitor_switch():
    off = resource(render(build()), "kubernetes:helm.sh/v3:Release", "nvidia-dcgm-exporter")["inputs"]["values"]
    assert off["serviceMonitor"]["enabled"] is False
    assert off["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in off["tolerations"]
    on = resource(render(build(service_monitor=True)), "kubernetes:helm.sh/v3:Release", "nvidia-dcgm-exporter")["inputs"]["values"]
    assert on["serviceMonitor"]["enabled"] is True


def test_releases_wait_for_their_namespace():
    plan = render(build())
    namespace = resource(plan, "kubernetes:core/v1:Namespace", "nvidia-namespace")["urn"]
    assert all(namespace in r["dependencies"] for r in plan.by_type("kubernetes:helm.sh/v3:Release"))
