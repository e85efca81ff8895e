"""Cache keys are keyed hashes and values are sealed: a new secret finds and reads nothing."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connectors.crypto import CacheKeys

SECRET = "kilde-test-secret-0123456789abcdef"


def test_keys_are_stable_for_one_secret_and_differ_between_secrets() -> None:
    a, b = CacheKeys.from_secret(SECRET), CacheKeys.from_secret(SECRET)
    assert a.key_for("entry", "pll", "01017000027") == b.key_for("entry", "pll", "01017000027")
    other = CacheKeys.from_secret(SECRET + "x")
    assert a.key_for("entry", "pll") != other.key_for("entry", "pll")


def test_parts_are_joined_unambiguously() -> None:
    keys = CacheKeys.from_secret(SECRET)
    assert keys.key_for("ab", "c") != keys.key_for("a", "bc")
    assert keys.key_for("a", "") != keys.key_for("a")


def test_a_key_is_hmac_sha256_of_the_length_prefixed_parts() -> None:
    # the construction keys have always had: entries written by an older Kilde stay reachable
    keys = CacheKeys.from_secret(SECRET)
    parts = ("entry", "pll", "3", "", "MEDICATIONS", "14033841389", "Ø-ålesund")
    mac = hmac.new(keys.mac_key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part.encode()).to_bytes(4, "big"))
        mac.update(part.encode())
    assert keys.key_for(*parts) == mac.hexdigest()


def test_a_key_never_contains_its_inputs() -> None:
    key = CacheKeys.from_secret(SECRET).key_for("entry", "pll", "14033841389")
    assert "14033841389" not in key
    assert "pll" not in key
    assert len(key) == 64
    assert all(c in "0123456789abcdef" for c in key)


def test_sealed_values_open_with_the_same_key_and_aad_only() -> None:
    keys = CacheKeys.from_secret(SECRET)
    blob = keys.seal(b"CAVE Penicilliner", aad=b"k1")
    assert b"Penicillin" not in blob
    assert keys.open(blob, aad=b"k1") == b"CAVE Penicilliner"
    assert keys.open(blob, aad=b"k2") is None  # moved to another key: refused
    assert CacheKeys.from_secret(SECRET + "rotated").open(blob, aad=b"k1") is None
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    assert keys.open(tampered, aad=b"k1") is None
    assert keys.open(b"short", aad=b"k1") is None


def test_two_seals_of_the_same_value_differ() -> None:
    keys = CacheKeys.from_secret(SECRET)
    assert keys.seal(b"x", aad=b"k") != keys.seal(b"x", aad=b"k")


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        CacheKeys.from_secret("short")
