"""The root `Mutation`: records forwarded to the store that owns them, never kept by Kilde.

Thin resolvers, like the queries: check the identity number and the input (field-level
BAD_USER_INPUT, schema/write/inputs.py), then hand over to `schema.write.record.record`, which
decides, audits, sends once and evicts. What comes back is the record as the store stored it,
shaped like a query's item, with the store's provenance. An `Idempotency-Key` header (or the
input's `clientIdentifier`) makes a repeat return the first result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.types import Info

from connectors.identifiers import is_valid_nin
from connectors.model import DocumentReference as DocumentItem
from connectors.model import Medication as MedicationItem
from connectors.model import TreatmentLimitation as LimitationItem
from schema.context import Context
from schema.errors import BadUserInputError
from schema.shape.conflicts import annotate
from schema.shape.linking import link_medications
from schema.types import DocumentReference, Medication, TreatmentLimitation
from schema.write.inputs import (
    ClinicalNoteInput,
    MedicationAdministrationInput,
    TreatmentLimitationInput,
    administration_draft,
    client_identifier_of,
    limitation_draft,
    municipality_of,
    note_draft,
)
from schema.write.record import record

_WRITES = ("Forwarded to the patient's municipal store (the owner of the record), once; "
           "decided by the write policy and audited before and after. Send an "
           "`Idempotency-Key` header (or `clientIdentifier`) to make a repeat safe: it returns "
           "the first result and records nothing new.")


Item = TypeVar("Item")


async def _record(info: Info[Context, None], mutation: str, nin: str, input_: Any, draft: Any,
                  kind: type[Item]) -> Item:
    """What every mutation does: check the number, then `record` (decide, audit, send once,
    evict) into the municipality the input names; the store's record comes back as `kind`."""
    if not is_valid_nin(nin):
        raise BadUserInputError(
            "The national identity number is not valid: it must be 11 digits with valid "
            "mod-11 control digits.", argument="nin")
    item = await record(info.context, mutation=mutation, nin=nin, draft=draft(),
                        municipality=municipality_of(input_.municipality),
                        client_identifier=client_identifier_of(input_.client_identifier))
    assert isinstance(item, kind)
    return item


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Record a treatment limitation (e.g. HLR-minus). " + _WRITES)
    async def record_treatment_limitation(
        self, info: Info[Context, None], nin: str,
        input_: Annotated[TreatmentLimitationInput, strawberry.argument(name="input")],
    ) -> TreatmentLimitation:
        terminology = info.context.services.terminology
        item = await _record(info, "recordTreatmentLimitation", nin, input_, lambda: (
            limitation_draft(input_, terminology, now=datetime.now(UTC))), LimitationItem)
        return annotate([item], terminology)[0]

    @strawberry.mutation(description="Record a clinical note (a DocumentReference), e.g. a "
                         "legevakt visit note for the home municipality's care services. "
                         + _WRITES)
    async def record_clinical_note(
        self, info: Info[Context, None], nin: str,
        input_: Annotated[ClinicalNoteInput, strawberry.argument(name="input")],
    ) -> DocumentReference:
        return await _record(info, "recordClinicalNote", nin, input_,
                             lambda: note_draft(input_, now=datetime.now(UTC)), DocumentItem)

    @strawberry.mutation(description="Record one administration of a medicine in municipal "
                         "care. " + _WRITES)
    async def record_medication_administration(
        self, info: Info[Context, None], nin: str,
        input_: Annotated[MedicationAdministrationInput, strawberry.argument(name="input")],
    ) -> Medication:
        item = await _record(info, "recordMedicationAdministration", nin, input_,
                             lambda: administration_draft(input_, now=datetime.now(UTC)),
                             MedicationItem)
        return link_medications([item])[0]
