"""The demo callers (personas) and the claims HelseID would put in their access tokens.

The one persona table: `gateway.demo.tokens` derives its typed personas (and so `kilde token`
and the demo's own tokens) from `PERSONAS` here (tests/gateway/test_demo_personas.py holds the
two to the same claims). Add or change a persona here only.

Sits inside the HelseID simulator: `POST /_sandbox/helseid/token` and `kilde token` mint a
persona's token for Kilde from these claims; token exchange copies the user's claims and
attest into the token for an upstream. The people, HPR numbers and workplaces come from
`sandbox.world`, so an attest fits the synthetic patients the fakes serve. The attest is the
Tillitsrammeverk's `nhn:tillitsrammeverk:parameters` object in its canonical wire JSON.

>>> claims = persona_claims("legevakt-lege", "14033841389", now=1_700_000_000)
>>> claims["helseid://claims/hpr/hpr_number"], claims["scope"]
('9144901', 'kilde/patient.read')
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sandbox import world

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
FHN = "urn:oid:2.16.578.1.12.4.1.4.3"
HPR = "urn:oid:2.16.578.1.12.4.1.4.4"
ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
PURPOSE_OF_USE = "urn:oid:2.16.840.1.113883.1.11.20448"
CARE_RELATION = "urn:AuditEventHL7Norway/CodeSystem/carerelation"
ATTEST_TYPE = "nhn:tillitsrammeverk:parameters"
PURPOSES = ("TREAT", "ETREAT", "COC", "BTG")
_SKATTEETATEN = "https://www.skatteetaten.no"
_HELSEDIREKTORATET = "https://www.helsedirektoratet.no/"

# The scopes Kilde's API registers in HelseID (what each kind of caller is given).
CLINICAL_SCOPE = "kilde/patient.read"
CITIZEN_SCOPE = "kilde/innsyn"
PRIVACY_OFFICER_SCOPE = "kilde/accesslog.read"
EVENTS_SCOPE = "kilde/events.write"

# Synthetic people who are not in world.PROFESSIONALS (make_nin-generated, mod-11 valid).
PRIVACY_OFFICER_PID = "23097130086"
EVENT_STORE_CLIENT_ID = "kilde-demo-hendelseslager"  # the event store's HelseID client


@dataclass(frozen=True, slots=True)
class Persona:
    """A demo caller: `kind` is clinician, citizen or privacy_officer. The citizen has no
    person of their own: the patient they ask about is themself."""

    key: str
    kind: str
    description: str
    name: str | None = None
    pid: str | None = None
    hpr: str | None = None
    profession: tuple[str, str] | None = None  # (kodeverk 9060 code, text)
    municipality: str | None = None  # the legal entity's municipality number
    point_of_care: tuple[str, str] | None = None  # (orgnr, name)
    purpose: str | None = None
    service: tuple[str, str] | None = None  # (Volven 9151 code, text)
    decision: tuple[str, str, bool] | None = None  # (id, description, user_selected)


_HOME_CARE = ("15", "Helsetjenester i hjemmet")
_LONG_TERM = ("25", "Langtidsopphold i institusjon")
_EMERGENCY = ("legevakt-konsultasjon", "Pasient til konsultasjon på legevakt", True)
_HOME_CARE_DECISION = ("vedtak-hjemmesykepleie", "Vedtak om helsetjenester i hjemmet", False)


def _clinician(key: str, description: str, purpose: str,
               decision: tuple[str, str, bool], service: tuple[str, str] | None = None
               ) -> Persona:
    pro = world.professional(key)
    place = world.organisation(pro.workplace)
    return Persona(key, "clinician", description, pro.name, pro.pid, pro.hpr,
                   (pro.profession, pro.profession_text) if pro.profession else None,
                   place.municipality, (place.orgnr, place.name), purpose, service, decision)


PERSONAS: Mapping[str, Persona] = MappingProxyType({p.key: p for p in (
    _clinician("legevakt-lege", "Physician at Oslo kommune legevakt (ETREAT).", "ETREAT",
               _EMERGENCY),
    _clinician("hjemmesykepleier", "Home-care nurse in Oslo (TREAT).", "TREAT",
               _HOME_CARE_DECISION, _HOME_CARE),
    _clinician("helsefagarbeider", "Health worker at Lindeberg sykehjem, Oslo (TREAT).",
               "TREAT", ("vedtak-langtidsopphold", "Vedtak om langtidsopphold", False),
               _LONG_TERM),
    _clinician("saksbehandler", "Case handler at Tildelingskontoret Oslo, no HPR (COC).", "COC",
               ("soknad-tjenester", "Behandling av søknad om tjenester", False)),
    _clinician("lege-annen-kommune", "Physician at Trondheim legevakt (ETREAT).", "ETREAT",
               _EMERGENCY),
    _clinician("hjemmesykepleier-bergen", "Home-care nurse in Bergen (TREAT).", "TREAT",
               _HOME_CARE_DECISION, _HOME_CARE),
    Persona("innbygger", "citizen", "The citizen; the patient is themself."),
    Persona("personvernombud", "privacy_officer", "Privacy officer of Oslo kommune.",
            name="Vigdis Vernvik", pid=PRIVACY_OFFICER_PID, municipality="0301"),
)})


def persona(key: str) -> Persona:
    try:
        return PERSONAS[key]
    except KeyError:
        known = sorted(PERSONAS) + sorted(SERVICE_ACCOUNTS)
        raise ValueError(f"Unknown persona {key!r}; known: {known}.") from None


def _legal_entity(number: str) -> dict[str, str]:
    m = next(m for m in world.MUNICIPALITIES if m.number == number)
    return {"id": m.orgnr, "name": f"{m.name} kommune", "system": ORGNR}


def person_system(nin: str) -> str:
    """FHN (first digit 8-9), D-number (4-7) or fødselsnummer."""
    first = int(nin[0]) if nin[:1].isdigit() else 0
    return FHN if first >= 8 else DNR if first >= 4 else FNR


def attest(p: Persona, patient: str | None, purpose: str, toa: int) -> dict[str, Any]:
    """The care-relationship attest for clinician `p` (canonical wire JSON, Nones omitted)."""
    if p.pid is None or p.municipality is None or p.point_of_care is None:
        raise ValueError(f"Persona {p.key!r} is not a clinician with a workplace.")
    poc = {"id": p.point_of_care[0], "name": p.point_of_care[1], "system": ORGNR}
    practitioner: dict[str, Any] = {
        "identifier": {"id": p.pid, "name": p.name, "system": FNR, "authority": _SKATTEETATEN}}
    if p.hpr:
        practitioner["hpr_nr"] = {"id": p.hpr, "system": HPR, "authority": _HELSEDIREKTORATET}
    if p.profession:
        practitioner["authorization"] = {"code": p.profession[0], "text": p.profession[1],
                                         "system": world.PROFESSION}
    practitioner["legal_entity"] = _legal_entity(p.municipality)
    practitioner["point_of_care"] = poc
    care: dict[str, Any] = {}
    if p.service:
        care["healthcare_service"] = {"code": p.service[0], "text": p.service[1],
                                      "system": world.IPLOS}
    care["purpose_of_use"] = {"code": purpose, "system": PURPOSE_OF_USE}
    if p.hpr:
        care["purpose_of_use_details"] = {"code": "BEHANDLER", "text": "Behandler",
                                          "system": CARE_RELATION}
    if p.decision:
        care["decision_ref"] = {"id": p.decision[0], "description": p.decision[1],
                                "user_selected": p.decision[2]}
    patients = []
    if patient is not None:
        system = person_system(patient)
        ident = {"id": patient, "system": system}
        if system != FHN:
            ident["authority"] = _SKATTEETATEN
        patients.append({"identifier": ident, "point_of_care": poc})
    return {"type": ATTEST_TYPE, "practitioner": practitioner, "care_relationship": care,
            "patients": patients, "toa": toa}


def persona_claims(key: str, patient: str | None = None, *, now: int, attest_age: int = 0,
                   purpose: str | None = None) -> dict[str, Any]:
    """The user and client claims of `key`'s token (no iss/aud/exp: the issuer adds them)."""
    p = persona(key)
    if p.kind != "clinician" and purpose is not None:
        raise ValueError(f"Persona {key!r} has no care relationship to give a purpose.")
    if purpose is not None and purpose not in PURPOSES:
        raise ValueError(f"Unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}.")
    if p.kind == "citizen":
        if patient is None:
            raise ValueError(f"Persona {key!r} needs a patient: the citizen is themself.")
        pid: str = patient
        found = world.patient(patient)
        name = found.name if found else None
    else:
        pid, name = p.pid or "", p.name
    scope = {"citizen": CITIZEN_SCOPE, "privacy_officer": PRIVACY_OFFICER_SCOPE}.get(
        p.kind, CLINICAL_SCOPE)
    claims: dict[str, Any] = {
        "sub": hashlib.sha256(f"kilde-demo:{pid}".encode()).hexdigest()[:32],
        "scope": scope,
        "helseid://claims/identity/pid": pid,
        "helseid://claims/identity/security_level": "4",
    }
    if name:
        claims["name"] = name
    if p.hpr:
        claims["helseid://claims/hpr/hpr_number"] = p.hpr
    if p.municipality is not None:
        claims["helseid://claims/client/claims/orgnr_parent"] = _legal_entity(p.municipality)["id"]
        claims["helseid://claims/client/claims/orgnr_child"] = (
            p.point_of_care[0] if p.point_of_care else _legal_entity(p.municipality)["id"])
    if p.kind == "clinician":
        claims["authorization_details"] = [
            attest(p, patient, purpose or p.purpose or "TREAT", now - attest_age)]
    return claims


