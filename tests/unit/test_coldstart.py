"""The cold-start estimate (infra/coldstart.py): each term from its documented figure, the sizes a stack gives,
the startup probe's budget it yields, the `coldstart` command, and the storage a model's pod asks for."""

from __future__ import annotations

import json
import math

import pytest

from ml_platform.components.model_service import pods
from ml_platform.infra import cli, coldstart, config, models
from tests.helpers import minimal_sections, raw_config

GPU_MODEL = {
    "runtime": "vllm",
    "image": {"repository": "docker.io/vllm/vllm-openai", "tag": "v0.31.0"},
    "source": {"s3Prefix": "chat/v1/"},
    "gpus": 1,
    "resources": {"cpu": "4", "memory": "24Gi"},
}


def parsed(**model):
    return config.ModelConfig.model_validate({**GPU_MODEL, **model})


def test_each_term_is_its_figure():
    start = coldstart.estimate("chat", parsed())
    terms = {term.name: term.seconds for term in start.terms}
    weights, image = coldstart.WEIGHTS_GIB["gpu"], coldstart.IMAGE_GIB["vllm"]
    assert terms == {
        "node launch": coldstart.NODE_LAUNCH["gpu"],
        "image pull": image / coldstart.PULL_GIB_PER_S,
        "weights": weights / coldstart.COPY_GIB_PER_S,
        "load": weights / coldstart.LOAD_GIB_PER_S,
        "compile": coldstart.COMPILE["vllm"],
        "initialisation": coldstart.INIT["vllm"],
    }
    assert start.seconds == pytest.approx(sum(terms.values()))
    server = terms["load"] + terms["compile"] + terms["initialisation"]
    assert start.server_seconds == pytest.approx(server)
    assert start.probe_budget == max(coldstart.MIN_BUDGET, math.ceil(server * coldstart.MARGIN / 30) * 30)


def test_the_stacks_sizes_replace_the_defaults():
    start = coldstart.estimate("big", parsed(image={**GPU_MODEL["image"], "sizeGiB": 4}, source={"s3Prefix": "big/", "sizeGiB": 140}))
    terms = {term.name: term for term in start.terms}
    assert terms["weights"].seconds == pytest.approx(140 / coldstart.COPY_GIB_PER_S) and "source.sizeGiB" in terms["weights"].basis
    assert terms["image pull"].seconds == pytest.approx(4 / coldstart.PULL_GIB_PER_S) and "image.sizeGiB" in terms["image pull"].basis
    assert start.probe_budget > coldstart.estimate("chat", parsed()).probe_budget


def test_startup_seconds_defaults_to_the_estimate_and_a_given_one_is_kept():
    cfg = config.parse(raw_config(**minimal_sections()), "t")
    spec = models.model_spec("chat", parsed(), cfg, "r", "b")
    assert spec.startup_seconds == coldstart.estimate("chat", parsed()).probe_budget
    assert models.model_spec("chat", parsed(startupSeconds=1200), cfg, "r", "b").startup_seconds == 1200
    assert spec.weights_gib == coldstart.WEIGHTS_GIB["gpu"]


def test_weights_size_the_volumes_and_the_ephemeral_storage_request():
    cfg = config.parse(raw_config(**minimal_sections()), "t")
    spec = models.model_spec("chat", parsed(source={"s3Prefix": "chat/", "sizeGiB": 30}), cfg, "r", "b")
    deployment = pods.deployment(spec)
    volumes = {v["name"]: v["emptyDir"].get("sizeLimit") for v in deployment["spec"]["template"]["spec"]["volumes"] if "emptyDir" in v}
    assert volumes["models"] == "33Gi" and volumes["cache"] == "8Gi"
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert server["resources"]["requests"]["ephemeral-storage"] == f"{33 + 8 + pods.HOME_GIB + pods.TMP_GIB}Gi"
    hub = models.model_spec("hub", parsed(source={"hubId": "org/model", "sizeGiB": 10}), cfg, "r", "b")
    hub_volumes = {v["name"]: v["emptyDir"].get("sizeLimit") for v in pods.deployment(hub)["spec"]["template"]["spec"]["volumes"]}
    assert hub_volumes["models"] == "1Gi" and hub_volumes["cache"] == "19Gi", "a hub model's weights go into HF_HOME, in the cache"


