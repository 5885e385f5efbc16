"""`models`: the served models, their images, sources, replicas, autoscaling, exposure and objectives."""

from __future__ import annotations

import difflib
import re
import zoneinfo
from datetime import datetime
from typing import Annotated, Literal

from croniter import croniter
from pydantic import Field, ValidationInfo, field_validator, model_validator

from ml_platform.components.model_service import capture
from ml_platform.components.model_service.pods import STREAMER_MIN_MIB, STREAMER_SHARE_OF_MEMORY, streamer_buffer_mib
from ml_platform.infra.config.base import _check_cpu, _check_memory, _fail, _fail_all, _Model, check_cron, check_store_prefix
from ml_platform.infra.config.model_monitoring import CAPTURE_PREFIX, DRIFT_PREFIX, Capture, Drift, Feedback, MetricDrift, duration_seconds

_DIGEST = r"^sha256:[0-9a-f]{64}$"
# Upstream images a model may run straight from (anything else comes from the platform's registry).
ALLOWED_UPSTREAM_IMAGES = ("docker.io/vllm/vllm-openai", "nvcr.io/nvidia/tritonserver", "public.ecr.aws/aws-cli/aws-cli")
RUNTIME_PORTS = {"vllm": 8000, "triton": 8000}
ENFORCE_EAGER = "--enforce-eager"
# Prefixes of the model store the platform writes (model_registry.artifacts.STORE_PREFIX,
# model_store.COMPILE_CACHE_PREFIX, sagemaker_mlflow.ARTIFACT_PREFIX, the capture proxies' and the monitor jobs');
# kept in step by a test.
PLATFORM_PREFIXES = ("registry/", "compile-cache/", "mlflow/", CAPTURE_PREFIX, DRIFT_PREFIX)
# The capture proxy's ports in a model's pod (components/model_service/capture.py, which sets them on the proxy).
CAPTURE_PORTS = (capture.PORT, capture.METRICS_PORT)
LOAD_FORMAT = "--load-format"


class ImageRef(_Model):
    repository: str
    """A repository of the platform's registry (`serving/vllm`) or an allowed upstream (`docker.io/vllm/vllm-openai`)."""
    tag: str | None = None
    """Image tag (never `latest`)."""
    digest: Annotated[str, Field(pattern=_DIGEST)] | None = None
    """Image digest `sha256:...`; required in prod, so what runs is exactly what was tested."""
    sizeGiB: Annotated[float, Field(gt=0, le=200)] | None = None
    """Compressed size of the image in GiB, for the cold-start estimate (infra/coldstart.py); default by runtime."""

    @model_validator(mode="after")
    def _pinned(self) -> ImageRef:
        if self.tag is None and self.digest is None:
            raise _fail("set tag or digest")
        if self.tag == "latest":
            raise _fail("'latest' floats; pin a version tag or a digest")
        return self

    @property
    def upstream(self) -> bool:
        return "." in self.repository.split("/", 1)[0]


# MLflow refuses aliases that look like versions (v1) or are `latest`; names here are also an S3 prefix's part.
_REGISTERED_MODEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_ALIAS = r"^[A-Za-z0-9_-]{1,255}$"


class RegistryRef(_Model):
    model: Annotated[str, Field(pattern=_REGISTERED_MODEL)]
    """The registered model's name in the registry (letters, digits, `_ . -`: it also names the store prefix
    `registry/<model>/<version>/`)."""
    alias: Annotated[str, Field(pattern=_ALIAS)]
    """The alias the stack serves (e.g. `champion`); `models lock` resolves it to a version."""

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        # MLflow reserves `latest` and version-like aliases (v1, V2): mlflow/utils/validation.py _validate_model_alias_name.
        if value.lower() == "latest" or re.fullmatch(r"[vV][0-9]+", value):
            raise _fail(f"'{value}' is reserved by MLflow (latest, v<number>); name the alias, e.g. champion")
        return value


