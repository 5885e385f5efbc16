"""The capture proxy: a sidecar in front of a model server that forwards all traffic untouched and copies a sample
of POST request/response pairs, as JSON records, into the model store (S3) for the monitor job.

Run as `capture-proxy` (or `python -m model_monitoring.capture`); configured by environment only (see `load_config`).
Traffic on CAPTURE_PORT, Prometheus metrics and /healthz on CAPTURE_METRICS_PORT. SIGTERM: stop accepting, let
in-flight requests finish (up to 25 s), upload what is buffered, exit 0. Configuration errors exit 2.

Proxying comes first: bodies are streamed both ways as they arrive, byte for byte (compressed request bodies too:
only the captured copy is decoded), an unsampled exchange is never buffered, and a capture problem (size, format,
full queue, no memory to spare, S3 down) only ever costs the record, never the response.

Environment (required ones have no default):
    CAPTURE_UPSTREAM            required  http(s)://host[:port] of the model server, e.g. http://127.0.0.1:8000
    CAPTURE_SAMPLE_RATE         required  0 < r <= 1, the share of POST requests captured
    CAPTURE_BUCKET              required  the model store bucket
    CAPTURE_PREFIX              required  key prefix ending in "/", e.g. capture/fraud/3/
    CAPTURE_MODEL               required  written in each record
    CAPTURE_MODEL_VERSION       required  written in each record
    CAPTURE_PORT                8090      traffic port (0: any free port)
    CAPTURE_METRICS_PORT        9103      /metrics and /healthz (0: any free port)
    CAPTURE_MAX_PAYLOAD_BYTES   1048576   request and response each (as sent, and again once decoded); a larger
                                          pair is proxied whole and dropped (too_large)
    CAPTURE_REDACT              []        JSON array of JSONPath expressions (jsonpath-ng) removed from both bodies
    CAPTURE_STORE_QUERY         false     "true": a record's path keeps the query string; "false": path only (the
                                          query is not redacted, and may carry keys: ?api_key=...)
    CAPTURE_FLUSH_SECONDS       60        upload at least this often while records wait
    CAPTURE_FLUSH_RECORDS       1000      upload when this many wait; must be <= CAPTURE_QUEUE_RECORDS (an upload
                                          also starts when more than half of either queue bound is waiting)
    CAPTURE_QUEUE_RECORDS       10000     records waiting or being uploaded; beyond: dropped (queue_full)
    CAPTURE_QUEUE_BYTES         67108864  bytes of those records' JSON lines; beyond: dropped (queue_full)
    CAPTURE_INFLIGHT_BYTES      67108864  bytes held by copies of sampled requests/responses still being proxied;
                                          beyond: the pair is not copied, or its copy abandoned (queue_full)
    CAPTURE_SEED                unset     integer seed of the sampler (tests)
    POD_NAME                    hostname  part of each object key
    AWS_REGION, AWS_ENDPOINT_URL_S3, credentials: boto3's own.

Memory. What capture holds is bounded by the settings above; proxying itself holds only aiohttp's flow-controlled
buffers. Worst case (to size the container's memory limit):

    ~70 MB                                  the interpreter and libraries, idle (measured 64 MB RSS)
  + concurrent requests * ~0.75 MiB         proxying alone, aiohttp's read/write buffers on both sides (less for
                                            small bodies; measured: 200 concurrent 0.9 MB POSTs, nothing sampled,
                                            peak RSS 213 MB)
  + CAPTURE_QUEUE_BYTES                     queued JSON lines (those being uploaded included)
  + CAPTURE_QUEUE_BYTES                     the gzip body of the object being uploaded: at most about its lines,
                                            typically a fifth or less (JSON lines compress well)
  + CAPTURE_INFLIGHT_BYTES                  copies of sampled bodies still streaming
  + 30 * CAPTURE_MAX_PAYLOAD_BYTES          building one record (one at a time, request and response parsed one
                                            after the other): the joined copies, the decoded body, the parsed
                                            document (Python objects: ~10x the JSON for feature records, 28x
                                            measured for documents of tiny objects like [{},{},...]), the line

With the defaults and 200 concurrent large requests: 70 + 150 + 64 + 64 + 64 + 30 = ~440 MiB at the very worst
(~390 MiB with a realistic gzip body); measured at sample rate 1 with 200 concurrent 0.9 MB POSTs: 328 MB peak
RSS. Past the bounds, pairs are dropped (queue_full); the client's bytes are never affected.

A sampled pair has exactly one outcome: queued (then uploaded or dropped upload_failed) or dropped with a reason, so
with no sampled request in flight capture_sampled_total == capture_uploaded_records_total + sum(capture_dropped_total)
+ capture_queued_records.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import boto3
from aiohttp import web
from botocore.config import Config as BotoConfig
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from model_monitoring.capture_payload import CopyBudget, NotCaptured, PairCopy, decode_content, parse_json, parse_sse
from model_monitoring.capture_store import CaptureMetrics, CaptureStore, to_json
from model_monitoring.redact import RedactError, Redactor

log = logging.getLogger("model_monitoring.capture")

REQUEST_ID = "X-Request-Id"
#: How long SIGTERM waits for in-flight requests before cancelling them.
DRAIN_SECONDS = 25.0
# RFC 9110 section 7.6.1 hop-by-hop headers (plus the non-standard Proxy-Connection). Expect is answered by this
# proxy itself (aiohttp sends the 100 Continue); passing it on would make the upstream wait for a second one.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
_NOT_FORWARDED_REQUEST = _HOP_BY_HOP | {"expect"}


# ---------------------------------------------------------------------------------------------------- configuration
class ConfigError(ValueError):
    """A missing or invalid environment variable; `variable` names it and the message says what is allowed."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable} {message}")
        self.variable = variable