@pytest.mark.parametrize("size", [0, -1, 5000])
def test_a_size_out_of_range_is_a_config_error(size):
    with pytest.raises(Exception, match="sizeGiB"):
        config.ModelConfig.model_validate({**GPU_MODEL, "source": {"s3Prefix": "chat/", "sizeGiB": size}})


def test_the_command_prints_each_model_term_by_term(capsys):
    assert cli.main(["coldstart", "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    for term in ("node launch", "image pull", "weights", "load", "compile", "initialisation", "startup probe budget"):
        assert term in out
    assert "chat:" in out and "fraud:" in out
    assert cli.main(["coldstart", "--stack", "nope"]) == 2


def test_a_budget_below_the_servers_start_is_warned_about():
    start = coldstart.estimate("chat", parsed())
    assert "warning: startupSeconds 60 is below" in coldstart.render([start], {"chat": 60})
    assert "warning" not in coldstart.render([start], {"chat": None})


def test_weights_that_no_pools_root_volume_can_hold_are_a_config_error():
    from ml_platform.infra.offline import stack_files

    raw = dict(stack_files.read_stack("dev").values)
    models_config = json.loads(raw["ml-platform:models"])
    models_config["chat"]["source"]["sizeGiB"] = 300
    raw["ml-platform:models"] = json.dumps(models_config)
    (problem,) = [p for p in models.placement_problems(config.parse(raw, "dev")) if p[0] == "models.chat.source.sizeGiB"]
    assert (
        f"needs {pods.storage_request_gib(300, True, 'models')} GiB of node storage for 300 GiB of weights" in problem[1]
        and "raise that pool's diskSizeGiB" in problem[1]
    )
    pools_config = json.loads(raw["ml-platform:nodePools"])
    for pool in pools_config.values():
        if pool.get("kind") == "karpenter":
            # On local NVMe the smallest size's instance store bounds it: back to a large root volume instead.
            pool.update(diskSizeGiB=500, localStorage="none")
    raw["ml-platform:nodePools"] = json.dumps(pools_config)
    assert not [p for p in models.placement_problems(config.parse(raw, "dev")) if p[0] == "models.chat.source.sizeGiB"]


def test_gpu_pools_of_nvme_families_keep_container_storage_on_it():
    from ml_platform.infra.offline import stack_files

    cfg = config.parse(stack_files.read_stack("prod").values, "prod")
    assert cfg.nodePools["gpu"].local_nvme and cfg.nodePools["gpu-large"].local_nvme
    assert not cfg.nodePools["system"].local_nvme and not cfg.nodePools["cpu"].local_nvme
    with pytest.raises(Exception, match="localStorage raid0 needs local NVMe, which g5g lacks"):
        config.KarpenterPoolConfig.model_validate(
            {
                "kind": "karpenter",
                "instanceFamilies": ["g5g"],
                "capacityTypes": ["spot"],
                "limits": {"cpu": 8, "memoryGiB": 32, "gpus": 1},
                "localStorage": "raid0",
            }
        )
    off = config.KarpenterPoolConfig.model_validate(
        {
            "kind": "karpenter",
            "instanceFamilies": ["g5"],
            "capacityTypes": ["spot"],
            "limits": {"cpu": 8, "memoryGiB": 32, "gpus": 1},
            "localStorage": "none",
        }
    )
    assert not off.local_nvme


def test_nvme_pools_render_raid0_and_speed_the_weights(plans):
    import base64

    by_name = {r["name"]: r for r in plans["prod"].resources}
    assert by_name["karpenter-gpu-large-nodeclass"]["inputs"]["spec"]["instanceStorePolicy"] == "RAID0"
    assert "instanceStorePolicy" not in by_name["karpenter-cpu-nodeclass"]["inputs"]["spec"]
    user_data = base64.b64decode(by_name["gpu-lt"]["inputs"]["userData"]).decode()
    assert "Content-Type: application/node.eks.aws" in user_data and "strategy: RAID0" in user_data
    assert "userData" not in by_name["system-lt"]["inputs"]
    slow, fast = coldstart.estimate("chat", parsed()), coldstart.estimate("chat", parsed(), coldstart.Options(local_nvme=True))
    weights = {t.name: t for t in fast.terms}["weights"]
    assert weights.seconds == pytest.approx(coldstart.WEIGHTS_GIB["gpu"] / coldstart.NVME_COPY_GIB_PER_S) and "local NVMe" in weights.basis
    assert fast.seconds < slow.seconds


def test_fast_image_pull_goes_into_the_node_configuration_and_the_estimate():
    from ml_platform.components import karpenter, node_pool

    user_data = node_pool.node_config(local_nvme=True, fast_image_pull=True)
    assert "featureGates:\n    FastImagePull: true" in user_data and "strategy: RAID0" in user_data
    assert node_pool.node_config(False, False) is None
    spec = karpenter.node_class_spec("c", "role", "al2023@v20260903", 200, {}, None, local_nvme=True, fast_image_pull=True)
    assert spec["instanceStorePolicy"] == "RAID0" and "FastImagePull: true" in spec["userData"] and "localStorage" not in spec["userData"]
    from tests.contract import crd_schemas

    body = {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "gpu"}, "spec": spec}
    assert crd_schemas.errors(body) == []
    plain, fast = coldstart.estimate("chat", parsed()), coldstart.estimate("chat", parsed(), coldstart.Options(fast_pull=True))
    pull = {t.name: t for t in fast.terms}["image pull"]
    assert pull.seconds == pytest.approx(coldstart.IMAGE_GIB["vllm"] / (coldstart.PULL_GIB_PER_S * coldstart.FAST_PULL_SPEEDUP))
    assert "FastImagePull" in pull.basis and fast.seconds < plain.seconds


def test_streaming_replaces_the_copy_with_a_load_at_the_streamers_pace():
    model = parsed(source={"s3Prefix": "chat/", "sizeGiB": 30, "loadFormat": "runai_streamer"})
    start = coldstart.estimate("chat", model, coldstart.Options(stream=True))
    terms = {term.name: term for term in start.terms}
    assert terms["weights"].seconds == 0 and "streamed" in terms["weights"].basis
    assert terms["load"].seconds == pytest.approx(30 / coldstart.STREAM_GIB_PER_S)
    assert start.seconds < coldstart.estimate("chat", parsed(source={"s3Prefix": "chat/", "sizeGiB": 30})).seconds


def test_a_kept_compile_cache_and_enforce_eager_change_the_compile_term():
    warm = {t.name: t for t in coldstart.estimate("chat", parsed(compileCache="modelStore"), coldstart.Options(compile_cache=True)).terms}
    assert warm["compile"].seconds == coldstart.WARM_COMPILE < coldstart.COMPILE["vllm"]
    eager = {t.name: t for t in coldstart.estimate("chat", parsed(args=["--enforce-eager"])).terms}
    assert eager["compile"].seconds == 0 and "--enforce-eager" in eager["compile"].basis


def test_the_command_prints_each_option_turned_the_other_way():
    from ml_platform.infra.offline import stack_files

    cfg = config.parse(stack_files.read_stack("prod").values, "prod")
    start = models.cold_start("chat", cfg.models["chat"], cfg)
    alternatives = dict(start.alternatives)
    # prod's chat: NVMe pools, no FastImagePull, copied weights, no compile cache
    options = coldstart.Options(local_nvme=True)
    model = cfg.models["chat"]
    assert start.seconds == pytest.approx(coldstart.estimate("chat", model, options).seconds)
    assert alternatives == pytest.approx(
        {
            "localStorage none": coldstart.estimate("chat", model, coldstart.Options()).seconds,
            "fastImagePull true": coldstart.estimate("chat", model, coldstart.Options(local_nvme=True, fast_pull=True)).seconds,
            "source.loadFormat runai_streamer": coldstart.estimate("chat", model, coldstart.Options(local_nvme=True, stream=True)).seconds,
            "compileCache modelStore": coldstart.estimate("chat", model, coldstart.Options(local_nvme=True, compile_cache=True)).seconds,
            "every option above that speeds it": coldstart.estimate("chat", model, coldstart.Options(True, True, True, True)).seconds,
        }
    )
    text = coldstart.render([start], {})
    assert f"with compileCache modelStore: {alternatives['compileCache modelStore']:.0f} s (-" in text
    fraud = dict(models.cold_start("fraud", cfg.models["fraud"], cfg).alternatives)
    assert set(fraud) == {"fastImagePull true"}, "a CPU model on gp3 pools has no vLLM options and no NVMe to turn on"


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"runtime": "triton", "source": {"s3Prefix": "t/", "loadFormat": "runai_streamer"}}, "source.loadFormat", "runtime vllm"),
        ({"source": {"hubId": "org/m", "loadFormat": "runai_streamer"}}, "source.loadFormat", "s3Prefix"),
        ({"source": {"s3Prefix": "c/", "loadFormat": "runai_streamer"}, "args": ["--load-format=safetensors"]}, "args", "remove it"),
        (
            {"source": {"s3Prefix": "c/", "loadFormat": "runai_streamer"}, "resources": {"cpu": "4", "memory": "12Gi"}},
            "resources.memory",
            "16Gi",
        ),
        ({"runtime": "triton", "compileCache": "modelStore"}, "compileCache", "triton model has none"),
        ({"compileCache": "modelStore", "args": ["--enforce-eager"]}, "compileCache", "nothing to cache"),
        ({"source": {"s3Prefix": "c/", "loadFormat": "safetensors"}}, "loadFormat", "auto"),
        ({"compileCache": "hostPath"}, "compileCache", "modelStore"),
    ],
)
def test_cold_start_options_that_cannot_work_are_config_errors(change, key, message):
    with pytest.raises(Exception, match=message) as caught:
        config.ModelConfig.model_validate({**GPU_MODEL, **change})
    assert key in str(caught.value)


