"""moto's S3 server on loopback (the delivery tests' fixture), for what model pods run against S3."""

from tests.delivery.conftest import aws_server, moto_server  # noqa: F401  (pytest finds fixtures by name)