@dataclass(frozen=True)
class Config:
    """The proxy's settings, as `load_config` reads them (defaults live there, in one place); units are bytes,
    seconds and records."""

    upstream: str  # scheme://host[:port], no trailing slash
    sample_rate: float  # 0 < rate <= 1
    bucket: str
    prefix: str  # ends with "/"
    model: str
    model_version: str
    port: int  # 0: any free port
    metrics_port: int
    max_payload_bytes: int  # each of request and response
    redactor: Redactor
    flush_seconds: float
    flush_records: int  # <= queue_records
    queue_records: int
    queue_bytes: int
    inflight_bytes: int
    store_query: bool  # False: a record's path without the query string
    seed: int | None  # None: seeded from the OS
    pod_name: str


def _required(env: Mapping[str, str], name: str, example: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(name, f"is required (e.g. {example})")
    return value


def _number(env: Mapping[str, str], name: str, default: float, kind: type, low: float, high: float | None = None):
    raw = env.get(name, "").strip()
    if not raw:
        return kind(default)
    allowed = f"{'an integer' if kind is int else 'a number'} >= {low}" + (f" and <= {high}" if high else "")
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(name, f"must be {allowed}, got {raw!r}") from None
    if value != value or value < low or (high is not None and value > high):  # value != value: NaN
        raise ConfigError(name, f"must be {allowed}, got {raw!r}")
    return value


def load_config(env: Mapping[str, str]) -> Config:
    """Read and validate the CAPTURE_* variables (and POD_NAME) from `env`, typically `os.environ`.

    Required: CAPTURE_UPSTREAM (http(s)://host[:port]), CAPTURE_SAMPLE_RATE (0 < r <= 1), CAPTURE_BUCKET,
    CAPTURE_PREFIX (ending in "/"), CAPTURE_MODEL, CAPTURE_MODEL_VERSION. Optional, with defaults: CAPTURE_PORT 8090
    and CAPTURE_METRICS_PORT 9103 (0 = any free port, logged at start), CAPTURE_MAX_PAYLOAD_BYTES 1048576,
    CAPTURE_REDACT `[]` (JSON array of jsonpath-ng expressions), CAPTURE_STORE_QUERY false (true|false),
    CAPTURE_FLUSH_SECONDS 60, CAPTURE_FLUSH_RECORDS 1000 (at most CAPTURE_QUEUE_RECORDS), CAPTURE_QUEUE_RECORDS
    10000, CAPTURE_QUEUE_BYTES 67108864, CAPTURE_INFLIGHT_BYTES 67108864, CAPTURE_SEED unset (integer), POD_NAME the
    host name. Raises ConfigError naming the first bad variable.
    """
    upstream = _required(env, "CAPTURE_UPSTREAM", "http://127.0.0.1:8000").rstrip("/")
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ConfigError("CAPTURE_UPSTREAM", f"must be http(s)://host[:port] with no path, got {upstream!r}")
    try:
        parts.port  # noqa: B018 - urlsplit only validates the port when asked
    except ValueError:
        raise ConfigError("CAPTURE_UPSTREAM", f"has an invalid port: {upstream!r}") from None

    raw_rate = _required(env, "CAPTURE_SAMPLE_RATE", "0.1")
    try:
        rate = float(raw_rate)
    except ValueError:
        rate = float("nan")
    if not 0 < rate <= 1:  # also false for NaN
        raise ConfigError("CAPTURE_SAMPLE_RATE", f"must be a number with 0 < rate <= 1, got {raw_rate!r}")

    prefix = _required(env, "CAPTURE_PREFIX", "capture/fraud/3/")
    if not prefix.endswith("/"):
        raise ConfigError("CAPTURE_PREFIX", f"must end with '/' (e.g. capture/fraud/3/), got {prefix!r}")

    try:
        redactor = Redactor.from_json(env.get("CAPTURE_REDACT", "").strip() or "[]")
    except RedactError as exc:
        raise ConfigError("CAPTURE_REDACT", str(exc)) from None

    raw_seed = env.get("CAPTURE_SEED", "").strip()
    try:
        seed = int(raw_seed) if raw_seed else None
    except ValueError:
        raise ConfigError("CAPTURE_SEED", f"must be an integer, got {raw_seed!r}") from None

    raw_query = env.get("CAPTURE_STORE_QUERY", "").strip().lower() or "false"
    if raw_query not in ("true", "false"):
        raise ConfigError("CAPTURE_STORE_QUERY", f"must be true or false, got {env['CAPTURE_STORE_QUERY']!r}")

    flush_records = _number(env, "CAPTURE_FLUSH_RECORDS", 1000, int, 1)
    queue_records = _number(env, "CAPTURE_QUEUE_RECORDS", 10_000, int, 1)
    if flush_records > queue_records:
        # The count would never be reached: the queue refuses records first, and they would wait for the clock.
        raise ConfigError(
            "CAPTURE_FLUSH_RECORDS",
            f"({flush_records}) must not be more than CAPTURE_QUEUE_RECORDS ({queue_records}): lower CAPTURE_FLUSH_RECORDS"
            " or raise CAPTURE_QUEUE_RECORDS",
        )

    pod = env.get("POD_NAME", "").strip() or socket.gethostname()
    if "/" in pod:
        raise ConfigError("POD_NAME", f"must not contain '/' (it is part of each object key), got {pod!r}")

    return Config(
        upstream=upstream,
        sample_rate=rate,
        bucket=_required(env, "CAPTURE_BUCKET", "ml-platform-dev-models"),
        prefix=prefix,
        model=_required(env, "CAPTURE_MODEL", "fraud"),
        model_version=_required(env, "CAPTURE_MODEL_VERSION", "3"),
        port=_number(env, "CAPTURE_PORT", 8090, int, 0, 65535),
        metrics_port=_number(env, "CAPTURE_METRICS_PORT", 9103, int, 0, 65535),
        max_payload_bytes=_number(env, "CAPTURE_MAX_PAYLOAD_BYTES", 1_048_576, int, 1),
        redactor=redactor,
        flush_seconds=_number(env, "CAPTURE_FLUSH_SECONDS", 60.0, float, 0.001),
        flush_records=flush_records,
        queue_records=queue_records,
        queue_bytes=_number(env, "CAPTURE_QUEUE_BYTES", 67_108_864, int, 1),
        inflight_bytes=_number(env, "CAPTURE_INFLIGHT_BYTES", 67_108_864, int, 1),
        store_query=raw_query == "true",
        seed=seed,
        pod_name=pod,
    )


def _forwardable(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    # Connection may name further per-hop headers (RFC 9110 section 7.6.1).
    named = {t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",")}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop and k.lower() not in named)


