"""May this principal record this category for this patient in this municipality's store?

Asked by the mutations (schema/mutations.py) before anything is sent: a write that is not
permitted never reaches the store. Deny by default: only what `[write.<category>]` in the
policy lists is written, by the professions it names, under the purposes it names.

    decision = decide_write(principal, nin, "treatment_limitations", "0301",
                            now=datetime.now(UTC), rules=rules)

The rules, in order (the first that fails is the reason):
1. a clinician (a citizen, a privacy officer or a machine records nothing through Kilde);
2. the patient rule a read has: the clinical scope, a purpose, a fresh attest bound to this
   patient (`decide_patient`): whoever writes about a patient must be in a care relationship;
3. profession x category x write (`write_professions`), then the purpose (`write_purposes`:
   by default TREAT and ETREAT; COC, service allocation, writes no clinical record);
4. the municipal border: the caller's own municipality's store, or a provider whose agreement
   with the caller's municipality says `write = true` (an agreement to read is not one to write).
"""

from __future__ import annotations

from datetime import datetime

from policies import reasons
from policies.access import decide_patient
from policies.model import Decision, Principal, PrincipalKind, Rules


def writable_municipalities(principal: Principal, *, rules: Rules) -> frozenset[str]:
    """The stores `principal` may write to: their own, and every provider whose agreement
    with their municipality allows writing."""
    if principal.kind is not PrincipalKind.CLINICIAN or not principal.municipality:
        return frozenset()
    home = principal.municipality
    return frozenset({home}) | {a.provider for a in rules.agreements
                                if a.consumer == home and a.write}


def decide_write(principal: Principal, nin: str, category: str, municipality: str, *,
                 now: datetime, rules: Rules) -> Decision:
    """The decision for one write (see the module docstring for the rules, in order)."""
    if principal.kind is not PrincipalKind.CLINICIAN:
        return Decision.deny(reasons.WRITE_NOT_PERMITTED,
                             detail="Only health personnel record to a patient's store.")
    patient = decide_patient(principal, nin, now=now, rules=rules)
    if not patient.allowed:
        return patient
    professions = rules.write_professions.get(category)
    if professions is None:
        return Decision.deny(reasons.WRITE_NOT_PERMITTED,
                             detail=f"The policy lets nobody record {category!r}.")
    profession = principal.profession or ""
    if profession not in professions:
        return Decision.deny(
            reasons.WRITE_NOT_PERMITTED,
            detail=f"Profession {profession or 'none'!r} may not record {category!r}.")
    purpose = principal.purpose_of_use.value if principal.purpose_of_use else ""
    if purpose not in rules.write_purposes.get(category, frozenset()):
        return Decision.deny(
            reasons.WRITE_PURPOSE_NOT_PERMITTED,
            detail=f"Purpose {purpose or 'none'!r} does not cover recording {category!r}.")
    if municipality not in writable_municipalities(principal, rules=rules):
        return Decision.deny(
            reasons.WRITE_MUNICIPAL_BORDER,
            detail="The store belongs to another municipality, and no agreement lets yours "
                   "record in it.")
    return Decision.permit(reasons.WRITE_PERMITTED)
