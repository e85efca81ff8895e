"""`kilde connectors new NAME` writes a connector package that passes its own tests unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from connectors.scaffold import ScaffoldError, create_package
from gateway.cli import main


def test_the_scaffold_writes_connector_mapping_fake_tests_and_entry_point(tmp_path: Path) -> None:
    package = create_package("hub", tmp_path)
    assert package == tmp_path / "kilde-hub"
    files = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "src/kilde_hub/__init__.py",
                     "src/kilde_hub/connector.py", "src/kilde_hub/mapping.py",
                     "src/kilde_hub/sandbox.py", "tests/test_contract.py",
                     "tests/test_mapping.py"]
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["kilde.connectors"] == {"hub": "kilde_hub:plugin"}
    assert "ConnectorContract" in (package / "tests" / "test_contract.py").read_text()


@pytest.mark.parametrize(("name", "complaint"), [
    ("Hub", "lower-case letters"),
    ("h", "lower-case letters"),
    ("1hub", "starting with a letter"),
    ("hub-x", "lower-case letters"),
    ("pll", "taken by a built-in connector"),
])
def test_the_scaffold_refuses_a_bad_name(tmp_path: Path, name: str, complaint: str) -> None:
    with pytest.raises(ScaffoldError, match=complaint):
        create_package(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_scaffold_never_overwrites(tmp_path: Path) -> None:
    create_package("hub", tmp_path)
    with pytest.raises(ScaffoldError, match="exists already"):
        create_package("hub", tmp_path)


def test_the_cli_reports_a_bad_name_in_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connectors", "new", "pll", "--directory", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "kilde: Connector name 'pll' is taken by a built-in " \
                                      "connector.\n"


@pytest.mark.slow
def test_the_scaffolded_package_passes_its_own_tests_and_lint_unchanged(tmp_path: Path) -> None:
    assert main(["connectors", "new", "fastlege", "--directory", str(tmp_path)]) == 0
    package = tmp_path / "kilde-fastlege"
    env = {**os.environ, "PYTHONPATH": str(package / "src")}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-v"], cwd=package, env=env,
                           capture_output=True, text=True, timeout=120)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "test_contract.py::TestContract::test_serves_items_with_provenance PASSED" in (
        tests.stdout)
    assert "test_mapping.py::test_an_unreadable_condition_is_skipped" in tests.stdout
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        lint = subprocess.run([str(ruff), "check", "."], cwd=package, capture_output=True,
                              text=True, timeout=60)
        assert lint.returncode == 0, lint.stdout
