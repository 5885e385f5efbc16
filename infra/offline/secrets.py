"""How a plan shows a secret: `[secret:<digest>]`, a keyed digest of what the offline plan sees (never a
plaintext: offline, a `secure:` value is its stack file's ciphertext), so a changed secret shows as changed in a
diff and an unchanged one does not, without its value."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

_KEY = b"ml-platform offline plan"


def masked(value: Any) -> str:
    """A secret value as the plan shows it: `[secret:<12 hex>]`, the same for the same value."""
    material = json.dumps(value, sort_keys=True, default=str).encode()
    return f"[secret:{hmac.new(_KEY, material, hashlib.sha256).hexdigest()[:12]}]"


def is_masked(value: Any) -> bool:
    """Whether a plan value is a masked secret."""
    return isinstance(value, str) and value.startswith("[secret")
