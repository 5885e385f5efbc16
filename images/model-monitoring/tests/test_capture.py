"""The capture proxy against real parts: a stub model server (aiohttp on 127.0.0.1), the proxy in-process (and once
as a real subprocess stopped by SIGTERM), moto's S3 server. Nothing here waits a fixed time for something to
happen: ordering is proven with events, records are read after the proxy's stop() has flushed them, and what happens
in the background (an upload, a disconnect noticed) is polled for with a bound (`until`). (The one sleep, in the
SIGTERM test, gives a proxy that does not drain the time to exit early; a correct one passes however slow the
machine.)"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from model_monitoring import capture
from model_monitoring.capture import ConfigError, load_config, start_proxy
from model_monitoring.capture_payload import CopyBudget, NotCaptured, PairCopy, decode_content, parse_sse
from model_monitoring.capture_store import DROP_REASONS, CaptureStore
from model_monitoring.redact import Redactor
from multidict import CIMultiDict
from yarl import URL

PREFIX = "capture/fraud/3/"
KEY = re.compile(r"^capture/fraud/3/dt=(\d{4}-\d{2}-\d{2})/hr=(\d{2})/test-pod-(\d+)-(\d+)\.jsonl\.gz$")
RECORD_FIELDS = {"requestId", "time", "model", "version", "method", "path", "status", "latencyMs", "request", "response"}
HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection"}
WAIT = 10  # seconds: only a bound for things that should happen at once; passing tests never approach it

SSE_FIRST = b': keep-alive\n\nevent: message\ndata: {"token": "Hel", "user": {"email": "a@b.c", "id": 1}}\n\n'
SSE_REST = b'id: 2\ndata: {"token": "lo",\ndata:  "user": {"email": "d@e.f", "id": 2}}\r\n\r\ndata: [DONE]\n\n'
GZIP_DOC = {"predictions": [0.25, 0.75], "note": "compressed " * 50}


# ------------------------------------------------------------------------------------------------------ the model
class StubModel:
    """A model server: echoes, streams SSE (holding the rest until `release`), compresses, breaks, stalls, holds
    requests until `gate_size` have arrived, streams events until the reader goes away. It never decodes a request
    body: `seen` holds the bytes as they arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[tuple[str, str]], bytes]] = []  # method, raw path, headers, body
        self.release = asyncio.Event()
        self.entered_slow = asyncio.Event()
        self.first_request_chunk = asyncio.Event()
        self.gate_size, self.gate_arrived, self.gate_open = 0, 0, asyncio.Event()
        self.url = ""
        app = web.Application()
        for path, handler in [
            ("/echo{tail:.*}", self.echo),
            ("/predict", self.predict),
            ("/sse", self.sse),
            ("/gzip", self.gzipped),
            ("/binary", self.binary),
            ("/text", self.text),
            ("/big", self.big),
            ("/broken", self.broken),
            ("/slow", self.slow),
            ("/stream-in", self.stream_in),
            ("/gate", self.gate),
            ("/drip", self.drip),
        ]:
            app.router.add_route("*", path, handler)
        self.runner = web.AppRunner(app, access_log=None, auto_decompress=False)

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site.port}"

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((request.method, request.raw_path, list(request.headers.items()), body))
        echoed = ("Content-Type", "Content-Encoding")  # a compressed body goes back compressed, labelled as such
        return web.Response(body=body, headers={k: request.headers[k] for k in echoed if k in request.headers})

    async def predict(self, request: web.Request) -> web.Response:
        await request.read()
        headers = CIMultiDict([("X-Model", "fraud"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        headers.add("Connection", "X-Upstream-Hop")  # names a per-hop header the proxy must not pass on
        headers.add("X-Upstream-Hop", "1")
        if "X-Server-Id" in request.headers:
            headers["X-Request-Id"] = request.headers["X-Server-Id"]
        body = {"predictions": [1, 0], "explanation": {"customer": {"ssn": "123-45-6789", "score": 3}}}
        return web.json_response(body, headers=headers)

    async def sse(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(SSE_FIRST)
        await self.release.wait()
        await response.write(SSE_REST)
        await response.write_eof()
        return response

    async def gzipped(self, request: web.Request) -> web.Response:
        await request.read()
        body = gzip.compress(json.dumps(GZIP_DOC).encode())
        return web.Response(body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

    async def binary(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=bytes(range(256)) * 1200, content_type="application/octet-stream")

    async def text(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="not json at all")

    async def big(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"blob": "x" * int(request.query.get("n", "5000"))})

    async def broken(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"partial": ')
        assert request.transport is not None
        request.transport.abort()
        return response

    async def slow(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.entered_slow.set()
        await self.release.wait()
        return web.json_response({"slow": body})

    async def stream_in(self, request: web.Request) -> web.Response:
        first = await request.content.readany()
        self.first_request_chunk.set()
        rest = await request.content.read()
        return web.json_response({"received": (first + rest).decode()})

    async def gate(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.gate_arrived += 1
        if self.gate_arrived >= self.gate_size:
            self.gate_open.set()
        await self.gate_open.wait()  # every request body is in (and through the proxy) before any response
        return web.Response(body=body, content_type="application/json")

    async def drip(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:  # until the proxy hangs up
                await response.write(b'data: {"tick": 1}\n\n')
                await asyncio.sleep(0.005)  # pacing only
        except ConnectionError:
            return response


@pytest.fixture
async def stub() -> AsyncIterator[StubModel]:
    model = StubModel()
    await model.start()
    yield model
    model.release.set()  # a failed test may leave a handler waiting
    await model.runner.cleanup()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on, held (bound, never listening) for the test so no one else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # auto_decompress off: the tests compare the bytes on the wire. The timeout only turns a proxy that stalls a
    # response (a broken build) into a failure instead of a hang.
    async with aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=3 * WAIT)) as session:
        yield session


def proxy_env(upstream: str, bucket: str, **overrides: str) -> dict[str, str]:
    env = {
        "CAPTURE_UPSTREAM": upstream,
        "CAPTURE_SAMPLE_RATE": "1",
        "CAPTURE_BUCKET": bucket,
        "CAPTURE_PREFIX": PREFIX,
        "CAPTURE_MODEL": "fraud",
        "CAPTURE_MODEL_VERSION": "3",
        "CAPTURE_PORT": "0",
        "CAPTURE_METRICS_PORT": "0",
        "POD_NAME": "test-pod",
        "CAPTURE_SEED": "7",
    }
    env.update(overrides)
    return env


@pytest.fixture
async def start(stub: StubModel, moto_s3, s3_bucket: str) -> AsyncIterator[Callable[..., Any]]:
    """start(**env overrides, s3_client=..., clock=...) -> RunningProxy with `.url`; stopped at teardown if needed."""
    running: list[Any] = []

    async def _start(*, s3_client: Any = None, clock: Callable[[], float] | None = None, **env: str) -> Any:
        config = load_config(proxy_env(stub.url, s3_bucket, **env))
        extra = {"clock": clock} if clock else {}
        proxy = await start_proxy(config, host="127.0.0.1", s3_client=s3_client or moto_s3.client, retry_delays=(0.01, 0.01), **extra)
        proxy.url = f"http://127.0.0.1:{proxy.port}"
        proxy.stopped = False
        running.append(proxy)
        return proxy

    yield _start
    for proxy in running:
        if not proxy.stopped:
            await proxy.stop()


async def stop(proxy: Any) -> None:
    proxy.stopped = True
    await proxy.stop()


def records(moto_s3, bucket: str) -> dict[str, list[dict[str, Any]]]:
    return {key: [json.loads(line) for line in gzip.decompress(body).splitlines()] for key, body in moto_s3.objects(bucket, PREFIX).items()}


def unix_ms(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def all_records(moto_s3, bucket: str) -> list[dict[str, Any]]:
    return [r for rs in records(moto_s3, bucket).values() for r in rs]


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll `predicate` until it holds; fail after WAIT seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"still not true after {WAIT} s: {what}") from None


def outcomes(proxy: Any) -> float:
    """Sampled pairs accounted for: uploaded + dropped (every reason) + still queued."""
    m = proxy.metrics
    dropped = sum(m.value("capture_dropped_total", reason=r) for r in DROP_REASONS)
    return m.value("capture_uploaded_records_total") + dropped + m.value("capture_queued_records")


class GatedS3:
    """An S3 client whose put_object waits (in the store's worker thread) until `open` is set, so records stay
    queued as long as a test needs. Opened at teardown at the latest (see the gated_s3 fixture)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.open = threading.Event()

    def put_object(self, **kwargs: Any) -> Any:
        self.open.wait(3 * WAIT)
        return self._client.put_object(**kwargs)


@pytest.fixture
def gated_s3(start, moto_s3) -> Iterator[GatedS3]:
    # Depends on `start` so that its teardown (which opens the gate) runs before the proxies are stopped.
    gated = GatedS3(moto_s3.client)
    yield gated
    gated.open.set()


# ------------------------------------------------------------------------------------------------- passing through
async def test_json_exchange_passes_untouched_and_is_recorded(stub, start, client, moto_s3, s3_bucket):
    proxy = await start()
    path = "/echo/a%2Fb?q=1&q=2&x=%20y"  # encoded on purpose: the upstream must see these exact bytes
    body = b'{"instances": [{"amount": 12.5, "country": "NL"}],  "spacing": "kept"}'
    headers = CIMultiDict([("Content-Type", "application/json"), ("X-Multi", "1"), ("X-Multi", "2"), ("Authorization", "Bearer t")])
    bare = ("User-Agent", "Accept", "Accept-Encoding")  # not sent, so the proxy must not add them either
    async with client.post(URL(proxy.url + path, encoded=True), data=body, headers=headers, skip_auto_headers=bare) as resp:
        assert resp.status == 200
        assert await resp.read() == body
        sent = list(resp.request_info.headers.items())
        request_id = resp.headers["X-Request-Id"]

    method, raw_path, seen_headers, seen_body = stub.seen[-1]
    assert (method, raw_path, seen_body) == ("POST", path, body)
    # Exactly the client's headers (order, repeats and all): nothing added (User-Agent, Accept-Encoding, ...).
    assert [(k.lower(), v) for k, v in seen_headers] == [(k.lower(), v) for k, v in sent if k.lower() not in HOP_BY_HOP]
    assert not {"user-agent", "accept", "accept-encoding"} & {k.lower() for k, _ in seen_headers}
    assert "X-Request-Id" not in dict(seen_headers)  # the generated id goes to the client, not the model
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)

    await stop(proxy)
    stored = records(moto_s3, s3_bucket)
    assert len(stored) == 1
    ((key, [record]),) = stored.items()
    match = KEY.match(key)
    assert match, key
    assert set(record) == RECORD_FIELDS
    assert record["requestId"] == request_id
    assert (record["model"], record["version"], record["method"], record["status"]) == ("fraud", "3", "POST", 200)
    assert record["path"] == "/echo/a%2Fb"  # no query string unless CAPTURE_STORE_QUERY=true
    assert record["request"] == record["response"] == json.loads(body)
    assert isinstance(record["latencyMs"], float) and record["latencyMs"] > 0
    when = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert (match[1], match[2]) == (f"{when:%Y-%m-%d}", f"{when:%H}")
    assert int(match[3]) == unix_ms(when)


@pytest.mark.parametrize(
    ("store_query", "stored_path"), [(None, "/echo/v1"), ("false", "/echo/v1"), ("true", "/echo/v1?api_key=s3cret&x=%20y")]
)
async def test_the_query_string_is_stored_only_when_asked(store_query, stored_path, stub, start, client, moto_s3, s3_bucket):
    proxy = await start(**({"CAPTURE_STORE_QUERY": store_query} if store_query else {}))
    path = "/echo/v1?api_key=s3cret&x=%20y"
    async with client.post(URL(proxy.url + path, encoded=True), json={"a": 1}) as resp:
        assert resp.status == 200
    assert stub.seen[-1][1] == path  # the upstream always gets it
    await stop(proxy)
    [record] = all_records(moto_s3, s3_bucket)
    assert record["path"] == stored_path
    if store_query != "true":  # redaction does not cover the query: the secret must appear nowhere in the object
        [body] = moto_s3.objects(s3_bucket, PREFIX).values()
        assert b"s3cret" not in gzip.decompress(body)


async def test_response_headers_match_the_upstream_except_hop_by_hop(stub, start, client):
    proxy = await start()
    async with client.post(stub.url + "/predict", json={}) as direct:
        direct_body = await direct.read()
        direct_headers = [(k, v) for k, v in direct.headers.items() if k.lower() not in ("date", "connection", "x-upstream-hop")]
    async with client.post(proxy.url + "/predict", json={}) as resp:
        assert await resp.read() == direct_body
        proxied = [(k, v) for k, v in resp.headers.items() if k.lower() not in ("date", "x-request-id")]
    assert proxied == direct_headers
    assert ("Set-Cookie", "a=1") in proxied and ("Set-Cookie", "b=2") in proxied


async def test_binary_response_passes_byte_for_byte_and_is_not_json(stub, start, client):
    proxy = await start()
    async with client.post(proxy.url + "/binary", json={"a": 1}) as resp:
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert await resp.read() == bytes(range(256)) * 1200
    await stop(proxy)
    assert proxy.metrics.value("capture_dropped_total", reason="not_json") == 1


async def test_gzip_response_reaches_the_client_compressed_and_is_recorded_decoded(stub, start, client, moto_s3, s3_bucket):
    proxy = await start()
    async with client.post(proxy.url + "/gzip", json={"x": 1}) as resp:
        raw = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b" and json.loads(gzip.decompress(raw)) == GZIP_DOC
    await stop(proxy)
    [record] = all_records(moto_s3, s3_bucket)
    assert record["response"] == GZIP_DOC


# Not a valid brotli stream on purpose: the proxy must not try to decode it (the copy is dropped as not_json).
BR_BODY = b"\x8b\x03\x80" + b'{"brotli": "not really"}' + b"\x03"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compressed_request_bodies_reach_the_upstream_as_sent(encoding, stub, start, client, moto_s3, s3_bucket):
    doc = {"instances": [{"amount": 12.5, "note": "compressed " * 40}]}
    body = {"gzip": gzip.compress(json.dumps(doc).encode()), "deflate": zlib.compress(json.dumps(doc).encode()), "br": BR_BODY}[encoding]
    proxy = await start()
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    async with client.post(proxy.url + "/echo", data=body, headers=headers) as resp:
        assert resp.status == 200
        assert await resp.read() == body  # the stub echoes what it got, still compressed
    _, _, seen_headers, seen_body = stub.seen[-1]
    assert seen_body == body
    seen = CIMultiDict(seen_headers)
    assert (seen["Content-Encoding"], seen["Content-Length"]) == (encoding, str(len(body)))
    await stop(proxy)
    if encoding == "br":  # no decoder for the copy: not captured, still proxied
        assert all_records(moto_s3, s3_bucket) == []
        assert proxy.metrics.value("capture_dropped_total", reason="not_json") == 1
    else:  # the copy is decoded, request and (echoed, equally compressed) response
        [record] = all_records(moto_s3, s3_bucket)
        assert record["request"] == record["response"] == doc


async def test_a_compressed_request_that_decodes_too_large_is_proxied_and_dropped(stub, start, client, moto_s3, s3_bucket):
    body = gzip.compress(json.dumps({"zeros": "0" * 50_000}).encode())
    assert len(body) < 1000
    proxy = await start(CAPTURE_MAX_PAYLOAD_BYTES="5000")
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with client.post(proxy.url + "/echo", data=body, headers=headers) as resp:
        assert await resp.read() == body
    assert stub.seen[-1][3] == body
    await stop(proxy)
    assert proxy.metrics.value("capture_dropped_total", reason="too_large") == 1
    assert all_records(moto_s3, s3_bucket) == []


async def test_streamed_response_reaches_the_client_before_the_upstream_finishes(stub, start, client, moto_s3, s3_bucket):
    proxy = await start(CAPTURE_REDACT='["$.user.email"]')
    async with client.post(proxy.url + "/sse", json={"prompt": "Hello"}) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        # The stub is blocked on `release` after its first event: reading it now proves the proxy forwards as it
        # receives. A buffering proxy would deliver nothing and this would time out.
        try:
            first = await asyncio.wait_for(resp.content.readexactly(len(SSE_FIRST)), WAIT)
        except TimeoutError:
            pytest.fail("the first SSE event did not reach the client while the upstream was still streaming")
        assert first == SSE_FIRST
        assert not stub.release.is_set()
        stub.release.set()
        assert await resp.content.read() == SSE_REST
    await stop(proxy)
    [record] = all_records(moto_s3, s3_bucket)
    assert record["request"] == {"prompt": "Hello"}
    assert record["response"] == [{"token": "Hel", "user": {"id": 1}}, {"token": "lo", "user": {"id": 2}}]


async def test_request_body_streams_to_the_upstream(stub, start, client, moto_s3, s3_bucket):
    proxy = await start()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"text": "first half, '
        # The upstream sets this once it has the first chunk: a proxy that read the whole request before forwarding
        # would never let it, and the wait would time out.
        await asyncio.wait_for(stub.first_request_chunk.wait(), WAIT)
        yield b'second half"}'

    async with client.post(proxy.url + "/stream-in", data=body(), headers={"Content-Type": "application/json"}) as r:
        assert r.status == 200
        assert await r.json() == {"received": '{"text": "first half, second half"}'}
    await stop(proxy)
    [record] = all_records(moto_s3, s3_bucket)
    assert record["request"] == {"text": "first half, second half"}


async def test_expect_100_continue_is_answered_by_the_proxy(stub, start):
    proxy = await start()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    body = b'{"expect": true}'
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: model\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
    )
    await writer.drain()
    # The body goes only after the interim response, as a client that honours Expect does.
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head)[1])
    assert await asyncio.wait_for(reader.readexactly(length), WAIT) == body
    writer.close()
    await writer.wait_closed()
    assert "expect" not in {k.lower() for k, _ in stub.seen[-1][2]}


async def test_upstream_down_gives_502(start, client, closed_port):
    proxy = await start(CAPTURE_UPSTREAM=f"http://127.0.0.1:{closed_port}")
    async with client.post(proxy.url + "/predict", json={}) as resp:
        assert resp.status == 502
    assert proxy.metrics.value("capture_upstream_errors_total") == 1


async def test_upstream_breaking_mid_body_breaks_the_client_response(start, client):
    proxy = await start()
    async with client.post(proxy.url + "/broken", json={}) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):  # not a clean, silently truncated body
            await resp.read()
    assert proxy.metrics.value("capture_upstream_errors_total") == 1


async def test_every_sampled_pair_is_uploaded_dropped_or_queued(stub, start, client, closed_port, moto_s3, s3_bucket):
    proxy = await start(CAPTURE_MAX_PAYLOAD_BYTES="2000", CAPTURE_FLUSH_RECORDS="2", CAPTURE_FLUSH_SECONDS="600")
    for i in range(3):  # recorded: two go up at once (FLUSH_RECORDS), one stays queued
        async with client.post(proxy.url + "/echo", json={"i": i}) as resp:
            assert resp.status == 200
    async with client.post(proxy.url + "/text", json={}) as resp:  # not_json
        assert resp.status == 200
    async with client.post(proxy.url + "/big?n=5000", json={}) as resp:  # too_large
        assert resp.status == 200
    async with client.post(proxy.url + "/broken", json={}) as resp:  # the upstream breaks off mid-body
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    resp = await client.post(proxy.url + "/drip", json={})  # the client leaves mid-stream
    assert await resp.content.readany()
    resp.close()
    await until(lambda: proxy.metrics.value("capture_dropped_total", reason="upstream_error") == 2, "both lost pairs counted")
    await until(lambda: proxy.metrics.value("capture_uploaded_records_total") == 2, "the first two records uploaded")
    assert proxy.metrics.value("capture_queued_records") == 1
    assert proxy.metrics.value("capture_sampled_total") == 7 == outcomes(proxy)
    await stop(proxy)
    assert proxy.metrics.value("capture_uploaded_records_total") == 3
    assert proxy.metrics.value("capture_sampled_total") == 7 == outcomes(proxy)
    assert [proxy.metrics.value("capture_dropped_total", reason=r) for r in DROP_REASONS] == [1, 1, 0, 0, 2]
    assert sorted(r["request"]["i"] for r in all_records(moto_s3, s3_bucket)) == [0, 1, 2]

    down = await start(CAPTURE_UPSTREAM=f"http://127.0.0.1:{closed_port}")  # unreachable: 502
    async with client.post(down.url + "/predict", json={}) as resp:
        assert resp.status == 502
    await stop(down)
    assert down.metrics.value("capture_dropped_total", reason="upstream_error") == 1
    assert down.metrics.value("capture_sampled_total") == 1 == outcomes(down)


# ------------------------------------------------------------------------------------------------------- sampling
def binomial_interval(n: int, p: float, confidence: float) -> tuple[int, int]:
    """The central `confidence` interval [lo, hi] of Binomial(n, p): P(X < lo) and P(X > hi) each <= (1-c)/2."""
    tail = (1 - confidence) / 2
    log_pmf = [
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(n + 1)
    ]
    cdf, total = [], 0.0
    for value in log_pmf:
        total += math.exp(value)
        cdf.append(total)
    lo = next(k for k in range(n + 1) if cdf[k] > tail)
    hi = next(k for k in range(n + 1) if cdf[k] >= 1 - tail)
    return lo, hi


async def test_sampling_rate_is_within_the_binomial_interval(start, client, moto_s3, s3_bucket):
    n, rate = 2000, 0.1
    proxy = await start(CAPTURE_SAMPLE_RATE=str(rate), CAPTURE_SEED="20261130")
    limit = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with limit, client.post(proxy.url + "/echo", json={"i": i}) as resp:
            assert await resp.json() == {"i": i}

    await asyncio.gather(*(one(i) for i in range(n)))
    await stop(proxy)
    lo, hi = binomial_interval(n, rate, 0.999)
    sampled = proxy.metrics.value("capture_sampled_total")
    assert lo <= sampled <= hi, (lo, sampled, hi)
    assert proxy.metrics.value("capture_requests_total") == n
    stored = all_records(moto_s3, s3_bucket)
    assert len(stored) == sampled == proxy.metrics.value("capture_uploaded_records_total")
    assert len({r["request"]["i"] for r in stored}) == len(stored)


def test_binomial_interval_matches_the_normal_approximation():
    lo, hi = binomial_interval(2000, 0.1, 0.999)
    half = 3.29 * math.sqrt(2000 * 0.1 * 0.9)  # z(0.9995) = 3.29
    assert abs(lo - (200 - half)) <= 3 and abs(hi - (200 + half)) <= 3


async def test_only_post_is_sampled(start, client):
    proxy = await start()  # rate 1: every POST would be captured
    for method in ("GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"):
        async with client.request(method, proxy.url + "/echo", data=b'{"a": 1}') as resp:
            assert resp.status == 200
            if method != "HEAD":
                assert await resp.read() == b'{"a": 1}'
    assert proxy.metrics.value("capture_requests_total") == 6
    assert proxy.metrics.value("capture_sampled_total") == 0
    await stop(proxy)
    assert proxy.metrics.value("capture_uploaded_records_total") == 0


async def test_unsampled_exchanges_are_never_copied(start, client, monkeypatch):
    copies = []

    class CountedCopy(PairCopy):  # the real class, counted
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            copies.append(self)

    monkeypatch.setattr(capture, "PairCopy", CountedCopy)
    proxy = await start(CAPTURE_SAMPLE_RATE="0.2")
    for i in range(40):
        async with client.request("POST" if i % 2 else "GET", proxy.url + "/echo", json={"i": i}) as resp:
            assert resp.status == 200
    sampled = proxy.metrics.value("capture_sampled_total")
    assert 0 < sampled < 20
    assert len(copies) == sampled  # one pair of copies per sampled pair, none for the rest


# ---------------------------------------------------------------------------------------------------- redaction
async def test_redaction_of_nested_paths_in_request_and_response(stub, start, client, moto_s3, s3_bucket):
    redact = ["$.customer.ssn", "$.instances[*].card.number", "$..ssn", "$.instances[?(@.drop == true)]"]
    proxy = await start(CAPTURE_REDACT=json.dumps(redact))
    request = {
        "customer": {"ssn": "1", "name": "A"},
        "instances": [{"card": {"number": "4111", "cvv": "x"}, "amount": 3}, {"drop": True, "amount": 4}],
    }
    async with client.post(proxy.url + "/predict", json=request) as resp:
        assert (await resp.json())["explanation"]["customer"]["ssn"] == "123-45-6789"  # the client sees it all
    await stop(proxy)
    [record] = all_records(moto_s3, s3_bucket)
    assert record["request"] == {"customer": {"name": "A"}, "instances": [{"card": {"cvv": "x"}, "amount": 3}]}
    assert record["response"] == {"predictions": [1, 0], "explanation": {"customer": {"score": 3}}}


async def test_a_redaction_failure_drops_the_pair_and_keeps_proxying(start, client, monkeypatch):
    def fail(self, document):
        raise RuntimeError("jsonpath-ng surprise")

    monkeypatch.setattr(Redactor, "redact", fail)
    proxy = await start(CAPTURE_REDACT='["$.secret"]')
    async with client.post(proxy.url + "/echo", json={"secret": 1}) as resp:
        assert await resp.json() == {"secret": 1}
    async with client.post(proxy.url + "/echo", json={"secret": 2}) as resp:  # the connection still works
        assert await resp.json() == {"secret": 2}
    await stop(proxy)
    assert proxy.metrics.value("capture_dropped_total", reason="not_json") == 2
    assert proxy.metrics.value("capture_uploaded_records_total") == 0


# ---------------------------------------------------------------------------------------------- drops and errors
async def test_too_large_pairs_are_proxied_whole_and_dropped(stub, start, client, moto_s3, s3_bucket):
    proxy = await start(CAPTURE_MAX_PAYLOAD_BYTES="1000")
    large = json.dumps({"blob": "y" * 5000}).encode()
    async with client.post(proxy.url + "/echo", data=large, headers={"Content-Type": "application/json"}) as resp:
        assert await resp.read() == large
    assert stub.seen[-1][3] == large
    async with client.post(proxy.url + "/big?n=5000", json={}) as resp:
        assert len((await resp.json())["blob"]) == 5000
    async with client.post(proxy.url + "/big?n=10", json={}) as resp:  # small enough: recorded
        assert resp.status == 200
    await stop(proxy)
    assert proxy.metrics.value("capture_dropped_total", reason="too_large") == 2
    assert [r["response"] for r in all_records(moto_s3, s3_bucket)] == [{"blob": "x" * 10}]


async def test_non_json_bodies_are_dropped_as_not_json(stub, start, client):
    proxy = await start()
    async with client.post(proxy.url + "/echo", data=b"plain words", headers={"Content-Type": "text/plain"}) as resp:
        assert await resp.read() == b"plain words"
    async with client.post(proxy.url + "/text", json={"a": 1}) as resp:
        assert await resp.text() == "not json at all"
    async with client.post(proxy.url + "/echo", data=b'{"x": NaN}') as resp:  # Python-only JSON: not stored
        assert resp.status == 200
    await stop(proxy)
    assert proxy.metrics.value("capture_dropped_total", reason="not_json") == 3
    assert proxy.metrics.value("capture_uploaded_records_total") == 0


async def test_records_beyond_the_queue_limit_are_dropped(start, client, gated_s3, moto_s3, s3_bucket):
    # Records being uploaded still count: with the upload held, the third record finds the queue full.
    proxy = await start(s3_client=gated_s3, CAPTURE_QUEUE_RECORDS="2", CAPTURE_FLUSH_RECORDS="2", CAPTURE_FLUSH_SECONDS="600")
    for i in range(3):
        async with client.post(proxy.url + "/echo", json={"i": i}) as resp:
            assert await resp.json() == {"i": i}
    assert proxy.metrics.value("capture_dropped_total", reason="queue_full") == 1
    gated_s3.open.set()
    await stop(proxy)
    assert [r["request"] for r in all_records(moto_s3, s3_bucket)] == [{"i": 0}, {"i": 1}]


async def test_the_queue_is_bounded_in_bytes(start, client, gated_s3, moto_s3, s3_bucket):
    pad = "x" * 1000  # each record is ~2.3 kB: request and response both carry it
    proxy = await start(s3_client=gated_s3, CAPTURE_QUEUE_BYTES="5000", CAPTURE_FLUSH_SECONDS="600")
    async with client.post(proxy.url + "/echo", json={"i": 0, "pad": pad}) as resp:
        assert resp.status == 200
    first = proxy.metrics.value("capture_queued_bytes")  # the queued line itself, not parsed objects
    assert 2000 < first < 2500
    for i in (1, 2):  # the second fits (and, over half the bound, starts an upload); the third does not
        async with client.post(proxy.url + "/echo", json={"i": i, "pad": pad}) as resp:
            assert resp.status == 200
    assert proxy.metrics.value("capture_dropped_total", reason="queue_full") == 1
    assert proxy.metrics.value("capture_queued_records") == 2
    assert proxy.metrics.value("capture_queued_bytes") <= 5000
    gated_s3.open.set()
    await stop(proxy)
    [body] = moto_s3.objects(s3_bucket, PREFIX).values()
    lines = gzip.decompress(body).splitlines(keepends=True)
    assert [json.loads(line)["request"]["i"] for line in lines] == [0, 1]
    assert len(lines[0]) == first  # the queued bytes are the stored line's
    assert proxy.metrics.value("capture_queued_bytes") == proxy.metrics.value("capture_queued_records") == 0


async def test_an_upload_starts_when_half_the_records_bound_is_waiting(start, client):
    proxy = await start(CAPTURE_QUEUE_RECORDS="4", CAPTURE_FLUSH_RECORDS="4", CAPTURE_FLUSH_SECONDS="600")
    for i in range(3):  # 3 > 4 / 2; neither the count (4) nor the clock (600 s) is due
        async with client.post(proxy.url + "/echo", json={"i": i}) as resp:
            assert resp.status == 200
    await until(lambda: proxy.metrics.value("capture_uploaded_records_total") == 3, "3 records uploaded before stop")


async def test_an_upload_starts_when_half_the_bytes_bound_is_waiting(start, client):
    proxy = await start(CAPTURE_QUEUE_BYTES="3000", CAPTURE_FLUSH_SECONDS="600")
    async with client.post(proxy.url + "/echo", json={"pad": "x" * 700}) as resp:  # one ~1.6 kB record: over 1500
        assert resp.status == 200
    await until(lambda: proxy.metrics.value("capture_uploaded_records_total") == 1, "the record uploaded before stop")


@pytest.mark.parametrize("target", ["missing bucket", "closed port"])
async def test_failed_uploads_are_retried_then_dropped(target, start, client, moto_s3, closed_port):
    if target == "missing bucket":
        s3, env = moto_s3.client, {"CAPTURE_BUCKET": "no-such-bucket"}
    else:  # S3 unreachable; botocore's own retries off as in the proxy's client, so each try is one attempt
        s3, env = moto_s3.new_client(f"http://127.0.0.1:{closed_port}", retries={"total_max_attempts": 1}), {}
    proxy = await start(s3_client=s3, CAPTURE_FLUSH_RECORDS="2", **env)
    for i in range(2):
        async with client.post(proxy.url + "/echo", json={"i": i}) as resp:
            assert resp.status == 200  # proxying is unaffected
    await stop(proxy)
    assert proxy.metrics.value("capture_upload_errors_total") == 3
    assert proxy.metrics.value("capture_dropped_total", reason="upload_failed") == 2
    assert proxy.metrics.value("capture_uploaded_records_total") == 0
    assert proxy.metrics.value("capture_last_upload_timestamp_seconds") == 0


# -------------------------------------------------------------------------------------------------------- memory
@pytest.fixture
def peaks(monkeypatch) -> dict[str, int]:
    """The highest in-flight and queued byte counts the proxy reached, and how many chunks the budget refused: the
    real classes, watched where they grow."""
    seen = {"inflight": 0, "queued": 0, "refused": 0}

    class WatchedBudget(CopyBudget):
        def take(self, n: int) -> bool:
            taken = super().take(n)
            seen["inflight"] = max(seen["inflight"], self.used)
            seen["refused"] += not taken
            return taken

    class WatchedStore(CaptureStore):
        def add(self, line: bytes, at: float) -> bool:
            added = super().add(line, at)
            seen["queued"] = max(seen["queued"], self.buffered_bytes)
            return added

    monkeypatch.setattr(capture, "CopyBudget", WatchedBudget)
    monkeypatch.setattr(capture, "CaptureStore", WatchedStore)
    return seen


async def test_concurrent_large_requests_keep_capture_within_its_byte_bounds(stub, start, client, gated_s3, peaks, moto_s3, s3_bucket):
    n, inflight, queue = 24, 350_000, 450_000
    bodies = [json.dumps({"i": i, "blob": chr(97 + i) * 100_000}).encode() for i in range(n)]
    proxy = await start(
        s3_client=gated_s3,  # uploads held: the queue fills
        CAPTURE_MAX_PAYLOAD_BYTES="200000",
        CAPTURE_INFLIGHT_BYTES=str(inflight),
        CAPTURE_QUEUE_BYTES=str(queue),
        CAPTURE_FLUSH_SECONDS="600",
    )
    stub.gate_size = n  # every request body is through the proxy before any response starts: 2.4 MB of copies wanted

    async def chunked(body: bytes) -> AsyncIterator[bytes]:  # no Content-Length: the size shows only as it streams
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]

    async def one(i: int, body: bytes) -> tuple[int, bytes]:
        data = chunked(body) if i % 2 else body
        async with client.post(proxy.url + "/gate", data=data, headers={"Content-Type": "application/json"}) as resp:
            return resp.status, await resp.read()

    assert await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))) == [(200, b) for b in bodies]  # all whole
    assert inflight // 2 < peaks["inflight"] <= inflight  # the bound was reached for, and held
    assert peaks["queued"] <= queue
    assert proxy.metrics.value("capture_inflight_bytes") == 0  # every copy given back
    assert proxy.metrics.value("capture_queued_bytes") == peaks["queued"]  # nothing uploaded yet: the most it held
    assert proxy.metrics.value("capture_dropped_total", reason="queue_full") > 0
    assert proxy.metrics.value("capture_sampled_total") == n == outcomes(proxy)
    gated_s3.open.set()
    await stop(proxy)
    assert proxy.metrics.value("capture_sampled_total") == n == outcomes(proxy)
    for record in all_records(moto_s3, s3_bucket):  # what was kept is whole
        assert record["request"] == record["response"] == json.loads(bodies[record["request"]["i"]])


async def test_no_copy_is_started_when_the_in_flight_budget_has_no_room(stub, start, client, peaks, moto_s3, s3_bucket):
    proxy = await start(CAPTURE_MAX_PAYLOAD_BYTES="200000", CAPTURE_INFLIGHT_BYTES="250000")
    held = asyncio.create_task(client.post(proxy.url + "/slow", json={"blob": "a" * 100_000}))
    await asyncio.wait_for(stub.entered_slow.wait(), WAIT)
    assert 100_000 < proxy.metrics.value("capture_inflight_bytes") < 100_100  # the held pair's request copy
    big = json.dumps({"blob": "b" * 160_000}).encode()  # declared 160 kB: no room next to the held 100 kB
    async with client.post(proxy.url + "/echo", data=big, headers={"Content-Type": "application/json"}) as resp:
        assert await resp.read() == big
    assert proxy.metrics.value("capture_dropped_total", reason="queue_full") == 1
    assert peaks["inflight"] < 100_100 and peaks["refused"] == 0  # the refused pair never even asked for a byte
    stub.release.set()
    async with await held as resp:
        assert (await resp.json())["slow"]["blob"] == "a" * 100_000
    await stop(proxy)
    [record] = all_records(moto_s3, s3_bucket)  # the held pair completed its copies (response included)
    assert record["request"] == {"blob": "a" * 100_000}
    assert proxy.metrics.value("capture_sampled_total") == 2 == outcomes(proxy)


def test_a_pair_copy_is_bounded_per_body_and_by_the_shared_budget():
    budget = CopyBudget(100)
    first, second = PairCopy(60, budget), PairCopy(60, budget)
    first.add_request(b"a" * 40)
    first.add_response(b"b" * 40)
    assert (budget.used, first.reason) == (80, None)
    second.add_request(b"c" * 30)  # 110 > 100: abandoned, nothing kept
    assert (budget.used, second.reason, second.held) == (80, "queue_full", 0)
    second.add_response(b"d")  # an abandoned pair copies nothing more
    assert budget.used == 80
    first.add_response(b"e" * 30)  # 70 > 60 for one body: too_large, everything given back
    assert (budget.used, first.reason, first.request_data()) == (0, "too_large", b"")
    third = PairCopy(60, budget, "queue_full")  # refused at the start
    third.add_request(b"f")
    assert (budget.used, third.held) == (0, 0)
    kept = PairCopy(60, budget)
    kept.add_request(b"g" * 10)
    kept.add_response(b"h" * 20)
    assert (kept.request_data(), kept.response_data(), budget.used) == (b"g" * 10, b"h" * 20, 30)
    kept.release()
    kept.release()  # idempotent
    assert budget.used == 0


# ------------------------------------------------------------------------------------------- keys and request ids
async def test_records_of_different_hours_go_to_different_objects(start, client, moto_s3, s3_bucket):
    before, after = datetime(2026, 11, 30, 7, 59, 59, 900000, UTC), datetime(2026, 11, 30, 8, 0, 0, 100000, UTC)
    times = iter([before.timestamp(), after.timestamp()])
    proxy = await start(clock=lambda: next(times), CAPTURE_FLUSH_RECORDS="2")
    for i in range(2):
        async with client.post(proxy.url + "/echo", json={"i": i}) as resp:
            assert resp.status == 200
    await stop(proxy)
    stored = records(moto_s3, s3_bucket)
    assert len(stored) == 2
    by_hour = {KEY.match(k)[2]: (KEY.match(k), rs) for k, rs in stored.items()}
    assert set(by_hour) == {"07", "08"}
    (m7, [r7]), (m8, [r8]) = by_hour["07"], by_hour["08"]
    assert (m7[1], r7["time"], r7["request"]) == ("2026-11-30", "2026-11-30T07:59:59.900Z", {"i": 0})
    assert (m8[1], r8["time"], r8["request"]) == ("2026-11-30", "2026-11-30T08:00:00.100Z", {"i": 1})
    assert (int(m7[3]), int(m8[3])) == (unix_ms(before), unix_ms(after))
    assert m7[4] != m8[4]  # the sequence number keeps keys unique within a pod


async def test_request_id_is_propagated_or_generated(stub, start, client, moto_s3, s3_bucket):
    proxy = await start()
    async with client.post(proxy.url + "/predict", json={"n": 1}, headers={"X-Request-Id": "client-1"}) as resp:
        assert resp.headers["X-Request-Id"] == "client-1"
    async with client.post(proxy.url + "/predict", json={"n": 2}, headers={"X-Server-Id": "server-2"}) as resp:
        assert resp.headers.getall("X-Request-Id") == ["server-2"]  # the model's own id, not a second one
    async with client.post(proxy.url + "/predict", json={"n": 3}) as resp:
        generated = resp.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
    async with client.get(proxy.url + "/echo") as resp:  # unsampled requests get an id too
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-Id"])
    await stop(proxy)
    ids = {r["request"]["n"]: r["requestId"] for r in all_records(moto_s3, s3_bucket)}
    assert ids == {1: "client-1", 2: "server-2", 3: generated}


# ------------------------------------------------------------------------------------------- metrics and health
async def test_metrics_and_healthz_are_served(start, client):
    proxy = await start()
    async with client.post(proxy.url + "/echo", json={}) as resp:
        assert resp.status == 200
    base = f"http://127.0.0.1:{proxy.metrics_port}"
    async with client.get(base + "/healthz") as resp:
        assert resp.status == 200
    async with client.get(base + "/metrics") as resp:
        text = await resp.text()
    assert "capture_requests_total 1.0" in text and "capture_sampled_total 1.0" in text
    assert "capture_queued_records 1.0" in text and "capture_inflight_bytes 0.0" in text
    assert re.search(r"^capture_queued_bytes (\d+)\.0$", text, re.M)[1] == str(int(proxy.metrics.value("capture_queued_bytes")))
    for reason in ("too_large", "not_json", "queue_full", "upload_failed", "upstream_error"):
        assert f'capture_dropped_total{{reason="{reason}"}} 0.0' in text
    for name in (
        "capture_uploaded_records_total",
        "capture_uploaded_bytes_total",
        "capture_upload_errors_total",
        "capture_last_upload_timestamp_seconds",
        "capture_upstream_errors_total",
        "capture_queued_records",
        "capture_queued_bytes",
        "capture_inflight_bytes",
    ):
        assert re.search(rf"^{name} ", text, re.M), name


async def test_uploads_report_bytes_and_time(start, client, moto_s3, s3_bucket):
    proxy = await start(CAPTURE_FLUSH_RECORDS="1")
    async with client.post(proxy.url + "/echo", json={"a": 1}) as resp:
        assert resp.status == 200
    await stop(proxy)
    [body] = moto_s3.objects(s3_bucket, PREFIX).values()
    assert proxy.metrics.value("capture_uploaded_bytes_total") == len(body)
    assert proxy.metrics.value("capture_last_upload_timestamp_seconds") > 1.7e9


async def test_a_port_in_use_fails_start_cleanly(stub, moto_s3, s3_bucket):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = load_config(proxy_env(stub.url, s3_bucket, CAPTURE_PORT=str(taken.getsockname()[1])))
        with pytest.raises(OSError):
            await start_proxy(config, host="127.0.0.1", s3_client=moto_s3.client)


# ---------------------------------------------------------------------------------------------------- payloads
def test_sse_parsing():
    events = parse_sse(b': c\r\n\r\nevent: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata:{"b":2}\n\nid: 3\n\ndata: [DONE]\n\n')
    assert events == [{"a": 1}, {"b": 2}]
    assert parse_sse(b'data: {"last": true}') == [{"last": True}]  # no closing blank line: the stream did end
    with pytest.raises(NotCaptured) as exc:
        parse_sse(b"data: hello\n\n")
    assert exc.value.reason == "not_json"


def test_content_decoding():
    doc = b'{"a": 1}'
    assert decode_content(gzip.compress(doc), "gzip", 100) == doc
    assert decode_content(zlib.compress(doc), "deflate", 100) == doc
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_content(raw.compress(doc) + raw.flush(), "deflate", 100) == doc
    assert decode_content(gzip.compress(zlib.compress(doc)), "deflate, gzip", 100) == doc
    with pytest.raises(NotCaptured) as exc:
        decode_content(gzip.compress(b"0" * 10_000), "gzip", 1000)  # expands past the limit
    assert exc.value.reason == "too_large"
    for encoding, data in (("br", b"\x8b\x03"), ("gzip", b"not gzip")):
        with pytest.raises(NotCaptured) as exc:
            decode_content(data, encoding, 100)
        assert exc.value.reason == "not_json"


# ------------------------------------------------------------------------------------------------ configuration
BASE_ENV = proxy_env("http://127.0.0.1:8000", "bucket")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CAPTURE_UPSTREAM", None, "is required"),
        ("CAPTURE_UPSTREAM", "127.0.0.1:8000", "http(s)://host[:port]"),
        ("CAPTURE_UPSTREAM", "http://127.0.0.1:8000/v1", "no path"),
        ("CAPTURE_SAMPLE_RATE", None, "is required"),
        ("CAPTURE_SAMPLE_RATE", "0", "0 < rate <= 1"),
        ("CAPTURE_SAMPLE_RATE", "1.5", "0 < rate <= 1"),
        ("CAPTURE_SAMPLE_RATE", "nan", "0 < rate <= 1"),
        ("CAPTURE_SAMPLE_RATE", "ten percent", "0 < rate <= 1"),
        ("CAPTURE_BUCKET", None, "is required"),
        ("CAPTURE_PREFIX", "capture/fraud/3", "must end with '/'"),
        ("CAPTURE_MODEL", None, "is required"),
        ("CAPTURE_MODEL_VERSION", "", "is required"),
        ("CAPTURE_PORT", "http", "an integer >= 0 and <= 65535"),
        ("CAPTURE_METRICS_PORT", "70000", "an integer >= 0 and <= 65535"),
        ("CAPTURE_MAX_PAYLOAD_BYTES", "0", "an integer >= 1"),
        ("CAPTURE_FLUSH_SECONDS", "-1", "a number >= 0.001"),
        ("CAPTURE_FLUSH_RECORDS", "1.5", "an integer >= 1"),
        ("CAPTURE_QUEUE_RECORDS", "0", "an integer >= 1"),
        ("CAPTURE_QUEUE_RECORDS", "200", "(1000) must not be more than CAPTURE_QUEUE_RECORDS (200)"),  # FLUSH's default
        ("CAPTURE_QUEUE_BYTES", "0", "an integer >= 1"),
        ("CAPTURE_INFLIGHT_BYTES", "64Mi", "an integer >= 1"),
        ("CAPTURE_STORE_QUERY", "yes", "must be true or false, got 'yes'"),
        ("CAPTURE_REDACT", '["$.a", "$.[["]', "'$.[[' is not a valid JSONPath"),
        ("CAPTURE_REDACT", '"$.a"', "JSON array"),
        ("CAPTURE_REDACT", '["$"]', "whole document"),
        ("CAPTURE_SEED", "abc", "an integer"),
    ],
)
def test_config_errors_name_the_variable(variable, value, message):
    env = dict(BASE_ENV)
    env.pop(variable, None)
    if value is not None:
        env[variable] = value
    with pytest.raises(ConfigError) as exc:
        load_config(env)
    if "must not be more than" in message:  # the pair: named by the one to lower, the other in the message
        assert exc.value.variable == "CAPTURE_FLUSH_RECORDS"
        assert str(exc.value).startswith("CAPTURE_FLUSH_RECORDS (1000)") and message in str(exc.value)
        return
    assert exc.value.variable == variable
    assert str(exc.value).startswith(variable) and message in str(exc.value)


def test_flush_records_equal_to_queue_records_is_allowed():
    config = load_config(BASE_ENV | {"CAPTURE_FLUSH_RECORDS": "200", "CAPTURE_QUEUE_RECORDS": "200"})
    assert (config.flush_records, config.queue_records) == (200, 200)


def test_config_defaults():
    env = {k: v for k, v in BASE_ENV.items() if k not in ("CAPTURE_PORT", "CAPTURE_METRICS_PORT", "CAPTURE_SEED")}
    config = load_config(env)
    assert (config.port, config.metrics_port, config.max_payload_bytes) == (8090, 9103, 1_048_576)
    assert (config.flush_seconds, config.flush_records, config.queue_records) == (60.0, 1000, 10_000)
    assert (config.queue_bytes, config.inflight_bytes) == (64 * 2**20, 64 * 2**20)
    assert config.store_query is False
    assert config.seed is None and config.redactor.expressions == []
    for raw, value in (("true", True), ("TRUE", True), ("false", False), ("", False)):
        assert load_config(env | {"CAPTURE_STORE_QUERY": raw}).store_query is value


# -------------------------------------------------------------------------------------------------- as a process
SRC = str(Path(__file__).resolve().parents[1] / "src")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": SRC, **extra}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"CAPTURE_SAMPLE_RATE": "2"}, "CAPTURE_SAMPLE_RATE must be a number with 0 < rate <= 1, got '2'"),
        (
            {"CAPTURE_QUEUE_RECORDS": "200"},  # the platform's old setting, with CAPTURE_FLUSH_RECORDS left at 1000
            "CAPTURE_FLUSH_RECORDS (1000) must not be more than CAPTURE_QUEUE_RECORDS (200): lower CAPTURE_FLUSH_RECORDS"
            " or raise CAPTURE_QUEUE_RECORDS",
        ),
    ],
)
async def test_configuration_error_exits_2_with_the_variable_named(overrides, message):
    env = child_env(BASE_ENV | overrides)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "model_monitoring.capture",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip() == f"capture-proxy: configuration error: {message}"
    assert out == b""


async def test_sigterm_drains_in_flight_requests_flushes_and_exits_0(stub, client, moto_s3, s3_bucket):
    env = child_env(moto_s3.env | proxy_env(stub.url, s3_bucket, CAPTURE_FLUSH_SECONDS="600", CAPTURE_FLUSH_RECORDS="1000"))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "model_monitoring.capture", env=env, stderr=asyncio.subprocess.PIPE)
    log: list[str] = []
    try:
        assert proc.stderr is not None
        while not (ports := re.search(r"listening on port (\d+) \(metrics on port (\d+)\)", "".join(log))):
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, f"the proxy exited before listening: {''.join(log)}"
            log.append(line.decode())
        drain = asyncio.create_task(proc.stderr.read())
        url, metrics = f"http://127.0.0.1:{ports[1]}", f"http://127.0.0.1:{ports[2]}"

        for i in range(3):
            async with client.post(url + "/echo", json={"i": i}) as resp:
                assert await resp.json() == {"i": i}

        async def slow_request() -> Any:
            async with client.post(url + "/slow", json={"i": 3}) as resp:
                return resp.status, await resp.json()

        in_flight = asyncio.create_task(slow_request())
        await asyncio.wait_for(stub.entered_slow.wait(), WAIT)
        assert moto_s3.objects(s3_bucket, PREFIX) == {}  # still buffered: nothing is due before 600 s

        proc.send_signal(signal.SIGTERM)

        # /healthz turns 503 in the same step that closes the listener.
        async def stopping() -> None:
            while True:
                async with client.get(metrics + "/healthz") as health:
                    if health.status == 503:
                        return
                await asyncio.sleep(0.02)

        await asyncio.wait_for(stopping(), WAIT)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", int(ports[1]))
        # Half a second is no bound on anything the proxy does (it may drain for 25 s): it only gives a proxy that
        # does not wait for in-flight requests the time to exit, which the next request would then see.
        await asyncio.sleep(0.5)
        async with client.get(metrics + "/healthz") as health:
            assert health.status == 503  # still up, still draining the /slow request
        stub.release.set()
        assert await asyncio.wait_for(in_flight, WAIT) == (200, {"slow": {"i": 3}})
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        log.append((await drain).decode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "Traceback" not in "".join(log), "".join(log)
    stored = all_records(moto_s3, s3_bucket)
    assert sorted(r["request"]["i"] for r in stored) == [0, 1, 2, 3]
    assert {r["model"] for r in stored} == {"fraud"}