def test_a_bad_transfer_client_is_a_config_error():
    with pytest.raises(Exception, match="crt"):
        config.ServingConfig.model_validate({"loaderTransferClient": "fast"})


def test_the_probe_budget_covers_a_compile_cache_miss():
    from ml_platform.infra.offline import stack_files

    cfg = config.parse(stack_files.read_stack("staging").values, "staging")
    chat = cfg.models["chat"]
    start = models.cold_start("chat", chat, cfg)
    warm = coldstart.estimate("chat", chat, coldstart.Options(stream=True, compile_cache=True))
    cold = coldstart.estimate("chat", chat, coldstart.Options(stream=True))
    assert start.server_seconds == pytest.approx(warm.server_seconds) and warm.server_seconds < cold.server_seconds
    # the first replica after a new image or flag compiles cold: the budget is the cold start's, not the warm one's
    assert start.probe_budget == cold.probe_budget > warm.probe_budget
    assert models.model_spec("chat", chat, cfg, "r", "b").startup_seconds == cold.probe_budget
    assert f"{cold.server_seconds:.0f} s when the compile cache misses" in coldstart.render([start], {})


def test_gpu_nodes_pull_images_in_parallel_whatever_the_amis_default():
    import yaml

    from ml_platform.components import node_pool

    def node_config_of(user_data: str) -> dict:
        part = user_data.split("Content-Type: application/node.eks.aws\n\n", 1)[1].split("\n--MLPLATFORM--", 1)[0]
        return yaml.safe_load(part)

    config_ = node_config_of(node_pool.node_config(local_nvme=False, fast_image_pull=False, gpu=True))
    assert config_["apiVersion"] == "node.eks.aws/v1alpha1" and config_["kind"] == "NodeConfig"
    assert config_["spec"] == {"kubelet": {"config": {"serializeImagePulls": False}}}
    both = node_config_of(node_pool.node_config(local_nvme=True, fast_image_pull=True, gpu=True))["spec"]
    assert both["kubelet"]["config"]["serializeImagePulls"] is False and both["instance"]["localStorage"]["strategy"] == "RAID0"
    assert both["featureGates"] == {"FastImagePull": True}
    assert node_pool.node_config(False, False, gpu=False) is None, "CPU nodes keep the AMI's user data untouched"


