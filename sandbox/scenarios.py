"""Scenario patients as FHIR transaction Bundles: vendors add their own without code.

Sits beside `sandbox.world`: `KILDE_SANDBOX__SCENARIOS` names a folder of `*.json` files, one
FHIR R4 `transaction` Bundle per patient; `sandbox.app` loads them at start (`load_folder`,
every problem named in one `ScenarioError`) and every fake then serves them as it serves the
built-in patients. `export_patient` writes a built-in patient in the same form, so
`python -m sandbox.scenarios DIR` gives a vendor working examples to copy.

The Bundle (`sandbox.scenario_format` holds the per-resource rules):

- one `Patient` (the first entry): its identity number as `identifier`, `name[0].text`,
  `gender`, `birthDate`, `deceasedDateTime` for a dead person; `meta.tag` the home
  municipality (kommunenummer system; without it, the one municipality whose store keeps the
  patient's municipal records), the scenario tags (`SCENARIO_TAG`) and, where wanted, the
  patient's national privacy choices (`PRIVACY_TAG`: `kj-reserved`, `kj-restricted`,
  `pps-Specific|General|Reservation`, `not-in-registry`: unknown to the population registry,
  `address-fortrolig|strengtFortrolig|strengtFortroligUtland`: a graded address).
  Every patient gets an entry in the population registry fake from these facts;
- the records, each with `meta.tag` `SOURCE_TAG` naming the source that keeps it (`municipal`
  with the store's kommunenummer tag too, `kjernejournal`, `pll`, `eresept`, `proevesvar`):
  Consent (scope `treatment`: a treatment limitation; scope `patient-privacy` with an actor
  HPR number: a block of that professional), AllergyIntolerance (CAVE), Condition,
  EpisodeOfCare (municipal services), MedicationStatement (`pll`, `eresept`) and
  MedicationAdministration (`municipal`), DiagnosticReport with its Observations, and
  DocumentReference. Every record refers to the Patient (`Patient/{id}`).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import world
from sandbox.scenario_format import Problems, ScenarioError
from sandbox.scenario_read import read_patient
from sandbox.scenario_render import render_patient

__all__ = ["ScenarioError", "ScenarioScope", "export_patient", "load_folder"]

MAX_FILES = 1000


def export_patient(patient: world.Patient) -> dict[str, Any]:
    """`patient` as a scenario Bundle (what `load_folder` reads back unchanged)."""
    resources = render_patient(patient)
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:kilde:{r['resourceType']}/{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources]}


def load_folder(folder: str) -> tuple[str, tuple[world.Patient, ...]]:
    """The scenario patients in `folder` and a key naming them; `ScenarioError` lists every
    problem found (file, entry and what is wrong), identity numbers never quoted."""
    path = Path(folder)
    if not path.is_dir():
        raise ScenarioError(f"KILDE_SANDBOX__SCENARIOS {folder!r} is not a folder.")
    files = sorted(path.glob("*.json"))
    if not files:
        raise ScenarioError(f"KILDE_SANDBOX__SCENARIOS {folder!r} holds no *.json Bundle.")
    if len(files) > MAX_FILES:
        raise ScenarioError(f"KILDE_SANDBOX__SCENARIOS {folder!r} holds more than {MAX_FILES} "
                            "files.")
    problems = Problems()
    loaded: list[world.Patient] = []
    seen = {p.nin: "the built-in world" for p in world.PATIENTS}
    digest = hashlib.sha256()
    for file in files:
        raw = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + raw)
        where = problems.at(file.name)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            where.add("is not valid JSON")
            continue
        found = read_patient(body, where)
        if found is None:
            continue
        if found.nin in seen:
            where.add(f"has a patient already defined in {seen[found.nin]}")
            continue
        seen[found.nin] = file.name
        loaded.append(found)
    problems.raise_if_any(folder)
    return "scenarios:" + digest.hexdigest()[:16], tuple(loaded)


class ScenarioScope:
    """ASGI middleware: every request to the sandbox sees the loaded scenario patients."""

    def __init__(self, app: ASGIApp, key: str, added: tuple[world.Patient, ...]) -> None:
        self.app, self.key, self.added = app, key, added

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with world.scenarios_scope(self.key, self.added):
            await self.app(scope, receive, send)


def main(argv: list[str]) -> int:
    """`python -m sandbox.scenarios DIR`: write every built-in patient as a scenario file."""
    if len(argv) != 1:
        print("usage: python -m sandbox.scenarios DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for p in world.PATIENTS:
        (out / f"{p.tags[-1]}.json").write_bytes(
            orjson.dumps(export_patient(p), option=orjson.OPT_INDENT_2))
    print(f"wrote {len(world.PATIENTS)} scenario Bundles to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
