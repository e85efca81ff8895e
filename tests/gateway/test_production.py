"""Production refuses insecure settings at start; the optional config file sits under the env."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError

PROD = {
    "KILDE_MODE": "production",
    "KILDE_AUTH__ISSUER": "https://helseid-sts.nhn.no",
    "KILDE_AUTH__JWKS_URL": "https://helseid-sts.nhn.no/.well-known/openid-configuration/jwks",
    "KILDE_AUDIT__URL": "postgresql://kilde@db:5432/kilde",
}


def test_a_sound_production_configuration_starts() -> None:
    settings = Settings.from_env(PROD)
    assert settings.production


@pytest.mark.parametrize(("change", "names"), [
    ({"KILDE_AUTH__ISSUER": "http://kilde-demo/helseid"}, "KILDE_AUTH__ISSUER"),
    ({"KILDE_AUTH__JWKS_URL": "http://kilde:8000/_demo/jwks.json"}, "KILDE_AUTH__JWKS_URL"),
    ({"KILDE_CACHE__URL": "redis://redis:6379/0"}, "KILDE_CACHE__KEY"),
    ({"KILDE_AUDIT__URL": "sqlite:///:memory:"}, "KILDE_AUDIT__URL"),
    ({"KILDE_AUDIT__URL": "sqlite:////data/audit.db", "KILDE_WORKERS": "4"}, "KILDE_AUDIT__URL"),
    ({"KILDE_CORS__ORIGINS": "*", "KILDE_CORS__ALLOW_CREDENTIALS": "true"},
     "KILDE_CORS__ORIGINS"),
])
def test_insecure_production_settings_are_refused_in_one_sentence_naming_the_variable(
        change: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**PROD, **change})
    message = str(caught.value)
    assert names in message
    assert message.count(". ") == 0
    assert message.endswith(".")


def test_single_worker_sqlite_is_a_legitimate_production_pilot() -> None:
    settings = Settings.from_env({**PROD, "KILDE_AUDIT__URL": "sqlite:////data/audit.db"})
    assert settings.audit.url.startswith("sqlite")


def test_open_cors_with_credentials_is_refused_in_the_demo_too() -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"KILDE_CORS__ORIGINS": "*", "KILDE_CORS__ALLOW_CREDENTIALS": "1"})
    assert Settings.from_env({"KILDE_CORS__ORIGINS": "*"}).cors.origins == ("*",)


def test_limits_and_rate_limits_are_read_from_the_environment() -> None:
    s = Settings.from_env({"KILDE_LIMITS__MAX_DEPTH": "8", "KILDE_RATE_LIMIT__REQUESTS": "600",
                           "KILDE_PERSISTED__APQ": "false"})
    assert (s.limits.max_depth, s.rate_limit.requests, s.persisted.apq) == (8, 600, False)
    with pytest.raises(SettingsError, match="KILDE_LIMITS__MAX_DEPHT"):
        Settings.from_env({"KILDE_LIMITS__MAX_DEPHT": "8"})


def test_config_file_toml_is_merged_under_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "kilde.toml"
    file.write_text('deadline_seconds = 2.5\n[limits]\nmax_depth = 9\n'
                    '[connectors.pll]\nbase_url = "https://pll.example"\ntimeout = 1.5\n'
                    '[cors]\norigins = ["https://a.example", "https://b.example"]\n')
    s = Settings.from_env({"KILDE_CONFIG_FILE": str(file), "KILDE_LIMITS__MAX_DEPTH": "7"})
    assert s.deadline_seconds == 2.5
    assert s.limits.max_depth == 7  # the environment wins
    assert s.connectors["pll"].base_url == "https://pll.example"
    assert s.cors.origins == ("https://a.example", "https://b.example")


def test_config_file_env_format_and_its_errors(tmp_path: Path) -> None:
    file = tmp_path / "kilde.env"
    file.write_text("# comment\nexport KILDE_DEADLINE_SECONDS='1.5'\nKILDE_GRAPHIQL=false\n")
    s = Settings.from_env({"KILDE_CONFIG_FILE": str(file)})
    assert (s.deadline_seconds, s.graphiql) == (1.5, False)
    file.write_text("DEADLINE=1\n")
    with pytest.raises(SettingsError, match="line 1"):
        Settings.from_env({"KILDE_CONFIG_FILE": str(file)})
    with pytest.raises(SettingsError, match="not a readable file"):
        Settings.from_env({"KILDE_CONFIG_FILE": str(tmp_path / "missing.toml")})