def test_every_gpu_pool_of_the_plans_says_parallel_pulls(plans):
    import base64

    seen = {True: 0, False: 0}
    for stack, plan in plans.items():
        for r in plan.resources:
            if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate":
                text = base64.b64decode(r["inputs"].get("userData", "")).decode()
            elif r["type"] == "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass":
                text = r["inputs"]["spec"].get("userData", "")
            else:
                continue
            gpu = r["name"].startswith("gpu") or "-gpu" in r["name"]
            seen[gpu] += 1
            assert ("serializeImagePulls: false" in text) == gpu, (stack, r["name"])
    assert seen[True] >= 4 and seen[False] >= 4, seen


def test_a_hub_models_download_is_in_the_probes_budget():
    hub = parsed(source={"hubId": "meta-llama/Llama-3.1-70B-Instruct", "sizeGiB": 140})
    start = coldstart.estimate("big", hub, coldstart.Options(local_nvme=True))
    weights = {t.name: t for t in start.terms}["weights"]
    # the server downloads it after the probe starts, at the gp3 pace at best (NVMe or not)
    assert weights.server and weights.seconds == pytest.approx(140 / coldstart.COPY_GIB_PER_S)
    assert start.server_seconds >= weights.seconds and start.probe_budget >= weights.seconds * coldstart.MARGIN
    copied = coldstart.estimate("big", parsed(source={"s3Prefix": "big/", "sizeGiB": 140}))
    assert not {t.name: t for t in copied.terms}["weights"].server, "an init container's copy is before the probe starts"


