"""Production unless told otherwise: what a serving process needs, refuses, and never prints;
every problem named in one message; the optional config file sits under the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import DEMO_ISSUER, Settings, SettingsError
from tests.plugins import ROOT

PROD = {
    "KILDE_AUTH__ISSUER": "https://helseid-sts.nhn.no",
    "KILDE_AUTH__AUDIENCE": "kommune:kilde",
    "KILDE_AUTH__JWKS_URL": "https://helseid-sts.nhn.no/.well-known/openid-configuration/jwks",
    "KILDE_AUDIT__URL": "postgresql://kilde@db:5432/kilde",
    "KILDE_CACHE__KEY": "a-long-enough-cache-secret-0123456789",
    "KILDE_TENANTS": "4601:Bergen:920000002",
    # Kilde as a HelseID client (the key files are read when the app starts, not here)
    "KILDE_HELSEID__ISSUER": "https://helseid-sts.nhn.no",
    "KILDE_HELSEID__CLIENT_ID": "kilde-bergen",
    "KILDE_HELSEID__CLIENT_KEY": "/var/run/secrets/kilde/helseid/client.pem",
    "KILDE_HELSEID__DPOP_KEY": "/var/run/secrets/kilde/helseid/dpop.pem",
    **{f"KILDE_CONNECTORS__{name}__AUDIENCE": f"nhn:{name.lower()}"
       for name in ("MUNICIPAL", "KJERNEJOURNAL", "PLL", "ERESEPT", "PROEVESVAR",
                    "PERSONTJENESTEN")},
}
HELSEID = ("KILDE_HELSEID__ISSUER", "KILDE_HELSEID__CLIENT_ID", "KILDE_HELSEID__CLIENT_KEY",
           "KILDE_HELSEID__DPOP_KEY")
AUDIENCES = tuple(f"KILDE_CONNECTORS__{n}__AUDIENCE"
                  for n in ("MUNICIPAL", "KJERNEJOURNAL", "PLL", "ERESEPT", "PROEVESVAR",
                            "PERSONTJENESTEN"))
REQUIRED = ("KILDE_AUTH__ISSUER", "KILDE_AUTH__AUDIENCE", "KILDE_AUDIT__URL",
            "KILDE_CACHE__KEY", "KILDE_TENANTS", *HELSEID, *AUDIENCES)
CONNECTORS = {
    "KILDE_CONNECTORS__MUNICIPAL__STORES": "4601=https://epj.bergen.example/fhir",
    **{f"KILDE_CONNECTORS__{n}__BASE_URL": f"https://{n.lower()}.example"
       for n in ("KJERNEJOURNAL", "PLL", "ERESEPT", "PROEVESVAR", "PERSONTJENESTEN")},
}


def _problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return caught.value.problems


def test_a_sound_production_configuration_starts_without_naming_a_mode() -> None:
    settings = Settings.from_env(PROD)
    assert settings.production
    assert not settings.demo


def test_nothing_configured_names_every_missing_setting_in_one_message() -> None:
    problems = _problems({})
    assert [next(r for r in REQUIRED if p.startswith(r)) for p in problems] == [
        "KILDE_AUTH__ISSUER", "KILDE_AUTH__AUDIENCE", "KILDE_CACHE__KEY", "KILDE_AUDIT__URL",
        "KILDE_TENANTS", *HELSEID, *AUDIENCES]
    assert all("is not set" in p and "e.g." in p for p in problems)


@pytest.mark.parametrize("missing", REQUIRED)
def test_each_required_setting_is_named_alone_when_only_it_is_missing(missing: str) -> None:
    env = {k: v for k, v in PROD.items() if k != missing}
    (problem,) = _problems(env)
    assert problem.startswith(f"{missing} is not set")


def test_no_jwks_url_means_the_keys_are_discovered_from_the_issuer() -> None:
    env = {k: v for k, v in PROD.items() if k != "KILDE_AUTH__JWKS_URL"}
    assert Settings.from_env(env).auth.jwks_url == ""


def test_a_disabled_cache_needs_no_key() -> None:
    env = {k: v for k, v in PROD.items() if k != "KILDE_CACHE__KEY"}
    assert Settings.from_env({**env, "KILDE_CACHE__ENABLED": "false"}).production


@pytest.mark.parametrize(("change", "names"), [
    ({"KILDE_AUTH__ISSUER": DEMO_ISSUER}, "KILDE_AUTH__ISSUER"),
    ({"KILDE_AUTH__JWKS_URL": "http://kilde:8000/_demo/jwks.json"}, "KILDE_AUTH__JWKS_URL"),
    ({"KILDE_AUDIT__URL": "sqlite:///:memory:"}, "KILDE_AUDIT__URL"),
    ({"KILDE_AUDIT__URL": "sqlite:////data/audit.db", "KILDE_WORKERS": "4"}, "KILDE_AUDIT__URL"),
    ({"KILDE_CORS__ORIGINS": "*", "KILDE_CORS__ALLOW_CREDENTIALS": "true"},
     "KILDE_CORS__ORIGINS"),
])
def test_insecure_production_settings_are_refused_in_one_sentence_naming_the_variable(
        change: dict[str, str], names: str) -> None:
    (problem,) = _problems({**PROD, **change})
    assert names in problem
    assert problem.endswith(".")


def test_single_worker_sqlite_is_a_legitimate_production_pilot() -> None:
    settings = Settings.from_env({**PROD, "KILDE_AUDIT__URL": "sqlite:////data/audit.db"})
    assert settings.audit.url.startswith("sqlite")


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("KILDE_DEADLINE_SECONDS", "soon", "KILDE_DEADLINE_SECONDS must be a number of seconds, "
                                       "e.g. 3.0, not 'soon'."),
    ("KILDE_DEADLINE_SECONDS", "0", "KILDE_DEADLINE_SECONDS must be a number of seconds "
                                    "above 0, e.g. 3.0."),
    ("KILDE_WORKERS", "2.5", "KILDE_WORKERS must be a whole number, e.g. 1, not '2.5'."),
    ("KILDE_WORKERS", "0", "KILDE_WORKERS must be 1 or more, not 0."),
    ("KILDE_PORT", "70000", "KILDE_PORT must be from 1 to 65535, not 70000."),
    ("KILDE_GRAPHIQL", "maybe", "KILDE_GRAPHIQL must be true or false, not 'maybe'."),
    ("KILDE_MODE", "prod", "KILDE_MODE must be 'production' (the default) or 'demo', not 'prod'."),
    ("KILDE_LOG_LEVEL", "loud", "KILDE_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, "
                                "CRITICAL, not 'loud'."),
    ("KILDE_CACHE__OP_TIMEOUT_SECONDS", "fast", "KILDE_CACHE__OP_TIMEOUT_SECONDS must be a number "
                                                "of seconds, e.g. 0.25, not 'fast'."),
    ("KILDE_RESILIENCE__JITTER", "-1", "KILDE_RESILIENCE__JITTER must be a number of seconds "
                                       "(0 or more), e.g. 0.05, not '-1'."),
    ("KILDE_LIMITS__MAX_DEPTH", "-2", "KILDE_LIMITS__MAX_DEPTH must be 0 or more, not -2."),
    ("KILDE_CONNECTORS__PLL__TIMEOUT", "2s", "KILDE_CONNECTORS__PLL__TIMEOUT must be a number of "
                                             "seconds, e.g. 2.0, not '2s'."),
    ("KILDE_LIMITS__MAX_DEPHT", "8", "Unknown setting KILDE_LIMITS__MAX_DEPHT; did you mean "
                                     "KILDE_LIMITS__MAX_DEPTH?"),
    ("KILDE_DEADLINE", "3", "Unknown setting KILDE_DEADLINE; did you mean "
                            "KILDE_DEADLINE_SECONDS?"),
])
def test_a_wrong_value_is_named_in_plain_words(variable: str, value: str, says: str) -> None:
    (problem,) = _problems({**PROD, variable: value})
    assert problem == says
    assert "<class" not in problem
    assert "Error" not in problem


def test_every_wrong_value_and_missing_setting_comes_in_one_message() -> None:
    env = {"KILDE_DEADLINE_SECONDS": "soon", "KILDE_WORKERS": "two", "KILDE_PORT": "x",
           "KILDE_AUDIT__RETENTION_DAYS": "0", "KILDE_AGREEMENTS": "4601-0301"}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    problems = caught.value.problems
    named = {p.split()[0] for p in problems}
    assert {"KILDE_DEADLINE_SECONDS", "KILDE_WORKERS", "KILDE_PORT",
            "KILDE_AUDIT__RETENTION_DAYS", "KILDE_AGREEMENTS", *REQUIRED} <= named
    message = str(caught.value)
    assert message.startswith(f"{len(problems)} settings must be fixed:\n")
    assert all(f"  - {p}" in message for p in problems)


def test_the_demo_has_embedded_defaults_and_the_environment_wins() -> None:
    demo = Settings.from_env({"KILDE_MODE": "demo"})
    assert (demo.demo, demo.auth.issuer, demo.auth.audience) == (True, DEMO_ISSUER, "kilde")
    assert demo.audit.url == "sqlite:///kilde-audit.sqlite3"
    assert [t.number for t in demo.tenants] == ["0301", "4601", "5001"]
    own = Settings.from_env({"KILDE_MODE": "demo", "KILDE_AUDIT__URL": "sqlite:///mine.db"})
    assert own.audit.url == "sqlite:///mine.db"


def test_open_cors_with_credentials_is_refused_in_the_demo_too() -> None:
    demo = {"KILDE_MODE": "demo"}
    with pytest.raises(SettingsError):
        Settings.from_env({**demo, "KILDE_CORS__ORIGINS": "*",
                           "KILDE_CORS__ALLOW_CREDENTIALS": "1"})
    assert Settings.from_env({**demo, "KILDE_CORS__ORIGINS": "*"}).cors.origins == ("*",)


def test_tools_read_the_values_without_the_serving_requirements() -> None:
    settings = Settings.from_env({"KILDE_AUDIT__URL": "sqlite:///a.db"}, serving=False)
    assert settings.production
    with pytest.raises(SettingsError, match="KILDE_WORKERS"):
        Settings.from_env({"KILDE_WORKERS": "0"}, serving=False)


SECRETS = {
    "KILDE_CACHE__KEY": "cache-key-that-must-not-print-42",
    "KILDE_AUDIT__URL": "postgresql://kilde:audit-pw-9f3@db:5432/kilde",
    "KILDE_CACHE__URL": "redis://:redis-pw-77a@cache:6379/0",
    "KILDE_CONNECTORS__PLL__BASE_URL": "https://svc:pll-pw-31@pll.example",
    "KILDE_CONNECTORS__MUNICIPAL__STORES": "4601=https://u:store-pw-12@epj.example/fhir",
    "KILDE_OTLP_ENDPOINT": "https://otel:otel-pw-5@collector.example",
}


def test_secrets_never_show_in_repr_or_str_of_the_settings() -> None:
    settings = Settings.from_env({**PROD, **SECRETS}, serving=False)
    for text in (repr(settings), str(settings), repr(settings.cache), str(settings.audit),
                 repr(settings.connectors["pll"])):
        for word in ("cache-key-that", "audit-pw", "redis-pw", "pll-pw", "store-pw", "otel-pw"):
            assert word not in text
    assert "key='<set>'" in repr(settings.cache)
    assert "postgresql://kilde:***@db:5432/kilde" in repr(settings.audit)
    assert settings.cache.key == SECRETS["KILDE_CACHE__KEY"]  # hidden, not changed


def test_secrets_never_show_in_a_settings_error() -> None:
    env = {**PROD, "KILDE_CACHE__KEY": "short-pw-x", "KILDE_CACHE__URL": "mem://:cache-pw@x",
           "KILDE_CONNECTORS__MUNICIPAL__STORES": "46=https://u:store-pw@x/fhir",
           "KILDE_AUDIT__URL": "postgresql://kilde:audit-pw@db/kilde", "KILDE_WORKERS": "2x"}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    for word in ("short-pw", "cache-pw", "store-pw", "audit-pw"):
        assert word not in str(caught.value)
    assert len(caught.value.problems) == 4


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KILDE_")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60, check=False)


_MODULES = ("import json, sys, {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sandbox', 'gateway'))))")


@pytest.mark.parametrize("module", ["gateway.asgi", "gateway.cli"])
def test_the_production_entry_imports_neither_the_sandbox_nor_the_demo_key(module: str) -> None:
    done = _run(_MODULES.format(module=module), {**PROD, **CONNECTORS})
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "gateway.settings" in loaded  # the check sees the gateway's modules
    assert not [m for m in loaded if m.split(".")[0] == "sandbox"]
    assert not [m for m in loaded if m.startswith(("gateway.demo", "gateway.webapp"))]


def test_only_an_explicit_demo_mode_loads_the_demo_into_the_serving_entry() -> None:
    done = _run(_MODULES.format(module="gateway.asgi"), {"KILDE_MODE": "demo", **CONNECTORS})
    assert done.returncode == 0, done.stderr
    assert "gateway.demo.tokens" in json.loads(done.stdout)


async def test_the_production_app_serves_no_demo_routes() -> None:
    app = create_app(Settings.from_env({**PROD, **CONNECTORS}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kilde.test") as client:
        for method, path in [("POST", "/_demo/token"), ("GET", "/_demo/jwks.json"),
                             ("GET", "/_demo/personas"), ("GET", "/app/")]:
            r = await client.request(method, path, json={"persona": "legevakt-lege"})
            assert r.status_code == 404, path


def _kilde(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KILDE_")}
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT,
                          env={**base, **env}, capture_output=True, text=True, timeout=60,
                          check=False)


def test_kilde_serve_with_no_configuration_exits_2_naming_every_missing_setting() -> None:
    done = _kilde(["serve"], {})
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == f"kilde: {len(lines) - 1} settings must be fixed before Kilde can start:"
    for name in (*REQUIRED, "KILDE_CONNECTORS__MUNICIPAL__STORES",
                 "KILDE_CONNECTORS__PROEVESVAR__BASE_URL"):
        assert sum(name in line for line in lines[1:]) == 1, name
    assert "Traceback" not in done.stderr


def test_kilde_serve_in_demo_mode_says_so_as_a_warning() -> None:
    # --fd 999 is not open: the command stops right after its start-up checks and warning
    done = _kilde(["serve", "--fd", "999"], {"KILDE_MODE": "demo", **CONNECTORS})
    assert done.returncode == 2
    warning = next(json.loads(line) for line in done.stderr.splitlines()
                   if line.startswith("{") and "KILDE_MODE=demo" in line)
    assert warning["level"] == "WARNING"
    assert "demo signing key" in warning["message"]


def test_demo_only_commands_refuse_an_explicit_production_mode(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    monkeypatch.setenv("KILDE_MODE", "production")
    with pytest.raises(SystemExit) as info:
        main(["token", "--persona", "legevakt-lege"])
    assert info.value.code == 2
    assert "kilde token is demo-only" in capsys.readouterr().err


def test_config_file_toml_is_merged_under_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "kilde.toml"
    file.write_text('deadline_seconds = 2.5\n[limits]\nmax_depth = 9\n'
                    '[connectors.pll]\nbase_url = "https://pll.example"\ntimeout = 1.5\n'
                    '[cors]\norigins = ["https://a.example", "https://b.example"]\n')
    s = Settings.from_env({**PROD, "KILDE_CONFIG_FILE": str(file),
                           "KILDE_LIMITS__MAX_DEPTH": "7"})
    assert s.deadline_seconds == 2.5
    assert s.limits.max_depth == 7  # the environment wins
    assert s.connectors["pll"].base_url == "https://pll.example"
    assert s.cors.origins == ("https://a.example", "https://b.example")


def test_config_file_env_format_and_its_errors(tmp_path: Path) -> None:
    file = tmp_path / "kilde.env"
    file.write_text("# comment\nexport KILDE_DEADLINE_SECONDS='1.5'\nKILDE_GRAPHIQL=false\n")
    s = Settings.from_env({**PROD, "KILDE_CONFIG_FILE": str(file)})
    assert (s.deadline_seconds, s.graphiql) == (1.5, False)
    file.write_text("DEADLINE=1\n")
    with pytest.raises(SettingsError, match="line 1"):
        Settings.from_env({"KILDE_CONFIG_FILE": str(file)})
    with pytest.raises(SettingsError, match="not a readable file"):
        Settings.from_env({"KILDE_CONFIG_FILE": str(tmp_path / "missing.toml")})