def _iso_millis(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------------------ proxy
class CaptureProxy:
    """The request handler: forwards to `config.upstream` over `session` and hands sampled pairs to `store`.

    `clock` (unix seconds) stamps records; tests replace it to cross hour boundaries. `budget` holds the copies of
    all sampled pairs in progress to CAPTURE_INFLIGHT_BYTES together."""

    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        store: CaptureStore,
        metrics: CaptureMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._session = session
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._rng = random.Random(config.seed)
        self.budget = CopyBudget(config.inflight_bytes)
        metrics.inflight_bytes.set_function(lambda: self.budget.used)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Proxy one request; never raises for upstream or capture problems (502 when the upstream is down).

        A sampled pair gets exactly one outcome: queued, or counted in capture_dropped_total. A pair whose exchange
        did not complete (upstream unreachable or broken off, client gone, cancelled at shutdown) is dropped with
        reason upstream_error, unless it had already failed for a reason of its own (too_large, queue_full)."""
        started, at = time.perf_counter(), self._clock()
        self._metrics.requests.inc()
        pair = self._select(request)
        if pair is None:
            return await self._exchange(request, None, started, at)
        try:
            return await self._exchange(request, pair, started, at)
        finally:
            pair.release()
            if not pair.settled:
                self._drop(pair.reason or "upstream_error", request, "the exchange did not complete")

    def _select(self, request: web.Request) -> PairCopy | None:
        """The sampling decision, made before forwarding so that an unsampled exchange is never copied: None, or the
        pair's copies. A pair is sampled but never copied (so dropped) when its declared request body is over the
        payload limit (too_large) or would not fit in the in-flight budget, or that budget is already used up
        (queue_full)."""
        if request.method != "POST" or self._rng.random() >= self._config.sample_rate:
            return None
        self._metrics.sampled.inc()
        declared = request.content_length or 0  # None when chunked: only the copy itself can tell
        reason = None
        if declared > self._config.max_payload_bytes:
            reason = "too_large"
        elif self.budget.used >= self.budget.limit or self.budget.used + declared > self.budget.limit:
            reason = "queue_full"
        return PairCopy(self._config.max_payload_bytes, self.budget, reason)

    async def _exchange(self, request: web.Request, pair: PairCopy | None, started: float, at: float) -> web.StreamResponse:
        headers = _forwardable(request.headers, _NOT_FORWARDED_REQUEST)
        body = self._stream_body(request, pair) if request.body_exists else None
        url = URL(self._config.upstream + request.raw_path, encoded=True)  # raw: the path's encoding is untouched
        try:
            upstream = await self._session.request(request.method, url, headers=headers, data=body, allow_redirects=False)
        except (aiohttp.ClientError, OSError) as exc:
            self._metrics.upstream_errors.inc()
            log.warning("upstream %s unavailable for %s %s: %r", self._config.upstream, request.method, url.path, exc)
            return web.Response(status=502, text="capture proxy: upstream unavailable\n")

        async with upstream:
            request_id = request.headers.get(REQUEST_ID) or upstream.headers.get(REQUEST_ID) or uuid.uuid4().hex
            out_headers = _forwardable(upstream.headers, _HOP_BY_HOP)
            if REQUEST_ID not in out_headers:
                out_headers[REQUEST_ID] = request_id
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out_headers)
            try:
                await response.prepare(request)
            except ConnectionError:
                return response  # the client left
            while True:
                try:
                    chunk = await upstream.content.readany()
                except (aiohttp.ClientError, OSError) as exc:
                    # Headers are out; aborting is the only way to tell the client the body is incomplete
                    # (a clean end would make a truncated chunked body look whole).
                    self._metrics.upstream_errors.inc()
                    log.warning("upstream broke off %s %s: %r", request.method, url.path, exc)
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                if not chunk:
                    break
                if pair is not None:
                    pair.add_response(chunk)
                try:
                    await response.write(chunk)
                except ConnectionError:
                    return response  # the client left; no record of a half-delivered response
            try:
                await response.write_eof()
            except ConnectionError:
                return response

        if pair is not None:
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            self._capture(request, upstream, request_id, at, latency_ms, pair)
        return response

    async def _stream_body(self, request: web.Request, pair: PairCopy | None) -> AsyncIterator[bytes]:
        # The bytes as the client sent them: the server does not decode Content-Encoding (see start_proxy).
        while chunk := await request.content.readany():
            if pair is not None:
                pair.add_request(chunk)
            yield chunk

    def _stored_path(self, request: web.Request) -> str:
        return request.raw_path if self._config.store_query else request.raw_path.split("?", 1)[0]

    def _drop(self, reason: str, request: web.Request, detail: object) -> None:
        self._metrics.dropped.labels(reason=reason).inc()
        log.debug("not capturing %s %s (%s): %s", request.method, self._stored_path(request), reason, detail)

    def _capture(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        request_id: str,
        at: float,
        latency_ms: float,
        pair: PairCopy,
    ) -> None:
        """Queue the record of a completed exchange, or count why not. Synchronous (no other record is built at the
        same time), and request and response are parsed one after the other: see the memory note at the top."""
        pair.settled = True
        redactor, limit = self._config.redactor, self._config.max_payload_bytes
        try:
            if pair.reason is not None:
                raise NotCaptured(pair.reason, "the copy was not kept")
            if self._store.full:
                raise NotCaptured("queue_full", "the queue is full")
            request_raw, response_raw = pair.request_data(), pair.response_data()
            pair.release()  # the joined copies replace the parts
            request_doc = to_json(redactor.redact(parse_json(decode_content(request_raw, request.headers.get("Content-Encoding"), limit))))
            del request_raw
            raw = decode_content(response_raw, upstream.headers.get("Content-Encoding"), limit)
            del response_raw
            if upstream.content_type == "text/event-stream":
                response_doc = to_json([redactor.redact(e) for e in parse_sse(raw)])
            else:
                response_doc = to_json(redactor.redact(parse_json(raw)))
            del raw
        except NotCaptured as exc:
            self._drop(exc.reason, request, exc)
            return
        except Exception:
            # Only a jsonpath-ng surprise can get here (expressions are vetted at start). The pair must not be
            # stored unredacted, and the contract has no reason for this: it counts as a body we could not make
            # into a record.
            self._metrics.dropped.labels(reason="not_json").inc()
            log.exception("not capturing %s %s: building the record failed", request.method, self._stored_path(request))
            return
        head = to_json(
            {
                "requestId": request_id,
                "time": _iso_millis(at),
                "model": self._config.model,
                "version": self._config.model_version,
                "method": request.method,
                "path": self._stored_path(request),
                "status": upstream.status,
                "latencyMs": latency_ms,
            }
        )
        # The record as one JSON line, the documents spliced in as already serialised (same key order as a dict).
        line = b"".join((head[:-1], b',"request":', request_doc, b',"response":', response_doc, b"}\n"))
        del request_doc, response_doc
        if not self._store.add(line, at):
            self._drop("queue_full", request, f"a {len(line)}-byte record does not fit in the queue")


# ----------------------------------------------------------------------------------------------- running the proxy
@dataclass
class RunningProxy:
    """A started proxy: `port` and `metrics_port` are the bound ports; `stop()` drains and flushes."""

    port: int
    metrics_port: int
    metrics: CaptureMetrics
    store: CaptureStore
    _stop: Callable[[], Awaitable[None]]

    async def stop(self) -> None:
        """Stop accepting, wait for in-flight requests (up to start_proxy's `drain_seconds`, then cancel them),
        upload everything buffered, close the metrics server. Call once."""
        await self._stop()


def s3_client_from_env() -> Any:
    """A boto3 S3 client configured by the environment: AWS_REGION (else boto3's AWS_DEFAULT_REGION), the endpoint
    from AWS_ENDPOINT_URL_S3 and credentials as boto3 finds them. botocore's own retries are off because the store
    retries each object itself (3 tries, each failed one counted)."""
    return boto3.client(
        "s3",
        # botocore reads only AWS_DEFAULT_REGION; AWS_REGION is what the contract (and EKS's webhooks) set.
        region_name=os.environ.get("AWS_REGION") or None,
        config=BotoConfig(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


async def start_proxy(
    config: Config,
    *,
    host: str = "0.0.0.0",
    s3_client: Any = None,
    clock: Callable[[], float] = time.time,
    retry_delays: Sequence[float] = (1.0, 3.0),
    drain_seconds: float = DRAIN_SECONDS,
) -> RunningProxy:
    """Start the proxy on `host`:`config.port` and the metrics server on `host`:`config.metrics_port` in the
    running event loop (port 0 picks a free one; see RunningProxy.port). `s3_client` defaults to
    `s3_client_from_env()`; `clock` stamps records (unix seconds); `retry_delays` are the two sleeps (seconds)
    between upload tries; `drain_seconds` bounds the wait for in-flight requests at stop. Raises OSError when a
    port cannot be bound."""
    metrics = CaptureMetrics()
    store = CaptureStore(
        s3_client=s3_client if s3_client is not None else await asyncio.to_thread(s3_client_from_env),
        bucket=config.bucket,
        prefix=config.prefix,
        pod=config.pod_name,
        metrics=metrics,
        flush_seconds=config.flush_seconds,
        flush_records=config.flush_records,
        queue_records=config.queue_records,
        queue_bytes=config.queue_bytes,
        retry_delays=retry_delays,
    )
    session = aiohttp.ClientSession(
        # No total/read timeout: streams (SSE) may last as long as the model takes; only connecting is bounded.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        # limit=0: the clients' concurrency, not a pool size, bounds it. Idle connections are dropped after 4 s,
        # before common servers' own keep-alive timeouts (uvicorn: 5 s) close them under a request being sent: a
        # POST that meets such a closed connection is not retried (not idempotent) and would become a 502.
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4),
        auto_decompress=False,  # compressed bodies pass through as sent
        cookie_jar=aiohttp.DummyCookieJar(),  # one shared session must never carry one client's cookies to another
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),  # send only what came in
        trust_env=False,  # HTTP(S)_PROXY in the pod is for egress, not for the model server next door
    )
    proxy = CaptureProxy(config, session, store, metrics, clock)
    serving = True

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    # auto_decompress=False: aiohttp's server would otherwise decode a compressed request body (gzip, deflate; br
    # and zstd fail with 400 without their decoders) and the proxy would forward the decoded bytes under the
    # client's Content-Encoding and Content-Length. The upstream gets the bytes as sent; only the copy is decoded.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=drain_seconds, auto_decompress=False)

    async def metrics_page(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(status=200 if serving else 503, text="ok\n" if serving else "stopping\n")

    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", metrics_page)
    metrics_app.router.add_get("/healthz", healthz)
    metrics_runner = web.AppRunner(metrics_app, access_log=None, handle_signals=False)

    await runner.setup()
    await metrics_runner.setup()
    try:
        site = web.TCPSite(runner, host, config.port)
        await site.start()
        metrics_site = web.TCPSite(metrics_runner, host, config.metrics_port)
        await metrics_site.start()
    except BaseException:
        await runner.cleanup()
        await metrics_runner.cleanup()
        await session.close()
        raise
    store.start()

    async def stop() -> None:
        nonlocal serving
        serving = False
        await runner.cleanup()  # closes the listener, waits for handlers, cancels stragglers
        await store.close()
        await session.close()
        await metrics_runner.cleanup()

    return RunningProxy(site.port, metrics_site.port, metrics, store, stop)


async def serve(config: Config) -> None:
    """Run the proxy until SIGTERM or SIGINT, then drain and flush (see RunningProxy.stop)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    running = await start_proxy(config)
    log.info(
        "capture proxy listening on port %d (metrics on port %d), upstream %s, sample rate %s, s3://%s/%s",
        running.port,
        running.metrics_port,
        config.upstream,
        config.sample_rate,
        config.bucket,
        config.prefix,
    )
    await stopping.wait()
    log.info("stopping: draining in-flight requests (up to %.0f s), then flushing", DRAIN_SECONDS)
    await running.stop()
    log.info(
        "stopped: %d records uploaded, %d dropped for upload failures",
        running.metrics.value("capture_uploaded_records_total"),
        running.metrics.value("capture_dropped_total", reason="upload_failed"),
    )


def main() -> None:
    """Console entry point `capture-proxy`: exits 0 after a clean stop, 2 on a configuration error (one line on
    stderr naming the variable), 1 when a port cannot be bound."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"capture-proxy: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        print(f"capture-proxy: cannot start: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
