"""Kilde's upstream credentials at start and per request: production names what is missing,
key files are read once and refused when unusable or published, and the caller's token travels
to the connectors without entering a repr, an equality or a cache key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from connectors import Category, FetchRequest
from connectors.credentials import NO_CREDENTIALS, generate_key
from gateway import cli
from gateway.graphql import caller_credentials
from gateway.settings import HelseIdSettings, Settings, SettingsError
from gateway.upstream import helseid_problems, key_problems, load_keys, open_token_provider
from sandbox.helseid import key_file
from tests.gateway.test_production import PROD

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def _pem(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(generate_key().key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return path


@pytest.mark.parametrize("missing", ["KILDE_HELSEID__ISSUER", "KILDE_HELSEID__CLIENT_ID",
                                     "KILDE_HELSEID__CLIENT_KEY", "KILDE_HELSEID__DPOP_KEY",
                                     "KILDE_CONNECTORS__PLL__AUDIENCE"])
def test_production_names_each_missing_helseid_setting(missing: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({k: v for k, v in PROD.items() if k != missing})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{missing} is not set")
    assert "e.g." in problem


def test_the_demo_may_call_upstreams_without_credentials() -> None:
    settings = Settings.from_env({"KILDE_MODE": "demo"})
    assert helseid_problems(replace(settings, mode="production"))
    assert open_token_provider(settings, None) is None  # type: ignore[arg-type]


def test_key_files_are_read_with_the_variable_named_when_they_are_unusable(
        tmp_path: Path) -> None:
    good = _pem(tmp_path / "dpop.pem")
    (tmp_path / "bad.pem").write_text("not a key")
    helseid = HelseIdSettings(issuer="https://sts", client_id="k", client_key=str(good),
                              dpop_key=str(good))
    client, dpop = load_keys(helseid, production=True)
    assert client.thumbprint == dpop.thumbprint
    for bad in (tmp_path / "bad.pem", tmp_path / "absent.pem"):
        with pytest.raises(SettingsError, match="KILDE_HELSEID__DPOP_KEY"):
            load_keys(replace(helseid, dpop_key=str(bad)), production=True)


def test_production_refuses_the_sandboxs_published_keys_the_demo_takes_them() -> None:
    published = HelseIdSettings(issuer="https://sts", client_id="kilde",
                                client_key=str(key_file("kilde-client.json")),
                                dpop_key=str(key_file("kilde-dpop.json")))
    with pytest.raises(SettingsError, match="KILDE_HELSEID__CLIENT_KEY is one of the sandbox"):
        load_keys(published, production=True)
    assert load_keys(published, production=False)


def test_kilde_serve_reports_an_unreadable_key_with_the_other_problems(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {**PROD, "KILDE_HELSEID__CLIENT_KEY": str(tmp_path / "absent.pem"),
                        "KILDE_HELSEID__DPOP_KEY": str(key_file("kilde-dpop.json")),
                        "KILDE_WORKERS": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "KILDE_HELSEID__CLIENT_KEY cannot be read" in err
    assert "KILDE_HELSEID__DPOP_KEY is one of the sandbox's published keys" in err
    assert "KILDE_WORKERS" in err
    settings = Settings.from_env(dict(PROD), serving=False)
    assert key_problems(replace(settings, helseid=HelseIdSettings())) == []


@pytest.mark.parametrize(("authorization", "caller"), [
    (f"Bearer {TOKEN}", True), (f"DPoP {TOKEN}", True), (f"dpop  {TOKEN} ", True),
    ("Basic dXNlcjpwdw==", False), ("", False), (None, False),
])
def test_the_callers_token_becomes_credentials_only_from_bearer_or_dpop(
        tmp_path: Path, authorization: str | None, caller: bool) -> None:
    assert caller_credentials(None, authorization) is NO_CREDENTIALS
    key = str(_pem(tmp_path / "k.pem"))
    settings = replace(Settings.from_env({"KILDE_MODE": "demo"}), helseid=HelseIdSettings(
        issuer="https://sts.test", client_id="kilde", client_key=key, dpop_key=key))
    provider = open_token_provider(settings, None)  # type: ignore[arg-type]
    assert provider is not None
    credentials = caller_credentials(provider, authorization)
    assert repr(credentials) == (f"Credentials(provider=yes, caller={'yes' if caller else 'no'})")


def test_the_callers_token_is_no_part_of_a_fetch_requests_identity(tmp_path: Path) -> None:
    key = str(_pem(tmp_path / "k.pem"))
    settings = replace(Settings.from_env({"KILDE_MODE": "demo"}), helseid=HelseIdSettings(
        issuer="https://sts.test", client_id="kilde", client_key=key, dpop_key=key))
    provider = open_token_provider(settings, None)  # type: ignore[arg-type]
    assert provider is not None
    plain = FetchRequest("14033841389", frozenset({Category.MEDICATIONS}))
    with_token = replace(plain, credentials=provider.for_caller(TOKEN))
    assert TOKEN not in repr(with_token)
    assert with_token == plain
    assert hash(with_token) == hash(plain)
