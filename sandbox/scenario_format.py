"""What a scenario Bundle looks like: the tags, extensions and ids both directions agree on.

Sits under `sandbox.scenarios`: `sandbox.scenario_render` writes a `world.Patient` as FHIR R4
resources with these conventions and `sandbox.scenario_read` reads them back; `Problems`
collects what is wrong with a vendor's file, entry by entry, for one clear error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sandbox.municipal_records import (
    DECISION_DATE,
    KOMMUNENUMMER,
    LIMITATION_DESCRIPTION,
    LIMITATION_REASON,
    SERVICE_DESCRIPTION,
    SOURCE_TAG,
)

__all__ = [
    "DECISION_DATE",
    "KOMMUNENUMMER",
    "LIMITATION_DESCRIPTION",
    "LIMITATION_REASON",
    "PRIVACY_TAG",
    "SCENARIO_TAG",
    "SERVICE_DESCRIPTION",
    "SOURCES",
    "SOURCE_TAG",
    "Problems",
    "ScenarioError",
    "patient_id",
]

SCENARIO_TAG = "https://sandbox.kilde.no/fhir/CodeSystem/scenario"
PRIVACY_TAG = "https://sandbox.kilde.no/fhir/CodeSystem/privacy"  # kj-reserved, pps-Specific...
SOURCES = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar")
MEDICATION_SUFFIX = {"pll": "-pll", "eresept": "-rx", "municipal": "-adm"}


class ScenarioError(ValueError):
    """A scenario folder that cannot be loaded; the message names every problem."""


def patient_id(nin: str) -> str:
    """The Patient's logical id in a scenario Bundle: opaque, never the identity number."""
    return "pas-" + hashlib.sha256(f"kilde-scenario:{nin}".encode()).hexdigest()[:16]


@dataclass
class Place:
    """Where in a file a problem is (the file, and the entry once known)."""

    problems: Problems
    file: str
    entry: str = ""

    def add(self, text: str) -> None:
        where = f"{self.file} {self.entry}".strip()
        self.problems.found.append(f"{where} {text}")

    def entry_at(self, index: int, resource: object) -> Place:
        label = f"entry {index}"
        if isinstance(resource, dict):
            label += f" ({resource.get('resourceType')}/{resource.get('id')})"
        return Place(self.problems, self.file, label)


@dataclass
class Problems:
    found: list[str] = field(default_factory=list)

    def at(self, file: str) -> Place:
        return Place(self, file)

    def raise_if_any(self, folder: str) -> None:
        if not self.found:
            return
        shown = self.found[:20]
        more = f"\n  ... and {len(self.found) - 20} more" if len(self.found) > 20 else ""
        raise ScenarioError(f"Scenario folder {folder!r} cannot be loaded:\n  "
                            + "\n  ".join(shown) + more)
