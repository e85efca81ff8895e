"""The scenario Bundles vendors copy are valid R4, by the same independent validator.

`sandbox.scenarios.export_patient` is the example a vendor starts from
(`python -m sandbox.scenarios DIR`): each Bundle, and each resource in it, must be R4 a real
FHIR server accepts, so a vendor's own store can hold the same records.
"""

from __future__ import annotations

import httpx

from sandbox.scenarios import export_patient
from sandbox.world import PATIENTS
from tests.interop.fhir.test_r4_validity import errors


async def test_every_exported_scenario_bundle_is_valid_r4(fhir_host: str) -> None:
    problems: list[str] = []
    checked = 0
    async with httpx.AsyncClient(base_url=fhir_host, timeout=30) as validator:
        for patient in PATIENTS:
            bundle = export_patient(patient)
            for body in [bundle, *(e["resource"] for e in bundle["entry"])]:
                outcome = (await validator.post(f"/{body['resourceType']}/$validate",
                                                json=body)).json()
                label = f"{patient.tags[-1]} {body['resourceType']}/{body.get('id', '')}"
                problems += [f"{label}: {e}" for e in errors(outcome, None)]
                checked += 1
    assert checked > len(PATIENTS)
    assert not problems, "\n".join(sorted(set(problems))[:40])
