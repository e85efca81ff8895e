"""`KILDE_CONNECTORS__<NAME>__*`: common settings, a connector's own options, and the rollout
to municipalities, validated with one sentence naming the variable."""

from __future__ import annotations

import pytest

from gateway.settings import Settings, SettingsError

DEMO = {"KILDE_MODE": "demo"}  # the demo's tenants: 0301, 4601, 5001


def test_unknown_connector_settings_become_options_for_the_connector_to_check() -> None:
    settings = Settings.from_env({"KILDE_CONNECTORS__PROEVESVAR__PAGE_SIZE": "20",
                                  "KILDE_CONNECTORS__PROEVESVAR__BASE_URL": "http://pps"},
                                 serving=False)
    conf = settings.connectors["proevesvar"]
    assert (conf.base_url, dict(conf.options)) == ("http://pps", {"page_size": "20"})


def test_a_plugin_is_enabled_and_rolled_out_to_municipalities() -> None:
    settings = Settings.from_env({**DEMO, "KILDE_CONNECTORS__VELFERD__ENABLED": "true",
                                  "KILDE_CONNECTORS__VELFERD__MUNICIPALITIES": "0301, 4601"})
    assert settings.enabled_connectors[-1] == "velferd"
    assert settings.connectors["velferd"].municipalities == frozenset({"0301", "4601"})
    assert Settings.from_env({}, serving=False).connectors == {}


def test_audience_scope_and_grant_are_read_for_every_connector() -> None:
    settings = Settings.from_env({
        "KILDE_MODE": "demo",
        "KILDE_CONNECTORS__KJERNEJOURNAL__AUDIENCE": "nhn:kjernejournal",
        "KILDE_CONNECTORS__KJERNEJOURNAL__SCOPE": " nhn:kjernejournal/api  nhn:x ",
        "KILDE_CONNECTORS__PERSONTJENESTEN__GRANT": "client_credentials"})
    kj = settings.connectors["kjernejournal"]
    assert (kj.audience, kj.scope, kj.grant) == ("nhn:kjernejournal",
                                                 "nhn:kjernejournal/api nhn:x", "token_exchange")
    assert kj.options == {}
    assert settings.connectors["persontjenesten"].grant == "client_credentials"


@pytest.mark.parametrize(("env", "message"), [
    ({"KILDE_CONNECTORS__HUB__MUNICIPALITIES": "0301,301"},
     "KILDE_CONNECTORS__HUB__MUNICIPALITIES entry '301' must be a 4-digit municipality number."),
    ({"KILDE_CONNECTORS__HUB__MUNICIPALITIES": "1103"},
     "KILDE_CONNECTORS__HUB__MUNICIPALITIES names municipality '1103', which is not in "
     "KILDE_TENANTS."),
    ({"KILDE_CONNECTORS__HUB": "x"},
     "Unknown setting KILDE_CONNECTORS__HUB; connectors take ['AUDIENCE', 'BASE_URL', "
     "'ENABLED', 'GRANT', 'MUNICIPALITIES', 'SCOPE', 'STORES', 'TIMEOUT'] or an option of "
     "their own, as KILDE_CONNECTORS__<NAME>__<SETTING>."),
    ({"KILDE_CONNECTORS__HUB__GRANT": "password"},
     "KILDE_CONNECTORS__HUB__GRANT must be 'token_exchange' (acting for the caller) or "
     "'client_credentials' (acting as Kilde), not 'password'."),
    ({"KILDE_CONNECTORS__HUB__BASE_URL": "hub.example"},
     "KILDE_CONNECTORS__HUB__BASE_URL must be an absolute URL (e.g. "
     "'https://hub.example/api')."),
])
def test_bad_connector_settings_fail_naming_the_variable(env: dict[str, str], message: str
                                                         ) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**DEMO, **env})
    assert str(caught.value) == message
