"""Server-provided DPoP nonces (RFC 9449 §8, `KILDE_AUTH__DPOP_NONCE=true`).

Sits under `gateway.auth.dpop`: with nonces on, a proof must carry the server's current nonce
in its `nonce` claim; otherwise the answer is 401 `use_dpop_nonce` with a fresh nonce in the
`DPoP-Nonce` header, and the client signs the request again with it. That limits how far
ahead a proof can be made, independent of the client's clock.

Nonces are stateless, so every replica accepts every other's: a time step number and an HMAC
of it under a secret all replicas share (derived from `KILDE_CACHE__KEY`; a random one per
process when that is unset, as in the demo). A nonce is accepted in its own step and the next.

>>> nonces = NonceIssuer(b"s" * 32, clock=lambda: 1_000_000.0)
>>> nonces.valid(nonces.current())
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

STEP_SECONDS = 300  # a new nonce every five minutes, each good for five to ten


def nonce_secret(cache_key: str) -> bytes:
    """The nonce secret: derived from the shared cache key, or random for this process."""
    if not cache_key:
        return secrets.token_bytes(32)
    return hmac.new(cache_key.encode(), b"kilde dpop nonce v1", hashlib.sha256).digest()


class NonceIssuer:
    """Makes and checks nonces; `current()` for a challenge, `valid(nonce)` for a proof."""

    def __init__(self, secret: bytes, *, step_seconds: int = STEP_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._step = step_seconds
        self._clock = clock

    def _mac(self, step: int) -> bytes:
        return hmac.new(self._secret, step.to_bytes(8, "big"), hashlib.sha256).digest()[:16]

    def current(self) -> str:
        step = int(self._clock() // self._step)
        raw = step.to_bytes(8, "big") + self._mac(step)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def valid(self, nonce: object) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, binascii.Error):
            return False
        if len(raw) != 24:
            return False
        step = int.from_bytes(raw[:8], "big")
        now = int(self._clock() // self._step)
        return step in (now, now - 1) and hmac.compare_digest(raw[8:], self._mac(step))
