"""A model version's files in S3: listed from storage metadata (keys, sizes, ETags; nothing is downloaded),
fingerprinted for the lock, and copied into the stack's model store under `registry/<model>/<version>/`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ml_platform.components.model_service.spec import WEIGHTS_READY_MARKER

STORE_PREFIX = "registry/"
SOURCE_ETAG = "source-etag"
"""Object metadata on each copy: the source's ETag, so a second sync skips what is already there (a copy's own
ETag differs from its source's when the copy is multipart)."""


class ArtifactError(Exception):
    """A version's artifacts cannot be locked or copied: not in S3, empty, or changed since the lock."""


@dataclass(frozen=True)
class ArtifactFile:
    key: str
    """The file's path below the version's artifact URI."""
    size: int
    """Bytes."""
    etag: str
    """S3's ETag (an MD5 for single-part uploads, a digest of the parts' MD5s for multipart ones)."""


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key prefix ending in `/` or empty) of an s3:// URI. Raises ArtifactError for any other scheme."""
    if not uri.startswith("s3://") or len(uri) <= 5:
        proxied = uri.startswith("mlflow-artifacts:")
        raise ArtifactError(
            f"the artifacts are at {uri!r}, not in S3: "
            + (
                "the registry proxies artifacts; set modelRegistry.artifactsDestination to its --artifacts-destination (s3://...)"
                if proxied
                else "register large weights by reference to their S3 location (README, 'Promoting a model')"
            )
        )
    bucket, _, key = uri[5:].partition("/")
    return bucket, (key.rstrip("/") + "/") if key else ""


def store_prefix(registered_model: str, version: str, fingerprint_: str) -> str:
    """Where a locked version is served from in the stack's model store: `registry/<model>/<version>/<content>/`,
    the last part 12 hex digits of its files' fingerprint. A version number can come back with other files (a
    registered model deleted and made again); its files then land beside the old ones, never among them, and
    the model's Deployment changes with them."""
    return f"{STORE_PREFIX}{registered_model}/{version}/{fingerprint_.removeprefix('sha256:')[:12]}/"


def list_files(s3, uri: str) -> list[ArtifactFile]:
    """Every object below `uri`, sorted by key (folder markers left out). Raises ArtifactError when there is none:
    a version whose artifacts are gone would otherwise serve an empty directory."""
    bucket, prefix = split_s3(uri)
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if (item["Key"].endswith("/") and item["Size"] == 0) or item["Key"] == prefix + WEIGHTS_READY_MARKER:
                continue  # folder markers, and the platform's own marker in a store's copy (a mirror)
            files.append(ArtifactFile(item["Key"][len(prefix) :], int(item["Size"]), item["ETag"].strip('"')))
    if not files:
        raise ArtifactError(f"no files at {uri}")
    return sorted(files, key=lambda f: f.key)


def fingerprint(files: Iterable[ArtifactFile]) -> str:
    """sha256 over each file's key, size and ETag: equal exactly when the listings are."""
    text = "\n".join(f"{f.key}\t{f.size}\t{f.etag}" for f in sorted(files, key=lambda f: f.key))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def differences(locked: list[ArtifactFile], now: list[ArtifactFile]) -> list[str]:
    """What changed between the lock's listing and today's, one line per file."""
    before, after = {f.key: f for f in locked}, {f.key: f for f in now}
    lines = [f"{key}: gone" for key in sorted(before.keys() - after.keys())]
    lines += [f"{key}: new" for key in sorted(after.keys() - before.keys())]
    lines += [f"{key}: changed (size or ETag)" for key in sorted(before.keys() & after.keys()) if before[key] != after[key]]
    return lines


def present(s3, files: list[ArtifactFile], bucket: str, prefix: str) -> tuple[list[ArtifactFile], list[str]]:
    """(the files not yet at s3://bucket/prefix, the keys that are: same size, and the source's ETag in their
    metadata). Raises ArtifactError when the bucket does not exist."""
    missing, there = [], []
    for item in files:
        key = prefix + item.key
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            head = None
        if head is not None and head.get("ContentLength") == item.size and head.get("Metadata", {}).get(SOURCE_ETAG) == item.etag:
            there.append(key)
        else:
            missing.append(item)
    return missing, there


def copy(
    s3, source_uri: str, files: list[ArtifactFile], bucket: str, prefix: str, dry_run: bool = False, mirrors: list[str] = ()
) -> tuple[list[str], list[str]]:
    """Copy `files` (the lock's listing) from `source_uri` to s3://bucket/prefix, server side (boto3's managed
    copy: multipart above its threshold, so files beyond 5 GB copy too), each only if its source still has the
    locked ETag (CopySourceIfMatch: a file rewritten between the check and the copy fails the copy rather than
    land under the old ETag). Files already there are skipped without reading the source, so a source cleaned up
    after its sync does not stop later deploys. Returns (copied keys, keys already there). Raises ArtifactError,
    before copying anything, when the source no longer matches the lock."""
    missing, there = present(s3, files, bucket, prefix)
    if not missing:
        _mark_ready(s3, bucket, prefix, dry_run)
        return [], there
    source_uri, listing = _first_with_files(s3, [source_uri, *mirrors])
    changed = differences(files, listing)
    if changed:
        raise ArtifactError(f"the artifacts at {source_uri} changed since the lock: " + "; ".join(changed))
    source_bucket, source_prefix = split_s3(source_uri)
    copied = []
    for item in missing:
        key = prefix + item.key
        if not dry_run:
            s3.copy(
                {"Bucket": source_bucket, "Key": source_prefix + item.key},
                bucket,
                key,
                # The store's default encryption (SSE-KMS, its data key) applies to the copy.
                ExtraArgs={"Metadata": {SOURCE_ETAG: item.etag}, "MetadataDirective": "REPLACE", "CopySourceIfMatch": f'"{item.etag}"'},
            )
        copied.append(key)
    _mark_ready(s3, bucket, prefix, dry_run)
    return copied, there


def _first_with_files(s3, uris: list[str]) -> tuple[str, list[ArtifactFile]]:
    """The first of `uris` that still holds files, with its listing. Raises ArtifactError naming them all."""
    for uri in uris:
        try:
            return uri, list_files(s3, uri)
        except ArtifactError:
            continue
    raise ArtifactError(f"no files at {' nor '.join(uris)}")


def _mark_ready(s3, bucket: str, prefix: str, dry_run: bool) -> None:
    """Write the marker the model's pods wait for (WEIGHTS_READY_MARKER), once every file is there."""
    if not dry_run:
        s3.put_object(Bucket=bucket, Key=prefix + WEIGHTS_READY_MARKER, Body=b"")
