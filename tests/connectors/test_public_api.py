"""The public connector API is what `__all__` says, and the built-ins (and the example package)
use nothing else: an external connector can do whatever a built-in does."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from connectors.scaffold import create_package

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ("connectors", "connectors.credentials", "connectors.fhir", "connectors.testing")
BUILTINS = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar", "persontjenesten")
SHARED_BUILTIN = "connectors.medication"  # the SFM client pll and eresept share


def _bound_names(module_name: str) -> set[str]:
    """Public names the module defines at top level (a package: and re-exports)."""
    module = importlib.import_module(module_name)
    path = Path(module.__file__ or "")
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if (isinstance(node, ast.ImportFrom) and node.module != "__future__"
                and path.name == "__init__.py"):
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith("_") and n != "annotations"}


@pytest.mark.parametrize("module_name", PUBLIC)
def test_all_lists_exactly_the_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported))
    assert [n for n in exported if not hasattr(module, n)] == []
    assert sorted(_bound_names(module_name) - set(exported)) == []


def test_the_public_api_covers_what_a_connector_needs() -> None:
    import connectors

    needed = {"Connector", "ConnectorPlugin", "ConnectorSettings", "FetchRequest",
              "SourceResult", "Category", "CategorySpec", "Coding", "Provenance", "Status",
              "ConnectorError", "UpstreamTimeoutError", "UpstreamUnavailableError",
              "UpstreamInvalidError", "UpstreamRejectedError", "ConnectorConfigError",
              "ENTRY_POINT_GROUP"}
    assert needed <= set(connectors.__all__)


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def _private_imports(files: list[Path], own: tuple[str, ...]) -> list[str]:
    bad = []
    for path in files:
        for line, module in _imports(path):
            ours = module.split(".")[0] in ("connectors", "gateway", "schema", "policies",
                                            "sandbox")
            if ours and module not in PUBLIC and not module.startswith(own):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("builtin", BUILTINS)
def test_a_builtin_connector_uses_only_the_public_api(builtin: str) -> None:
    own = (f"connectors.{builtin}",)
    if builtin in ("pll", "eresept"):
        own += (SHARED_BUILTIN,)
    files = sorted((ROOT / "connectors" / builtin).rglob("*.py"))
    if builtin in ("pll", "eresept"):
        files += sorted((ROOT / "connectors" / "medication").rglob("*.py"))
    assert files
    assert _private_imports(files, own) == []


def test_the_example_package_uses_only_the_public_api() -> None:
    files = sorted((ROOT / "examples" / "kilde-velferd").rglob("*.py"))
    assert len(files) >= 7
    assert _private_imports(files, ("kilde_velferd",)) == []


def test_the_scaffold_output_uses_only_the_public_api(tmp_path: Path) -> None:
    package = create_package("hub", tmp_path)
    files = sorted(package.rglob("*.py"))
    assert _private_imports(files, ("kilde_hub",)) == []
    assert {m for path in files for _, m in _imports(path) if m.startswith("connectors")} == {
        "connectors", "connectors.credentials", "connectors.fhir", "connectors.testing"}
