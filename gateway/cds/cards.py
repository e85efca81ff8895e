"""CDS Hooks cards from the GraphQL answer of the patient-view operation (pure).

Sits after the one execution path: `gateway/cds/service.py` runs `PATIENT_VIEW` exactly as
/graphql would and hands the payload here. The cards say what the legevakt's first screen says,
in Norwegian for the clinician, most important first:

- a treatment limitation (HLR-minus first) or a conflict between sources' decisions: critical;
- CAVE / allergies and other critical information: warning;
- a source that did not answer (TIMEOUT, UNAVAILABLE, INVALID), answered in part (PARTIAL),
  only from an old copy (STALE), or was not asked or held data back (DENIED, RESTRICTED,
  RESERVED, BLOCKED): info, one card per source, naming what may be missing.

A failed source never yields a reassuring card ("no HLR-minus"): Kilde makes no card about
absence at all, and says which sources failed. Every card's `source.label` names the source the
information came from (the municipal store with its municipality).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

SUMMARY_MAX = 140
CRITICAL_KINDS = frozenset({"TREATMENT_LIMITATION", "CONFLICT"})
SOURCE_NAMES = {
    "municipal": "Kommunal journal",
    "kjernejournal": "Kjernejournal",
    "pll": "Pasientens legemiddelliste",
    "eresept": "e-resept (Reseptformidleren)",
    "proevesvar": "Pasientens prøvesvar",
    "persontjenesten": "Folkeregisteret (Persontjenesten)",
}
CATEGORY_NAMES = {
    "TREATMENT_LIMITATIONS": "behandlingsavklaringer (HLR-minus o.l.)",
    "CRITICAL_INFORMATION": "kritisk informasjon (CAVE)",
}
# how a source answered -> what the clinician is told (None: nothing to say)
STATUS_TEXT = {
    "TIMEOUT": "svarte ikke i tide",
    "UNAVAILABLE": "var ikke tilgjengelig",
    "INVALID": "ga et svar Kilde ikke kunne lese",
    "PARTIAL": "svarte bare delvis",
    "STALE": "svarte ikke nå; det som vises er en eldre kopi",
    "DENIED": "ble ikke spurt (ingen tilgang for deg her)",
    "RESTRICTED": "holdt tilbake sperrede opplysninger (nødtilgang kan åpne dem)",
    "RESERVED": "brukes ikke: pasienten har reservert seg",
    "BLOCKED": "holdt tilbake alt: pasienten har blokkert tilgang",
}
STATUS_ORDER = list(STATUS_TEXT)
KILDE = "Kilde"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_MAX else text[:SUMMARY_MAX - 1].rstrip() + "…"


def source_label(source: str, municipality: str | None,
                 municipalities: Mapping[str, str]) -> str:
    """'Kommunal journal, Oslo kommune' / 'Kjernejournal': the source a card's content is from."""
    name = SOURCE_NAMES.get(source, source)
    if municipality:
        town = municipalities.get(municipality)
        return f"{name}, {town} kommune" if town else f"{name} ({municipality})"
    return name


def _label_of(alert: Mapping[str, Any], municipalities: Mapping[str, str]) -> str:
    provenances = alert.get("provenances") or [alert.get("provenance") or {}]
    labels = list(dict.fromkeys(
        source_label(p.get("source") or KILDE, p.get("municipality"), municipalities)
        for p in provenances))
    return " og ".join(labels)


def _card(summary: str, indicator: str, label: str, detail: str | None) -> dict[str, Any]:
    card: dict[str, Any] = {"uuid": str(uuid.uuid4()), "summary": _short(summary),
                            "indicator": indicator, "source": {"label": label}}
    if detail:
        card["detail"] = detail
    return card


