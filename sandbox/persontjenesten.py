"""Simulated Persontjenesten: NHN's population registry API (Person API v3), from the world.

Mounted at `/persontjenesten` by `sandbox.app`, behind the HelseID token guard like every fake.
One route, as the registry's "with legal basis" API has it:

    POST /api/legal-basis/person/get-by-nin?informationParts=Name&...&api-version=3
         body (application/x-www-form-urlencoded): nin=<fødselsnummer or D-nummer>

200 is a Person document with the information parts asked for, each a list of registrations
with `isValid` marking the current one (FREG: erGjeldende): `name`, `birth`, `gender`, `status`
(Resident or Deceased), `death` (one registration, with `deceasedDate`) and
`residentialAddress` (bostedsadresse; `streetAddress.municipalityNumber` is the home
municipality) and `addressProtection` (adressebeskyttelse: `classification` is Folkeregisteret's
grade, `fortrolig`, `strengtFortrolig` or `strengtFortroligUtland`; an earlier, ended
`ugradert` registration comes first). For a protected person the fake still sends the
residential address, which the real registry withholds, so a reader that trusted the address
instead of the grade is caught. A historic registration (an earlier address in another municipality) comes
with every person, so a reader that takes the first registration instead of the current one
is caught. 404 (problem details) when the registry does not know the number; 400 for a
missing or invalid number, no information parts, or an API version it does not serve. The
number never appears in a URL or in an error.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.identifiers import is_valid_nin
from sandbox.bulk import patient
from sandbox.world import MUNICIPALITIES, Patient

PATH = "/api/legal-basis/person/get-by-nin"
API_VERSIONS = ("2", "3")
PARTS = frozenset({"Name", "Birth", "Gender", "Status", "Death", "ResidentialAddress",
                   "AddressProtection", "NorwegianIdentificationNumber"})
_NAMES = {m.number: m.name for m in MUNICIPALITIES}
# An earlier address: every person moved once (the history is part of every answer).
_EARLIER = "4601"
_REGISTERED = "2020-01-01T00:00:00+00:00"


def create_app() -> Starlette:
    """The registry fake as its own Starlette app (mounted at `/persontjenesten`)."""
    return Starlette(routes=[Route(PATH, get_by_nin, methods=["POST"])])


async def get_by_nin(request: Request) -> Response:
    version = request.query_params.get("api-version", "")
    if version not in API_VERSIONS:
        return _problem(400, f"api-version must be one of {list(API_VERSIONS)}.")
    parts = [p for p in request.query_params.getlist("informationParts")]
    unknown = sorted(set(parts) - PARTS)
    if not parts or unknown:
        return _problem(400, "informationParts must name at least one information part"
                        + (f"; unknown: {unknown}." if unknown else "."))
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return _problem(400, "The body must be application/x-www-form-urlencoded.")
    form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
    nin = form.get("nin", "").strip()
    if not is_valid_nin(nin):
        return _problem(400, "nin is not a valid national identity number or D-number.")
    found = patient(nin)
    if found is None or not found.in_registry:
        return _problem(404, "Person not found.")
    return Response(orjson.dumps(person_document(found, frozenset(parts))),
                    media_type="application/json")


def person_document(p: Patient, parts: frozenset[str]) -> dict[str, Any]:
    """The Person document of a world patient, with the information parts in `parts`."""
    *given, family = p.name.split()
    doc: dict[str, Any] = {"id": hashlib.sha256(f"kilde-sandbox:{p.nin}".encode()).hexdigest(),
                           "sequenceNumber": 1}
    if "NorwegianIdentificationNumber" in parts:
        doc["norwegianIdentificationNumber"] = [{
            **_current(), "identificationNumber": p.nin, "status": "InUse",
            "identificationNumberType": "DNumber" if int(p.nin[0]) >= 4 else "NationalIdentityNumber",
        }]
    if "Name" in parts:
        doc["name"] = [
            {**_historic(), "givenName": "Tidligere", "familyName": family},
            {**_current(), "givenName": " ".join(given) or None, "familyName": family},
        ]
    if "Birth" in parts:
        doc["birth"] = [{**_current(), "birthDate": f"{p.born.isoformat()}T00:00:00+00:00",
                         "birthYear": str(p.born.year)}]
    if "Gender" in parts:
        doc["gender"] = [{**_current(), "gender": {"male": "Male", "female": "Female"}.get(
            p.gender, "Unknown")}]
    if "Status" in parts:
        doc["status"] = [{**_current(), "status": "Deceased" if p.deceased else "Resident"}]
    if "Death" in parts and p.deceased:
        doc["death"] = {**_current(),
                        "deceasedDate": f"{p.deceased.isoformat()}T00:00:00+00:00"}
    if "ResidentialAddress" in parts:
        earlier = _EARLIER if p.municipality != _EARLIER else "0301"
        doc["residentialAddress"] = [
            {**_historic(), "streetAddress": _street(earlier, "Gamleveien", 3)},
            {**_current(), "streetAddress": _street(p.municipality, "Storgata", 12),
             "moveDate": _REGISTERED},
        ]
    if "AddressProtection" in parts and p.address_protection:
        doc["addressProtection"] = [
            {**_historic(), "classification": "ugradert"},
            {**_current(), "classification": p.address_protection},
        ]
    return doc


def _current() -> dict[str, Any]:
    return {"registeredAt": _REGISTERED, "isValid": True, "source": "Skatteetaten",
            "validFrom": _REGISTERED}


def _historic() -> dict[str, Any]:
    return {"registeredAt": "2010-01-01T00:00:00+00:00", "isValid": False,
            "source": "Skatteetaten", "validFrom": "2010-01-01T00:00:00+00:00",
            "validTo": _REGISTERED}


def _street(number: str, street: str, house: int) -> dict[str, Any]:
    return {"municipalityNumber": number, "municipalityName": _NAMES.get(number),
            "addressName": street, "addressNumber": {"houseNumber": house},
            "city": {"postalCode": "0150", "postalPlace": _NAMES.get(number, "").upper()}}


def _problem(status: int, detail: str) -> Response:
    body = {"type": "about:blank", "title": "Bad Request" if status == 400 else "Not Found",
            "status": status, "detail": detail}
    return Response(orjson.dumps(body), status_code=status,
                    media_type="application/problem+json")
