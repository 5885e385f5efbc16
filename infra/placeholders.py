"""The example values this repository's stack files ship with, so a copied stack file cannot reach AWS with them.

One explicit list, read by three places: the offline plan warns about each (`python -m infra plan`), `doctor`
fails on them, and the program refuses them in a prod stack when the real engine runs an update (`pulumi up`),
instead of failing much later at an IAM, ECR or Alertmanager call.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

EXAMPLE_ACCOUNT_IDS = ("123456789012",)
"""The account ID AWS's own documentation uses in example ARNs."""

DOCUMENTATION_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))
"""Address blocks reserved for documentation (RFC 5737, RFC 3849): no client ever has one of these addresses."""

EXAMPLE_DIGESTS = tuple(f"sha256:{'e' * 63}{n}" for n in range(1, 10))
"""The made-up image digests of Pulumi.prod.yaml's `pins.images` (replace with `crane digest <image>:<tag>`)."""

EXAMPLE_SECRET_PREFIXES = ("v1:replace-with-", "replace-with-")
"""The stand-in ciphertexts of Pulumi.prod.yaml's receiver secrets (set with `pulumi config set --secret --path`)."""


@dataclass(frozen=True)
class Placeholder:
    path: str
    """Config key path, e.g. `ml-platform:cluster.accessEntries[0].principalArn`."""
    value: str
    what: str
    """What the value is an example of, and what to put there."""

    def line(self) -> str:
        return f"{self.path}: '{self.value}' is {self.what}"


def _what(value: str) -> str | None:
    if value.startswith(EXAMPLE_SECRET_PREFIXES):
        return "an example secret; set the real one with `pulumi config set --secret --path <key> <value>`"
    if value in EXAMPLE_DIGESTS:
        return "a made-up image digest; pin the real one (`crane digest <image>:<tag>`)"
    if any(f":{account}:" in value for account in EXAMPLE_ACCOUNT_IDS):
        return "an ARN in AWS's documentation account; use your account's role ARN"
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    if any(network.version == doc.version and network.subnet_of(doc) for doc in DOCUMENTATION_NETWORKS):
        return "a documentation address range (RFC 5737/3849) that no client has; use your office or VPN ranges"
    return None


def _walk(value: Any, path: str) -> Iterator[Placeholder]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
    elif isinstance(value, str):
        what = _what(value)
        if what is not None:
            yield Placeholder(path, value, what)


def find(values: Mapping[str, Any]) -> list[Placeholder]:
    """The placeholders in a stack's config. `values`: full key -> value, either as data or as the engine hands
    it to a program (a string, JSON for structured values); secrets are looked at in whatever form they come
    (offline: the stack file's ciphertext; under the engine: decrypted). Sorted by path."""
    found = []
    for key, value in values.items():
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(ValueError):  # not JSON after all: look at it as a string
                value = json.loads(value)
        found += _walk(value, key)
    return sorted(found, key=lambda p: p.path)
