"""moto's server mode on loopback, for the commands that call AWS: the real command line, its real boto3
session and botocore's HTTP stack, pointed at the server by AWS_ENDPOINT_URL (the SDK's own endpoint setting)."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
from pathlib import Path

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from ml_platform.infra import cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on 127.0.0.1, started for the session and stopped after it; yields its URL."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_server(moto_server, monkeypatch, tmp_path):
    """Environment of a user with credentials whose endpoint is the moto server, state reset per test; yields a
    factory of boto3 clients for seeding and reading back."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    for name, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    return lambda service, region: boto3.client(service, region_name=region)


@pytest.fixture
def no_credentials(aws_server, monkeypatch):
    """The same environment without any credentials."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")


class FakePulumi:
    """The stand-in Pulumi CLI's state: the stacks it holds and the calls it was given (--non-interactive left out)."""

    def __init__(self, state: Path):
        self.state_file = state

    def seed(self, stacks: dict) -> None:
        self.state_file.write_text(json.dumps({"stacks": stacks, "calls": []}))

    @property
    def stacks(self) -> dict:
        return json.loads(self.state_file.read_text())["stacks"]

    @property
    def calls(self) -> list[list[str]]:
        return [[a for a in call if a != "--non-interactive"] for call in json.loads(self.state_file.read_text())["calls"]]


@pytest.fixture
def pulumi(tmp_path, monkeypatch):
    """The stand-in Pulumi CLI (fake_pulumi.py) first on PATH, its state in a file the test seeds and reads back."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "pulumi"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).with_name("fake_pulumi.py")}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_STATE", str(tmp_path / "pulumi-state.json"))
    fake = FakePulumi(tmp_path / "pulumi-state.json")
    fake.seed({})
    return fake


@pytest.fixture
def gate(monkeypatch):
    """The vulnerability gate stood in for (its own tests, test_vulnerabilities.py, run it against ECR's model):
    records the stacks it judged and returns `gate.status` (0: passed; 3: refused)."""

    class Gate:
        status = 0
        stacks: list[str] = []

        def __call__(self, stack, project_dir, plan=None, today=None):
            self.stacks.append(stack)
            return self.status

    stand_in = Gate()
    stand_in.stacks = []
    monkeypatch.setattr(cli, "_vulnerability_gate", stand_in)
    return stand_in
