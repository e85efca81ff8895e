"""Pure access decisions between the schema's resolvers and the connectors: data in, Decision out.

Resolvers ask before the fetch (`decide_patient`, `decide_category`, `allowed_municipalities`,
`access_basis`) and after it (`decide_privacy`, `decide_item`); `decide_access_log` guards the
innsyn and audit queries; `decide_write` every mutation before the store is asked. The rules are data (`load_rules`, `defaults.toml`), built once at start.

    rules = load_rules(settings.policy_file, agreements=settings.agreements)
    decision = decide_patient(principal, nin, now=datetime.now(UTC), rules=rules)
"""

from __future__ import annotations

from policies.access import Oversight, access_basis, decide_access_log, decide_patient
from policies.categories import (
    allowed_municipalities,
    configured_categories,
    decide_category,
    emergency_agreement_providers,
    emergency_municipalities,
)
from policies.model import (
    Agreement,
    Decision,
    ItemFacts,
    Principal,
    PrincipalKind,
    PrivacyFacts,
    PurposeOfUse,
    Rules,
)
from policies.privacy import decide_item, decide_privacy
from policies.reasons import REASON_CODES
from policies.rules import BUILTIN_CATEGORIES, PURPOSES, load_rules
from policies.write import decide_write, writable_municipalities

__all__ = [
    "BUILTIN_CATEGORIES",
    "PURPOSES",
    "REASON_CODES",
    "Agreement",
    "Decision",
    "ItemFacts",
    "Oversight",
    "Principal",
    "PrincipalKind",
    "PrivacyFacts",
    "PurposeOfUse",
    "Rules",
    "access_basis",
    "allowed_municipalities",
    "configured_categories",
    "decide_access_log",
    "decide_category",
    "decide_item",
    "decide_patient",
    "decide_privacy",
    "decide_write",
    "emergency_agreement_providers",
    "emergency_municipalities",
    "load_rules",
    "writable_municipalities",
]
