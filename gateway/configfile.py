"""The optional configuration file (`KILDE_CONFIG_FILE`): TOML or an env-file, under the env.

Sits before settings parsing: `read_config_file(path)` turns the file into `KILDE_*` names and
values, and `Settings.from_env()` lays the real environment over them, so a variable always
wins over the file. A TOML table nests like `__` does:

    mode = "production"
    [auth]
    issuer = "https://helseid-sts.nhn.no"
    [connectors.pll]
    base_url = "https://pll.example"

is `KILDE_MODE`, `KILDE_AUTH__ISSUER` and `KILDE_CONNECTORS__PLL__BASE_URL`. Any other file
is read as `NAME=value` lines (`#` comments, optional `export`, optional quotes).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


class ConfigFileError(ValueError):
    """The configuration file is missing or malformed; the message names it."""


def _flatten(prefix: str, table: dict[str, Any], out: dict[str, str]) -> None:
    for key, value in table.items():
        name = f"{prefix}__{key.upper()}" if prefix != "KILDE" else f"KILDE_{key.upper()}"
        if isinstance(value, dict):
            _flatten(name, value, out)
        elif isinstance(value, list):
            out[name] = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(value)


def _env_lines(text: str, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if not sep or not name.strip().startswith("KILDE_"):
            raise ConfigFileError(
                f"KILDE_CONFIG_FILE {path!r} line {number} is not a KILDE_NAME=value line.")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name.strip()] = value
    return out


def read_config_file(path: str) -> dict[str, str]:
    """The file's settings as `KILDE_*` environment names and string values."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError:
        raise ConfigFileError(f"KILDE_CONFIG_FILE {path!r} is not a readable file.") from None
    if file.suffix != ".toml":
        return _env_lines(text, path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"KILDE_CONFIG_FILE {path!r} is not valid TOML ({exc}).") from None
    out: dict[str, str] = {}
    _flatten("KILDE", data, out)
    out.pop("KILDE_CONFIG_FILE", None)
    return out
