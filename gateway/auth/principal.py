"""Verified claims in, a Principal out: who HelseID vouches for, narrowed by the attest.

Sits between token validation (`gateway.auth.tokens`) and the policies: `Authenticator` calls
`build_principal` on the claims of a verified token. Pure, no IO. The rule this module exists
for: identity, HPR number, profession and organisation come from what HelseID signed about
the login, never from the care-relationship attest alone. The attest is written by the
client system; it may *narrow* (purpose of use, the patients, the decision reference, the
healthcare service) but a practitioner, HPR number, profession, legal entity or point of
care it states must be one the token carries, else the token is refused (401) naming the
field. In detail:

- person: `helseid://claims/identity/pid`; a token without one is a machine's (client
  credentials), a principal kind of its own, unless it carries person claims;
- login strength: `…/identity/security_level` (HelseID, "1".."4"), else ID-porten's `acr`
  (`idporten-loa-high` = 4, `idporten-loa-substantial` = 3); at least
  `KILDE_AUTH__MIN_SECURITY_LEVEL` (4) for personnel, `…__CITIZEN_MIN_SECURITY_LEVEL` (4) for
  citizens;
- HPR number: `helseid://claims/hpr/hpr_number` only;
- profession: the attest's `authorization` code, accepted only when the token carries an HPR
  number (HelseID checks attest attributes against the HPR register before it signs them) and,
  when the token also carries `helseid://claims/hpr/hpr_details`, only when it is one of the
  professions approved there; without an HPR number a caller has no profession (a case
  handler), so only purpose-granted categories are open;
- legal entity and point of care: `helseid://claims/client/claims/orgnr_parent` and
  `…/orgnr_child`; the attest may only repeat them (and name them);
- kind: by the policy file's `[scopes]`, passed in as `Trust`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.auth.attest import Attest, Ident, read_attest
from gateway.auth.errors import AuthError
from gateway.auth.tokens import (
    HPR_DETAILS,
    HPR_NUMBER,
    ORGNR_CHILD,
    ORGNR_PARENT,
    PID,
    SECURITY_LEVEL,
    scopes_of,
)
from gateway.settings import Tenant
from policies.model import Principal, PrincipalKind

# The default scope names, as in policies/defaults.toml [scopes] (a test keeps them equal).
# The authenticator uses the loaded policy's names (`Trust.of`); demo tokens use these.
CLINICAL_SCOPE = "kilde/patient.read"
CITIZEN_SCOPE = "kilde/innsyn"
PRIVACY_OFFICER_SCOPE = "kilde/accesslog.read"
EVENTS_SCOPE = "kilde/events.write"  # an upstream's notifier may evict cache (POST /events)

ASSURANCE_LEVEL = "helseid://claims/identity/assurance_level"
# ID-porten's `acr` values (new and legacy) and eIDAS assurance levels, as security levels.
_ACR_LEVELS = {"idporten-loa-high": 4, "idporten-loa-substantial": 3, "level4": 4,
               "level3": 3, "high": 4, "substantial": 3, "low": 2}
# Claims that only a person's login carries: without a pid they make a token contradictory.
_PERSON_CLAIMS = (HPR_NUMBER, HPR_DETAILS, "authorization_details")


@dataclass(frozen=True, slots=True)
class Trust:
    """What the authenticator holds claims to: the policy's scope names, the minimum login
    security levels and the clock leeway. Build it with `Trust.of(settings.auth, rules)`."""

    clinical_scope: str = CLINICAL_SCOPE
    citizen_scope: str = CITIZEN_SCOPE
    privacy_officer_scope: str = PRIVACY_OFFICER_SCOPE
    events_scope: str = EVENTS_SCOPE
    min_security_level: int = 4
    citizen_min_security_level: int = 4
    leeway: int = 0

    @classmethod
    def of(cls, settings: Any, rules: Any) -> Trust:
        """From `AuthSettings` and the loaded policy `Rules`."""
        return cls(rules.clinical_scope, rules.citizen_scope, rules.privacy_officer_scope,
                   rules.events_scope, settings.min_security_level,
                   settings.citizen_min_security_level, settings.leeway_seconds)


# HelseID's older names for the client's organisation (enterprise-certificate clients), read
# when the current ones are absent: still signed by HelseID, so still the token's word.
_LEGACY = {ORGNR_PARENT: "helseid://claims/client/ec/orgnr_parent",
           ORGNR_CHILD: "helseid://claims/client/ec/orgnr_child"}


def _optional_id(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None and name in _LEGACY:
        value = claims.get(_LEGACY[name])
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def security_level(claims: Mapping[str, Any]) -> int | None:
    """The login's security level (1-4) from HelseID's claim, eIDAS or ID-porten's `acr`."""
    for name in (SECURITY_LEVEL, ASSURANCE_LEVEL, "acr"):
        value = claims.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return int(value)
        if isinstance(value, str) and value.strip().lower() in _ACR_LEVELS:
            return _ACR_LEVELS[value.strip().lower()]
        raise AuthError(f"The token's {name!r} claim is not a security level.")
    return None


