"""Demo credentials: an embedded signing key, its JWKS, personas and `mint_token`.

Sits beside the request flow, outside the production app: `kilde demo` serves `demo_jwks()`
as the issuer's key set and `kilde token --persona NAME [--patient NIN]` prints
`mint_token(...)`; tests use it too. The personas are the HelseID simulator's
(`sandbox.helseid.personas`, drawn from `sandbox.world`: names, HPR numbers, workplaces), so a
token's attest fits the synthetic patients the sandbox serves and the simulator's own tokens.
Everything here is synthetic.

>>> token = mint_token("hjemmesykepleier", "09014412759", issuer="http://x/_demo", audience="kilde")
>>> token.count(".")
2
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import RSAAlgorithm

from connectors.identifiers import (
    FHN_SYSTEM,
    FNR_SYSTEM,
    HPR_SYSTEM,
    ORGNR_SYSTEM,
    is_valid_nin,
    nin_system,
)
from gateway.auth.attest import (
    Attest,
    AttestPatient,
    Code,
    DecisionRef,
    Ident,
    to_canonical,
)
from gateway.auth.principal import (
    CITIZEN_SCOPE,
    CLINICAL_SCOPE,
    EVENTS_SCOPE,
    PRIVACY_OFFICER_SCOPE,
)
from policies.model import PurposeOfUse
from sandbox import world
from sandbox.helseid import personas as helseid_personas

DEMO_KID = "kilde-demo-1"
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
DEMO_CLIENT_ID = "kilde-demo"

# !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
# DEMO ONLY — refused in production. This private key is public (it is in the repository):
# anyone can mint tokens with it. `kilde serve` / KILDE_MODE=production must never trust it.
# !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
DEMO_PRIVATE_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCcZlSXLOVddt0q
WMpnAi3cFTMRUBtQb7VyNYXDjzo94axl5iFfgz1icMrPb5K16DBVmKxH3m0atf49
x7uqtQx7xZG9N5+6LNPWyrYLAnN2/qKW6DRGJniZ2nQwIgIYastv3JpqmvaIU7E3
htYYfVNsSwmvkq1xR6ULtM05fFj1T9kFOw9WP/NOKnsRWsY8GGC296kKpHbVUVrG
lXV87jI0GfnwreBkHPeZl9ZIsmNT3WtNAV9jgt0I5IQ2SP5o2tcNQiBHJSG9zSaU
aLEN+TDRQ2JMfRFW+tK/pEDTQkcbDZJdW1S4d9IhmhlfjhptEb156bE4Fo6ljP/9
arVSkXvHAgMBAAECggEALo2pJTyYY0szxtyaFrJH20g2JLOfBcDSlhXHZK/36p6H
dedbzLXgajJftAImfd4IsRnaQiQ7fqVocZRH0KbGefsTh+qMMVsRjVBWgo1uuB9Q
XzHsCWt/H3Cuf/tHe2QifQABuLS6qFadHAWXKb/4OnZVgjzbQqpMPuFI6xEP26i7
Nci1zrALhfnnJ23ShIIGg7vrd2rvSJ+jnFiVH+EITkokUO9fhr77ZZeBtyOVMIlb
t8JRr3VsLZKrg4usVSxCC3w9NkKfIwePFkIK1vXq52WNB1f1R8yJCM7HhSTYNSye
oeZkgU/m92UR/da2mco4muJu9NW4z+RRHf8NYTqJnQKBgQDIrFVcLQCuv9sA0JBn
Stw6f2ZiPOLn5ZKoJLFzR1QtIFEdeG8njuiwydMpkZRmvJst+6a7P5dmCcqKcr5h
I94Ka7mY7GH2RWRD1Qi2YA/wLf2/Zig4tzkGfHIDHklzc1BipWs3tEPgpOlMWbmO
XEcx89Eg2kjVjauVJuju9wmHiwKBgQDHhSSeHOgglBeY8Zy8XJuqeAXSGgQcG6z6
e1vIuVEUMo8hjItGxXZ+gwnWE9xzrpP17SAegpa9bAaSaNn3ERPhT1UrLW/q99Hj
n2YN0Bf1p4z+lgfvsPG4I+MILAiaTolfRR+D86fjqhwBZFWArLWzRBKlwO8AXRjR
DoBQL7bENQKBgGVHNL2UqOeJRMqgeIDpM0UCz3V9LTfEkcPy4OxBb6ZmzQmGovLg
GWhANCaiprdDMT5/56JRceO5xVMinhsAsyunOsCHbNmSJAxoFEGXMfQSAiL7OAmH
z2wKmrAgNQnjhQqEWhx/ClLyaBx0nEXRJM19NGrUQDYnjhV00dLpMxIJAoGBAIzu
SxM0L/LzKEfsQl36vCoJZXMm1UhVdDXp9Mcvv0mY/OkhsS9oQ27ReJ0yokFES1cn
C80BSSC7sVixn2SZN4Wq1+oLykYajrNN4HRZTNNEap9ZsnlobxU2pCMdl2YHm5kj
5kL6VNjHS8jf6lVdqWra5qEWSrvjBqiEqbX6PgsRAoGAGqMvHL3/UAXxCi2XiRqh
Z1ayfdy4N4FKwjrkEfdtO4iaqjjLsBvUfCLnxPBzNlVoZZhmZbXjU7RRsIa0f171
Tsggkh+1g+CMkmhXCyghwCW/a2c+4MybP3dpj8qaLy0lGKYrmncBMlxyO/L+9m+i
7pozDGqKiivbZpqVsZP7Prc=
-----END PRIVATE KEY-----
"""

