"""Who may see what, over real HTTP: every demo persona x every scenario patient.

The table below is the expectation, row by row: which sections come back with items, which
sources withhold on the patient's own choices (status/reason in `sources`), and which sections
the policy forbids before any fetch (FORBIDDEN, with its reason). The sandbox's request
counters prove that a forbidden section was never asked for upstream, and that no municipal
store outside the caller's municipality was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gateway.demo import PERSONAS
from sandbox.world import PATIENTS, by_tag
from tests.e2e.client import Client

pytestmark = pytest.mark.slow

# Section abbreviation -> (Patient field, category enum, sources serving it)
SECTIONS: dict[str, tuple[str, str, frozenset[str]]] = {
    "TL": ("treatmentLimitations", "TREATMENT_LIMITATIONS",
           frozenset({"municipal", "kjernejournal"})),
    "CI": ("criticalInformation", "CRITICAL_INFORMATION",
           frozenset({"municipal", "kjernejournal"})),
    "MED": ("medications", "MEDICATIONS", frozenset({"municipal", "pll", "eresept"})),
    "LAB": ("labResults", "LAB_RESULTS", frozenset({"proevesvar"})),
    "SVC": ("municipalServices", "MUNICIPAL_SERVICES", frozenset({"municipal"})),
    "COND": ("conditions", "CONDITIONS", frozenset({"municipal"})),
    "DOC": ("documents", "DOCUMENTS", frozenset({"municipal"})),
}
ALL = "TL CI MED LAB SVC COND DOC"
# Kjernejournal's calls per section (first path segment under /kjernejournal)
KJ_CALLS = {"TL": {"Consent"}, "CI": {"AllergyIntolerance", "Condition", "Flag"}}

# What the policy forbids before any fetch depends on the persona only (defaults.toml).
NOT_PROFESSION = "PROFESSION_NOT_PERMITTED"
FORBIDDEN: dict[str, tuple[str, str]] = {  # persona -> (sections, reason)
    "legevakt-lege": ("", ""),
    "hjemmesykepleier": ("DOC", NOT_PROFESSION),
    "helsefagarbeider": ("LAB COND DOC", NOT_PROFESSION),
    "saksbehandler": ("TL CI MED LAB COND DOC", NOT_PROFESSION),
    "lege-annen-kommune": ("", ""),
    "hjemmesykepleier-bergen": ("DOC", NOT_PROFESSION),
    "innbygger": ("", ""),
}
# The municipal stores a persona's query may reach (the municipal border, no agreements).
STORES = {"legevakt-lege": "0301", "hjemmesykepleier": "0301", "helsefagarbeider": "0301",
          "saksbehandler": "0301", "lege-annen-kommune": "5001",
          "hjemmesykepleier-bergen": "4601", "innbygger": "0301 4601 5001"}

KJ_RESERVED = "kjernejournal=RESERVED:PATIENT_RESERVED"
KJ_RESTRICTED = "kjernejournal=RESTRICTED:RESTRICTED_NEEDS_EMERGENCY"
PPS_RESTRICTED = "proevesvar=RESTRICTED:RESTRICTED_NEEDS_EMERGENCY"
KJ_BLOCKS_ME = "kjernejournal=BLOCKED:PATIENT_BLOCKED_REQUESTER"
KJ_BLOCKS_ANY = "kjernejournal=BLOCKED:SOURCE_SHARES_NOTHING_WHEN_BLOCKED"
# an R-labelled document withheld: withheld is never empty (issue #13), nødtilgang may open it
MUN_DOC_LABELLED = "municipal/DOCUMENTS=RESTRICTED:SECURITY_LABEL_RESTRICTED"
# a block of this professional reported by any source holds in every source (issue #13)
BLOCKED_EVERYWHERE = " ".join(f"{s}=BLOCKED:PATIENT_BLOCKED_REQUESTER"
                              for s in ("municipal", "pll", "eresept", "proevesvar"))
MUN_TL_LABELLED = "municipal/TREATMENT_LIMITATIONS=RESTRICTED:SECURITY_LABEL_RESTRICTED"

# persona                  patient tag          sections with items       withheld (source=STATUS:reason)
TABLE = f"""
legevakt-lege              legevakt-hlr         {ALL}                     {MUN_DOC_LABELLED}
legevakt-lege              reserved-kj          MED LAB COND              {KJ_RESERVED}
legevakt-lege              multi-service        CI MED LAB SVC COND DOC   -
legevakt-lege              other-municipality   CI MED                    -
legevakt-lege              no-data              -                         -
legevakt-lege              restricted-kj        MED COND                  {KJ_RESTRICTED} {PPS_RESTRICTED}
legevakt-lege              blocked-kj           -                         {KJ_BLOCKS_ME} {BLOCKED_EVERYWHERE}
hjemmesykepleier           legevakt-hlr         TL CI MED LAB SVC COND    -
hjemmesykepleier           reserved-kj          MED LAB COND              {KJ_RESERVED}
hjemmesykepleier           multi-service        CI MED LAB SVC COND       -
hjemmesykepleier           other-municipality   CI MED                    -
hjemmesykepleier           no-data              -                         -
hjemmesykepleier           restricted-kj        MED COND                  {KJ_RESTRICTED} {PPS_RESTRICTED}
hjemmesykepleier           blocked-kj           COND                      {KJ_BLOCKS_ANY}
helsefagarbeider           legevakt-hlr         TL CI MED SVC             -
helsefagarbeider           reserved-kj          MED                       {KJ_RESERVED}
helsefagarbeider           multi-service        CI MED SVC                -
helsefagarbeider           other-municipality   CI MED                    -
helsefagarbeider           no-data              -                         -
helsefagarbeider           restricted-kj        MED                       {KJ_RESTRICTED}
helsefagarbeider           blocked-kj           -                         {KJ_BLOCKS_ANY}
saksbehandler              legevakt-hlr         SVC                       -
saksbehandler              reserved-kj          -                         -
saksbehandler              multi-service        SVC                       -
saksbehandler              other-municipality   -                         -
saksbehandler              no-data              -                         -
saksbehandler              restricted-kj        -                         -
saksbehandler              blocked-kj           -                         -
lege-annen-kommune         legevakt-hlr         CI MED LAB                -
lege-annen-kommune         reserved-kj          MED LAB                   {KJ_RESERVED}
lege-annen-kommune         multi-service        CI MED LAB                -
lege-annen-kommune         other-municipality   CI MED                    -
lege-annen-kommune         no-data              -                         -
lege-annen-kommune         restricted-kj        MED                       {KJ_RESTRICTED} {PPS_RESTRICTED}
lege-annen-kommune         blocked-kj           -                         {KJ_BLOCKS_ANY}
hjemmesykepleier-bergen    legevakt-hlr         CI MED LAB                -
hjemmesykepleier-bergen    reserved-kj          MED LAB                   {KJ_RESERVED}
hjemmesykepleier-bergen    multi-service        CI MED LAB                -
hjemmesykepleier-bergen    other-municipality   TL CI MED SVC COND        -
hjemmesykepleier-bergen    no-data              -                         -
hjemmesykepleier-bergen    restricted-kj        MED                       {KJ_RESTRICTED} {PPS_RESTRICTED}
hjemmesykepleier-bergen    blocked-kj           -                         {KJ_BLOCKS_ANY}
innbygger                  legevakt-hlr         {ALL}                     -
innbygger                  reserved-kj          MED LAB COND              {KJ_RESERVED}
innbygger                  multi-service        CI MED LAB SVC COND DOC   -
innbygger                  other-municipality   TL CI MED SVC COND        -
innbygger                  no-data              -                         -
innbygger                  restricted-kj        MED COND                  kjernejournal=RESTRICTED proevesvar=RESTRICTED
innbygger                  blocked-kj           COND                      {KJ_BLOCKS_ANY}
legevakt-lege              holiday              TL CI SVC COND            -
hjemmesykepleier           holiday              TL CI SVC COND            -
helsefagarbeider           holiday              TL CI SVC                 -
saksbehandler              holiday              SVC                       -
lege-annen-kommune         holiday              CI                        -
hjemmesykepleier-bergen    holiday              CI                        -
innbygger                  holiday              TL CI SVC COND            -
legevakt-lege              kj-only-hlr          TL COND                   -
hjemmesykepleier           kj-only-hlr          TL COND                   -
helsefagarbeider           kj-only-hlr          TL                        -
saksbehandler              kj-only-hlr          -                         -
lege-annen-kommune         kj-only-hlr          TL                        -
hjemmesykepleier-bergen    kj-only-hlr          TL                        -
innbygger                  kj-only-hlr          TL COND                   -
legevakt-lege              conflicting-limitations  TL COND                   -
hjemmesykepleier           conflicting-limitations  TL COND                   -
helsefagarbeider           conflicting-limitations  TL                        -
saksbehandler              conflicting-limitations  -                         -
lege-annen-kommune         conflicting-limitations  TL                        -
hjemmesykepleier-bergen    conflicting-limitations  TL                        -
innbygger                  conflicting-limitations  TL COND                   -
legevakt-lege              labelled-hlr         COND                      {MUN_TL_LABELLED}
hjemmesykepleier           labelled-hlr         COND                      {MUN_TL_LABELLED}
helsefagarbeider           labelled-hlr         -                         {MUN_TL_LABELLED}
saksbehandler              labelled-hlr         -                         -
lege-annen-kommune         labelled-hlr         -                         -
hjemmesykepleier-bergen    labelled-hlr         -                         -
innbygger                  labelled-hlr         TL COND                   -
legevakt-lege              municipal-cave       CI SVC                    -
hjemmesykepleier           municipal-cave       CI SVC                    -
helsefagarbeider           municipal-cave       CI SVC                    -
saksbehandler              municipal-cave       SVC                       -
lege-annen-kommune         municipal-cave       CI                        -
hjemmesykepleier-bergen    municipal-cave       CI                        -
innbygger                  municipal-cave       CI SVC                    -
legevakt-lege              blocked-everywhere   -                         {KJ_BLOCKS_ME} {BLOCKED_EVERYWHERE}
hjemmesykepleier           blocked-everywhere   SVC COND                  {KJ_BLOCKS_ANY}
helsefagarbeider           blocked-everywhere   SVC                       {KJ_BLOCKS_ANY}
saksbehandler              blocked-everywhere   SVC                       -
lege-annen-kommune         blocked-everywhere   -                         {KJ_BLOCKS_ANY}
hjemmesykepleier-bergen    blocked-everywhere   -                         {KJ_BLOCKS_ANY}
innbygger                  blocked-everywhere   SVC COND                  {KJ_BLOCKS_ANY}
legevakt-lege              deceased             COND                      -
hjemmesykepleier           deceased             COND                      -
helsefagarbeider           deceased             -                         -
saksbehandler              deceased             -                         -
lege-annen-kommune         deceased             -                         -
hjemmesykepleier-bergen    deceased             -                         -
innbygger                  deceased             COND                      -
legevakt-lege              not-in-registry      SVC                       -
hjemmesykepleier           not-in-registry      SVC                       -
helsefagarbeider           not-in-registry      SVC                       -
saksbehandler              not-in-registry      SVC                       -
lege-annen-kommune         not-in-registry      -                         -
hjemmesykepleier-bergen    not-in-registry      -                         -
innbygger                  not-in-registry      SVC                       -
legevakt-lege              address-protected    SVC                       -
hjemmesykepleier           address-protected    SVC                       -
helsefagarbeider           address-protected    SVC                       -
saksbehandler              address-protected    SVC                       -
lege-annen-kommune         address-protected    -                         -
hjemmesykepleier-bergen    address-protected    -                         -
innbygger                  address-protected    SVC                       -
"""
# The citizen reads their own restricted data through health-personnel APIs: the sources
# themselves still refuse (no reason code: the policy allowed it, the source did not open).

SUMMARY = "query($nin: String!) { patient(nin: $nin) { " + " ".join(
    f"{field} {{ __typename }}" for field, _, _ in SECTIONS.values()
) + " sources { source category status detail fromCache reason municipality } } }"
# Rows the patient's home municipality adds (the population registry): the home store not
# asked, or a home nobody knows (issue #13 item 1)
BORDER_REASONS = frozenset({"MUNICIPAL_BORDER", "NOT_IN_REGISTRY", "HOME_MUNICIPALITY_UNKNOWN",
                            "NO_HOME_RECORDED", "ADDRESS_PROTECTED"})


def expected_border(persona: str, tag: str, allowed: set[str]) -> set[tuple[str, ...]]:
    """A clinician's municipal rows for the patient's home store when it was not asked (or a
    home the registry does not know); none for the citizen, who sees every store."""
    if persona == "innbygger":
        return set()
    patient = by_tag(tag)
    categories = {SECTIONS[s][1] for s in allowed if "municipal" in SECTIONS[s][2]}
    if not patient.in_registry:
        return {("municipal", c, "DENIED", "NOT_IN_REGISTRY", "") for c in categories}
    if patient.address_protection:  # the home is withheld: never named, never routed by
        return {("municipal", c, "DENIED", "ADDRESS_PROTECTED", "") for c in categories}
    if patient.municipality in STORES[persona].split():
        return set()
    return {("municipal", c, "DENIED", "MUNICIPAL_BORDER", patient.municipality)
            for c in categories}


@dataclass(frozen=True)
class Row:
    persona: str
    tag: str
    back: frozenset[str]
    # source (or "source/CATEGORY" for one category only) -> (status, reason)
    withheld: dict[str, tuple[str, str | None]]

    def expects(self, source: str, category: str) -> tuple[str, str | None] | None:
        return self.withheld.get(f"{source}/{category}") or self.withheld.get(source)

    @property
    def id(self) -> str:
        return f"{self.persona}--{self.tag}"


def _words(cell: str) -> frozenset[str]:
    return frozenset(w for w in cell.split() if w != "-")


def _rows() -> list[Row]:
    rows = []
    for line in TABLE.strip().splitlines():
        persona, tag, *rest = line.split()
        count = 1 if rest[0] == "-" else len([w for w in rest if w in SECTIONS])
        sections, others = rest[:count], rest[count:]
        withheld = {}
        for word in others:
            if word == "-":
                continue
            source, _, verdict = word.partition("=")
            status, _, reason = verdict.partition(":")
            withheld[source] = (status, reason or None)
        rows.append(Row(persona, tag, _words(" ".join(sections)), withheld))
    return rows


ROWS = _rows()


def test_the_table_covers_every_persona_and_every_scenario_patient() -> None:
    personas = set(PERSONAS) - {"personvernombud"}  # forbidden the patient itself, below
    tags = {p.tags[-1] for p in PATIENTS}
    assert {(r.persona, r.tag) for r in ROWS} == {(p, t) for p in personas for t in tags}


def ask(gw: Client, persona: str, nin: str, query: str = SUMMARY, **variables: Any
        ) -> dict[str, Any]:
    return gw.query(query, gw.token(persona, nin), {"nin": nin, **variables})


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_persona_sees_what_the_table_says(gw: Client, row: Row) -> None:
    nin = by_tag(row.tag).nin
    body = ask(gw, row.persona, nin)
    patient = body["data"]["patient"]
    forbidden_cell, reason = FORBIDDEN[row.persona]
    forbidden = _words(forbidden_cell)

    back = {s for s, (field, _, _) in SECTIONS.items() if patient[field]}
    assert back == row.back

    errors = {(e["extensions"]["code"], e["extensions"].get("category"),
               e["extensions"].get("reason")) for e in body.get("errors", [])}
    assert errors == {("FORBIDDEN", SECTIONS[s][1].lower(), reason) for s in forbidden}

    # Each forbidden section is DENIED at every source serving it, with the same reason; the
    # rest is OK/EMPTY except where a source withheld on the patient's own choice.
    border = {(r["source"], r["category"], r["status"], r["reason"], r["municipality"] or "")
              for r in patient["sources"] if r["reason"] in BORDER_REASONS}
    assert border == expected_border(row.persona, row.tag, set(SECTIONS) - forbidden)
    patient["sources"] = [r for r in patient["sources"] if r["reason"] not in BORDER_REASONS]
    denied = {(r["source"], r["category"], r["detail"]) for r in patient["sources"]
              if r["status"] == "DENIED"}
    assert denied == {(src, SECTIONS[s][1], reason) for s in forbidden for src in SECTIONS[s][2]}
    answered = [r for r in patient["sources"] if r["status"] != "DENIED"]
    assert {r["source"] for r in answered if r["status"] not in ("OK", "EMPTY")
            } == {key.split("/")[0] for key in row.withheld}
    for r in answered:
        expected = row.expects(r["source"], r["category"])
        if expected is None:
            assert r["status"] in ("OK", "EMPTY"), r
            continue
        status, why = expected
        assert r["status"] == status, r
        assert why is None or r["detail"] == why, r

    # Nothing forbidden was asked for upstream, and no store across the municipal border.
    # (A source answered from the gateway's short cache is not asked at all: `fromCache`.)
    counts = gw.requests()
    allowed = set(SECTIONS) - forbidden
    live = {r["source"] for r in patient["sources"] if r["status"] != "DENIED"
            and not r["fromCache"]}
    for source in ("municipal", "kjernejournal", "pll", "eresept", "proevesvar"):
        needed = any(source in SECTIONS[s][2] for s in allowed)
        assert (counts[source] > 0) is (needed and source in live), (source, counts)
    if "kjernejournal" in live:
        kj_calls = set(gw.requests_below("kjernejournal")) - {"status"}
        assert kj_calls == set().union(*(KJ_CALLS.get(s, set()) for s in allowed))
    if "municipal" in live:
        stores = gw.requests_below("municipal")
        assert {n for n, c in stores.items() if c} == set(STORES[row.persona].split())
    # the registry is asked for the home municipality whenever a clinician reads stores
    routed = row.persona != "innbygger" and any("municipal" in SECTIONS[s][2] for s in allowed)
    assert (counts["persontjenesten"] > 0) is routed, counts


DENIED_ALONE = [(p, s) for p, (cell, _) in FORBIDDEN.items() for s in _words(cell)]


@pytest.mark.parametrize(("persona", "section"), DENIED_ALONE,
                         ids=[f"{p}--{s}" for p, s in DENIED_ALONE])
def test_a_forbidden_section_asked_alone_reaches_no_upstream(
    gw: Client, persona: str, section: str
) -> None:
    field, category, sources = SECTIONS[section]
    nin = by_tag("multi-service").nin
    query = (f"query($nin: String!) {{ patient(nin: $nin) {{ {field} {{ __typename }} "
             "sources { source category status detail } } }")
    body = ask(gw, persona, nin, query)
    assert body["data"]["patient"][field] == []
    assert [(e["extensions"]["code"], e["extensions"]["category"], e["extensions"]["reason"])
            for e in body["errors"]] == [("FORBIDDEN", category.lower(), NOT_PROFESSION)]
    assert {(r["source"], r["status"]) for r in body["data"]["patient"]["sources"]} == {
        (s, "DENIED") for s in sources}
    assert sum(gw.requests().values()) == 0


def test_the_privacy_officer_is_forbidden_patient_data_and_nothing_is_fetched(
    gw: Client,
) -> None:
    for patient in PATIENTS:
        body = gw.query(SUMMARY, gw.token("personvernombud"), {"nin": patient.nin})
        assert body["data"] == {"patient": None}
        assert [(e["extensions"]["code"], e["extensions"]["reason"]) for e in body["errors"]
                ] == [("FORBIDDEN", "ACCESS_LOG_ONLY")]
    assert sum(gw.requests().values()) == 0


def test_the_citizen_sees_their_own_record_and_is_forbidden_anyone_elses(gw: Client) -> None:
    me, other = by_tag("multi-service"), by_tag("legevakt-hlr")
    token = gw.token("innbygger", me.nin)
    mine = gw.query(SUMMARY, token, {"nin": me.nin})
    assert mine["data"]["patient"]["municipalServices"]
    gw.reset_counts()
    theirs = gw.query(SUMMARY, token, {"nin": other.nin})
    assert theirs["data"] == {"patient": None}
    assert [(e["extensions"]["code"], e["extensions"]["reason"]) for e in theirs["errors"]] == [
        ("FORBIDDEN", "NOT_SELF")]
    assert sum(gw.requests().values()) == 0

