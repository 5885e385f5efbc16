"""Shared fixtures: a real S3 API (moto's server mode) on 127.0.0.1 for the whole session.

`moto_s3` is the server (endpoint, a boto3 client, the variables a subprocess needs); `s3_bucket` a fresh, empty
bucket per test, so tests sharing the server never see each other's objects. Nothing here touches os.environ:
in-process code gets the client (or `moto_s3.endpoint_url`) passed in, subprocesses get `moto_s3.env`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
_bucket_numbers = itertools.count(1)


@dataclass(frozen=True)
class MotoS3:
    """A running moto S3 server.

    `endpoint_url` (http://127.0.0.1:PORT), `region`, `client` (a boto3 S3 client bound to the server, fake
    credentials), `env` (AWS_* variables that point a child process's boto3 at the server and away from any real
    account, instance metadata or the developer's ~/.aws)."""

    endpoint_url: str
    region: str
    client: Any
    env: dict[str, str] = field(repr=False)

    def new_client(self, endpoint_url: str | None = None, **config: Any) -> Any:
        """Another boto3 S3 client with the fake credentials, for this server or `endpoint_url`; `config` goes to
        botocore's Config (e.g. `retries={"total_max_attempts": 1}`)."""
        return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region).client(
            "s3", endpoint_url=endpoint_url or self.endpoint_url, config=Config(**config) if config else None
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name when `name` is None) and return its name."""
        name = name or f"test-bucket-{next(_bucket_numbers)}"
        self.client.create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix` in `bucket`: key -> body, in key order."""
        keys = [
            obj["Key"]
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        return {key: self.client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in sorted(keys)}


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 server on 127.0.0.1 (a free port), up for the whole test session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION).client(
        "s3", endpoint_url=endpoint
    )
    try:
        yield MotoS3(endpoint_url=endpoint, region=REGION, client=client, env=env)
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_s3: MotoS3) -> str:
    """A new empty bucket on the session's moto server."""
    return moto_s3.create_bucket()
