"""A stand-in Kubernetes API server for the running-images tests: HTTPS on 127.0.0.1 with a certificate from a CA made
for the session (cryptography, pinned in requirements.txt), a bearer token it requires, and `GET
/api/v1/namespaces/<ns>/pods` answered from `pods[ns]` in pages of PAGE_SIZE (`metadata.continue`), as the API does.
A namespace in `forbidden` answers 403 with the API's Status object. Requests are recorded (path, query, token).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TOKEN = "test-service-account-token"
PAGE_SIZE = 2


def _certificate(subject: str, key, issuer_name: x509.Name, issuer_key, ca: bool, ip: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digitalSignature, keyCertSign, cRLSign
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_ca(directory: Path, name: str) -> tuple[Path, x509.Certificate, object]:
    """A CA certificate (PEM at `directory/<name>.crt`), the certificate and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = _certificate(name, key, subject, key, ca=True)
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


@dataclass
class KubeServer:
    """The running stand-in: `url`, `ca_file` (trusts it), `token_file` (holds TOKEN); `pods` by namespace and
    `forbidden` namespaces are read on each request; `requests` lists (path, query, token) as received."""

    url: str
    ca_file: Path
    token_file: Path
    pods: dict[str, list[dict]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    requests: list[tuple[str, dict, str]] = field(default_factory=list)

    def config(self) -> dict:
        """The `kubernetes` section of a running-images config that points at this server."""
        return {"url": self.url, "tokenFile": str(self.token_file), "caFile": str(self.ca_file)}


def _handler(server: KubeServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            server.requests.append((parsed.path, query, token))
            parts = parsed.path.strip("/").split("/")
            if token != TOKEN:
                return self._status(401, "Unauthorized")
            if len(parts) != 5 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods":
                return self._status(404, f"the server could not find the requested resource ({parsed.path})")
            namespace = parts[3]
            if namespace in server.forbidden:
                return self._status(
                    403,
                    f'pods is forbidden: User "system:serviceaccount:monitoring:running-images" cannot list resource "pods" '
                    f'in API group "" in the namespace "{namespace}"',
                )
            items = server.pods.get(namespace, [])
            start = int(query.get("continue") or 0)
            page = items[start : start + PAGE_SIZE]
            more = start + PAGE_SIZE < len(items)
            body = {"kind": "PodList", "apiVersion": "v1", "metadata": {"continue": str(start + PAGE_SIZE)} if more else {}, "items": page}
            self._send(200, body)

        def _status(self, code: int, message: str):
            self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code})

        def _send(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture(scope="session")
def kube_tls(tmp_path_factory):
    """(CA file, server certificate chain file, key file) for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("kube-tls")
    ca_path, ca_cert, ca_key = make_ca(directory, "test-cluster-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("kube-apiserver", key, ca_cert.subject, ca_key, ca=False, ip="127.0.0.1")
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_path, cert_path, key_path


@pytest.fixture
def kube_api(kube_tls, tmp_path):
    """A KubeServer on a free port for one test."""
    ca_path, cert_path, key_path = kube_tls
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = KubeServer(f"https://127.0.0.1:{httpd.server_address[1]}", ca_path, token_file)
    httpd.RequestHandlerClass = _handler(state)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