class ModelSource(_Model):
    s3Prefix: str | None = None
    """Prefix in the model store holding the weights (or Triton's model repository), ending in `/`."""
    registry: RegistryRef | None = None
    """A registered model and alias (needs `modelRegistry`): served from `registry/<model>/<version>/` in the
    stack's store, the version taken from the lock file `models.<stack>.lock.yaml` (`python -m infra models lock`)."""
    hubId: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")] | None = None
    """Hugging Face model id, downloaded at start (not in prod: pods must not depend on an outside hub)."""
    hubTokenSecret: str | None = None
    """Kubernetes Secret (key `token`) in the model's namespace holding the hub token, mounted as a file."""
    sizeGiB: Annotated[float, Field(gt=0, le=4000)] | None = None
    """Size of the weights (or model repository) in GiB: the pod's ephemeral-storage request and the weights
    volume's size limit are made from it, and the cold-start estimate; default 20 for GPU models, 2 for CPU."""
    loadFormat: Literal["auto", "runai_streamer"] = "auto"
    """vLLM's load format for `s3Prefix` weights. `auto`: an init container copies them to the node, and vLLM's
    default loader reads them from there. `runai_streamer`: no copy; vLLM streams the safetensors from S3 into GPU
    memory with the Run:ai Model Streamer (`--load-format runai_streamer`; in the official vLLM images, else
    `pip install vllm[runai]`), authenticating with the pod's Pod Identity credentials through boto3."""

    @field_validator("s3Prefix")
    @classmethod
    def _own_prefix(cls, value: str | None) -> str | None:
        if value is not None:
            check_store_prefix(value)
        # The platform's own prefixes: a model reading one would read every locked version, compile cache or
        # registry artifact in the store.
        if value is not None and value.startswith(PLATFORM_PREFIXES):
            raise _fail(
                f"'{value}' is under one of the platform's prefixes ({', '.join(PLATFORM_PREFIXES)}); registry models use source.registry"
            )
        return value

    @model_validator(mode="after")
    def _one(self) -> ModelSource:
        if [self.s3Prefix, self.registry, self.hubId].count(None) != 2:
            raise _fail("set exactly one of s3Prefix, registry or hubId")
        if self.hubTokenSecret is not None and self.hubId is None:
            raise _fail("hubTokenSecret goes with hubId")
        return self


class Replicas(_Model):
    min: Annotated[int, Field(ge=0, le=100)] = 1
    """Fewest replicas; 0 (dev only) needs autoscaling.activeHours."""
    max: Annotated[int, Field(ge=1, le=100)] = 1
    """Most replicas."""

    @model_validator(mode="after")
    def _order(self) -> Replicas:
        if self.min > self.max:
            raise _fail(f"min {self.min} is larger than max {self.max}")
        return self


class ActiveHours(_Model):
    start: str
    """Cron expression (minute hour day month weekday) when the model scales up from zero, e.g. `0 8 * * 1-5`."""
    end: str
    """Cron expression when it may go back to zero, e.g. `0 20 * * 1-5`."""
    timezone: str = "UTC"
    """IANA time zone of the two expressions."""

    # KEDA's cron scaler checks these only when it builds the scaler (kedacore/keda pkg/scalers/cron_scaler.go at
    # v2.20.2: a five-field robfig/cron parser, time.LoadLocation, start != end): a mistake there leaves a
    # scale-to-zero model asleep. croniter (a maintained cron parser) and the IANA database check them here.
    @field_validator("start", "end")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value, "KEDA's cron parser", "the model would never wake")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            hint = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
            raise _fail(f"'{value}' is not an IANA time zone" + (f"; did you mean '{hint[0]}'?" if hint else "")) from None
        return value

    @model_validator(mode="after")
    def _window(self) -> ActiveHours:
        base = datetime(2026, 1, 1)
        start, end = croniter(self.start, base), croniter(self.end, base)
        if [start.get_next(datetime) for _ in range(8)] == [end.get_next(datetime) for _ in range(8)]:
            raise _fail("start and end are the same moment: the window would never open (KEDA refuses it)")
        return self


class Autoscaling(_Model):
    target: Annotated[float, Field(gt=0)] | None = None
    """Per-replica target: waiting requests (vLLM, default 5), queue time in ms (Triton, default 50), CPU percent (CPU
    models, default 70), or the value of `query` (custom GPU models)."""
    query: str | None = None
    """PromQL giving a custom GPU model's load (required for those; the runtime presets know their own)."""
    activeHours: ActiveHours | None = None
    """With replicas.min 0: when the model runs at least one replica. Queue metrics vanish with the last pod, so
    nothing else could wake a model at zero."""


class Exposure(_Model):
    type: Literal["cluster", "alb"] = "cluster"
    """Cluster-internal Service only, or also an ALB through the AWS Load Balancer Controller."""
    scheme: Literal["internal", "internet-facing"] = "internal"
    """ALB scheme."""
    certificateArn: str | None = None
    """ACM certificate for HTTPS; required for an internet-facing ALB."""

    @model_validator(mode="after")
    def _alb(self) -> Exposure:
        if self.type == "cluster" and (self.scheme != "internal" or self.certificateArn):
            raise _fail("scheme and certificateArn apply to type 'alb'")
        if self.scheme == "internet-facing" and not self.certificateArn:
            raise _fail("an internet-facing ALB needs certificateArn (HTTPS only)")
        return self


