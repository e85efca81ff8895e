"""The README's settings table is every setting the code reads, generated from the
definitions (gateway/settingsdoc.py), and the Helm chart's `config` schema is generated from the
same list."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

from gateway import settingsdoc
from gateway.envsettings import SECTIONS, TOP

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "connectors", "schema", "policies", "sandbox")
NAME = re.compile(r"KILDE_[A-Z0-9_]+")
ROW = re.compile(r"^\| `(KILDE_[^`]+)` \|", re.M)


def readme_names() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index(settingsdoc.BEGIN):text.index(settingsdoc.END)]
    return ROW.findall(table)


def names_in_code(paths: list[Path]) -> dict[str, tuple[str, bool]]:
    """Every `KILDE_*` name a module's code holds as a string: whole names ("KILDE_MODE") and
    the heads of f-strings (f"KILDE_SANDBOX__{source}__" -> a prefix), with the file. Names in
    `__all__` are Python names, not settings; KILDE_TEST__* are the test suite's switches."""
    found: dict[str, tuple[str, bool]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                skip.update(id(n) for n in ast.walk(node.value))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if NAME.fullmatch(node.value):
                    found.setdefault(node.value, (str(path), node.value.endswith("_")))
            elif isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    head = NAME.match(first.value)
                    if head and len(node.values) > 1 and head.end() == len(first.value):
                        found.setdefault(head.group(0), (str(path), True))
    return {k: v for k, v in found.items() if not k.startswith("KILDE_TEST__")}


def described(name: str, prefix: bool, rows: list[str]) -> bool:
    """Whether a row describes `name`: the setting itself, its section (`KILDE_LIMITS`) or,
    for a prefix, some setting that starts with it; <NAME>, <SOURCE> and <OPTION> in a row
    stand for any one part."""
    parts = name.rstrip("_").split("__")
    for row in rows:
        row_parts = row.split("__")
        if len(parts) > len(row_parts):
            continue
        ok = True
        for i, (mine, theirs) in enumerate(zip(parts, row_parts, strict=False)):
            if theirs.startswith("<"):
                continue
            last = prefix and i == len(parts) - 1
            if not (theirs.startswith(mine) if last else theirs == mine):
                ok = False
                break
        if ok:
            return True
    return False


def code_files() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_the_readme_table_is_the_generated_one() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settingsdoc.readme_with_table(text) == text, (
        "README.md's settings table is out of date: run `.venv/bin/python -m gateway.settingsdoc`")


def test_every_setting_has_a_meaning_and_no_meaning_is_left_over() -> None:
    rows = settingsdoc.settings()
    assert [s.name for s in rows if not s.meaning] == []
    assert set(settingsdoc.MEANINGS) == {s.name for s in rows}


def test_every_setting_in_the_definitions_is_in_the_readme() -> None:
    names = set(readme_names())
    expected = {f"KILDE_{k}" for k in TOP} | {
        f"KILDE_{s}__{f.name.upper()}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)}
    assert expected - names == set()
    # the ones the hand-written table once left out
    for name in ("KILDE_MODE", "KILDE_HOST", "KILDE_PORT", "KILDE_WORKERS", "KILDE_LOG_LEVEL",
                 "KILDE_GRAPHIQL", "KILDE_ENABLED_CONNECTORS", "KILDE_HELSEID__CLIENT_ID",
                 "KILDE_CACHE__NAMESPACE", "KILDE_LIMITS__MAX_HEADER_BYTES"):
        assert name in names


def test_every_kilde_name_the_code_reads_is_in_the_readme() -> None:
    rows = readme_names()
    found = names_in_code(code_files())
    assert "KILDE_MODE" in found  # the scan works
    assert "KILDE_SANDBOX__REQUIRE_TOKENS" in found
    missing = {name: path for name, (path, prefix) in found.items()
               if not described(name, prefix, rows)}
    assert missing == {}, "add these to gateway/settingsdoc.py and regenerate the README"


def test_the_scan_finds_a_name_read_directly_from_the_environment(tmp_path: Path) -> None:
    module = tmp_path / "reader.py"
    module.write_text('import os\n'
                      'X = os.environ.get("KILDE_NOT_A_SETTING")\n'
                      'Y = os.environ[f"KILDE_SANDBOX__{1}__NOPE_EITHER"]\n'
                      'Z = os.environ.get(f"KILDE_UNHEARD_OF__{1}")\n'
                      '__all__ = ["KILDE_PYTHON_NAME"]\n')
    found = names_in_code([module])
    assert set(found) == {"KILDE_NOT_A_SETTING", "KILDE_SANDBOX__", "KILDE_UNHEARD_OF__"}
    rows = readme_names()
    assert not described("KILDE_NOT_A_SETTING", False, rows)
    assert not described("KILDE_UNHEARD_OF__", True, rows)
    assert described("KILDE_SANDBOX__", True, rows)
    assert described("KILDE_CONNECTORS__PROEVESVAR__PAGE_SIZE", False, rows)
    assert not described("KILDE_AUTH__ISUER", False, rows)
    assert described("KILDE_LIMITS", False, rows)
    assert not described("KILDE_LIMIT", False, rows)


def test_the_sandbox_knobs_types_and_defaults_are_the_sandboxs_own() -> None:
    from sandbox.faults import Fault
    from sandbox.helseid.issuer import HelseId

    for f in dataclasses.fields(Fault):
        name = "FAULT" if f.name == "mode" else f.name.upper()
        assert settingsdoc.SANDBOX[f"KILDE_SANDBOX__<SOURCE>__{name}"] == (
            str(f.type), settingsdoc._shown(f.default)), name
    lifetime = next(f for f in dataclasses.fields(HelseId) if f.name == "token_lifetime")
    assert settingsdoc.SANDBOX["KILDE_SANDBOX__HELSEID__TOKEN_LIFETIME"] == (
        str(lifetime.type), str(lifetime.default))


def test_secrets_are_marked_in_the_table() -> None:
    secret = {s.name for s in settingsdoc.settings() if s.secret}
    assert "KILDE_CACHE__KEY" in secret
    table = settingsdoc.markdown()
    assert "| `KILDE_CACHE__KEY` | str | (from a Secret) |" in table


def test_the_chart_config_schema_is_generated_from_the_settings() -> None:
    schema = json.loads((ROOT / "charts" / "kilde" / "values.schema.json").read_text())
    assert schema["properties"]["config"] == settingsdoc.config_schema()
    config = settingsdoc.config_schema()
    assert config["additionalProperties"] is False
    assert "AUTH__ISSUER" in config["properties"]
    assert "CACHE__KEY" not in config["properties"]  # secrets only from Secrets
    assert "://[^/@]*:[^/@]*@" in json.dumps(config["properties"]["AUDIT__URL"])  # no password


def test_the_generator_check_passes_on_the_checkout() -> None:
    assert settingsdoc.main(["--check"]) == 0
