"""The capture proxy's copies of bodies: keeping bounded copies of a pair's bodies while they stream past (PairCopy,
all pairs together held to a CopyBudget), then turning them into JSON: undoing Content-Encoding, parsing JSON
strictly, reading the `data:` events of a text/event-stream. Every failure is a NotCaptured carrying its
capture_dropped_total reason.
"""

from __future__ import annotations

import json
import zlib
from typing import Any


class NotCaptured(Exception):
    """A sampled pair that cannot become a record; `reason` is a capture_dropped_total reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def decode_content(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding` (identity, gzip, x-gzip, deflate; a list is undone last-applied first) on a captured
    copy. The decoded size is held to `limit` bytes too, so a small compressed body cannot expand into a huge
    record (NotCaptured too_large). Brotli, zstd and others raise NotCaptured not_json: the image carries no decoder
    for them, and a native dependency only for the capture path is not worth it (the metric shows if it matters)."""
    for coding in reversed([c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":  # RFC 9110 means zlib-wrapped; some servers send raw deflate
            decoder = zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
        else:
            raise NotCaptured("not_json", f"Content-Encoding {coding!r} is not decoded for capture")
        try:
            decoded = decoder.decompress(data, limit + 1)
        except zlib.error as exc:
            raise NotCaptured("not_json", f"cannot decode {coding}: {exc}") from None
        if len(decoded) > limit:
            raise NotCaptured("too_large", f"{coding} body decodes to more than {limit} bytes")
        data = decoded
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity would make the stored line invalid JSON


def parse_json(data: bytes) -> Any:
    """The JSON document in `data` (UTF-8/16/32, strict: no NaN/Infinity); NotCaptured not_json otherwise."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise NotCaptured("not_json", f"body is not JSON: {exc}") from None


def parse_sse(data: bytes) -> list[Any]:
    """The JSON documents carried by the `data:` fields of a text/event-stream body, one per event (multi-line data
    joined with newlines, as the SSE spec says), without the OpenAI-style `[DONE]` sentinel. An event without
    data is skipped; a last event without its closing blank line is kept (the stream did end). NotCaptured
    not_json when the stream is not UTF-8 or an event's data is not JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotCaptured("not_json", f"event stream is not UTF-8: {exc}") from None
    events: list[Any] = []
    lines: list[str] = []

    def dispatch() -> None:
        if lines:
            payload = "\n".join(lines)
            lines.clear()
            if payload.strip() != "[DONE]":
                events.append(parse_json(payload.encode()))

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            dispatch()
        elif line.startswith("data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(" ") else value)
        # other fields (event:, id:, retry:) and comments (":") carry no payload
    dispatch()
    return events


class CopyBudget:
    """The bytes held by all copies in progress together (`used`), kept to at most `limit` (CAPTURE_INFLIGHT_BYTES):
    `take(n)` claims n bytes if they fit and says whether they did; `give(n)` returns them."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


class PairCopy:
    """The copies of one sampled pair's request and response bodies, kept as they stream past.

    Each body is held to `limit` bytes (CAPTURE_MAX_PAYLOAD_BYTES) and every chunk is claimed from `budget`, which all
    pairs share. The first problem ends both copies at once and frees what they held: a body over `limit` (`reason`
    too_large) or a chunk the budget has no room for (`reason` queue_full: the capture path is out of memory, as with
    a full queue). A pair can also start refused (`reason` given): nothing is ever kept. `release()` gives back what
    is still held; call it when the pair is done, whatever happened (it may be called more than once). The chunks
    kept are the very bytes objects the proxy forwards, so a copy costs references, not duplicates, while it lasts.
    `settled` is the proxy's: True once the pair's outcome (queued or a drop reason) has been counted.
    """

    __slots__ = ("_budget", "_held", "_limit", "_parts", "_sizes", "reason", "settled")

    def __init__(self, limit: int, budget: CopyBudget, reason: str | None = None) -> None:
        self._limit, self._budget, self.reason, self.settled = limit, budget, reason, False
        self._parts: tuple[list[bytes], list[bytes]] = ([], [])
        self._sizes = [0, 0]
        self._held = 0

    def add_request(self, chunk: bytes) -> None:
        self._add(0, chunk)

    def add_response(self, chunk: bytes) -> None:
        self._add(1, chunk)

    def _add(self, side: int, chunk: bytes) -> None:
        if self.reason is not None or not chunk:
            return
        self._sizes[side] += len(chunk)
        if self._sizes[side] > self._limit:
            self._give_up("too_large")
        elif not self._budget.take(len(chunk)):
            self._give_up("queue_full")
        else:
            self._held += len(chunk)
            self._parts[side].append(chunk)

    def _give_up(self, reason: str) -> None:
        self.reason = reason
        self.release()

    @property
    def held(self) -> int:
        """Bytes this pair holds now (claimed from the budget)."""
        return self._held

    def request_data(self) -> bytes:
        return b"".join(self._parts[0])

    def response_data(self) -> bytes:
        return b"".join(self._parts[1])

    def release(self) -> None:
        self._budget.give(self._held)
        self._held = 0
        self._parts = ([], [])
