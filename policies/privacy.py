"""Decisions on what came back, after the fetch: a source's in-band privacy answer for this
patient (blocked, reserved, restricted) and each item's security labels and municipality.

    verdict = decide_privacy(principal, facts, emergency_reason=reason)
    keep = [i for i in items if decide_item(principal, facts_of(i), rules=rules,
                                            municipalities=stores, emergency_reason=reason).allowed]
"""

from __future__ import annotations

from policies import reasons
from policies.access import has_emergency_reason
from policies.model import Decision, ItemFacts, Principal, PrincipalKind, PrivacyFacts, Rules


def decide_privacy(
    principal: Principal, facts: PrivacyFacts, *, emergency_reason: str | None
) -> Decision:
    """May `principal` see what `facts.source` answered, given the patient's own choices?

    A blocking is never overridden, not even by break-the-glass; a reservation means there is
    nothing to see; a restriction (sperring) opens only in an emergency with a stated reason
    (specially audited: `emergency=True`), or for the citizen themself.
    """
    if principal.kind not in (PrincipalKind.CLINICIAN, PrincipalKind.CITIZEN):
        return _deny_other_kinds(principal)
    if facts.blocked_requester:
        return Decision.deny(
            reasons.PATIENT_BLOCKED_REQUESTER, "BLOCKED",
            detail=f"The patient has blocked this requester at {facts.source!r}.",
        )
    if facts.any_blocked:
        return Decision.deny(
            reasons.SOURCE_SHARES_NOTHING_WHEN_BLOCKED, "BLOCKED",
            detail=f"Source {facts.source!r} shares nothing while any blocking is in place.",
        )
    if facts.reserved:
        return Decision.deny(
            reasons.PATIENT_RESERVED, "RESERVED",
            detail=f"The patient has reserved against {facts.source!r}.",
        )
    if not facts.restricted:
        return Decision.permit(reasons.PERMITTED)
    if principal.kind is PrincipalKind.CITIZEN:
        return Decision.permit(reasons.SELF)
    if not facts.restriction_opened:
        return Decision.deny(
            reasons.RESTRICTED_NEEDS_EMERGENCY, "RESTRICTED",
            detail=f"Data at {facts.source!r} is restricted; it opens in an emergency with a reason.",
        )
    if has_emergency_reason(principal, emergency_reason):
        return Decision.permit(reasons.EMERGENCY_OPENING, emergency=True)
    # Defence in depth: the source opened a restriction we never asked it to open.
    return Decision.deny(
        reasons.RESTRICTED_OPENED_WITHOUT_BASIS, "RESTRICTED",
        detail=f"Source {facts.source!r} opened restricted data without an emergency basis.",
    )


def decide_item(
    principal: Principal,
    facts: ItemFacts,
    *,
    rules: Rules,
    municipalities: frozenset[str],
    emergency_reason: str | None,
    emergency_municipalities: frozenset[str] = frozenset(),
) -> Decision:
    """May `principal` see one item? `municipalities` is `allowed_municipalities(...)`;
    `emergency_municipalities` the stores asked across the border under an emergency-only
    agreement (an item from one is an emergency opening).

    Denied labels never pass; an item from a store across the municipal border is dropped
    (defence in depth: the connector was only asked for allowed stores); restricted labels
    pass for the citizen themself and in an emergency with a stated reason.
    """
    if principal.kind not in (PrincipalKind.CLINICIAN, PrincipalKind.CITIZEN):
        return _deny_other_kinds(principal)
    if facts.security & rules.denied_labels:
        return Decision.deny(
            reasons.SECURITY_LABEL_DENIED,
            detail=f"An item from {facts.source!r} carries a label never shown through Kilde.",
        )
    opened = False
    if (facts.municipality is not None and facts.municipality not in municipalities
            and facts.municipality in emergency_municipalities
            and has_emergency_reason(principal, emergency_reason)):
        opened = True  # across the border under an emergency-only agreement
    elif facts.municipality is not None and facts.municipality not in municipalities:
        return Decision.deny(
            reasons.MUNICIPAL_BORDER,
            detail=f"An item from municipality {facts.municipality!r} is outside the agreements.",
        )
    if facts.security & rules.restricted_labels:
        if principal.kind is PrincipalKind.CITIZEN:
            return Decision.permit(reasons.SELF)
        if has_emergency_reason(principal, emergency_reason):
            return Decision.permit(reasons.EMERGENCY_OPENING, emergency=True)
        return Decision.deny(
            reasons.SECURITY_LABEL_RESTRICTED, "RESTRICTED",
            detail=f"An item from {facts.source!r} is restricted; it opens in an emergency.",
        )
    if opened:
        return Decision.permit(reasons.EMERGENCY_OPENING, emergency=True)
    return Decision.permit(reasons.PERMITTED)


def _deny_other_kinds(principal: Principal) -> Decision:
    if principal.kind is PrincipalKind.PRIVACY_OFFICER:
        return Decision.deny(reasons.ACCESS_LOG_ONLY)
    return Decision.deny(reasons.PRINCIPAL_UNKNOWN)
