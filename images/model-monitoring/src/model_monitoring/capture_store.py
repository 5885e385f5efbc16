"""The capture proxy's record buffer, its S3 uploader and its Prometheus metrics.

Records wait in memory and go to S3 as gzipped JSON lines, one object per UTC hour of the records in a batch, keyed
`<prefix>dt=YYYY-MM-DD/hr=HH/<pod>-<unix ms>-<seq>.jsonl.gz` (the monitor job lists the hour partitions that overlap
its window, so a record must sit under its own hour). boto3 is synchronous: every put runs in a worker thread
(asyncio.to_thread) so a slow or unreachable S3 never stalls the proxy's event loop.

A record is queued as its compact JSON line (bytes), never as parsed objects (which take several times the room), and
the queue is bounded both in records and in bytes; the bytes bound is what sizes the proxy's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("model_monitoring.capture")

#: Why a sampled pair was not stored; the values of capture_dropped_total's `reason` label (fixed by the alerts).
#: upstream_error: the exchange itself failed (upstream unreachable or broke off, client gone) after being sampled.
DROP_REASONS = ("too_large", "not_json", "queue_full", "upload_failed", "upstream_error")
#: Attempts per object before its records are dropped (reason upload_failed).
UPLOAD_TRIES = 3


class CaptureMetrics:
    """The proxy's metrics, registered in a CollectorRegistry of their own (`registry`), so that two proxies in one
    process (the tests) never share counters. Names are fixed by the contract; the platform's alerts use them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("capture_requests_total", "Requests proxied, every method.", registry=r)
        self.sampled = Counter("capture_sampled_total", "Request/response pairs selected for capture.", registry=r)
        self.dropped = Counter("capture_dropped_total", "Selected pairs not stored, by reason.", ["reason"], registry=r)
        # Every reason exists from the start at 0: an alert on rate() needs the series before the first drop.
        for reason in DROP_REASONS:
            self.dropped.labels(reason=reason)
        self.uploaded_records = Counter("capture_uploaded_records_total", "Records written to S3.", registry=r)
        self.uploaded_bytes = Counter("capture_uploaded_bytes_total", "Bytes written to S3 (gzip-compressed object bodies).", registry=r)
        self.upload_errors = Counter("capture_upload_errors_total", "Failed S3 put attempts (each try).", registry=r)
        self.last_upload = Gauge(
            "capture_last_upload_timestamp_seconds",
            "Unix time of the last successful upload; 0 before any.",
            registry=r,
        )
        self.upstream_errors = Counter(
            "capture_upstream_errors_total", "Requests the upstream could not answer (502) or broke off.", registry=r
        )
        # Live values (set_function, read at scrape time) attached by the store and the proxy that own them. With no
        # sampled request in flight, capture_sampled_total == capture_uploaded_records_total + the sum of
        # capture_dropped_total + capture_queued_records.
        self.queued_records = Gauge(
            "capture_queued_records", "Records waiting for upload or being uploaded (bounded by CAPTURE_QUEUE_RECORDS).", registry=r
        )
        self.queued_bytes = Gauge(
            "capture_queued_bytes", "Bytes of JSON lines waiting for upload or being uploaded (bounded by CAPTURE_QUEUE_BYTES).", registry=r
        )
        self.inflight_bytes = Gauge(
            "capture_inflight_bytes",
            "Bytes held by copies of sampled bodies still being proxied (bounded by CAPTURE_INFLIGHT_BYTES).",
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        """The current value of sample `name` (with `labels`), 0.0 if it has none yet."""
        return self.registry.get_sample_value(name, labels) or 0.0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hour_partition(at: float) -> str:
    """`dt=YYYY-MM-DD/hr=HH` of unix time `at` (seconds), in UTC."""
    return datetime.fromtimestamp(at, UTC).strftime("dt=%Y-%m-%d/hr=%H")


def unix_millis(at: float) -> int:
    """Unix time `at` (seconds) in whole milliseconds, truncated exactly as the record's `time` is (through the
    same datetime: `int(at * 1000)` can land a millisecond below it, 0.9 having no exact binary float)."""
    return (datetime.fromtimestamp(at, UTC) - _EPOCH) // timedelta(milliseconds=1)


def to_json(document: Any) -> bytes:
    """`document` as compact JSON. ASCII escapes keep lone surrogates (legal in parsed JSON strings, not in UTF-8)
    from failing the encode."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def record_line(record: dict[str, Any]) -> bytes:
    """The line a record is queued and stored as: its compact JSON and a newline."""
    return to_json(record) + b"\n"


def encode_lines(lines: Iterable[bytes]) -> bytes:
    """The gzip object body of `lines` (each a record_line). Compressed line by line, so the only large buffer is the
    compressed result, not a second copy of the lines."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: a gzip header and trailer
    parts = [compressor.compress(line) for line in lines]
    parts.append(compressor.flush())
    return b"".join(parts)


@dataclass(slots=True)
class _Entry:
    line: bytes  # the record's JSON line, newline included
    at: float  # unix seconds: picks the hour partition and the key's timestamp


class CaptureStore:
    """Buffers records (as JSON lines) and uploads them to `s3://bucket/prefix…` from a background task.

    - `add()` never waits: it queues a line or refuses it when it would take the records or bytes waiting or being
      uploaded past `queue_records` or `queue_bytes` (the caller counts queue_full).
    - A batch is uploaded when `flush_records` are waiting, or more than half of `queue_records` or of
      `queue_bytes` is waiting, or `flush_seconds` after the oldest waiting record arrived, whichever comes first;
      one batch at a time. (Half: so that the records waiting while a batch uploads still fit.)
    - Each object is tried `UPLOAD_TRIES` times, sleeping `retry_delays[i]` seconds after failed try i+1; every failed
      try counts capture_upload_errors_total, and records of an object that failed every try count
      capture_dropped_total{reason="upload_failed"}.
    - `close()` uploads everything still waiting (with the same retries) and ends the task.

    `s3_client` is a boto3 S3 client (thread-safe; only ever used from worker threads). `pod` names the writer in
    each key so that replicas never collide; `seq` (per store) separates objects written in the same millisecond.
    """

    def __init__(
        self,
        *,
        s3_client: Any,
        bucket: str,
        prefix: str,
        pod: str,
        metrics: CaptureMetrics,
        flush_seconds: float,
        flush_records: int,
        queue_records: int,
        queue_bytes: int,
        retry_delays: Sequence[float] = (1.0, 3.0),
    ) -> None:
        if len(retry_delays) < UPLOAD_TRIES - 1:
            raise ValueError(f"retry_delays needs {UPLOAD_TRIES - 1} values, got {list(retry_delays)}")
        self._s3 = s3_client
        self._bucket = bucket
        self._prefix = prefix
        self._pod = pod
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._flush_records = flush_records
        self._queue_records = queue_records
        self._queue_bytes = queue_bytes
        self._retry_delays = tuple(retry_delays)
        self._pending: list[_Entry] = []
        self._pending_bytes = 0
        self._pending_since = 0.0  # monotonic time the oldest waiting record arrived
        self._uploading = 0  # records taken out of _pending and not yet stored or dropped
        self._uploading_bytes = 0  # their lines' bytes
        self._seq = 0
        self._closing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        metrics.queued_records.set_function(lambda: self.buffered)
        metrics.queued_bytes.set_function(lambda: self.buffered_bytes)

    @property
    def buffered(self) -> int:
        """Records waiting or being uploaded (what `queue_records` limits)."""
        return len(self._pending) + self._uploading

    @property
    def buffered_bytes(self) -> int:
        """Bytes of the lines waiting or being uploaded (what `queue_bytes` limits)."""
        return self._pending_bytes + self._uploading_bytes

    @property
    def full(self) -> bool:
        """True when no record at all would be accepted now."""
        return self._closing or self.buffered >= self._queue_records or self.buffered_bytes >= self._queue_bytes

    def add(self, line: bytes, at: float) -> bool:
        """Queue `line` (a record_line) of a record captured at unix time `at` (seconds). Returns False, keeping
        nothing, when it does not fit in the queue or the store is closing."""
        if self._closing or self.buffered >= self._queue_records or self.buffered_bytes + len(line) > self._queue_bytes:
            return False
        self._pending.append(_Entry(line, at))
        self._pending_bytes += len(line)
        if len(self._pending) == 1:
            self._pending_since = time.monotonic()
            self._wake.set()  # starts the flush_seconds clock in the loop
        elif self._flush_due():
            self._wake.set()
        return True

    def _flush_due(self) -> bool:
        waiting = len(self._pending)
        return waiting >= self._flush_records or 2 * waiting > self._queue_records or 2 * self._pending_bytes > self._queue_bytes

    def start(self) -> None:
        """Start the background uploader on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="capture-uploader")

    async def close(self) -> None:
        """Refuse new records, upload everything buffered (retries included), stop the background task."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            await self._run()
        else:
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._pending_since + self._flush_seconds - time.monotonic()
            if not self._closing and not self._flush_due() and wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            batch, self._pending = self._pending, []
            self._uploading += len(batch)
            self._uploading_bytes += self._pending_bytes
            self._pending_bytes = 0
            try:
                await self._upload(batch)
            except Exception:  # a bug here must not end the loop: the queue would fill and capture stop silently
                log.exception("capture upload of %d records failed unexpectedly", len(batch))
                self._metrics.dropped.labels(reason="upload_failed").inc(self._uploading)
                self._uploading = self._uploading_bytes = 0

    async def _upload(self, batch: list[_Entry]) -> None:
        groups: dict[str, list[_Entry]] = {}
        for entry in batch:
            groups.setdefault(hour_partition(entry.at), []).append(entry)
        for partition, entries in groups.items():
            key = f"{self._prefix}{partition}/{self._pod}-{unix_millis(entries[0].at)}-{self._seq}.jsonl.gz"
            self._seq += 1
            body = await asyncio.to_thread(encode_lines, [e.line for e in entries])
            stored = await self._put_with_retries(key, body)
            if stored:
                self._metrics.uploaded_records.inc(len(entries))
                self._metrics.uploaded_bytes.inc(len(body))
                self._metrics.last_upload.set(time.time())
            else:
                self._metrics.dropped.labels(reason="upload_failed").inc(len(entries))
            self._uploading -= len(entries)
            self._uploading_bytes -= sum(len(e.line) for e in entries)
            del body  # the next object's body is built with this one gone

    async def _put_with_retries(self, key: str, body: bytes) -> bool:
        for attempt in range(1, UPLOAD_TRIES + 1):
            try:
                await asyncio.to_thread(self._s3.put_object, Bucket=self._bucket, Key=key, Body=body, ContentType="application/gzip")
                return True
            except Exception as exc:  # boto3 raises ClientError, BotoCoreError subclasses and plain OSErrors
                self._metrics.upload_errors.inc()
                last = attempt == UPLOAD_TRIES
                log.warning(
                    "capture upload of s3://%s/%s failed (try %d of %d%s): %s",
                    self._bucket,
                    key,
                    attempt,
                    UPLOAD_TRIES,
                    ", dropping its records" if last else "",
                    exc,
                )
                if not last:
                    await asyncio.sleep(self._retry_delays[attempt - 1])
        return False
