"""SFM Basis `$getMedication`: the request Parameters and a pure reader of the answer.

Sits inside the `pll` and `eresept` connectors, which both read the same operation: the request
carries the patient in the POST body (never in the URL) and the access basis as
`SamtykkeKjernejournal`; the answer's `medication` is an `sfm-MedicationBundle`, a document
Bundle whose first entry is a Composition with the sections "PLL info" and "Resepter", and whose
resources refer to each other by `urn:uuid:` fullUrls. Reading is tolerant of unknown fields and
missing sections; a wrong shape is `UpstreamInvalidError`.

>>> build_parameters("12057900499", AccessBasis.AKUTT)["parameter"][1]
{'name': 'SamtykkeKjernejournal', 'valueCode': 'HPAKUTT'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from connectors import (
    FNR_SYSTEM,
    AccessBasis,
    Coding,
    Dosage,
    Medication,
    Provenance,
    UpstreamInvalidError,
    is_valid_nin,
    nin_system,
)
from connectors.fhir import (
    bundle_entries,
    coding_of,
    expect_resource,
    identifiers_by_type,
    names_another_patient,
    parse_date,
    parse_datetime,
    security_of,
)

ATC_SYSTEM = "http://www.whocc.no/atc"
ICPC2_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.7170"
PLL_SECTION = "PLL info"
PLL_ID, PRESCRIPTION_ID, TREATMENT_ID = "PLL", "prescriptionID", "treatmentID"
# The part of the document one connector serves: "pll" (`PllConnector`) or "prescriptions"
# (`EreseptConnector`); `None` reads both.
Part = Literal["pll", "prescriptions"]

SAMTYKKE_KJERNEJOURNAL: Mapping[AccessBasis, str] = {
    AccessBasis.AKUTT: "HPAKUTT",
    AccessBasis.FORHOYET_AKUTT: "HPAKUTT",
    AccessBasis.SAMTYKKE: "HPMOTTATTSAMTYKKE",
    AccessBasis.FORHOYET_SAMTYKKE: "HPMOTTATTSAMTYKKE",
    AccessBasis.UNNTAK: "HPUNNTAK",
}
# Only an elevated basis opens restricted (sperrede) medicines and locked prescriptions.
ELEVATED = frozenset({AccessBasis.FORHOYET_AKUTT, AccessBasis.FORHOYET_SAMTYKKE})


def build_parameters(
    nin: str, access_basis: AccessBasis, *, include_original: bool = False
) -> dict[str, Any]:
    """The `$getMedication` input Parameters for one patient and access basis."""
    system = nin_system(nin) if is_valid_nin(nin) else FNR_SYSTEM
    elevated = access_basis in ELEVATED
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "resource": {
                "resourceType": "Patient", "identifier": [{"system": system, "value": nin}]}},
            {"name": "SamtykkeKjernejournal", "valueCode": SAMTYKKE_KJERNEJOURNAL[access_basis]},
            {"name": "SamtykkeSperretLegemidler", "valueBoolean": elevated},
            {"name": "SamtykkeLasteResepter", "valueBoolean": elevated},
            {"name": "IncludeOriginal", "valueBoolean": include_original},
        ],
    }


@dataclass(frozen=True, slots=True)
class MedicationDocument:
    """What one `$getMedication` answer held, already mapped to the unified model.

    `pll`: statements in the "PLL info" section; `prescriptions`: the other statements that
    carry a prescriptionID. The `*_fetched_at` times are absent when SFM did not look up
    Kjernejournal (KJ) or Reseptformidleren (RF). Read with a `part`, the other part's items
    are not mapped (its tuple is empty; its count still holds).
    """

    pll: tuple[Medication, ...] = ()
    prescriptions: tuple[Medication, ...] = ()
    kj_fetched_at: datetime | None = None
    rf_fetched_at: datetime | None = None
    # statements that could not be placed: a PLL-id the "PLL info" section does not list (the
    # PLL's), neither a PLL entry nor a prescriptionID (both)
    unreadable_pll: int = 0
    unreadable_prescriptions: int = 0


def read_response(body: Any, source: str, fetched_at: datetime, *, nin: str | None = None,
                  part: Part | None = None) -> MedicationDocument:
    """Map a `$getMedication` output Parameters; items are stamped with `source`. With `nin`,
    a document about anyone else (a Patient or a statement's subject naming another number) is
    `UpstreamInvalidError`. With `part`, only that part's statements are mapped (see
    `read_bundle`); the whole document is still checked."""
    parameters = expect_resource(body, "Parameters", source).get("parameter")
    if not isinstance(parameters, list):
        raise UpstreamInvalidError(source, f"Source {source!r} sent Parameters without parameters.")
    by_name = {p.get("name"): p for p in parameters if isinstance(p, dict)}
    bundle = by_name.get("medication", {}).get("resource")
    if bundle is None:
        raise UpstreamInvalidError(source, f"Source {source!r} sent no medication Bundle.")
    if nin is not None:
        _only_about(bundle, source, nin)
    pll, prescriptions, lost_pll, lost_prescriptions = read_bundle(
        bundle, source, fetched_at, part=part)
    return MedicationDocument(
        pll=pll,
        prescriptions=prescriptions,
        unreadable_pll=lost_pll,
        unreadable_prescriptions=lost_prescriptions,
        kj_fetched_at=parse_datetime(by_name.get("KJHentetTidspunkt", {}).get("valueDateTime")),
        rf_fetched_at=parse_datetime(by_name.get("RFHentetTidspunkt", {}).get("valueDateTime")),
    )


def _only_about(bundle: Any, source: str, nin: str) -> None:
    """Every Patient in the document carries `nin`, and no statement names another subject."""
    for entry in bundle_entries(bundle, source):
        resource = entry["resource"]
        kind = resource.get("resourceType")
        if ((kind == "Patient" and names_another_patient(resource.get("identifier") or [{}], nin))
                or (kind == "MedicationStatement"
                and names_another_patient(resource.get("subject"), nin))):
            raise UpstreamInvalidError(source, f"Source {source!r} sent a medication document "
                                               "about another patient.")


def read_bundle(
    bundle: Any, source: str, fetched_at: datetime, *, part: Part | None = None
) -> tuple[tuple[Medication, ...], tuple[Medication, ...], int, int]:
    """The PLL and the prescription statements of an `sfm-MedicationBundle`, and how many
    statements could not be placed in each (never dropped without a count).

    With `part`, a statement is placed by the Composition's section references and its
    identifiers before it is mapped, and only that part's statements are mapped: the other
    tuple is empty, and a malformed statement of the other part (a missing Medication) is not
    read, so it fails neither this part nor its count. Both counts still hold. The document
    itself (a Bundle of type document with a Composition) is checked whatever the part."""
    entries = list(bundle_entries(bundle, source))
    if bundle.get("type") != "document":
        raise UpstreamInvalidError(source, f"Source {source!r} sent a medication Bundle that "
                                           "is not a document.")
    resources: dict[str, dict[str, Any]] = {}
    for entry in entries:
        resource = entry["resource"]
        if isinstance(entry.get("fullUrl"), str):
            resources[entry["fullUrl"]] = resource
        if resource.get("id"):
            resources[f"{resource.get('resourceType')}/{resource['id']}"] = resource
    compositions = [e for e in entries if e["resource"].get("resourceType") == "Composition"]
    if not compositions:
        raise UpstreamInvalidError(source, f"Source {source!r} sent a medication Bundle "
                                           "without a Composition.")
    pll_refs = _section_refs(compositions[0]["resource"], PLL_SECTION)
    pll: list[Medication] = []
    prescriptions: list[Medication] = []
    lost_pll = lost_prescriptions = 0
    for entry in entries:
        statement = entry["resource"]
        if statement.get("resourceType") != "MedicationStatement":
            continue
        if statement.get("status") == "entered-in-error":
            continue
        statement_id = statement.get("id")
        in_pll = entry.get("fullUrl") in pll_refs or (
            bool(statement_id) and f"MedicationStatement/{statement_id}" in pll_refs)
        ids = identifiers_by_type(statement)
        if not in_pll and ids.get(PLL_ID):
            lost_pll += 1  # a PLL entry the PLL's own section does not list
        if not in_pll and not ids.get(PRESCRIPTION_ID):
            if not ids.get(PLL_ID):
                lost_pll += 1
                lost_prescriptions += 1
            continue
        if part is not None and part != ("pll" if in_pll else "prescriptions"):
            continue  # the other connector's statement: placed and counted, not mapped
        fallback_id = str(entry.get("fullUrl") or statement.get("id") or "")
        item = read_statement(statement, resources, source, fetched_at, in_pll=in_pll,
                              fallback_id=fallback_id, ids=ids)
        (pll if in_pll else prescriptions).append(item)
    return tuple(pll), tuple(prescriptions), lost_pll, lost_prescriptions


def _section_refs(composition: Mapping[str, Any], title: str) -> set[str]:
    """The references listed in the Composition section called `title` (at any depth)."""
    refs: set[str] = set()
    pending = list(composition.get("section") or [])
    while pending:
        section = pending.pop()
        if not isinstance(section, dict):
            continue
        pending.extend(section.get("section") or [])
        code = section.get("code")
        names = {section.get("title"), code.get("text") if isinstance(code, dict) else None}
        if title not in names:
            continue
        for ref in section.get("entry") or []:
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                refs.add(ref["reference"])
    return refs


def read_statement(
    statement: Mapping[str, Any],
    resources: Mapping[str, Mapping[str, Any]],
    source: str,
    fetched_at: datetime,
    *,
    in_pll: bool,
    fallback_id: str = "",
    ids: Mapping[str, str] | None = None,
) -> Medication:
    """One `sfm-MedicationStatement` as a `Medication`, its drug resolved within the Bundle.
    `ids` is `identifiers_by_type(statement)` when the caller has read it already."""
    if ids is None:
        ids = identifiers_by_type(statement)
    pll_id = ids.get(PLL_ID)
    prescription_id = ids.get(PRESCRIPTION_ID)
    record_id = (pll_id if in_pll else prescription_id) or fallback_id
    code, name = _drug(statement, resources, source)
    period = statement.get("effectivePeriod")
    period = period if isinstance(period, dict) else {}
    provenance = Provenance(source, record_id, fetched_at,
                            recorded_at=parse_datetime(statement.get("dateAsserted")))
    reasons = statement.get("reasonCode")
    reason = coding_of(reasons[0], ICPC2_SYSTEM) if isinstance(reasons, list) and reasons else None
    return Medication(
        id=f"{source}:{record_id}",
        code=code,
        name=name,
        status=str(statement.get("status") or "unknown"),
        provenance=provenance,
        provenances=(provenance,),
        dosage=_dosage(statement.get("dosage")),
        reason=reason,
        started=parse_date(period.get("start") or statement.get("effectiveDateTime")),
        ended=parse_date(period.get("end")),
        prescription_id=prescription_id,
        pll_id=pll_id,
        treatment_id=ids.get(TREATMENT_ID),
        in_pll=in_pll,
        security=security_of(statement),
    )


def _drug(
    statement: Mapping[str, Any], resources: Mapping[str, Mapping[str, Any]], source: str
) -> tuple[Coding, str]:
    concept = statement.get("medicationCodeableConcept")
    if concept is None:
        reference = statement.get("medicationReference")
        ref = reference.get("reference") if isinstance(reference, dict) else None
        medication = resources.get(ref) if isinstance(ref, str) else None
        if medication is None or medication.get("resourceType") != "Medication":
            raise UpstreamInvalidError(source, f"Source {source!r} sent a MedicationStatement "
                                               "whose Medication is missing.")
        concept = medication.get("code")
    code = coding_of(concept, ATC_SYSTEM) or Coding("", "")
    text = concept.get("text") if isinstance(concept, dict) else None
    name = text if isinstance(text, str) and text else (code.display or code.code)
    return code, name


def _dosage(dosages: Any) -> Dosage | None:
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
        return None
    text = dosages[0].get("text")
    if not isinstance(text, str) or not (text := text.strip()):
        return None
    return Dosage(text, coding_of(dosages[0].get("route")))
