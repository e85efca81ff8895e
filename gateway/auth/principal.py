"""Authentication at the gateway's edge: an `Authorization` header in, a `Principal` out.

The GraphQL view calls `Authenticator.authenticate` once per request before anything else;
the Principal it returns is what policies decide on. The token is validated by
`gateway.auth.tokens`, the care-relationship attest read by `gateway.auth.attest`, and the
caller's municipality resolved from the legal entity through the tenant table.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from gateway.auth.attest import Attest, Ident, read_attest
from gateway.auth.errors import AuthError
from gateway.auth.jwks import JwksCache
from gateway.auth.tokens import (
    HPR_NUMBER,
    ORGNR_CHILD,
    ORGNR_PARENT,
    PID,
    SUPPORTED_ALGORITHMS,
    scopes_of,
    validate,
)
from gateway.settings import AuthSettings, Tenant
from policies.model import Principal, PrincipalKind

CITIZEN_SCOPE = "kilde/innsyn"
PRIVACY_OFFICER_SCOPE = "kilde/accesslog.read"
CLINICAL_SCOPE = "kilde/patient.read"
EVENTS_SCOPE = "kilde/events.write"  # an upstream's notifier may evict cache (POST /events)


def bearer_token(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer <token>` header value; AuthError otherwise."""
    if not authorization or not authorization.strip():
        raise AuthError("The request has no Authorization header; send a Bearer token.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("The Authorization header must use the Bearer scheme.")
    token = token.strip()
    if not token:
        raise AuthError("The Authorization header carries no token.")
    return token


def _optional_id(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def _name_if(ident: Ident | None, orgnr: str | None) -> str | None:
    return ident.name if ident is not None and ident.id == orgnr else None


def _check_attest(attest: Attest, claims: Mapping[str, Any], *, now: float, leeway: int) -> None:
    """The attest must speak for the same person and organisation as the token."""
    hpr = _optional_id(claims, HPR_NUMBER)
    parent = _optional_id(claims, ORGNR_PARENT)
    if attest.practitioner is not None and attest.practitioner.id != claims[PID]:
        raise AuthError("The care-relationship attest names another person than the token.")
    if attest.hpr_nr is not None and hpr is not None and attest.hpr_nr.id != hpr:
        raise AuthError("The care-relationship attest names another HPR number than the token.")
    if attest.legal_entity is not None and parent is not None and attest.legal_entity.id != parent:
        raise AuthError("The care-relationship attest names another legal entity than the token.")
    if attest.toa > now + leeway:
        raise AuthError("The care-relationship attest is invalid: toa is in the future.")


def build_principal(
    claims: Mapping[str, Any],
    tenants: Mapping[str, Tenant],
    *,
    now: float,
    leeway: int = 0,
) -> Principal:
    """The Principal for verified `claims`; `tenants` maps a legal entity's orgnr to a tenant."""
    scopes = scopes_of(claims)
    pid: str = claims[PID]
    client_id = str(claims.get("client_id", ""))
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    if CITIZEN_SCOPE in scopes:
        return Principal(PrincipalKind.CITIZEN, pid, client_id, name=name, scopes=scopes)

    legal_entity = _optional_id(claims, ORGNR_PARENT)
    point_of_care = _optional_id(claims, ORGNR_CHILD)
    hpr_number = _optional_id(claims, HPR_NUMBER)
    if PRIVACY_OFFICER_SCOPE in scopes:
        tenant = tenants.get(legal_entity or "")
        return Principal(
            PrincipalKind.PRIVACY_OFFICER, pid, client_id, name=name, hpr_number=hpr_number,
            legal_entity=legal_entity, point_of_care=point_of_care,
            municipality=tenant.number if tenant else None, scopes=scopes,
        )

    attest = read_attest(claims.get("authorization_details"))
    if attest is None:
        tenant = tenants.get(legal_entity or "")
        return Principal(
            PrincipalKind.CLINICIAN, pid, client_id, name=name, hpr_number=hpr_number,
            legal_entity=legal_entity, point_of_care=point_of_care,
            municipality=tenant.number if tenant else None, scopes=scopes,
        )
    _check_attest(attest, claims, now=now, leeway=leeway)
    legal_entity = legal_entity or (attest.legal_entity.id if attest.legal_entity else None)
    point_of_care = point_of_care or (attest.point_of_care.id if attest.point_of_care else None)
    tenant = tenants.get(legal_entity or "")
    ref = attest.decision_ref
    return Principal(
        kind=PrincipalKind.CLINICIAN,
        person_id=pid,
        client_id=client_id,
        name=(attest.practitioner.name if attest.practitioner else None) or name,
        hpr_number=hpr_number or (attest.hpr_nr.id if attest.hpr_nr else None),
        profession=attest.authorization.code if attest.authorization else None,
        profession_text=attest.authorization.text if attest.authorization else None,
        legal_entity=legal_entity,
        legal_entity_name=_name_if(attest.legal_entity, legal_entity),
        point_of_care=point_of_care,
        point_of_care_name=_name_if(attest.point_of_care, point_of_care),
        municipality=tenant.number if tenant else None,
        healthcare_service=attest.healthcare_service.code if attest.healthcare_service else None,
        purpose_of_use=attest.purpose_of_use,
        decision_ref=ref.id if ref else None,
        decision_description=ref.description if ref else None,
        user_selected=ref.user_selected if ref else False,
        patients=attest.patient_nins,
        attested_at=datetime.fromtimestamp(attest.toa, tz=UTC),
        scopes=scopes,
    )


VERIFIED_CACHE_SIZE = 10_000


class Authenticator:
    """Turns an `Authorization` header into a Principal; one instance per app, shared.

    >>> auth = Authenticator(settings.auth, http, settings.tenants)  # doctest: +SKIP
    >>> principal = await auth.authenticate("Bearer eyJ...")      # doctest: +SKIP
    """

    def __init__(
        self,
        settings: AuthSettings,
        http: httpx.AsyncClient,
        tenants: Sequence[Tenant],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unsupported = sorted(set(settings.algorithms) - SUPPORTED_ALGORITHMS)
        if unsupported or not settings.algorithms:
            raise ValueError(
                f"KILDE_AUTH__ALGORITHMS may only name {sorted(SUPPORTED_ALGORITHMS)}; "
                f"got {unsupported or 'none'}."
            )
        self._settings = settings
        self._tenants = {t.orgnr: t for t in tenants}
        self._clock = clock
        self.jwks = JwksCache(
            settings.jwks_url, http, min_refresh_seconds=settings.jwks_min_refresh_seconds
        )
        # Verified tokens, keyed by their SHA-256 (never the token), until they expire: an app
        # sends the same token for many requests, and the signature check was a few per cent
        # of a request's CPU (bench/RESULTS.md). Bounded, oldest out first.
        self._verified: OrderedDict[bytes, tuple[float, float, Principal]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        """The Principal behind an `Authorization` header value, or AuthError."""
        token = bearer_token(authorization)
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        leeway = self._settings.leeway_seconds
        if cached is not None:
            not_before, expires, principal = cached
            if not_before - leeway <= now < expires + leeway:
                return principal
            del self._verified[digest]
        claims = await validate(token, self.jwks, self._settings, now=now)
        principal = build_principal(claims, self._tenants, now=now, leeway=leeway)
        expires = float(claims["exp"])
        not_before = float(claims.get("nbf", claims.get("iat", now)))
        self._verified[digest] = (not_before, expires, principal)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal
