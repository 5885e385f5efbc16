"""The capture proxy's copies of bodies: keeping a bounded copy while a body streams past (BoundedCopy), then
turning it into JSON: undoing Content-Encoding, parsing JSON strictly, reading the `data:` events of a
text/event-stream. Every failure is a NotCaptured carrying its capture_dropped_total reason.
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


class BoundedCopy:
    """A copy of a body as it streams past, kept only while it stays within `limit` bytes: `add(chunk)` each chunk;
    once the total passes `limit`, `overflow` turns True and the kept bytes are released; `data()` is the copy."""

    __slots__ = ("limit", "overflow", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.size, self.overflow = limit, [], 0, False

    def add(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.overflow, self.parts = True, []
        else:
            self.parts.append(chunk)

    def data(self) -> bytes:
        return b"".join(self.parts)
