"""`kilde connectors new NAME`: a working connector package to start from.

Sits beside the contract kit, behind the CLI. It writes `kilde-NAME/` from the templates in
`templates/`: a connector reading diagnoses from a FHIR R4 server, its pure mapping, a fake
upstream (Starlette), tests (mapping table and the contract kit) and the entry point. The
output passes its own tests unchanged (`tests/connectors/test_scaffold.py` proves it).

>>> create_package("hub", Path("/tmp"))  # doctest: +SKIP
PosixPath('/tmp/kilde-hub')
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

NAME = re.compile(r"[a-z][a-z0-9_]{1,30}")
TAKEN = frozenset({"municipal", "kjernejournal", "pll", "eresept", "proevesvar",
                   "persontjenesten"})
# template -> path in the package ({module} is the import name)
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "src/{module}/__init__.py",
    "connector.py.tmpl": "src/{module}/connector.py",
    "mapping.py.tmpl": "src/{module}/mapping.py",
    "sandbox.py.tmpl": "src/{module}/sandbox.py",
    "test_contract.py.tmpl": "tests/test_contract.py",
    "test_mapping.py.tmpl": "tests/test_mapping.py",
}


class ScaffoldError(ValueError):
    """The package cannot be created; one sentence saying why."""


def create_package(name: str, directory: Path | str = ".") -> Path:
    """Write `kilde-<name>/` under `directory` and return its path."""
    if not NAME.fullmatch(name):
        raise ScaffoldError(f"Connector name {name!r} must be 2-31 lower-case letters, digits "
                            "or underscores, starting with a letter.")
    if name in TAKEN:
        raise ScaffoldError(f"Connector name {name!r} is taken by a built-in connector.")
    dist = f"kilde-{name.replace('_', '-')}"
    target = Path(directory) / dist
    if target.exists():
        raise ScaffoldError(f"{str(target)!r} exists already; choose another name or directory.")
    values = {
        "name": name, "NAME": name.upper(), "dist": dist, "module": f"kilde_{name}",
        "Class": "".join(part.title() for part in name.split("_")) + "Connector",
    }
    templates = resources.files(__package__).joinpath("templates")
    for template, relative in FILES.items():
        text = Template(templates.joinpath(template).read_text(encoding="utf-8"))
        path = target / relative.format(module=values["module"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.substitute(values), encoding="utf-8")
    return target