SERVICE_SYSTEM = world.IPLOS  # Volven 9151, Tjenestetype i helse- og omsorgstjenesten
CARE_RELATION_SYSTEM = "urn:AuditEventHL7Norway/CodeSystem/carerelation"
_SKATTEETATEN = "https://www.skatteetaten.no"
_HELSEDIREKTORATET = "https://www.helsedirektoratet.no/"


@dataclass(frozen=True, slots=True)
class Persona:
    """A demo caller. `kind` is clinician, citizen or privacy_officer; the citizen has no `pid`
    of their own: the patient they ask about is themself."""

    key: str
    kind: str
    description: str
    name: str | None = None
    pid: str | None = None
    hpr: str | None = None
    profession: Code | None = None
    legal_entity: Ident | None = None
    point_of_care: Ident | None = None
    purpose: PurposeOfUse | None = None
    healthcare_service: Code | None = None
    decision: DecisionRef | None = None


def _org(orgnr: str, name: str) -> Ident:
    return Ident(orgnr, name, ORGNR_SYSTEM)


def _legal_entity(municipality_number: str) -> Ident:
    m = next(m for m in world.MUNICIPALITIES if m.number == municipality_number)
    return _org(m.orgnr, f"{m.name} kommune")


def _typed(p: helseid_personas.Persona) -> Persona:
    """The HelseID simulator's persona as the gateway's attest types (a person without a
    workplace of their own, the privacy officer, acts at their legal entity)."""
    legal_entity = _legal_entity(p.municipality) if p.municipality else None
    return Persona(
        key=p.key,
        kind=p.kind,
        description=p.description,
        name=p.name,
        pid=p.pid,
        hpr=p.hpr,
        profession=Code(*p.profession, world.PROFESSION) if p.profession else None,
        legal_entity=legal_entity,
        point_of_care=_org(*p.point_of_care) if p.point_of_care else legal_entity,
        purpose=PurposeOfUse(p.purpose) if p.purpose else None,
        healthcare_service=Code(*p.service, SERVICE_SYSTEM) if p.service else None,
        decision=DecisionRef(*p.decision) if p.decision else None,
    )


# The one persona table is the HelseID simulator's (sandbox/helseid/personas.py: the people,
# their workplaces, purposes and decisions); the demo derives its typed view from it, so a
# persona added or changed there is the same persona here. (The sandbox may not import the
# gateway, so the table cannot live on this side.)
PERSONAS: Mapping[str, Persona] = MappingProxyType(
    {key: _typed(p) for key, p in helseid_personas.PERSONAS.items()})
PRIVACY_OFFICER_PID = helseid_personas.PRIVACY_OFFICER_PID