class Resources(_Model):
    cpu: str
    """CPU per replica (request and limit), e.g. `4` or `500m`."""
    memory: str
    """Memory per replica (request and limit), with a unit, e.g. `24Gi`."""

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        return _check_cpu(value)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        return _check_memory(value)


class Slo(_Model):
    p99LatencySeconds: Annotated[float, Field(gt=0)] = 10.0
    """99th percentile request latency objective."""
    errorRatio: Annotated[float, Field(gt=0, lt=1)] = 0.01
    """Largest acceptable share of failed requests."""
    queueBacklog: Annotated[int, Field(ge=1)] = 20
    """Waiting requests (all replicas) that count as a backlog when sustained."""


class ModelConfig(_Model):
    runtime: Literal["vllm", "triton", "custom"]
    """Serving runtime preset."""
    image: ImageRef
    """Serving image."""
    source: ModelSource
    """Where the weights (or Triton's model repository) come from."""
    gpus: Annotated[int, Field(ge=0, le=16)] = 0
    """GPUs per replica (0 for CPU); vLLM's tensor parallelism follows it."""
    replicas: Replicas = Replicas()
    autoscaling: Autoscaling = Autoscaling()
    startupSeconds: Annotated[int, Field(ge=30, le=7200)] | None = None
    """The startup probe's budget: the longest the server container may take to become ready. Default: the
    server's estimated start (load, compile with a cold cache, initialisation, a hub model's download; `python -m
    infra coldstart`) with half again as margin, at least 120 s."""
    exposure: Exposure = Exposure()
    resources: Resources
    port: Annotated[int, Field(ge=1024, le=65535)] | None = None
    """Serving port (custom runtime; presets use 8000)."""
    healthPath: str | None = None
    """Health endpoint (custom runtime)."""
    metricsPath: str = "/metrics"
    """Prometheus metrics path (custom runtime)."""
    args: list[str] = []
    """Extra arguments for the server."""
    allowedNamespaces: list[str] = []
    """Namespaces whose pods may call the model (the monitoring namespace always may scrape it)."""
    slo: Slo = Slo()
    compileCache: Literal["none", "modelStore"] = "none"
    """vLLM's torch.compile cache. `modelStore`: restored from the stack's model store (`compile-cache/<namespace>/
    <model>/`) before the server starts, and saved there while it runs, so replicas and restarts after the first
    skip most of the compile; vLLM keys each entry by its version, the model and its config, the GPU and the
    torch build, so a changed image or model misses and compiles anew. `none`: every replica compiles."""
    metricDrift: MetricDrift | None = None
    """vLLM models: compare the last hour's prompt and generation lengths and finish reasons with the same hour a
    baseline ago, from vLLM's own metrics (no payloads captured)."""
    capture: Capture | None = None
    """Sample request/response pairs into the model store through a proxy in the model's pod."""
    drift: Drift | None = None
    """A CronJob comparing the captured inputs with reference data (needs capture)."""
    feedback: Feedback | None = None
    """Join captured predictions with labels that arrive later; publish realised quality (needs drift: it runs in
    the same job, on the same window and minSamples)."""

    @model_validator(mode="after")
    def _runtime(self, info: ValidationInfo) -> ModelConfig:
        """Every cross-field problem of the model at once, at its own key path, the environment's included:
        `info.context["environment"]` is the stack's, so prod's rules (digests, no hub, no scale to zero) come
        in the same pass as the rest, not after the first is fixed."""
        problems: list[tuple[str, str]] = []
        if self.runtime == "triton" and self.source.hubId is not None:
            problems.append(("source", "a triton model needs a model repository: source.s3Prefix or source.registry"))
        if self.runtime == "custom" and (self.port is None or self.healthPath is None):
            problems.append(("", "a custom model needs port and healthPath"))
        if self.runtime != "custom" and (self.port is not None or self.healthPath is not None):
            problems.append(("", f"port and healthPath are fixed by the {self.runtime} preset; remove them"))
        if self.runtime == "custom" and self.gpus > 0 and self.autoscaling.query is None:
            problems.append(("autoscaling.query", "a custom GPU model scales on a queue metric: set autoscaling.query"))
        if self.source.loadFormat == "runai_streamer" and (self.runtime != "vllm" or self.source.hubId is not None):
            problems.append(
                (
                    "source.loadFormat",
                    "runai_streamer is vLLM's loader for weights in the model store: runtime vllm with s3Prefix or registry",
                )
            )
        streams = self.source.loadFormat == "runai_streamer" and self.runtime == "vllm" and self.source.hubId is None
        if streams and streamer_buffer_mib(self.resources.memory, self.gpus) < STREAMER_MIN_MIB:
            least = STREAMER_MIN_MIB * STREAMER_SHARE_OF_MEMORY * max(self.gpus, 1) // 1024
            problems.append(
                (
                    "resources.memory",
                    "each GPU's streamer buffers its share of a quarter of the memory limit, which must hold the largest tensor: "
                    f"runai_streamer with {max(self.gpus, 1)} GPU(s) needs at least {least}Gi",
                )
            )
        if self.compileCache != "none" and self.runtime != "vllm":
            problems.append(("compileCache", f"the compile cache is vLLM's; a {self.runtime} model has none: use none"))
        if self.compileCache != "none" and ENFORCE_EAGER in self.args:
            problems.append(("compileCache", f"{ENFORCE_EAGER} turns torch.compile off, so there is nothing to cache: use none"))
        formats = [
            arg for index, arg in enumerate(self.args) if arg.startswith(LOAD_FORMAT) or self.args[index - 1 : index] == [LOAD_FORMAT]
        ]
        if self.source.loadFormat == "runai_streamer" and formats:
            # Given twice, vLLM takes the last: the args' format would silently replace the streamer.
            problems.append(("args", f"{LOAD_FORMAT} comes from source.loadFormat runai_streamer; remove it from args"))
        elif any("runai_streamer" in arg for arg in formats):
            # Streaming asked for in args: the weights would be copied and streamed, with no cap on the streamer's memory.
            problems.append(("args", f"stream with source.loadFormat runai_streamer, not {LOAD_FORMAT} in args"))
        problems += self._monitoring_problems()
        prod = (info.context or {}).get("environment") == "prod"
        if prod:
            if self.image.digest is None:
                problems.append(("image.digest", "prod runs images by digest"))
            if self.source.hubId is not None:
                problems.append(("source", "prod loads weights from the model store, not an outside hub"))
        if self.replicas.min == 0:
            if prod:
                problems.append(("replicas.min", "prod does not scale to zero: a cold start takes minutes"))
            elif self.gpus == 0:
                problems.append(("replicas.min", "CPU models scale on CPU with an HPA, which cannot reach zero; use replicas.min 1"))
            elif self.autoscaling.activeHours is None:
                problems.append(
                    (
                        "autoscaling.activeHours",
                        "replicas.min 0 needs autoscaling.activeHours: with no pod left, nothing reports load to wake it",
                    )
                )
        if problems:
            raise _fail_all(problems)
        return self

    def _monitoring_problems(self) -> list[tuple[str, str]]:
        """What metric drift, capture, drift and feedback need of the model itself."""
        problems = []
        if self.metricDrift is not None and self.runtime != "vllm":
            problems.append(("metricDrift", f"compares vLLM's token histograms; a {self.runtime} model has none: use capture and drift"))
        if self.capture is not None and self.runtime == "triton":
            # The proxy fronts HTTP; Triton's gRPC port would bypass it, and its binary tensors are no JSON records.
            problems.append(("capture", "the capture proxy fronts HTTP/JSON; Triton's gRPC and binary tensors would bypass it"))
        if self.capture is not None and self.port in CAPTURE_PORTS:
            problems.append(
                ("port", f"{self.port} is the capture proxy's (it takes {' and '.join(map(str, CAPTURE_PORTS))}): move the server")
            )
        if self.drift is not None and self.capture is None:
            problems.append(("drift", "compares captured requests: set capture too"))
        if self.feedback is not None and self.drift is None:
            problems.append(("feedback", "runs in the drift job (its schedule, window and minSamples): set drift too"))
        for key, window in (
            ("drift.window", self.drift and self.drift.window),
            ("feedback.window", self.feedback and self.feedback.window),
        ):
            if window and self.capture is not None and duration_seconds(window) > self.capture.retentionDays * 86400:
                problems.append((key, f"{window} reaches past capture.retentionDays ({self.capture.retentionDays}d)"))
            if window and duration_seconds(window) < 3600:
                problems.append((key, f"'{window}' is shorter than 1h: captures are partitioned by hour"))
        for key, prefix in (
            ("drift.reference.s3Prefix", self.drift.reference.s3Prefix if self.drift else None),
            ("feedback.labelsPrefix", self.feedback.labelsPrefix if self.feedback else None),
        ):
            if prefix is not None and prefix.startswith(PLATFORM_PREFIXES):
                problems.append((key, f"'{prefix}' is under one of the platform's prefixes ({', '.join(PLATFORM_PREFIXES)})"))
        return problems

    @property
    def serving_port(self) -> int:
        return self.port if self.port is not None else RUNTIME_PORTS[self.runtime]