def event_store_claims() -> dict[str, Any]:
    """Oslo's municipal event store (hendelseslager), which posts "data changed" to Kilde's
    `/events`: a system, not a person at work; a client-credentials token has no person in it
    (no pid, no security level), only the client and its organisation."""
    return {"sub": EVENT_STORE_CLIENT_ID, "scope": EVENTS_SCOPE,
            "helseid://claims/client/claims/orgnr_parent": _legal_entity("0301")["id"]}


# Systems that call Kilde on their own behalf (no person, no attest): `kilde token --persona
# hendelseslager` asks the simulator for the event store's token, as the store would get one
# from HelseID with client credentials.
SERVICE_ACCOUNTS: Mapping[str, str] = MappingProxyType({
    "hendelseslager": "Oslo's municipal event store: posts 'data changed' to POST /events.",
})


def caller_claims(key: str, patient: str | None = None, *, now: int, attest_age: int = 0,
                  purpose: str | None = None) -> dict[str, Any]:
    """`persona_claims` for a persona, `event_store_claims` for a service account."""
    if key in SERVICE_ACCOUNTS:
        if patient is not None or purpose is not None:
            raise ValueError(f"{key!r} is a system: it has no patient and no purpose.")
        return event_store_claims()
    return persona_claims(key, patient, now=now, attest_age=attest_age, purpose=purpose)