def test_pulumi_waits_for_the_whole_cold_start(plans):
    from ml_platform.infra.offline import stack_files

    cfg = config.parse(stack_files.read_stack("staging").values, "staging")
    start = models.cold_start("chat", cfg.models["chat"], cfg)
    spec = models.model_spec("chat", cfg.models["chat"], cfg, "r", "b")
    assert spec.rollout_seconds == start.rollout_budget == math.ceil(start.worst_seconds * coldstart.MARGIN)
    assert start.worst_seconds > start.seconds, "a compile-cache miss is the worst case"
    (deployment,) = [r for r in plans["staging"].resources if r["name"] == "model-chat-deployment"]
    wait = math.ceil(max(spec.rollout_seconds, spec.startup_seconds) / 60) + 20
    assert deployment["customTimeouts"] == {"create": f"{wait}m", "update": f"{wait}m"}
    big = parsed(source={"s3Prefix": "big/", "sizeGiB": 400}, gpus=4)
    big_start = coldstart.estimate("big", big)
    assert big_start.rollout_budget > big_start.probe_budget * 2, "the copy, the pull and the node are not in the probe's budget"


def test_the_plan_warns_of_unsized_weights_and_a_short_startup_budget():
    from ml_platform.infra.offline import stack_files

    raw = dict(stack_files.read_stack("dev").values)
    models_config = json.loads(raw["ml-platform:models"])
    del models_config["fraud"]["source"]["sizeGiB"]
    models_config["chat"]["startupSeconds"] = 120
    raw["ml-platform:models"] = json.dumps(models_config)
    warnings = models.start_warnings(config.parse(raw, "dev"))
    assert any(w.startswith("models.fraud.source.sizeGiB is not set: 2 GiB is assumed") for w in warnings)
    assert any(w.startswith("models.chat.startupSeconds 120 is below the server's estimated start") for w in warnings)
    assert models.start_warnings(config.parse(stack_files.read_stack("dev").values, "dev")) == [], "the committed stacks are sized"


