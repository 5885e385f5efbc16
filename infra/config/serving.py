"""`serving`: what every model of the stack shares."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from ml_platform.infra import versions
from ml_platform.infra.config.base import _ECR_NAME, _fail, _Model
from ml_platform.infra.config.models import ImageRef


class ServingConfig(_Model):
    loaderImage: ImageRef = ImageRef(repository=versions.LOADER_IMAGE[0], tag=versions.LOADER_IMAGE[1])
    """AWS CLI image of the init step that copies weights from the model store (needs a digest in prod)."""
    loaderTransferClient: Literal["crt", "classic", "auto"] = "crt"
    """The AWS CLI's S3 transfer client for the weights' copy (its `preferred_transfer_client`; the compile cache,
    small, always moves with `classic`):
    `crt`, the AWS Common Runtime's parallel C client; `classic`, the Python one (10 requests at a time); `auto`,
    crt on the instance types the CLI's own list names (p4d and p5 in 2.36; aws/aws-cli#10676 adds GPU families
    from 2.37). Only local NVMe lets crt's speed show:
    a gp3 root volume takes 125 MiB/s whatever the client."""
    monitoringImage: ImageRef | None = None
    """The platform's model-monitoring image (`platform/model-monitoring`, built by .github/workflows/platform-images.yml
    from images/model-monitoring): the capture proxy in the pods of models with `capture`, and the monitor job of
    models with `drift`. Required once a model uses either; by digest in prod."""
    imageRegistryPrefix: str | None = None
    """Registry prefix the models' platform images are pulled from (default: this stack's `registries.prefix`).
    Preview stacks pull the images of the stack they preview (same account), whose registry holds them."""

    @field_validator("imageRegistryPrefix")
    @classmethod
    def _image_registry_prefix(cls, value: str | None) -> str | None:
        if value and not _ECR_NAME.match(value):
            raise _fail(f"'{value}' is not an ECR repository namespace (lowercase letters, digits, . _ - and / separators)")
        return value
