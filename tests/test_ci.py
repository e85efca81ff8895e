"""CI runs the README's test command: `.ci/run` ends in `./dev test`, which the README gives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_calls_the_readme_test_command_with_the_chart_extra_required() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"^(\./dev test)\s+#", readme, re.M)
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert lines[-1] == command
    exports = " ".join(line for line in lines if line.startswith("export "))
    for switch in ("KILDE_TEST__REQUIRE_SERVICES=1", "KILDE_TEST__REQUIRE_BROWSER=1",
                   "KILDE_TEST__EXTRAS=charts", "KILDE_TEST__REQUIRE_CHARTS=1"):
        assert switch in exports
    dev = (ROOT / "dev").read_text()
    assert 'setup "test${KILDE_TEST__EXTRAS:+,$KILDE_TEST__EXTRAS}"' in dev
    pyproject = (ROOT / "pyproject.toml").read_text()
    charts = pyproject[pyproject.index("\ncharts = ["):]
    assert "helm-python-sdk" in charts[:charts.index("]")]
    test = pyproject[pyproject.index("\ntest = ["):]
    assert "helm-python-sdk" not in test[:test.index("]")]
