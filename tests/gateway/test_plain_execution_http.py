"""The whole gateway answers the same with plain-data completion (schema/execution.py) as with
graphql-core's own, for every sandbox patient and every persona: the legevakt summary with
every field of every item, fragments, aliases and `__typename`, errors and statuses included.
Only the clock-driven numbers (`latencyMs`, `ageSeconds`) are left out of the comparison."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.demo import PERSONAS
from sandbox.world import patients
from schema.execution import PlainDataExecutor
from tests.gateway.inprocess import gateway, settings_for

PROVENANCE = "provenance { source recordId fromCache ageSeconds __typename }"
QUERY = """query Everything($nin: String!) { patient(nin: $nin) {
  alerts { kind priority title detail: title itemIds ...A provenances { source recordId }
           conflictsWith { source } }
  treatmentLimitations { code { system code display } description conflictsWith { source }
                         ...T }
  criticalInformation { type description severity PROVENANCE }
  medications { name status conflicts dosage { text } provenances { source recordId }
                records { name dosage { text } PROVENANCE } }
  labResults { code { display } issuedAt results { code { code } value unit abnormal } }
  municipalServices { code { code display } status unit phone PROVENANCE }
  conditions { code { system code display } clinicalStatus PROVENANCE }
  documents { title date PROVENANCE }
  sources { source category status reason municipality __typename }
} }
fragment A on Alert { __typename kind }
fragment T on TreatmentLimitation { PROVENANCE }""".replace("PROVENANCE", PROVENANCE)
VOLATILE = frozenset({"latencyMs", "ageSeconds"})


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


async def _answer(kilde: Any, persona: str, nin: str) -> Any:
    response = await kilde.post({"query": QUERY, "variables": {"nin": nin}},
                                headers=kilde.auth(persona, nin))
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    return _steady(body)


@pytest.mark.parametrize("persona", sorted(PERSONAS))
async def test_every_patient_answers_the_same_with_either_executor(persona: str) -> None:
    base = settings_for()
    settings = replace(base, cache=replace(base.cache, enabled=False))
    async with gateway(settings) as kilde:
        schema = kilde.state.endpoint.schema
        assert schema.execution_context_class is PlainDataExecutor
        fast = [await _answer(kilde, persona, p.nin) for p in patients()]
        schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
        slow = [await _answer(kilde, persona, p.nin) for p in patients()]
    assert fast == slow
    assert any((a.get("data") or {}).get("patient") for a in fast) or persona != "legevakt-lege"
