"""`mypy --strict` is clean for `connectors` (the public API external connectors type-check
against, and the built-ins that use only it) and `policies`, and for the two external
packages a plugin author starts from: the example package and a freshly scaffolded one.

One mypy run for all of them; its cache lives in `.venv/mypy-cache` (pyproject's
`[tool.mypy]`), so a run after a small change takes a second or two.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from connectors.scaffold import create_package

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kilde-velferd" / "src"


def mypy(*paths: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--no-error-summary", *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_connectors_policies_and_plugins_pass_mypy_strict(tmp_path: Path) -> None:
    scaffolded = create_package("typed", tmp_path) / "src"
    done = mypy("connectors", "policies", EXAMPLE, scaffolded)
    assert done.stdout == "", done.stdout
    assert done.returncode == 0, done.stderr


def test_mypy_reports_a_type_error(tmp_path: Path) -> None:
    """The check can fail: a connector whose fetch returns the wrong type is reported."""
    bad = tmp_path / "kilde_bad"
    bad.mkdir()
    (bad / "__init__.py").write_text(
        "from connectors import Category, FetchRequest, SourceResult\n\n\n"
        "class Bad:\n"
        "    name = 'bad'\n"
        "    categories = frozenset({Category.DOCUMENTS})\n\n"
        "    async def fetch(self, request: FetchRequest) -> SourceResult:\n"
        "        return request.patient_nin\n")
    done = mypy(bad)
    assert done.returncode == 1
    assert 'Incompatible return value type (got "str", expected "SourceResult")' in done.stdout
