"""`kilde demo` keeps a source URL or a municipal store set in the environment, so a vendor can
see their own FHIR store through the demo; everything not set stays in the sandbox."""

from __future__ import annotations

import pytest

from gateway.cli import demo_settings

VENDOR = "https://fhir.vendor.example/r4"


def test_the_demo_points_everything_unset_at_its_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KILDE_CONNECTORS__MUNICIPAL__STORES", "KILDE_CONNECTORS__PLL__BASE_URL",
                 "KILDE_MODE"):
        monkeypatch.delenv(name, raising=False)
    settings = demo_settings("127.0.0.1", 8123)
    assert settings.connectors["municipal"].stores == {
        n: f"http://127.0.0.1:8123/municipal/{n}" for n in ("0301", "4601", "5001")}
    assert settings.connectors["pll"].base_url == "http://127.0.0.1:8123/pll"


def test_the_demo_keeps_a_vendors_store_and_source_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILDE_MODE", raising=False)
    monkeypatch.setenv("KILDE_CONNECTORS__MUNICIPAL__STORES", f"0301={VENDOR}")
    monkeypatch.setenv("KILDE_CONNECTORS__PLL__BASE_URL", "https://sfm.vendor.example/pll")
    settings = demo_settings("127.0.0.1", 8123)
    assert settings.connectors["municipal"].stores == {
        "0301": VENDOR,  # the vendor's own store for Oslo
        "4601": "http://127.0.0.1:8123/municipal/4601",
        "5001": "http://127.0.0.1:8123/municipal/5001"}
    assert settings.connectors["pll"].base_url == "https://sfm.vendor.example/pll"
    assert settings.connectors["eresept"].base_url == "http://127.0.0.1:8123/eresept"
