"""Install a connector package for a test the way pip does: a dist-info with its entry points.

`importlib.metadata` finds distributions on `sys.path`, so a `<name>-<version>.dist-info`
directory with `METADATA` and `entry_points.txt` next to the package's source is what an
(editable) install amounts to for Kilde's registry. The example package is installed from its
own pyproject.toml, so the tests use the entry point it really declares. The fresh-virtualenv
test (tests/e2e/test_fresh_venv.py) does the same with pip.
"""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from connectors import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kilde-velferd"


def write_distribution(target: Path, name: str, version: str,
                       entry_points: Mapping[str, str]) -> None:
    """A dist-info in `target` declaring `entry_points` in the `kilde.connectors` group."""
    dist = target / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


@contextmanager
def on_path(*paths: Path) -> Iterator[None]:
    """`paths` on sys.path for the block; modules imported from them are forgotten after."""
    added = [str(p) for p in paths]
    sys.path[:0] = added
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for path in added:
            sys.path.remove(path)
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if any(origin.startswith(path) for path in added):
                del sys.modules[name]
        importlib.invalidate_caches()


@contextmanager
def example_installed(target: Path) -> Iterator[str]:
    """The example package (examples/kilde-velferd) installed for the block; yields its
    connector's entry-point name."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    entry_points = project["entry-points"][ENTRY_POINT_GROUP]
    write_distribution(target, project["name"], project["version"], entry_points)
    with on_path(target, EXAMPLE / "src"):
        yield next(iter(entry_points))
