"""What a principal may ask for, decided before the fan-out: which categories of the record
(profession x category, narrowed by purpose) and which municipalities' stores (the border).

    wanted = {c for c in requested if decide_category(principal, c, rules=rules).allowed}
    stores = allowed_municipalities(principal, rules=rules, tenants=settings.tenant_numbers)
"""

from __future__ import annotations

from collections.abc import Iterable

from policies import reasons
from policies.access import has_emergency_reason
from policies.model import Decision, Principal, PrincipalKind, Rules


def configured_categories(rules: Rules) -> frozenset[str]:
    """Every category the rules know, built-in or plugin; anything else is not configured."""
    known = set(rules.categories) | rules.citizen_categories
    for table in (rules.categories_by_profession, rules.categories_by_purpose,
                  rules.categories_granted_by_purpose):
        for categories in table.values():
            known |= categories
    return frozenset(known)


def decide_category(principal: Principal, category: str, *, rules: Rules) -> Decision:
    """May `principal` see `category` (a Category value, e.g. "lab_results") at all?

    The citizen sees `rules.citizen_categories`; a clinician what the profession row allows
    plus what the purpose grants, narrowed by the purpose (COC: municipal services only).
    """
    if category not in configured_categories(rules):
        return Decision.deny(
            reasons.CATEGORY_NOT_CONFIGURED,
            detail=f"Category {category!r} is not enabled in the policy.",
        )
    if principal.kind is PrincipalKind.CITIZEN:
        if category in rules.citizen_categories:
            return Decision.permit(reasons.SELF)
        return Decision.deny(
            reasons.CATEGORY_NOT_PERMITTED,
            detail=f"Category {category!r} is not shown to citizens.",
        )
    if principal.kind is PrincipalKind.PRIVACY_OFFICER:
        return Decision.deny(reasons.ACCESS_LOG_ONLY)
    if principal.kind is not PrincipalKind.CLINICIAN:
        return Decision.deny(reasons.PRINCIPAL_UNKNOWN)
    if principal.purpose_of_use is None:
        return Decision.deny(reasons.PURPOSE_MISSING)
    profession = principal.profession or ""
    if profession and profession not in rules.categories_by_profession:
        return Decision.deny(
            reasons.PROFESSION_NOT_PERMITTED,
            detail=f"Profession {profession!r} is not in the policy.",
        )
    purpose = principal.purpose_of_use.value
    by_profession = rules.categories_by_profession.get(profession, frozenset())
    allowed = by_profession | rules.categories_granted_by_purpose.get(purpose, frozenset())
    narrowed = rules.categories_by_purpose.get(purpose)
    if narrowed is not None:
        allowed &= narrowed
    if category in allowed:
        return Decision.permit(reasons.PERMITTED)
    if category in by_profession:
        return Decision.deny(
            reasons.PURPOSE_NOT_PERMITTED,
            detail=f"Purpose {purpose!r} does not cover category {category!r}.",
        )
    return Decision.deny(
        reasons.PROFESSION_NOT_PERMITTED,
        detail=f"Category {category!r} is not shown to profession {profession or 'none'!r}.",
    )


def allowed_municipalities(
    principal: Principal, *, rules: Rules, tenants: Iterable[str]
) -> frozenset[str]:
    """The municipal stores `principal` may see.

    A clinician: their own municipality plus every provider with an agreement naming it as
    consumer; nobody without a municipality. A citizen: every tenant (their own data, wherever
    it is kept). Anybody else: none.
    """
    if principal.kind is PrincipalKind.CITIZEN:
        return frozenset(tenants)
    if principal.kind is not PrincipalKind.CLINICIAN or not principal.municipality:
        return frozenset()
    home = principal.municipality
    return frozenset({home}) | {a.provider for a in rules.agreements
                                if a.consumer == home and a.use == "normal"}


def emergency_municipalities(principal: Principal, *, rules: Rules,
                             emergency_reason: str | None) -> frozenset[str]:
    """The stores an emergency-only agreement lets `principal` ask now: only for an ETREAT/BTG
    access with a stated reason, only when the policy honours such agreements
    (`[border] emergency_agreements`), and (the planner's part) only the patient's home store.
    Anything read from them is an emergency opening, specially audited."""
    if not has_emergency_reason(principal, emergency_reason):
        return frozenset()
    return emergency_agreement_providers(principal, rules=rules)


def emergency_agreement_providers(principal: Principal, *, rules: Rules) -> frozenset[str]:
    """The providers of the emergency-only agreements naming `principal`'s municipality as
    consumer, when the policy honours them (whether or not this access is an emergency)."""
    if (not rules.emergency_agreements or principal.kind is not PrincipalKind.CLINICIAN
            or not principal.municipality):
        return frozenset()
    own = allowed_municipalities(principal, rules=rules, tenants=())
    return frozenset(a.provider for a in rules.agreements
                     if a.consumer == principal.municipality and a.use == "emergency") - own