def _check_level(claims: Mapping[str, Any], minimum: int, who: str) -> None:
    level = security_level(claims)
    if level is None:
        raise AuthError("The token does not state the login's security level.")
    if level < minimum:
        raise AuthError(f"The login's security level {level} is below the {minimum} required "
                        f"for {who}; log in with a stronger method.")


def approved_professions(claims: Mapping[str, Any]) -> frozenset[str] | None:
    """The profession codes in `hpr_details` (HelseID's HPR approvals), None without it."""
    raw = claims.get(HPR_DETAILS)
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise AuthError("The token's hpr_details claim is not JSON.") from None
    approvals = raw.get("approvals") if isinstance(raw, Mapping) else raw
    if not isinstance(approvals, list):
        raise AuthError("The token's hpr_details claim has no list of approvals.")
    codes = set()
    for approval in approvals:
        profession = approval.get("profession") if isinstance(approval, Mapping) else None
        if isinstance(profession, Mapping):
            profession = profession.get("value") or profession.get("code")
        if isinstance(profession, str) and profession:
            codes.add(profession)
    return frozenset(codes)


def _same(attest_value: Ident | None, token_value: str | None, what: str, claim: str) -> None:
    """The attest may repeat what the token says, never add or change it."""
    if attest_value is None:
        return
    if token_value is None:
        raise AuthError(f"The care-relationship attest names {what}, but the token has no "
                        f"{claim!r} claim; the attest cannot supply it.")
    if attest_value.id != token_value:
        raise AuthError(f"The care-relationship attest names another {what.split(' ', 1)[1]} "
                        "than the token.")


def _profession(attest: Attest, claims: Mapping[str, Any], hpr: str | None
                ) -> tuple[str | None, str | None]:
    approved = approved_professions(claims)
    code = attest.authorization.code if attest.authorization else None
    if code is None:
        if hpr is not None and approved is not None and len(approved) == 1:
            return next(iter(approved)), None
        return None, None
    if hpr is None:
        raise AuthError("The care-relationship attest states a profession, but the token "
                        "carries no HPR number to hold it.")
    if approved is not None and code not in approved:
        raise AuthError("The care-relationship attest states a profession the token's HPR "
                        "approvals do not include.")
    return code, attest.authorization.text if attest.authorization else None


def _check_attest(attest: Attest, claims: Mapping[str, Any], *, now: float, leeway: int) -> None:
    """The attest must speak for the same person and organisation as the token."""
    if attest.practitioner is not None and attest.practitioner.id != claims[PID]:
        raise AuthError("The care-relationship attest names another person than the token.")
    _same(attest.hpr_nr, _optional_id(claims, HPR_NUMBER), "an HPR number", "hpr_number")
    _same(attest.legal_entity, _optional_id(claims, ORGNR_PARENT), "a legal entity",
          "orgnr_parent")
    _same(attest.point_of_care, _optional_id(claims, ORGNR_CHILD), "a point of care",
          "orgnr_child")
    if attest.toa > now + leeway:
        raise AuthError("The care-relationship attest is invalid: toa is in the future.")