@functools.lru_cache(maxsize=1)
def _private_key() -> RSAPrivateKey:
    key = load_pem_private_key(DEMO_PRIVATE_KEY_PEM.encode(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise TypeError("The embedded demo key is not an RSA private key.")
    return key


def demo_jwks() -> dict[str, Any]:
    """The demo issuer's public key set (one RS256 key, kid "kilde-demo-1")."""
    jwk = RSAAlgorithm.to_jwk(_private_key().public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": DEMO_KID, "alg": "RS256", "use": "sig"}]}


def _persona(key: str) -> Persona:
    try:
        return PERSONAS[key]
    except KeyError:
        raise ValueError(f"Unknown persona {key!r}; known: {sorted(PERSONAS)}.") from None


def _attest(persona: Persona, pid: str, patient: str | None, purpose: PurposeOfUse,
            toa: int) -> dict[str, Any]:
    poc = persona.point_of_care
    patients = () if patient is None else (
        AttestPatient(Ident(patient, None, nin_system(patient),
                            None if nin_system(patient) == FHN_SYSTEM else _SKATTEETATEN), poc),
    )
    return to_canonical(Attest(
        purpose_of_use=purpose,
        toa=toa,
        practitioner=Ident(pid, persona.name, FNR_SYSTEM, _SKATTEETATEN),
        hpr_nr=Ident(persona.hpr, None, HPR_SYSTEM, _HELSEDIREKTORATET) if persona.hpr else None,
        authorization=persona.profession,
        legal_entity=persona.legal_entity,
        point_of_care=poc,
        healthcare_service=persona.healthcare_service,
        purpose_of_use_details=Code("BEHANDLER", "Behandler", CARE_RELATION_SYSTEM)
        if persona.hpr else None,
        decision_ref=persona.decision,
        patients=patients,
    ))


def mint_token(
    persona: str,
    patient: str | None = None,
    *,
    issuer: str,
    audience: str,
    now: float | None = None,
    lifetime: int = 3600,
    attest_age: int = 0,
    purpose: str | None = None,
    jkt: str | None = None,
) -> str:
    """A demo access token for `persona`, bound to `patient` (a NIN) for clinicians.

    `attest_age` backdates the attest's `toa`; `purpose` overrides the persona's purpose of
    use (TREAT, ETREAT, COC or BTG); `jkt` binds the token to a DPoP key (`cnf.jkt`, the key's
    RFC 7638 thumbprint). Raises ValueError for an unknown persona or a bad NIN.
    """
    spec = _persona(persona)
    if patient is not None and not is_valid_nin(patient):
        raise ValueError("The patient must be a valid national identity number.")
    if spec.kind != "clinician" and purpose is not None:
        raise ValueError(f"Persona {persona!r} has no care relationship to give a purpose.")
    try:
        chosen = PurposeOfUse(purpose) if purpose is not None else spec.purpose
    except ValueError:
        raise ValueError(f"Unknown purpose {purpose!r}; one of TREAT, ETREAT, COC, BTG.") from None
    if spec.kind == "citizen":
        if patient is None:
            raise ValueError(f"Persona {persona!r} needs a patient: the citizen is themself.")
        pid = patient
        sandbox_patient = world.patient(patient)
        name = sandbox_patient.name if sandbox_patient else None
    else:
        pid, name = spec.pid or "", spec.name
    issued = int(time.time() if now is None else now)
    scope = {"citizen": CITIZEN_SCOPE, "privacy_officer": PRIVACY_OFFICER_SCOPE}.get(
        spec.kind, CLINICAL_SCOPE)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        # unique like HelseID's own: two tokens minted in one second are two tokens (Kilde keys
        # its exchanged upstream tokens by the caller's token)
        "jti": secrets.token_hex(16),
        "sub": hashlib.sha256(f"kilde-demo:{pid}".encode()).hexdigest()[:32],
        "client_id": DEMO_CLIENT_ID,
        "scope": scope,
        "helseid://claims/identity/pid": pid,
        "helseid://claims/identity/security_level": "4",
    }
    if name:
        claims["name"] = name
    if jkt is not None:
        if not _THUMBPRINT.fullmatch(jkt):
            raise ValueError("The DPoP key thumbprint must be 43 base64url characters.")
        claims["cnf"] = {"jkt": jkt}
    if spec.hpr:
        claims["helseid://claims/hpr/hpr_number"] = spec.hpr
    if spec.legal_entity is not None:
        claims["helseid://claims/client/claims/orgnr_parent"] = spec.legal_entity.id
    if spec.point_of_care is not None:
        claims["helseid://claims/client/claims/orgnr_child"] = spec.point_of_care.id
    if spec.kind == "clinician" and chosen is not None:
        claims["authorization_details"] = [
            _attest(spec, pid, patient, chosen, issued - attest_age)
        ]
    return jwt.encode(claims, _private_key(), algorithm="RS256",
                      headers={"kid": DEMO_KID, "typ": "at+jwt"})


def mint_event_token(*, issuer: str, audience: str, lifetime: int = 3600,
                     scope: str = EVENTS_SCOPE, jkt: str | None = None) -> str:
    """A demo token for Oslo's municipal event store (hendelseslager), which posts "data
    changed" events to `POST /events`. Not a persona: a machine's client-credentials token,
    with no person in it (no pid, no security level)."""
    issued = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience, "iat": issued, "nbf": issued, "exp": issued + lifetime,
        "client_id": "kilde-demo-hendelseslager",
        "scope": scope,
        "helseid://claims/client/claims/orgnr_parent": _legal_entity("0301").id,
    }
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    return jwt.encode(claims, _private_key(), algorithm="RS256",
                      headers={"kid": DEMO_KID, "typ": "at+jwt"})