def _limitation_detail(alert: Mapping[str, Any], limitation: Mapping[str, Any] | None,
                       label: str) -> str:
    lines = [f"**{alert.get('title') or 'Behandlingsavklaring'}**"]
    if limitation:
        if limitation.get("description") and limitation["description"] != alert.get("title"):
            lines.append(str(limitation["description"]))
        decided = " ".join(str(x) for x in (
            f"Besluttet {str(limitation['decidedAt'])[:10]}" if limitation.get("decidedAt")
            else "", f"av {limitation['decidedBy']}" if limitation.get("decidedBy") else "")
            if x)
        if decided:
            lines.append(decided + ".")
    elif alert.get("detail"):
        lines.append(str(alert["detail"]))
    record = (alert.get("provenance") or {}).get("recordId")
    lines.append(f"Kilde: {label}" + (f" (post {record})." if record else "."))
    return "\n\n".join(lines)


def alert_cards(patient: Mapping[str, Any],
                municipalities: Mapping[str, str]) -> list[dict[str, Any]]:
    """Critical cards for treatment limitations and conflicts, warning cards for the rest of
    the alerts, in the alerts' clinical order."""
    limitations = {t.get("id"): t for t in patient.get("treatmentLimitations") or []}
    cards = []
    for alert in patient.get("alerts") or []:
        kind = alert.get("kind")
        label = _label_of(alert, municipalities)
        title = str(alert.get("title") or kind)
        if kind in CRITICAL_KINDS:
            detail = (str(alert.get("detail") or title) if kind == "CONFLICT"
                      else _limitation_detail(alert, limitations.get(alert.get("itemId")), label))
            cards.append(_card(title, "critical", label, detail))
        else:
            detail = f"**{title}**" + (f"\n\n{alert['detail']}" if alert.get("detail") else "")
            cards.append(_card(title, "warning", label, f"{detail}\n\nKilde: {label}."))
    return cards


def source_cards(rows: Sequence[Mapping[str, Any]],
                 municipalities: Mapping[str, str]) -> list[dict[str, Any]]:
    """One info card per source (and store) that did not answer fully for what was asked."""
    worst: dict[tuple[str, str | None], tuple[str, list[str]]] = {}
    for row in rows:
        status = row.get("status")
        if status not in STATUS_TEXT:
            continue
        key = (str(row.get("source")), row.get("municipality"))
        category = CATEGORY_NAMES.get(str(row.get("category")), str(row.get("category")).lower())
        current = worst.get(key)
        if current is None:
            worst[key] = (status, [category])
            continue
        first = min(current[0], status, key=STATUS_ORDER.index)
        worst[key] = (first, current[1] + ([category] if category not in current[1] else []))
    cards = []
    for (source, municipality), (status, categories) in worst.items():
        label = source_label(source, municipality, municipalities)
        summary = f"{label} {STATUS_TEXT[status]}: {' og '.join(categories)} kan mangle."
        if status in ("RESTRICTED", "RESERVED", "BLOCKED", "DENIED"):
            summary = f"{label} {STATUS_TEXT[status]}."
        cards.append(_card(summary, "info", label, None))
    return cards


DENIALS = {
    "FORBIDDEN": "du har ikke tilgang (tjenstlig behov for denne pasienten er ikke attestert)",
    "BAD_USER_INPUT": "forespørselen var ugyldig",
    "RATE_LIMITED": "for mange forespørsler; prøv igjen om litt",
}


def denial_card(error: Mapping[str, Any]) -> dict[str, Any]:
    """The patient could not be shown at all (no care relationship, for instance): an info
    card saying so, never an empty answer that looks like "nothing to warn about"."""
    ext = error.get("extensions") or {}
    code = str(ext.get("code", "INTERNAL_SERVER_ERROR"))
    why = DENIALS.get(code, "en feil hindret oppslaget")
    reason = f" ({ext['reason']})" if ext.get("reason") else ""
    return _card(f"Kilde viser ikke denne pasienten: {why}.", "info", KILDE,
                 f"Feilkode {code}{reason}.")


def build_cards(payload: Mapping[str, Any],
                municipalities: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every card for one patient-view answer: alerts first, then incomplete sources."""
    patient = (payload.get("data") or {}).get("patient")
    if patient is None:
        errors = payload.get("errors") or [{}]
        first = next((e for e in errors
                      if not str(e.get("extensions", {}).get("code", "")).startswith("UPSTREAM_")),
                     errors[0])
        return [denial_card(first)]
    return [*alert_cards(patient, municipalities),
            *source_cards(patient.get("sources") or [], municipalities)]
