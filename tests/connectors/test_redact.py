"""Secrets never print: `repr()` of settings hides marked fields, URL passwords, secret options."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from connectors import ConnectorSettings
from connectors.redact import SECRET, redact_url, redacted_repr


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://kilde:pw@db:5432/kilde", "postgresql://kilde:***@db:5432/kilde"),
    ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
    ("rediss://default:p%40ss@cache:6380", "rediss://default:***@cache:6380"),
    ("postgresql://kilde:pw@h1:5432,h2:5432/kilde", "postgresql://kilde:***@h1:5432,h2:5432/kilde"),
    ("postgresql://kilde:p@ss/w@db/kilde", "postgresql://kilde:***@db/kilde"),  # unencoded
    ("0301=https://u:a@x/fhir,4601=https://v:b@y/fhir", "0301=https://u:***@x/fhir,4601=https://v:***@y/fhir"),
    ("https://user@host/path", "https://user@host/path"),  # no password: nothing to hide
    ("https://host:8443/path?token=x", "https://host:8443/path?token=x"),
])
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@redacted_repr
@dataclass(frozen=True)
class _Settings:
    client_id: str = "kilde"
    client_secret: str = field(default="s3cr3t-value", metadata=SECRET)
    empty_secret: str = field(default="", metadata=SECRET)
    url: str = "postgresql://kilde:pw-in-url@db/kilde"
    urls: tuple[str, ...] = ("redis://:pw-in-tuple@r:6379/0",)
    options: dict[str, str] = field(default_factory=lambda: {
        "api_key": "key-value", "Password": "pw-value", "page_size": "20",
        "token_endpoint": "https://helseid.example/connect/token"})


def test_a_redacted_repr_shows_the_shape_and_never_a_secret() -> None:
    text = repr(_Settings())
    assert str(_Settings()) == text
    for secret in ("s3cr3t", "pw-in-url", "pw-in-tuple", "key-value", "pw-value"):
        assert secret not in text
    assert "client_secret='<set>'" in text
    assert "empty_secret=''" in text  # an unset secret says so
    assert "'page_size': '20'" in text
    assert _Settings().client_secret == "s3cr3t-value"


def test_connector_settings_hide_url_passwords_and_secret_options() -> None:
    conf = ConnectorSettings("pll", "https://svc:pw1@pll.example",
                             stores={"0301": "https://u:pw2@epj.example"},
                             options={"client_secret": "pw3", "page_size": "5"})
    text = repr(conf)
    assert not any(pw in text for pw in ("pw1", "pw2", "pw3"))
    assert "'page_size': '5'" in text
