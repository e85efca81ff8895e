"""Cache secrecy: keyed-hash cache keys and authenticated encryption of cached values.

Sits under the cache wrapper (`connectors.cache`): every key the cache writes is an HMAC of
what identifies the entry (never an identity number in clear), and every value is sealed with
AES-GCM. Both keys are derived with HKDF from one secret (`KILDE_CACHE__KEY`). A new secret
gives new keys *and* new ciphertext keys, so old entries are neither found nor readable: they
are unreadable, never wrong.

>>> keys = CacheKeys.from_secret("a-long-enough-demo-secret-0123456789")
>>> blob = keys.seal(b"data", aad=b"k")
>>> keys.open(blob, aad=b"k")
b'data'
>>> CacheKeys.from_secret("another-secret-of-enough-length-0000").open(blob, aad=b"k") is None
True
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"kilde-cache-v1"
_NONCE_BYTES = 12
MIN_SECRET_CHARS = 16


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(secret)


def ephemeral_secret() -> str:
    """A random secret for one process (demo mode): entries die with the process."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CacheKeys:
    """The two keys of the cache: one for HMAC key derivation, one for AES-256-GCM."""

    mac_key: bytes
    aead_key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> CacheKeys:
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"The cache key must be at least {MIN_SECRET_CHARS} characters.")
        raw = secret.encode()
        return cls(_derive(raw, b"kilde-cache-hmac"), _derive(raw, b"kilde-cache-aead"))

    def key_for(self, *parts: str) -> str:
        """A hex HMAC-SHA256 of `parts`, unambiguously joined (length-prefixed).

        One message and OpenSSL's one-shot HMAC: a warm request derives ten of these, and
        an update per part was most of their cost (bench/RESULTS.md, issue 16 item 3)."""
        message = b"".join(len(data).to_bytes(4, "big") + data
                           for data in [part.encode() for part in parts])
        return hmac.digest(self.mac_key, message, "sha256").hex()

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """nonce || AES-GCM(plaintext); `aad` (the entry's key) binds the value to its key."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(self.aead_key).encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, *, aad: bytes) -> bytes | None:
        """The plaintext, or None when the blob was sealed with another key or tampered with."""
        if len(blob) <= _NONCE_BYTES:
            return None
        try:
            return AESGCM(self.aead_key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            return None