def test_raid0_needs_families_that_all_have_nvme():
    with pytest.raises(Exception, match="localStorage raid0 needs instanceFamilies"):
        config.KarpenterPoolConfig.model_validate(
            {
                "kind": "karpenter",
                "instanceCategories": ["c", "m"],
                "capacityTypes": ["on-demand"],
                "limits": {"cpu": 64, "memoryGiB": 256},
                "localStorage": "raid0",
            }
        )


def test_the_compile_cache_key_follows_the_image_and_the_flags():
    cfg = config.parse(raw_config(**minimal_sections()), "t")
    model = parsed(compileCache="modelStore")
    uri = models.model_spec("chat", model, cfg, "r", "b").compile_cache_uri
    assert uri.startswith("s3://b/compile-cache/chat/chat/") and uri == models.model_spec("chat", model, cfg, "r", "b").compile_cache_uri
    other_flags = models.model_spec("chat", parsed(compileCache="modelStore", args=["--max-model-len", "4096"]), cfg, "r", "b")
    other_image = models.model_spec(
        "chat", parsed(compileCache="modelStore", image={"repository": "docker.io/vllm/vllm-openai", "tag": "v0.32.0"}), cfg, "r", "b"
    )
    assert len({uri, other_flags.compile_cache_uri, other_image.compile_cache_uri}) == 3
    preview = models.model_spec("chat", model, cfg, "r", "b", shared_namespace="pr-7")
    assert preview.compile_cache_prefix.startswith("compile-cache/pr-7/chat/"), "a preview never writes the base's cache"


def test_coldstart_refuses_what_the_plan_refuses(tmp_path, capsys):
    import shutil
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    document = yaml.safe_load((root / "Pulumi.dev.yaml").read_text())
    document["config"]["ml-platform:models"]["chat"]["gpus"] = 3
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    assert cli.main(["coldstart", "--stack", "dev", "--project-dir", str(tmp_path)]) == 2
    assert "models.chat.gpus" in capsys.readouterr().err


def test_streaming_asked_for_in_args_is_a_config_error():
    with pytest.raises(Exception, match=r"stream with source\.loadFormat runai_streamer"):
        config.ModelConfig.model_validate({**GPU_MODEL, "args": ["--load-format", "runai_streamer"]})
    config.ModelConfig.model_validate({**GPU_MODEL, "args": ["--load-format", "safetensors"]})  # another format is the user's


def test_fast_image_pull_on_nodes_too_small_for_it_is_a_config_error():
    from ml_platform.infra.offline import stack_files

    raw = dict(stack_files.read_stack("staging").values)
    pools_config = json.loads(raw["ml-platform:nodePools"])
    pools_config["small"] = {"instanceTypes": ["m6i.large"], "minSize": 1, "maxSize": 2, "fastImagePull": True}
    raw["ml-platform:nodePools"] = json.dumps(pools_config)
    (problem,) = [p for p in models.placement_problems(config.parse(raw, "staging")) if p[0] == "nodePools.small.fastImagePull"]
    assert "m6i.large (2 vCPUs, 8 GiB)" in problem[1]
    pools_config["small"]["instanceTypes"] = ["m6i.xlarge"]
    raw["ml-platform:nodePools"] = json.dumps(pools_config)
    assert not [p for p in models.placement_problems(config.parse(raw, "staging")) if p[0].endswith("fastImagePull")]
