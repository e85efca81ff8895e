"""A scenario patient as a FHIR transaction Bundle: how the sandbox's world travels to other stores.

Sits beside the fakes: `patient_bundle(patient, number)` renders what municipality `number`'s
store holds about one person (`sandbox.municipal_records`: the Patient first, then the
records that refer to it) as a `transaction` Bundle of `PUT {Type}/{id}` entries, so loading
it into any FHIR server keeps the logical ids, and loading it twice changes nothing. Every
resource says where it is kept: `meta.tag` with the kommunenummer system and with
`SOURCE_TAG` (`municipal`). The interop tests load these into an independent FHIR server;
a scenario folder (`KILDE_SANDBOX__SCENARIOS`) holds Bundles of this shape.

>>> from sandbox import world
>>> bundle = patient_bundle(world.by_tag("legevakt-hlr"), "0301")
>>> bundle["entry"][0]["request"]["url"].startswith("Patient/pas-")
True
"""

from __future__ import annotations

from typing import Any

from sandbox import world
from sandbox.municipal_records import SOURCE_TAG, patient_records, render_patient

__all__ = ["SOURCE_TAG", "patient_bundle", "world_bundles"]


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def patient_bundle(patient: world.Patient, number: str) -> dict[str, Any]:
    """What store `number` holds about `patient`, as a transaction Bundle (Patient first)."""
    resources = [render_patient(patient, number), *patient_records(patient, number)]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [_entry(r) for r in resources]}


def world_bundles(number: str) -> list[dict[str, Any]]:
    """One Bundle per scenario patient that store `number` knows (resident or with records)."""
    return [patient_bundle(p, number) for p in world.patients()
            if p.municipality == number or patient_records(p, number)]
