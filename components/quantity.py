"""Kubernetes resource quantities as numbers: the suffixes of apimachinery's `resource.Quantity`
(k8s.io/apimachinery/pkg/api/resource/quantity.go): binary Ki..Ei, decimal k..E, and m (milli)."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
}
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<suffix>[a-zA-Z]*)\Z")

MI = 1024**2
GI = 1024**3


def parse(quantity: str) -> Decimal:
    """The value of a quantity such as `12Gi`, `500m` or `2`; raises ValueError for anything else."""
    match = _QUANTITY.match(str(quantity))
    if not match or match.group("suffix") not in _SUFFIXES:
        raise ValueError(f"'{quantity}' is not a Kubernetes quantity")
    return Decimal(match.group("number")) * _SUFFIXES[match.group("suffix")]


def mebibytes(quantity: str) -> int:
    """A memory quantity in whole MiB, rounded down."""
    return int(parse(quantity) // MI)
