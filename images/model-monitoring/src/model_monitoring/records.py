"""Reading the capture proxy's objects for a time window, and the small S3 helpers the checks share.

Capture objects are `<capturePrefix>dt=YYYY-MM-DD/hr=HH/<pod>-<unix ms>-<seq>.jsonl.gz`: gzip of JSON lines, one
record per sampled request/response pair, keyed by the UTC hour of the batch's *first* record (see the contract).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

# Objects fetched concurrently: S3 GETs are latency-bound, and a day of captures from a few pods flushing every
# minute is thousands of objects.
FETCH_WORKERS = 8
_FETCH_CHUNK = 64


@dataclass
class WindowStats:
    """What reading a window found. `records` counts the records inside the window (those yielded)."""

    partitions: int = 0
    objects: int = 0
    corrupt_objects: int = 0
    bad_records: int = 0
    outside_window: int = 0
    records: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (`2026-11-30T07:21:57.123Z`); a value without an offset is taken as UTC."""
    t = datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def hour_partitions(capture_prefix: str, start: datetime, end: datetime) -> list[str]:
    """The `dt=/hr=` key prefixes to list for records with `start < time <= end` (aware datetimes).

    From the hour before `start`'s hour to `end`'s hour: an object is keyed by its batch's first record, so a batch
    that began just before the hour boundary can hold records of the next hour (batches span the proxy's flush
    interval, well under an hour).
    """
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    last = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour <= last:
        prefixes.append(f"{capture_prefix}dt={hour:%Y-%m-%d}/hr={hour:%H}/")
        hour += timedelta(hours=1)
    return prefixes


def list_keys(s3, bucket: str, prefix: str) -> list[tuple[str, datetime]]:
    """(key, LastModified) of every object under `prefix`, in key order. Raises botocore errors (e.g. NoSuchBucket)."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend((o["Key"], o["LastModified"]) for o in page.get("Contents", ()))
    return keys


def iter_window_records(
    s3, bucket: str, capture_prefix: str, start: datetime, end: datetime, stats: WindowStats | None = None
) -> Iterator[dict]:
    """Yield every capture record with `start < time <= end` (aware datetimes); see `iter_timed_window_records`."""
    for _, record in iter_timed_window_records(s3, bucket, capture_prefix, start, end, stats):
        yield record


def iter_timed_window_records(
    s3, bucket: str, capture_prefix: str, start: datetime, end: datetime, stats: WindowStats | None = None
) -> Iterator[tuple[datetime, dict]]:
    """Yield (time, record) for every capture record with `start < time <= end` (aware datetimes; `time` is the
    record's parsed `time`, aware UTC), object by object in key order.

    Lists only the hour partitions from `hour_partitions`. A corrupt object (not gzip, truncated) is counted in
    `stats.corrupt_objects`, logged and skipped; a line that is not a JSON object with a parsable `time` is counted
    in `stats.bad_records` and skipped. Listing and access errors (missing bucket, denied) are raised: without the
    listing nothing can be said about the window.
    """
    stats = stats if stats is not None else WindowStats()
    keys: list[str] = []
    for prefix in hour_partitions(capture_prefix, start, end):
        stats.partitions += 1
        keys.extend(k for k, _ in list_keys(s3, bucket, prefix) if k.endswith(".jsonl.gz"))
    stats.objects = len(keys)
    log.info(
        "capture window (%s, %s]: %d objects in %d hour partitions under s3://%s/%s",
        start.isoformat(),
        end.isoformat(),
        len(keys),
        stats.partitions,
        bucket,
        capture_prefix,
    )
    for _key, lines in _fetch_all(s3, bucket, keys, _gunzip_lines):
        if lines is None:
            stats.corrupt_objects += 1
            continue
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                t = parse_time(record["time"])
            except (ValueError, KeyError, TypeError):
                stats.bad_records += 1
                continue
            if start < t <= end:
                stats.records += 1
                yield t, record
            else:
                stats.outside_window += 1
    if stats.bad_records:
        log.warning("skipped %d capture records that were not JSON objects with a valid `time`", stats.bad_records)


def _gunzip_lines(body: bytes) -> list[bytes]:
    return gzip.decompress(body).splitlines()


def _fetch_all(s3, bucket: str, keys: list[str], decode: Callable[[bytes], object]) -> Iterator[tuple[str, object]]:
    """(key, decode(body)) in key order, fetched FETCH_WORKERS at a time; decode errors give (key, None)."""

    def fetch(key: str):
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            # Expired by a lifecycle rule between the listing and the read: not corrupt, just gone.
            log.info("s3://%s/%s disappeared after listing; skipped", bucket, key)
            return key, []
        try:
            return key, decode(body)
        except (OSError, EOFError, zlib.error, ValueError) as e:
            log.warning("skipping corrupt object s3://%s/%s: %s", bucket, key, e)
            return key, None

    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        # In chunks so that a large window is not held in memory all at once.
        for i in range(0, len(keys), _FETCH_CHUNK):
            yield from pool.map(fetch, keys[i : i + _FETCH_CHUNK])


TABLE_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv")


def read_table_rows(s3, bucket: str, prefix: str, string_fields: Iterable[str] = ()) -> Iterator[tuple[str, dict]]:
    """Yield (key, row) for each row of the `.jsonl`, `.jsonl.gz` and `.csv` objects under `prefix`, oldest object
    first (LastModified, then key), rows in file order. Other objects are ignored.

    JSON lines rows keep their JSON types; CSV cells are strings, except that an empty cell is absent from the row
    and, so that tables in both formats agree, a cell that parses as a JSON number becomes that number unless its
    column is in `string_fields` (keys such as `007` stay strings). A JSON line that is not an object raises
    ValueError naming the object: reference and label files are written by people, and a silently dropped row would
    skew the result.
    """
    string_fields = set(string_fields)
    objects = sorted((modified, key) for key, modified in list_keys(s3, bucket, prefix) if key.endswith(TABLE_SUFFIXES))
    for _, key in objects:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if key.endswith(".gz"):
            body = gzip.decompress(body)
        text = body.decode("utf-8-sig")
        if key.endswith(".csv"):
            for row in csv.DictReader(io.StringIO(text)):
                yield (
                    key,
                    {k: (v if k in string_fields else _csv_value(v)) for k, v in row.items() if k is not None and v not in ("", None)},
                )
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ValueError(f"s3://{bucket}/{key} line {n}: not JSON: {e}") from None
            if not isinstance(row, dict):
                raise ValueError(f"s3://{bucket}/{key} line {n}: expected a JSON object, got {type(row).__name__}")
            yield key, row


def _csv_value(cell: str):
    try:
        value = json.loads(cell)
    except ValueError:
        return cell
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else cell


def put_bytes(s3, bucket: str, key: str, body: bytes, content_type: str) -> None:
    """Write one object (reports)."""
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def report_stamp(now: datetime) -> str:
    """The report folder name for a run at `now`: UTC `yyyy-mm-ddTHHMMSSZ`."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H%M%SZ")
