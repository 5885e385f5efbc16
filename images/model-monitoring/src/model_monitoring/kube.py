"""Reading pods from the Kubernetes API as the pod's own service account, with the standard library only.

In a pod, the API server is `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` (the kubelet sets both in
every container, whatever `enableServiceLinks` says; client-go's InClusterConfig reads the same), else
`https://kubernetes.default.svc`; the bearer token is the projected one at
/var/run/secrets/kubernetes.io/serviceaccount/token (re-read on every request: the kubelet rotates it) and the
server's CA is ca.crt beside it. A list is read in pages (`limit`, `continue`), as large clusters answer them.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_FILE = f"{SERVICE_ACCOUNT_DIR}/token"
CA_FILE = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
DEFAULT_URL = "https://kubernetes.default.svc"
PAGE_SIZE = 250
TIMEOUT_SECONDS = 30


class KubeError(Exception):
    """The API answered with an error (`status` its HTTP status, 0 when it could not be reached)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def in_cluster_url() -> str:
    """The API server's URL from the kubelet's environment, else DEFAULT_URL."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return DEFAULT_URL
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@dataclass(frozen=True)
class KubeApi:
    """The API server at `url`, called with the token in `token_file`, trusting `ca_file` (https only)."""

    url: str
    token_file: str = TOKEN_FILE
    ca_file: str = CA_FILE

    def list_pods(self, namespace: str) -> list[dict]:
        """Every pod of `namespace` (the API's Pod objects as dicts), all pages. A namespace that does not exist
        has no pods. Raises KubeError (403: the service account may not list pods there)."""
        pods: list[dict] = []
        token = ""
        while True:
            query = {"limit": str(PAGE_SIZE), **({"continue": token} if token else {})}
            page = self._get(f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/pods?{urllib.parse.urlencode(query)}")
            pods += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return pods

    def _get(self, path: str) -> dict:
        try:
            with open(self.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise KubeError(0, f"cannot read the service account token {self.token_file}: {e.strerror or e}") from None
        request = urllib.request.Request(
            self.url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        context = ssl.create_default_context(cafile=self.ca_file) if self.url.startswith("https://") else None
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            raise KubeError(e.code, f"GET {path}: HTTP {e.code}: {_status_message(e)}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise KubeError(0, f"GET {self.url}{path}: {getattr(e, 'reason', e)}") from None


def _status_message(error: urllib.error.HTTPError) -> str:
    """The `message` of the API's Status object, else the start of the body."""
    body = error.read().decode("utf-8", "replace")
    try:
        return str(json.loads(body).get("message") or body[:200])
    except (ValueError, AttributeError):
        return body[:200]
