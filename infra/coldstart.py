"""How long a new replica of a model takes from a pending pod to serving, term by term, from documented figures:
the cold-start estimate `python -m infra coldstart` prints, and the default of a model's `startupSeconds`. That is
the startup probe's budget, which starts with the server container, after the node, the image pull and the weights'
init container: the server's own terms (load, compile, initialisation) with half again as margin, rounded up to
30 s and at least MIN_BUDGET, so a slow load does not get the pod killed.

Terms (seconds), for a replica that needs a new node (the worst case autoscaling meets):
- node launch: Karpenter's launch to a Ready node, "about 30-40s" on standard AMIs (a maintainer,
  aws/karpenter-provider-aws#6165); a GPU node loads the NVIDIA driver and starts the device plugin before it
  advertises GPUs, so 2 minutes are assumed for GPU nodes and 1 for CPU nodes (NODE_LAUNCH);
- image pull: the image's compressed size (`image.sizeGiB`, default by runtime, IMAGE_GIB) over the pull rate,
  download and unpack (PULL_GIB_PER_S: "standard pulls of 15-20 GB can take 4-6 minutes per instance", AWS
  Machine Learning blog on SOCI indexes for DLCs, about 65 MB/s);
- weights: their size (`source.sizeGiB`, default WEIGHTS_GIB) over the copy rate into an emptyDir: on the gp3
  root volume its baseline 125 MiB/s bounds it whatever the client (Amazon EBS user guide, "gp3 volumes";
  COPY_GIB_PER_S); on local NVMe the AWS CLI does (NVME_COPY_GIB_PER_S, measured for its classic client; its crt
  client, `serving.loaderTransferClient`, is faster but has no published figure, so none is claimed); a hub
  model downloads at the gp3 rate at best. With
  `source.loadFormat: runai_streamer` nothing is copied: the server streams the weights during load;
- load: the weights read into GPU or host memory (LOAD_GIB_PER_S: 16 GB in 33 s in the breakdown below), or
  streamed from S3 by the Run:ai Model Streamer (STREAM_GIB_PER_S);
- compile and CUDA-graph capture: vLLM only, about 100 s per replica without a kept cache (COMPILE), WARM_COMPILE
  with `compileCache: modelStore` once a first replica has saved it; none with `--enforce-eager`;
- initialisation: the rest of the server's start (INIT).
The published breakdown these come from (issue #16's reference; Tensorfuse, "Reducing GPU cold start time when
using vLLM", 2025-09-01): Llama-3.1-8B on one L40S, 294 s from start to serving (download 61 s, load 33 s, dynamo
10 s, compile 42 s, CUDA-graph capture 54 s, engine start and imports 94 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ml_platform.infra import config
from ml_platform.infra.config.models import ENFORCE_EAGER

NODE_LAUNCH = {"gpu": 120.0, "cpu": 60.0}
"""Assumptions above Karpenter's 30-40 s to a Ready node (see the module's notes): a GPU node also loads the
driver and starts the device plugin before it advertises GPUs."""
IMAGE_GIB = {"vllm": 10.0, "triton": 12.0, "custom": 2.0}
"""Assumed compressed image sizes when `image.sizeGiB` is not given (vLLM's and Triton's CUDA images are ten
GiB or more; set the real size, which `docker manifest inspect` or ECR's console shows)."""
WEIGHTS_GIB = {"gpu": 20.0, "cpu": 2.0}
"""Assumed weights' size when `source.sizeGiB` is not given (and, for a registry model, not known from its lock)."""
PULL_GIB_PER_S = 65e6 / 2**30
COPY_GIB_PER_S = 125 / 1024
FAST_PULL_SPEEDUP = 1.14
"""FastImagePull (SOCI parallel pull and unpack): "14-50% faster" on 20 GB+ images (awslabs/soci-snapshotter,
commit f1fcd05); the low end, since smaller images gain less."""
NVME_COPY_GIB_PER_S = 375e6 / 2**30
"""On local NVMe the disk no longer bounds the copy; the AWS CLI's classic client does: about 375 MB/s (the s5cmd
README's measurement of aws-cli against S3)."""
STREAM_GIB_PER_S = 15e9 / 8.45 / 2**30
"""The Run:ai Model Streamer from S3 into GPU memory: Llama 3 8B (15 GB) in 8.45 s at concurrency 16 on a
g5.12xlarge, S3 in the same region (run-ai/runai-model-streamer docs/src/benchmarks.md, the whitepaper the NVIDIA
blog "Reducing cold start latency for LLM inference with NVIDIA Run:ai Model Streamer" quotes; 4.88 s at 32).
The pods set that concurrency (RUNAI_STREAMER_CONCURRENCY). A node whose network is slower than that
g5.12xlarge's 40 Gb/s streams slower."""
LOAD_GIB_PER_S = 16e9 / 33 / 2**30
"""16 GB of Llama-3.1-8B loaded in 33 s (the breakdown below)."""
COMPILE = {"vllm": 10.0 + 42.0 + 54.0}
"""Dynamo 10 s, compile 42 s, CUDA-graph capture 54 s (the breakdown below)."""
WARM_COMPILE = 30.0
"""vLLM's start with its compile cache kept: dynamo 10 s, compile 13 s (loaded from the cache), CUDA-graph capture
7 s (graphs are captured at every start), against 10 + 42 + 54 s cold (the breakdown below, "persisted" row)."""
INIT = {"vllm": 94.0, "triton": 30.0, "custom": 10.0}
"""vLLM: engine start and imports, 94 s (the breakdown below). Triton and custom: assumptions, not measurements
(no published breakdown); set startupSeconds when yours is known."""
MARGIN = 1.5
MIN_BUDGET = 120
"""The startup probe's budget is never below the old default for CPU models: a custom server's start is a guess."""


@dataclass(frozen=True)
class Options:
    """What speeds a cold start, as configured for one model (or as an alternative to compare with)."""

    local_nvme: bool = False
    """Every pool that can run the model keeps container storage on local NVMe (the pools' localStorage)."""
    fast_pull: bool = False
    """Every such pool runs FastImagePull (the pools' fastImagePull)."""
    stream: bool = False
    """vLLM streams the weights from S3 (source.loadFormat runai_streamer): no copy."""
    compile_cache: bool = False
    """vLLM's compile cache is kept in the model store (compileCache modelStore), warm after a first replica."""


@dataclass(frozen=True)
class Term:
    name: str
    seconds: float
    basis: str
    """How the figure is made (sizes and rates), for the printout."""
    server: bool = False
    """Part of the server container's own start, which the startup probe's budget must cover (load, compile,
    initialisation; and a hub model's download, which the server makes itself)."""


@dataclass(frozen=True)
class ColdStart:
    model: str
    terms: tuple[Term, ...]
    alternatives: tuple[tuple[str, float], ...] = ()
    """(an option turned the other way, the total it gives), for the printout's before and after."""
    cold_cache_server_seconds: float = 0.0
    """The server's start when a kept compile cache misses (the first replica after a new image, model or flag):
    the probe's budget must cover it too."""

    @property
    def seconds(self) -> float:
        return sum(term.seconds for term in self.terms)

    @property
    def server_seconds(self) -> float:
        """The server container's start (its server terms), which the startup probe's budget must cover."""
        return sum(term.seconds for term in self.terms if term.server)

    @property
    def server_terms(self) -> list[str]:
        return [term.name for term in self.terms if term.server]

    @property
    def worst_seconds(self) -> float:
        """The whole cold start when a kept compile cache misses (the first replica after a change)."""
        return self.seconds - self.server_seconds + max(self.server_seconds, self.cold_cache_server_seconds)

    @property
    def rollout_budget(self) -> int:
        """Seconds a new replica may take from a pending pod to ready: the worst whole cold start and half again."""
        return math.ceil(self.worst_seconds * MARGIN)

    @property
    def probe_budget(self) -> int:
        """The startup probe's budget this estimate gives: the server's start (with a cold compile cache, the
        slower) and half again, rounded up to 30 s."""
        server = max(self.server_seconds, self.cold_cache_server_seconds)
        return max(MIN_BUDGET, int(math.ceil(server * MARGIN / 30) * 30))


MONITORING_IMAGE_GIB = 0.3
"""Compressed size of platform/model-monitoring: its pinned packages (Evidently, pandas, scipy, aiohttp) packed
with gzip came to 264 MiB (images/model-monitoring/requirements.txt, 2026-11-30), plus python:3.11-slim."""


def weights_gib(model: config.ModelConfig) -> float:
    """The weights' size in GiB: `source.sizeGiB`, or the default for GPU or CPU models."""
    return model.source.sizeGiB or WEIGHTS_GIB["gpu" if model.gpus else "cpu"]


def image_gib(model: config.ModelConfig) -> float:
    """The image's compressed size in GiB: `image.sizeGiB`, or the default for its runtime."""
    return model.image.sizeGiB or IMAGE_GIB[model.runtime]


def estimate(name: str, model: config.ModelConfig, options: Options = Options()) -> ColdStart:
    """The cold start of one model with `options`, term by term (seconds, each with its basis)."""
    kind = "gpu" if model.gpus else "cpu"
    image = image_gib(model)
    weights = weights_gib(model)
    image_from = "image.sizeGiB" if model.image.sizeGiB else f"default for {model.runtime}"
    weights_from = "source.sizeGiB" if model.source.sizeGiB else f"default for {kind} models"
    pull = PULL_GIB_PER_S * (FAST_PULL_SPEEDUP if options.fast_pull else 1)
    if options.stream:
        copy = Term("weights", 0.0, "none: streamed from S3 during load (source.loadFormat runai_streamer)")
        load = Term(
            "load",
            weights / STREAM_GIB_PER_S,
            f"{weights:g} GiB ({weights_from}) streamed from S3 at {STREAM_GIB_PER_S * 1024:.0f} MiB/s",
            True,
        )
    else:
        if model.source.hubId is not None:
            # The server downloads a hub model itself, after the startup probe has started; at gp3's pace at best.
            copy = Term(
                "weights",
                weights / COPY_GIB_PER_S,
                f"{weights:g} GiB ({weights_from}) from the hub at {COPY_GIB_PER_S * 1024:.0f} MiB/s at best",
                True,
            )
        else:
            rate, bound = (
                (NVME_COPY_GIB_PER_S, "local NVMe, the AWS CLI's pace") if options.local_nvme else (COPY_GIB_PER_S, "gp3 root volume")
            )
            copy = Term("weights", weights / rate, f"{weights:g} GiB ({weights_from}) at {rate * 1024:.0f} MiB/s ({bound})")
        load = Term("load", weights / LOAD_GIB_PER_S, f"{weights:g} GiB at {LOAD_GIB_PER_S * 1024:.0f} MiB/s", True)
    if model.runtime not in COMPILE:
        compile_term = Term("compile", 0.0, "none", True)
    elif ENFORCE_EAGER in model.args:
        compile_term = Term("compile", 0.0, f"none ({ENFORCE_EAGER})", True)
    elif options.compile_cache:
        compile_term = Term("compile", WARM_COMPILE, "from the compile cache in the model store; CUDA graphs captured anew", True)
    else:
        compile_term = Term("compile", COMPILE[model.runtime], "torch.compile, CUDA graphs, per replica", True)
    terms = [
        Term("node launch", NODE_LAUNCH[kind], f"a new {kind.upper()} node to Ready"),
        Term(
            "image pull",
            image / pull,
            f"{image:g} GiB ({image_from}) at {pull * 1024:.0f} MiB/s{' (FastImagePull)' if options.fast_pull else ''}",
        ),
        *(
            # The kubelet pulls each container's image when that container starts: the proxy's comes after the weights.
            [
                Term(
                    "proxy image",
                    MONITORING_IMAGE_GIB / pull,
                    f"{MONITORING_IMAGE_GIB:g} GiB (platform/model-monitoring, the capture proxy)",
                )
            ]
            if model.capture is not None
            else []
        ),
        copy,
        load,
        compile_term,
        Term("initialisation", INIT[model.runtime], f"the rest of a {model.runtime} server's start", True),
    ]
    return ColdStart(name, tuple(terms))


def compare(name: str, model: config.ModelConfig, options: Options, alternatives: dict[str, Options]) -> ColdStart:
    """The estimate with `options`, carrying the totals of `alternatives` ({label: options}) for the printout."""
    start = estimate(name, model, options)
    cold = estimate(name, model, replace(options, compile_cache=False)).server_seconds if options.compile_cache else 0.0
    return replace(
        start,
        alternatives=tuple((label, estimate(name, model, other).seconds) for label, other in alternatives.items()),
        cold_cache_server_seconds=cold,
    )


def render(starts: list[ColdStart], configured: dict[str, int | None]) -> str:
    """The printout: per model, each term with its basis, the total, the startup probe's budget (the configured
    startupSeconds, or the estimate's) against the server's start it must cover, and the total each option
    turned the other way would give."""
    lines = []
    for start in starts:
        budget = configured.get(start.model)
        given = (
            f"{budget} s (startupSeconds)" if budget else f"{start.probe_budget} s (the server's start x {MARGIN:g}, at least {MIN_BUDGET})"
        )
        lines.append(f"{start.model}: {start.seconds:.0f} s from a pending pod to serving")
        lines += [f"  {term.name:<15} {term.seconds:6.0f} s  {term.basis}" for term in start.terms]
        cold = f", {start.cold_cache_server_seconds:.0f} s when the compile cache misses" if start.cold_cache_server_seconds else ""
        lines.append(
            f"  startup probe budget {given}, for the server's own {start.server_seconds:.0f} s ({', '.join(start.server_terms)}{cold})"
        )
        if budget and budget < max(start.server_seconds, start.cold_cache_server_seconds):
            lines.append(f"  warning: startupSeconds {budget} is below the server's estimated start: a cold replica may be killed first")
        for label, seconds in start.alternatives:
            lines.append(f"  with {label}: {seconds:.0f} s ({seconds - start.seconds:+.0f} s)")
    return "\n".join(lines)
