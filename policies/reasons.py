"""The stable reason codes every policy Decision carries, into errors and the audit trail.

Codes are part of the public contract: the audit trail stores them and the citizen's log and
the privacy officer's reports group by them. Add new codes; never rename one.
"""

from __future__ import annotations

# Permits
PERMITTED = "PERMITTED"  # an ordinary permit: every rule that applies was satisfied
SELF = "SELF"  # the citizen reading their own record or their own access log
CARE_RELATIONSHIP = "CARE_RELATIONSHIP"  # a clinician with a fresh attest bound to this patient
PRIVACY_OFFICER = "PRIVACY_OFFICER"  # the privacy officer reading an access log
# the privacy officer reading the entries of their municipality's data only (the patient lives
# elsewhere, but their municipality's store delivered data of them)
PRIVACY_OFFICER_OWN_DATA = "PRIVACY_OFFICER_OWN_DATA"
EMERGENCY_OPENING = "EMERGENCY_OPENING"  # restricted data opened under ETREAT/BTG with a reason

# Who is asking
PRINCIPAL_UNKNOWN = "PRINCIPAL_UNKNOWN"  # a principal kind no rule knows: deny by default
SCOPE_MISSING = "SCOPE_MISSING"
NOT_SELF = "NOT_SELF"  # a citizen asking about somebody else
ACCESS_LOG_ONLY = "ACCESS_LOG_ONLY"  # a privacy officer asking for clinical data
ACCESS_LOG_NOT_PERMITTED = "ACCESS_LOG_NOT_PERMITTED"  # a clinician asking for an access log
NO_MUNICIPALITY = "NO_MUNICIPALITY"  # a privacy officer of an organisation this Kilde does not serve
OTHER_MUNICIPALITY = "OTHER_MUNICIPALITY"  # a privacy officer asking about another's patient

# The care-relationship attest (Tillitsrammeverk, ATT-4 and ATT-58)
PURPOSE_MISSING = "PURPOSE_MISSING"
CARE_RELATIONSHIP_MISSING = "CARE_RELATIONSHIP_MISSING"  # attest not bound to this patient
ATTEST_EXPIRED = "ATTEST_EXPIRED"  # toa older than the configured maximum age
ATTEST_INVALID = "ATTEST_INVALID"  # toa missing or in the future

# Categories
CATEGORY_NOT_CONFIGURED = "CATEGORY_NOT_CONFIGURED"  # e.g. a plugin category nobody enabled
CATEGORY_NOT_PERMITTED = "CATEGORY_NOT_PERMITTED"  # configured, but not for citizens
PROFESSION_NOT_PERMITTED = "PROFESSION_NOT_PERMITTED"  # unknown profession, or not in its row
PURPOSE_NOT_PERMITTED = "PURPOSE_NOT_PERMITTED"  # the profession may, the purpose narrows it away

# The patient's own choices, as the source reports them
PATIENT_BLOCKED_REQUESTER = "PATIENT_BLOCKED_REQUESTER"  # never overridable, not even BTG
SOURCE_SHARES_NOTHING_WHEN_BLOCKED = "SOURCE_SHARES_NOTHING_WHEN_BLOCKED"
PATIENT_RESERVED = "PATIENT_RESERVED"
RESTRICTED_NEEDS_EMERGENCY = "RESTRICTED_NEEDS_EMERGENCY"
RESTRICTED_OPENED_WITHOUT_BASIS = "RESTRICTED_OPENED_WITHOUT_BASIS"  # upstream opened; we did not ask

# Items
SECURITY_LABEL_DENIED = "SECURITY_LABEL_DENIED"
SECURITY_LABEL_RESTRICTED = "SECURITY_LABEL_RESTRICTED"
MUNICIPAL_BORDER = "MUNICIPAL_BORDER"

# Writes (policies/write.py)
WRITE_PERMITTED = "WRITE_PERMITTED"  # every write rule satisfied: the store is asked
WRITE_NOT_PERMITTED = "WRITE_NOT_PERMITTED"  # nobody of this kind, profession or category writes
WRITE_PURPOSE_NOT_PERMITTED = "WRITE_PURPOSE_NOT_PERMITTED"  # the purpose does not cover writing
WRITE_MUNICIPAL_BORDER = "WRITE_MUNICIPAL_BORDER"  # another municipality's store, no agreement

REASON_CODES: frozenset[str] = frozenset(
    {
        PERMITTED,
        SELF,
        CARE_RELATIONSHIP,
        PRIVACY_OFFICER,
        PRIVACY_OFFICER_OWN_DATA,
        EMERGENCY_OPENING,
        PRINCIPAL_UNKNOWN,
        SCOPE_MISSING,
        NOT_SELF,
        ACCESS_LOG_ONLY,
        ACCESS_LOG_NOT_PERMITTED,
        NO_MUNICIPALITY,
        OTHER_MUNICIPALITY,
        PURPOSE_MISSING,
        CARE_RELATIONSHIP_MISSING,
        ATTEST_EXPIRED,
        ATTEST_INVALID,
        CATEGORY_NOT_CONFIGURED,
        CATEGORY_NOT_PERMITTED,
        PROFESSION_NOT_PERMITTED,
        PURPOSE_NOT_PERMITTED,
        PATIENT_BLOCKED_REQUESTER,
        SOURCE_SHARES_NOTHING_WHEN_BLOCKED,
        PATIENT_RESERVED,
        RESTRICTED_NEEDS_EMERGENCY,
        RESTRICTED_OPENED_WITHOUT_BASIS,
        SECURITY_LABEL_DENIED,
        SECURITY_LABEL_RESTRICTED,
        MUNICIPAL_BORDER,
        WRITE_PERMITTED,
        WRITE_NOT_PERMITTED,
        WRITE_PURPOSE_NOT_PERMITTED,
        WRITE_MUNICIPAL_BORDER,
    }
)
