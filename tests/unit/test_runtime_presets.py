"""Each runtime preset against what its runtime documents: the environment variables it sets are ones some
component of the image reads, every path it points them at is writable in the pod (read-only root, UID 10001
with no passwd entry), and the shared memory the runtime needs is there."""

from __future__ import annotations

import pytest

from ml_platform.components import model_service
from tests.unit.test_model_service import spec

# variable -> who reads it, and where that is written down
DOCUMENTED = {
    "HOME": "POSIX; every cache below defaults under it",
    "USER": "Python getpass.getuser() (LOGNAME, USER, LNAME, USERNAME, then the passwd entry UID 10001 lacks)",
    "LOGNAME": "Python getpass.getuser(), as USER",
    "TMPDIR": "POSIX; Python tempfile",
    "MODEL_DIR": "the platform's contract with custom images (README, Serving models)",
    "HF_HOME": "huggingface_hub constants.py",
    "HF_HUB_OFFLINE": "huggingface_hub constants.py; vLLM reads huggingface_hub.constants.HF_HUB_OFFLINE",
    "HF_TOKEN_PATH": "huggingface_hub constants.py",
    "XDG_CACHE_HOME": "vllm/envs.py (0.31.0, the cache root's default), and most Python libraries' cache dirs",
    "CUDA_CACHE_PATH": "CUDA driver JIT cache (CUDA C++ Programming Guide, CUDA environment variables)",
    "TRITON_CACHE_DIR": "OpenAI Triton compiler cache (triton/runtime/cache.py); vLLM keeps one set by the user",
    "DO_NOT_TRACK": "vllm/envs.py (0.31.0) L828-834",
    "VLLM_CACHE_ROOT": "vllm/envs.py (0.31.0) L707",
    "VLLM_CONFIG_ROOT": "vllm/envs.py (0.31.0) L698",
    "VLLM_NO_USAGE_STATS": "vllm/envs.py (0.31.0) L827",
}
PATH_VARIABLES = (
    *("HOME", "TMPDIR", "MODEL_DIR", "HF_HOME", "XDG_CACHE_HOME"),
    *("CUDA_CACHE_PATH", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT", "VLLM_CONFIG_ROOT"),
)

PRESETS = {
    "vllm": spec(gpus=1, memory="24Gi"),
    "vllm-tensor-parallel": spec(gpus=4, memory="96Gi"),
    "vllm-hub": spec(gpus=1, model_uri=None, hub_id="org/model", hub_token_secret="hub"),
    "triton": spec(runtime="triton", name="ranker", gpus=1, memory="16Gi"),
    "triton-cpu": spec(runtime="triton", name="ranker", gpus=0, memory="8Gi"),
    "custom": spec(runtime="custom", name="fraud", gpus=0, memory="2Gi", port=8080, health_path="/healthz"),
}


def server(model):
    pod = model_service.deployment(model)["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_variable_is_one_the_runtime_documents(preset):
    _, container = server(PRESETS[preset])
    names = {e["name"] for e in container["env"]}
    assert names <= set(DOCUMENTED), names - set(DOCUMENTED)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_path_the_runtime_writes_is_a_writable_volume(preset):
    pod, container = server(PRESETS[preset])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all("emptyDir" in volumes[m["name"]] for m in container["volumeMounts"] if m["mountPath"] in writable)
    env = {e["name"]: e["value"] for e in container["env"]}
    for name in PATH_VARIABLES:
        if name in env:
            assert any(env[name] == path or env[name].startswith(path + "/") for path in writable), (name, env[name])
    # /tmp holds vLLM's ZMQ sockets and locks, Triton's copies of cloud repositories and Python environments.
    assert "/tmp" in writable


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_uid_without_a_passwd_entry_still_has_a_user_name(preset):
    _, container = server(PRESETS[preset])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["USER"] and env["LOGNAME"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_shared_memory_as_the_runtime_needs_it(preset):
    model = PRESETS[preset]
    pod, container = server(model)
    mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    if model.runtime == "custom":
        assert "/dev/shm" not in mounted
        return
    volume = next(v for v in pod["volumes"] if v["name"] == mounted["/dev/shm"])
    assert volume["emptyDir"]["medium"] == "Memory"
    assert model_service.shared_memory_mib(model) >= 512


def test_vllm_is_never_told_to_reach_a_hub_for_store_weights():
    _, container = server(PRESETS["vllm"])
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in container["env"]
    _, hub = server(PRESETS["vllm-hub"])
    assert "HF_HUB_OFFLINE" not in {e["name"] for e in hub["env"]}
