"""Patient-level decisions, asked by resolvers before anything is fetched: may this principal
open this patient (or this access log) at all, and on which legal basis do sources see the call.

    decision = decide_patient(principal, nin, now=datetime.now(UTC), rules=rules)
    if not decision.allowed: ...  # FORBIDDEN, audited with decision.reason
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from policies import reasons
from policies.model import Decision, Principal, PrincipalKind, PurposeOfUse, Rules

# A `toa` this far ahead of our clock is clock skew, not an attest from the future.
_CLOCK_SKEW = timedelta(seconds=60)


def has_emergency_reason(principal: Principal, emergency_reason: str | None) -> bool:
    """True for a clinician under ETREAT/BTG who has stated a reason (the only emergency
    that opens restricted data)."""
    return (
        principal.kind is PrincipalKind.CLINICIAN
        and principal.is_emergency
        and bool(emergency_reason and emergency_reason.strip())
    )


def decide_patient(principal: Principal, nin: str, *, now: datetime, rules: Rules) -> Decision:
    """May `principal` open the record of the patient `nin`?

    A citizen only themself; a clinician with the clinical scope, a purpose, and a fresh attest
    bound to this patient (ATT-4, ATT-58); a privacy officer never (access log only).
    """
    if principal.kind is PrincipalKind.CITIZEN:
        if rules.citizen_scope not in principal.scopes:
            return Decision.deny(reasons.SCOPE_MISSING, detail="The token lacks the citizen scope.")
        if not nin or nin != principal.person_id:
            return Decision.deny(reasons.NOT_SELF, detail="A citizen may only see their own record.")
        return Decision.permit(reasons.SELF)
    if principal.kind is PrincipalKind.PRIVACY_OFFICER:
        return Decision.deny(
            reasons.ACCESS_LOG_ONLY, detail="A privacy officer may read access logs only."
        )
    if principal.kind is not PrincipalKind.CLINICIAN:
        return Decision.deny(reasons.PRINCIPAL_UNKNOWN)
    if rules.clinical_scope not in principal.scopes:
        return Decision.deny(reasons.SCOPE_MISSING, detail="The token lacks the clinical scope.")
    if principal.purpose_of_use is None:
        return Decision.deny(reasons.PURPOSE_MISSING, detail="The attest has no purpose of use.")
    if not nin or nin not in principal.patients:
        return Decision.deny(
            reasons.CARE_RELATIONSHIP_MISSING,
            detail="The attest is not bound to this patient.",
        )
    return _check_attest_age(principal.attested_at, now, rules.attest_max_age_seconds)


def _check_attest_age(attested_at: datetime | None, now: datetime, max_age: int) -> Decision:
    if attested_at is None:
        return Decision.deny(reasons.ATTEST_INVALID, detail="The attest has no time of attest.")
    age = _as_utc(now) - _as_utc(attested_at)
    if age < -_CLOCK_SKEW:
        return Decision.deny(reasons.ATTEST_INVALID, detail="The attest is dated in the future.")
    if age > timedelta(seconds=max_age):
        return Decision.deny(
            reasons.ATTEST_EXPIRED,
            detail=f"The attest is older than {max_age} seconds; attest again.",
        )
    return Decision.permit(reasons.CARE_RELATIONSHIP)


def _as_utc(moment: datetime) -> datetime:
    # A naive time is taken as UTC, so comparing never raises TypeError.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def access_basis(principal: Principal, emergency_reason: str | None) -> str:
    """The access basis (tilgangsgrunnlag) sent to national sources, as AccessBasis's value.

    Only an emergency with a stated reason sends FORHOYET_AKUTT, so sources open a
    restriction only then; planned care sends SAMTYKKE; COC and the citizen send UNNTAK.
    """
    if principal.kind is not PrincipalKind.CLINICIAN:
        return "UNNTAK"
    if has_emergency_reason(principal, emergency_reason):
        return "FORHOYET_AKUTT"
    if principal.purpose_of_use in (PurposeOfUse.TREAT, PurposeOfUse.ETREAT, PurposeOfUse.BTG):
        return "SAMTYKKE"
    return "UNNTAK"


@dataclass(frozen=True, slots=True)
class Oversight:
    """What decides whether a privacy officer's municipality oversees a patient, as the
    gateway learnt it before the decision (policies do no IO).

    `home_municipality` is the patient's home municipality (kommunenummer) from the population
    registry, None when the registry does not know the person; `holds_own_data` is True when
    the audit trail records, for this patient, data of the officer's municipality (an access
    that found it to be the patient's home, or a delivery from its own store).
    """

    home_municipality: str | None
    holds_own_data: bool


def decide_access_log(principal: Principal, nin: str | None, *, rules: Rules,
                      oversight: Oversight | None = None) -> Decision:
    """May `principal` read the access log of `nin` (None: their own, or a privacy officer's
    views across patients, which the store filters to the officer's municipality)?

    The citizen only their own (innsyn). The privacy officer acts for one municipality, the
    data controller (its number from the token's organisation claims, `Principal.municipality`):
    a patient whose home municipality is theirs, their whole log (PRIVACY_OFFICER); a patient
    living elsewhere of whom their municipality's store delivered data, only the entries that
    concern their municipality (PRIVACY_OFFICER_OWN_DATA); anyone else's, never
    (OTHER_MUNICIPALITY). Without `oversight` for a patient the answer is no.
    """
    if principal.kind is PrincipalKind.PRIVACY_OFFICER:
        if rules.privacy_officer_scope not in principal.scopes:
            return Decision.deny(
                reasons.SCOPE_MISSING, detail="The token lacks the privacy officer scope."
            )
        if principal.municipality is None:
            return Decision.deny(
                reasons.NO_MUNICIPALITY,
                detail="Your organisation is not a municipality this Kilde serves.",
            )
        if nin is None:
            return Decision.permit(reasons.PRIVACY_OFFICER)
        if oversight is not None and oversight.home_municipality == principal.municipality:
            return Decision.permit(reasons.PRIVACY_OFFICER)
        if oversight is not None and oversight.holds_own_data:
            return Decision.permit(reasons.PRIVACY_OFFICER_OWN_DATA)
        return Decision.deny(
            reasons.OTHER_MUNICIPALITY,
            detail="The patient is not of your municipality: a privacy officer reads the logs "
            "of their own municipality's patients and data only.",
        )
    if principal.kind is PrincipalKind.CITIZEN:
        if rules.citizen_scope not in principal.scopes:
            return Decision.deny(reasons.SCOPE_MISSING, detail="The token lacks the citizen scope.")
        if nin is not None and nin != principal.person_id:
            return Decision.deny(reasons.NOT_SELF, detail="A citizen may only see their own log.")
        return Decision.permit(reasons.SELF)
    return Decision.deny(
        reasons.ACCESS_LOG_NOT_PERMITTED,
        detail="Only the patient and the privacy officer may read an access log.",
    )
