"""`pins`: versions overriding infra/kubernetes-versions.yaml (add-ons, AMI release) and infra/versions.py (charts) for one stack."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from ml_platform.components.images import CHART_IMAGES
from ml_platform.infra import versions
from ml_platform.infra.config.base import _fail, _Model
from ml_platform.infra.config.models import _DIGEST


class PinsConfig(_Model):
    addons: dict[str, Annotated[str, Field(pattern=r"^v[0-9][0-9A-Za-z.+-]*-eksbuild\.[0-9]+$")]] = {}
    """EKS add-on versions overriding infra/kubernetes-versions.yaml (written by `python -m infra reproduce`)."""
    amiRelease: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+-[0-9]{8}$")] | None = None
    """AL2023 AMI release (e.g. 1.36.3-20260903) overriding infra/kubernetes-versions.yaml."""
    charts: dict[str, Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([.-][0-9A-Za-z.-]+)?$")]] = {}
    """Chart versions by chart key overriding infra/versions.py."""
    images: dict[str, Annotated[str, Field(pattern=_DIGEST)]] = {}
    """Digests (`sha256:...`) of the charts' images by image key (components/images.py); prod gives one for every
    image whose chart takes a digest. They belong to the pinned chart versions: move them together."""

    @field_validator("addons")
    @classmethod
    def _addons(cls, value: dict[str, str]) -> dict[str, str]:
        known = set(versions.ADDONS)
        for name in value:
            if name not in known:
                raise _fail(f"'{name}' is not an add-on the platform installs; known: {', '.join(sorted(known))}")
        return value

    @field_validator("images")
    @classmethod
    def _images(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in CHART_IMAGES:
                raise _fail(f"'{name}' is not a chart image; known: {', '.join(sorted(CHART_IMAGES))}")
            if CHART_IMAGES[name].digest_key is None:
                raise _fail(f"the {CHART_IMAGES[name].chart} chart takes no digest for '{name}'; pin it through a mirror instead")
        return value

    @field_validator("charts")
    @classmethod
    def _charts(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in versions.CHARTS:
                raise _fail(f"'{name}' is not a chart the platform installs; known: {', '.join(sorted(versions.CHARTS))}")
        return value
