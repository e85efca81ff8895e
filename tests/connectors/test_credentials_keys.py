"""Kilde's private keys come from files (PEM or JWK, as a Kubernetes Secret mounts them) and
every wrong file is a clear start-up error that shows no key material."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from connectors.credentials import KeyFileError, PrivateKey, jwk_thumbprint, load_private_key


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, fmt: serialization.PrivateFormat,
         password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8,
                                 serialization.PrivateFormat.TraditionalOpenSSL])
def test_loads_an_ec_pem_key_with_its_thumbprint_as_kid(tmp_path: Path,
                                                       fmt: serialization.PrivateFormat) -> None:
    raw = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "dpop.pem"
    path.write_bytes(_pem(raw, fmt))
    key = load_private_key(path)
    assert key.alg == "ES256"
    assert key.kid == key.thumbprint == jwk_thumbprint(key.public_jwk)
    assert "d" not in key.public_jwk
    assert key.public_jwks() == {"keys": [dict(key.public_jwk)]}


def test_loads_an_rsa_pem_key_as_rs256_or_the_algorithm_asked_for(tmp_path: Path) -> None:
    raw = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "client.pem"
    path.write_bytes(_pem(raw, serialization.PrivateFormat.PKCS8))
    assert load_private_key(path).alg == "RS256"
    assert load_private_key(path, alg="PS256").alg == "PS256"


def test_loads_a_private_jwk_keeping_its_kid_and_alg(tmp_path: Path) -> None:
    raw = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**RSAAlgorithm.to_jwk(raw, as_dict=True), "kid": "kilde-2025-01", "alg": "PS256"}
    path = tmp_path / "client.jwk"
    path.write_text(json.dumps(jwk))
    key = load_private_key(path)
    assert (key.kid, key.alg) == ("kilde-2025-01", "PS256")
    assert key.public_jwk["kid"] == "kilde-2025-01"
    assert set(key.public_jwk) & {"d", "p", "q", "dp", "dq", "qi"} == set()


def test_loads_a_jwks_file_holding_one_private_key(tmp_path: Path) -> None:
    raw = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "dpop.json"
    path.write_text(json.dumps({"keys": [ECAlgorithm.to_jwk(raw, as_dict=True)]}))
    assert load_private_key(path).alg == "ES384"


def _public_jwk() -> str:
    raw = ec.generate_private_key(ec.SECP256R1())
    return json.dumps(ECAlgorithm.to_jwk(raw.public_key(), as_dict=True))


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "not an unencrypted PEM"),
    (b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "not an unencrypted"),
    (_public_jwk().encode(), "not a private JWK"),
    (b'{"kty": "oct", "k": "c2VjcmV0", "d": "x"}', "neither an EC nor an RSA"),
    (b'{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}', "not a usable private"),
    (b"{not json", "not valid JSON"),
    (_pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8,
          b"pw"), "not an unencrypted PEM"),
    (_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024),
          serialization.PrivateFormat.PKCS8), "at least 2048 bits"),
    (_pem(ec.generate_private_key(ec.SECP256K1()), serialization.PrivateFormat.PKCS8),
     "not supported"),
])
def test_a_wrong_key_file_is_a_clear_error_naming_the_setting(tmp_path: Path, content: bytes,
                                                              problem: str) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=problem) as info:
        load_private_key(path, setting="KILDE_HELSEID__DPOP_KEY")
    assert "KILDE_HELSEID__DPOP_KEY" in str(info.value)
    assert "BEGIN" not in str(info.value)


def test_a_missing_key_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="KILDE_HELSEID__CLIENT_KEY cannot be read"):
        load_private_key(tmp_path / "absent.pem", setting="KILDE_HELSEID__CLIENT_KEY")


@pytest.mark.parametrize(("curve", "alg"), [(ec.SECP256R1, "RS256"), (ec.SECP256R1, "ES384"),
                                            (ec.SECP256R1, "HS256"), (ec.SECP256R1, "none")])
def test_an_algorithm_that_does_not_fit_the_key_is_refused(curve: type[ec.EllipticCurve],
                                                           alg: str) -> None:
    with pytest.raises(KeyFileError, match=r"cannot sign|not one of"):
        PrivateKey.of(ec.generate_private_key(curve()), alg=alg)


def test_repr_shows_no_key_material() -> None:
    raw = ec.generate_private_key(ec.SECP256R1())
    key = PrivateKey.of(raw)
    text = repr(key)
    assert key.public_jwk["x"] not in text
    assert str(raw.private_numbers().private_value) not in text
    assert key.thumbprint in text


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "RS256", "RS384", "PS256", "PS512"])
def test_a_compact_jws_verifies_with_pyjwt_for_every_algorithm(alg: str) -> None:
    import jwt

    from connectors.credentials import generate_key

    key = generate_key(alg=alg)
    token = key.compact_jws({"typ": "JWT", "kid": key.kid}, {"sub": "x", "n": 1})
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "kid": key.kid, "alg": alg}
    assert jwt.decode(token, jwt.PyJWK(dict(key.public_jwk), alg).key,
                      algorithms=[alg]) == {"sub": "x", "n": 1}


@pytest.mark.parametrize(("curve", "size"), [(ec.SECP256R1, 32), (ec.SECP384R1, 48),
                                             (ec.SECP521R1, 66)])
def test_an_ecdsa_signature_reads_as_r_and_s_exactly_as_the_librarys_decoder_reads_it(
        curve: type[ec.EllipticCurve], size: int) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    from connectors.credentials.keys import raw_ecdsa_signature

    raw = ec.generate_private_key(curve())
    top = 2 ** (size * 8) - 1
    # the edges of DER: a leading zero for a set top bit, short and one-byte integers
    signatures = [encode_dss_signature(r, s) for r, s in [
        (1, 1), (1, top), (top, 1), (2 ** (size * 8 - 1), 127), (128, 2 ** 8 - 1),
        (2 ** (size * 8 - 9), 2 ** (size * 8 - 8))]]
    signatures += [raw.sign(i.to_bytes(2, "big") * 20, ec.ECDSA(hashes.SHA256()))
                   for i in range(300)]
    for der in signatures:
        r, s = decode_dss_signature(der)
        assert raw_ecdsa_signature(der, size) == r.to_bytes(size, "big") + s.to_bytes(size, "big")


def test_the_proof_header_is_encoded_once_and_names_only_the_public_key() -> None:
    import base64

    from connectors.credentials import DPOP_TYPE, generate_key

    for alg in ("ES256", "RS256"):
        key = generate_key(alg=alg)
        padded = key.proof_header + b"=" * (-len(key.proof_header) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
        public = {k: v for k, v in key.public_jwk.items() if k not in ("kid", "use", "alg")}
        assert header == {"typ": DPOP_TYPE, "alg": alg, "jwk": public}
        assert key == PrivateKey.of(key.key, alg=alg, kid=key.kid)  # not part of equality
        assert key.proof_header.decode() not in repr(key)