def _kind(scopes: frozenset[str], trust: Trust) -> PrincipalKind:
    roles = [(trust.citizen_scope, PrincipalKind.CITIZEN),
             (trust.privacy_officer_scope, PrincipalKind.PRIVACY_OFFICER),
             (trust.clinical_scope, PrincipalKind.CLINICIAN)]
    held = [kind for scope, kind in roles if scope in scopes]
    if len(held) > 1:
        raise AuthError("The token carries the scopes of more than one kind of caller; ask "
                        "for one of them.")
    # a person's token without a role scope is a clinician's, denied later for the scope
    return held[0] if held else PrincipalKind.CLINICIAN


def _machine(claims: Mapping[str, Any], tenants: Mapping[str, Tenant], scopes: frozenset[str]
             ) -> Principal:
    if any(claims.get(name) is not None for name in _PERSON_CLAIMS):
        raise AuthError("The token carries claims about a person but no person identifier "
                        "(pid).")
    legal_entity = _optional_id(claims, ORGNR_PARENT)
    tenant = tenants.get(legal_entity or "")
    return Principal(PrincipalKind.MACHINE, "", str(claims["client_id"]),
                     legal_entity=legal_entity, point_of_care=_optional_id(claims, ORGNR_CHILD),
                     municipality=tenant.number if tenant else None, scopes=scopes)


def build_principal(
    claims: Mapping[str, Any],
    tenants: Mapping[str, Tenant],
    *,
    now: float,
    leeway: int | None = None,
    trust: Trust | None = None,
) -> Principal:
    """The Principal for verified `claims`; `tenants` maps a legal entity's orgnr to a tenant.

    AuthError (401) when the claims do not hold together: see the module docstring."""
    trust = trust or Trust()
    leeway = trust.leeway if leeway is None else leeway
    scopes = scopes_of(claims)
    if claims.get(PID) is None:
        return _machine(claims, tenants, scopes)
    pid: str = claims[PID]
    client_id = str(claims.get("client_id", ""))
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    kind = _kind(scopes, trust)
    if kind is PrincipalKind.CITIZEN:
        _check_level(claims, trust.citizen_min_security_level, "a citizen")
        return Principal(PrincipalKind.CITIZEN, pid, client_id, name=name, scopes=scopes)

    _check_level(claims, trust.min_security_level, "health personnel")
    legal_entity = _optional_id(claims, ORGNR_PARENT)
    point_of_care = _optional_id(claims, ORGNR_CHILD)
    hpr_number = _optional_id(claims, HPR_NUMBER)
    tenant = tenants.get(legal_entity or "")
    municipality = tenant.number if tenant else None
    if kind is PrincipalKind.PRIVACY_OFFICER:
        if legal_entity is None:
            raise AuthError("A privacy officer's token must name the legal entity "
                            "(orgnr_parent) whose access log it reads.")
        return Principal(
            PrincipalKind.PRIVACY_OFFICER, pid, client_id, name=name, hpr_number=hpr_number,
            legal_entity=legal_entity, point_of_care=point_of_care,
            municipality=municipality, scopes=scopes,
        )

    attest = read_attest(claims.get("authorization_details"))
    if attest is None:
        return Principal(
            PrincipalKind.CLINICIAN, pid, client_id, name=name, hpr_number=hpr_number,
            legal_entity=legal_entity, point_of_care=point_of_care,
            municipality=municipality, scopes=scopes,
        )
    _check_attest(attest, claims, now=now, leeway=leeway)
    profession, profession_text = _profession(attest, claims, hpr_number)
    ref = attest.decision_ref
    return Principal(
        kind=PrincipalKind.CLINICIAN,
        person_id=pid,
        client_id=client_id,
        name=name,  # HelseID's; the attest's practitioner name is the client's say-so
        hpr_number=hpr_number,
        profession=profession,
        profession_text=profession_text,
        legal_entity=legal_entity,
        legal_entity_name=attest.legal_entity.name if attest.legal_entity else None,
        point_of_care=point_of_care,
        point_of_care_name=attest.point_of_care.name if attest.point_of_care else None,
        municipality=municipality,
        healthcare_service=attest.healthcare_service.code if attest.healthcare_service else None,
        purpose_of_use=attest.purpose_of_use,
        decision_ref=ref.id if ref else None,
        decision_description=ref.description if ref else None,
        user_selected=ref.user_selected if ref else False,
        patients=attest.patient_nins,
        attested_at=datetime.fromtimestamp(attest.toa, tz=UTC),
        scopes=scopes,
    )
