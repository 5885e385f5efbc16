"""Reading capture objects for a window from S3 (moto's server): only the overlapping hour partitions are listed,
records are filtered by `time`, a corrupt object is skipped and counted."""

import gzip
import json
from datetime import UTC, datetime, timedelta, timezone

from model_monitoring.records import WindowStats, hour_partitions, iter_timed_window_records, iter_window_records, read_table_rows
from monitor_fixtures import capture_record, put_capture, put_csv, put_jsonl

pytest_plugins = ["monitor_fixtures"]  # its fixtures: s3, bucket, aws_env, pushgateway

NOW = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
PREFIX = "capture/fraud/3/"


def test_hour_partitions_cover_the_window_and_the_hour_before():
    start = NOW - timedelta(hours=2)  # 05:30
    assert hour_partitions(PREFIX, start, NOW) == [
        f"{PREFIX}dt=2026-11-30/hr=04/",
        f"{PREFIX}dt=2026-11-30/hr=05/",
        f"{PREFIX}dt=2026-11-30/hr=06/",
        f"{PREFIX}dt=2026-11-30/hr=07/",
    ]
    # Across midnight, in UTC whatever the offset of the given times.
    plus2 = timezone(timedelta(hours=2))
    start, end = datetime(2026, 12, 1, 1, 15, tzinfo=plus2), datetime(2026, 12, 1, 2, 5, tzinfo=plus2)
    assert hour_partitions(PREFIX, start, end) == [
        f"{PREFIX}dt=2026-11-30/hr=22/",
        f"{PREFIX}dt=2026-11-30/hr=23/",
        f"{PREFIX}dt=2026-12-01/hr=00/",
    ]


def ids(records):
    return sorted(r["requestId"] for r in records)


def test_window_boundaries_and_partitions(s3, bucket):
    start = NOW - timedelta(hours=1)  # window (06:30, 07:30]
    rec = lambda t, rid: capture_record(t, {"instances": [{"a": 1}]}, {"predictions": [0]}, request_id=rid)  # noqa: E731
    # One object straddling the start: only the records after 06:30 count; the start itself is excluded.
    put_capture(
        s3,
        bucket,
        PREFIX,
        [rec(start - timedelta(minutes=5), "old-1"), rec(start, "at-start"), rec(start + timedelta(milliseconds=1), "in-1")],
    )
    # The end is included, later records are not.
    put_capture(
        s3, bucket, PREFIX, [rec(NOW - timedelta(minutes=1), "in-2"), rec(NOW, "at-end"), rec(NOW + timedelta(seconds=1), "future")]
    )
    # An object keyed hr=05 (its batch began at 05:59:50), the hour before the start's: a batch keyed by its first
    # record can hold later ones, so that partition is read too and its in-window records count.
    put_capture(s3, bucket, PREFIX, [rec(start + timedelta(minutes=2), "lookback")], hour=datetime(2026, 11, 30, 5, 59, 50, tzinfo=UTC))
    # Partitions outside the window are never listed, whatever their records claim.
    put_capture(s3, bucket, PREFIX, [rec(NOW - timedelta(minutes=3), "mislabelled")], hour=datetime(2026, 11, 30, 3, 0, tzinfo=UTC))
    put_capture(s3, bucket, PREFIX, [rec(NOW - timedelta(minutes=3), "next-hour")], hour=datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    # Another model version's prefix shares the bucket.
    put_capture(s3, bucket, "capture/fraud/30/", [rec(NOW - timedelta(minutes=3), "other-version")])

    stats = WindowStats()
    records = list(iter_window_records(s3, bucket, PREFIX, start, NOW, stats))
    assert ids(records) == ["at-end", "in-1", "in-2", "lookback"]
    assert stats.partitions == 3 and stats.objects == 3 and stats.records == 4
    assert stats.outside_window == 3 and stats.corrupt_objects == 0
    # The timed form gives each record's parsed `time` (aware UTC), by which the job splits the read between checks.
    timed = list(iter_timed_window_records(s3, bucket, PREFIX, start, NOW))
    assert [r for _, r in timed] == records
    assert all(t == datetime.fromisoformat(r["time"]) and t.tzinfo is not None for t, r in timed)


def test_corrupt_objects_and_lines_are_skipped_and_counted(s3, bucket):
    start = NOW - timedelta(hours=1)
    good = capture_record(NOW - timedelta(minutes=10), {"instances": []}, {"predictions": [1]}, request_id="good")
    put_capture(s3, bucket, PREFIX, [good])
    partition = f"{PREFIX}dt=2026-11-30/hr=07/"
    s3.put_object(Bucket=bucket, Key=partition + "pod-1-1-1.jsonl.gz", Body=b"not gzip at all")
    truncated = put_capture(s3, bucket, PREFIX, [good] * 50)
    body = s3.get_object(Bucket=bucket, Key=truncated)["Body"].read()
    s3.put_object(Bucket=bucket, Key=truncated, Body=body[: len(body) // 2])
    s3.put_object(
        Bucket=bucket,
        Key=partition + "pod-2-1-1.jsonl.gz",
        Body=gzip.compress(b'{"requestId": "x"}\n[1, 2]\nnot json\n' + (json.dumps({**good, "requestId": "good-2"}) + "\n").encode()),
    )
    s3.put_object(Bucket=bucket, Key=partition + "README.txt", Body=b"ignored: not a capture object")

    stats = WindowStats()
    records = list(iter_window_records(s3, bucket, PREFIX, start, NOW, stats))
    assert ids(records) == ["good", "good-2"]
    assert stats.corrupt_objects == 2
    assert stats.bad_records == 3
    assert stats.objects == 4


def test_table_rows_from_jsonl_gz_and_csv(s3, bucket):
    put_jsonl(s3, bucket, "labels/a.jsonl", [{"requestId": "r1", "label": 1}])
    put_jsonl(s3, bucket, "labels/b.jsonl.gz", [{"requestId": "r2", "label": "fraud"}])
    put_csv(s3, bucket, "labels/c.csv", [{"requestId": "007", "label": "0", "note": ""}, {"requestId": "r4", "label": "2.5", "note": "x"}])
    s3.put_object(Bucket=bucket, Key="labels/skip.parquet", Body=b"PAR1")
    s3.put_object(Bucket=bucket, Key="labels-other/d.jsonl", Body=b'{"requestId": "no"}\n')
    rows = [row for _, row in read_table_rows(s3, bucket, "labels/", string_fields=["requestId"])]
    assert rows == [
        {"requestId": "r1", "label": 1},
        {"requestId": "r2", "label": "fraud"},
        {"requestId": "007", "label": 0},
        {"requestId": "r4", "label": 2.5, "note": "x"},
    ]
