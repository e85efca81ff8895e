"""The documentation points at what is in the repository: every relative link in the README and
docs/ reaches a file (and, with an anchor, a heading of it), and every `*.md` a document names
is a file here, not a design document that lives elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "bench" / "README.md",
               *(ROOT / "examples").glob("*/README.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
NAMED = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M)}


def resolve(doc: Path, target: str) -> Path | None:
    for base in (doc.parent, ROOT):
        candidate = (base / target).resolve()
        if candidate.exists():
            return candidate
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = resolve(doc, path_part) if path_part else doc
        if path is None:
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_document_named_is_in_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = sorted({name for name in NAMED.findall(text) if resolve(doc, name) is None})
    assert missing == []


def test_the_checks_catch_a_document_outside_the_repository(tmp_path: Path) -> None:
    assert resolve(ROOT / "README.md", "DESIGN.md") is None
    assert NAMED.findall("see DESIGN.md principle 4") == ["DESIGN.md"]
    assert slug("8. Municipal stores: the FHIR servers Kilde accepts") == (
        "8-municipal-stores-the-fhir-servers-kilde-accepts")
