"""Imports point one way: gateway -> schema -> {policies, connectors} (docs/architecture.md).

Read from the source with `ast`, so every import counts: module level, inside a function,
under `TYPE_CHECKING`, relative, and `importlib.import_module("...")` with a literal name.

    gateway      the HTTP edge; may import schema, policies, connectors
    schema       types and resolvers; may import policies, connectors
    policies     pure decisions; may import connectors (the model it decides over), nothing above
    connectors   upstreams; imports none of schema, gateway, policies
    sandbox      the fake upstreams; may import connectors (identifiers), nothing above
    demo         gateway/demo: the demo's tokens and routes; may import sandbox

`sandbox` and the demo are imported only from the CLI (`gateway/cli.py`) and the worker entry
point it starts (`gateway/asgi.py`, which adds the demo's routes only when `KILDE_MODE=demo`),
never from the production app. A second test imports every production gateway module in a
fresh interpreter and checks that neither arrived by any route (a string import included).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "schema", "policies", "connectors", "sandbox")

# layer -> the layers it may import (its own always allowed)
ALLOWED: dict[str, frozenset[str]] = {
    "gateway": frozenset({"schema", "policies", "connectors"}),
    "schema": frozenset({"policies", "connectors"}),
    "policies": frozenset({"connectors"}),
    "connectors": frozenset(),
    "sandbox": frozenset({"connectors"}),
    "demo": frozenset({"gateway", "schema", "policies", "connectors", "sandbox"}),
}
# the only modules outside the demo that may import sandbox and the demo
ENTRY_POINTS = {
    "gateway.cli": frozenset({"sandbox", "demo"}),
    "gateway.asgi": frozenset({"demo"}),
}


def layer(module: str) -> str:
    if module == "gateway.demo" or module.startswith("gateway.demo."):
        return "demo"
    return module.split(".")[0]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def string_import(call: ast.Call) -> str | None:
    """The module of `importlib.import_module("x")` / `__import__("x")`, else None."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in {"import_module", "__import__"} or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in `path` of one of PACKAGES."""
    module = module_name(path, root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                stem = ".".join([*base, *([node.module] if node.module else [])])
            else:
                stem = node.module or ""
            # `from gateway import demo` imports gateway.demo
            targets = [stem, *(f"{stem}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call) and (name := string_import(node)):
            targets = [name]
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                yield node.lineno, target


def violations(root: Path) -> list[str]:
    """One sentence per import statement that reaches a layer it may not."""
    found: dict[tuple[str, int, str], str] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            source = module_name(path, root)
            here = layer(source)
            allowed = ALLOWED[here] | ENTRY_POINTS.get(source, frozenset())
            for line, target in imports(path, root):
                there = layer(target)
                if there != here and there not in allowed:
                    found.setdefault((source, line, there), (
                        f"{path.relative_to(root)}:{line}: {source} ({here}) imports "
                        f"{target} ({there})"))
    return sorted(found.values())


def test_imports_point_one_way() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(("path", "code", "expected"), [
    ("connectors/x.py", "from schema.types import Patient\n", "connectors.x (connectors)"),
    ("connectors/sub/y.py", "def f():\n    from gateway import app\n", "imports gateway"),
    ("policies/z.py", "from ..schema import errors\n", "imports schema (schema)"),
    ("policies/z.py", "import typing\nif typing.TYPE_CHECKING:\n    import gateway.app\n",
     "imports gateway.app"),
    ("schema/q.py", "import importlib\nimportlib.import_module('gateway.app')\n",
     "imports gateway.app"),
    ("gateway/app.py", "from gateway import demo\n", "imports gateway.demo (demo)"),
    ("gateway/app.py", "from gateway.demo import tokens\n", "(demo)"),
    ("gateway/app.py", "import sandbox.world\n", "imports sandbox.world (sandbox)"),
    ("gateway/asgi.py", "from sandbox import app\n", "(sandbox)"),
    ("sandbox/m.py", "from policies import rules\n", "(policies)"),
])
def test_a_wrong_import_is_found(tmp_path: Path, path: str, code: str, expected: str) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(code)
    found = violations(tmp_path)
    assert len(found) == 1, found
    assert expected in found[0]


@pytest.mark.parametrize("code", [
    "from connectors.model import Category\n",
    "from . import rules\n",
    "import json\n",
])
def test_an_allowed_import_passes(tmp_path: Path, code: str) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "policies" / "rules.py").write_text("")
    (tmp_path / "policies" / "m.py").write_text(code)
    assert violations(tmp_path) == []


def test_the_production_app_loads_neither_sandbox_nor_demo() -> None:
    """Every gateway module but the CLI, its worker entry point and the demo, imported in a
    fresh interpreter: `sandbox` and `gateway.demo` never arrive, by any route."""
    modules = sorted(
        module_name(path, ROOT) for path in (ROOT / "gateway").rglob("*.py")
        if layer(module_name(path, ROOT)) == "gateway"
        and module_name(path, ROOT) not in ENTRY_POINTS)
    assert "gateway.app" in modules
    assert "gateway.graphql" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'sandbox' or m.startswith('sandbox.')"
        " or m == 'gateway.demo' or m.startswith('gateway.demo.'))\n"
        "print(' '.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""
