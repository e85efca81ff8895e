"""The sandbox's synthetic world: municipalities, organisations, professionals and patients.

Sits beside the request flow: every simulated upstream (`sandbox/<source>.py`) renders its part
of these facts into its own wire format, so all five fakes tell one consistent story. Nothing
here is real: identity numbers are generated with valid mod-11 control digits, organisation
numbers pass the Enhetsregisteret check, names are invented.

The facts are source-agnostic on purpose: a record says *where* it is kept (`where`), and the
fake for that source serves it. Scenario tags (README.md, "Scenario patients"):

    legevakt-hlr        HLR-minus only in the nursing home's municipal store, not in Kjernejournal
    reserved-kj         reserved against Kjernejournal (no KJ data at all)
    restricted-kj       Kjernejournal restricted (sperret): opened only in an emergency
    blocked-kj          the patient has blocked the legevakt physician by HPR number
    restricted-lab      Pasientens prøvesvar answers `Specific` (restricted for this requester)
    multi-service       home nursing, practical help, safety alarm, short-term stay
    other-municipality  lives in, and is served by, another municipality (Bergen)
    no-data             a D-nummer with no data anywhere
    holiday             lives in Oslo (HLR-minus in Oslo's store), seen at Trondheim's legevakt
    kj-only-hlr         HLR-minus only in Kjernejournal (KjConsentBehandlingsavklaring), coded
                        in Kjernejournal's own system, not SNOMED CT
    conflicting-limitations
                        HLR-minus decided 2025-01-10 in the municipal store, "full behandling
                        inkludert HLR" decided 2026-10-01 in Kjernejournal
    labelled-hlr        the HLR-minus in the municipal store carries the security label R
    municipal-cave      a CAVE only in the municipal EPJ, and one in both it and Kjernejournal
    blocked-everywhere  blocks the legevakt physician in Kjernejournal and in Oslo's store
    deceased            died 2026-11-20 (the population registry says so, with the date)
    not-in-registry     records in Oslo's store, but the population registry does not know the
                        number: Kilde cannot tell the home municipality and must say so
    address-protected   lives in Oslo (records in Oslo's store) with a strengt fortrolig adresse
                        (kode 6): the registry grades the address, and Kilde must show neither
                        the address nor the home municipality to anyone

Every patient has an entry in the population registry (`sandbox.persontjenesten`) built from
`name`, `born`, `gender`, `municipality` (the home: bostedsadresse), `deceased` and
`address_protection` (Folkeregisteret's grade), unless `in_registry` is False.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime

# -- code systems (no-basis / Volven OIDs) -------------------------------------------------------
SNOMED = "http://snomed.info/sct"
ICPC2 = "urn:oid:2.16.578.1.12.4.1.1.7170"
ICD10 = "urn:oid:2.16.578.1.12.4.1.1.7110"
ATC = "http://www.whocc.no/atc"
NLK = "urn:oid:2.16.578.1.12.4.1.1.7280"
IPLOS = "urn:oid:2.16.578.1.12.4.1.1.9151"  # Tjenestetype i helse- og omsorgstjenesten
PROFESSION = "urn:oid:2.16.578.1.12.4.1.1.9060"  # Kategori helsepersonell
DOC_TYPE = "urn:oid:2.16.578.1.12.4.1.1.9602"

# Municipal / KJ / PPS where-tags for records
MUNICIPAL = "municipal"
KJERNEJOURNAL = "kjernejournal"
# Kjernejournal's own codes for a behandlingsavklaring (the sandbox's: see
# schema/shape/limitations.toml for why, and for what each code means)
KJ_LIMITATION = "http://nhn.no/kj/fhir/CodeSystem/Behandlingsavklaring"


@dataclass(frozen=True)
class Municipality:
    number: str
    name: str
    orgnr: str


@dataclass(frozen=True)
class Organisation:
    orgnr: str
    name: str
    municipality: str
    phone: str = ""


@dataclass(frozen=True)
class Professional:
    """A health professional; `hpr` is a synthetic HPR number, `pid` a synthetic FNR."""

    key: str
    name: str
    pid: str
    hpr: str | None
    profession: str  # kodeverk 9060 code, e.g. LE, SP, HF; "" for non-clinical staff
    profession_text: str
    workplace: str  # orgnr of the point of care


OSLO = Municipality("0301", "Oslo", "910000004")
BERGEN = Municipality("4601", "Bergen", "920000002")
TRONDHEIM = Municipality("5001", "Trondheim", "930000000")
MUNICIPALITIES = (OSLO, BERGEN, TRONDHEIM)

ORGANISATIONS = (
    Organisation("940000009", "Oslo kommune legevakt", "0301", "+47 116 117"),
    Organisation("950000007", "Lindeberg sykehjem", "0301", "+47 21 80 21 80"),
    Organisation("960000005", "Hjemmetjenesten Grünerløkka", "0301", "+47 21 80 33 00"),
    Organisation("970000003", "Tildelingskontoret Oslo", "0301", "+47 21 80 21 00"),
    Organisation("980000001", "Hjemmetjenesten Årstad", "4601", "+47 55 56 70 00"),
    Organisation("990000018", "Trondheim legevakt", "5001", "+47 73 52 25 00"),
)


def organisation(orgnr: str) -> Organisation:
    return next(o for o in ORGANISATIONS if o.orgnr == orgnr)


PROFESSIONALS = (
    Professional("legevakt-lege", "Ingrid Vaktmo", "04125845687", "9144901", "LE", "Lege",
                 "940000009"),
    Professional("hjemmesykepleier", "Jonas Hjemdal", "11066218815", "9144902", "SP",
                 "Sykepleier", "960000005"),
    Professional("helsefagarbeider", "Sara Lindeberg", "27028530256", "9144903", "HF",
                 "Helsefagarbeider", "950000007"),
    Professional("saksbehandler", "Ole Tildeling", "21084936860", None, "", "Saksbehandler",
                 "970000003"),
    Professional("lege-annen-kommune", "Eva Nidaros", "30057924590", "9144905", "LE", "Lege",
                 "990000018"),
    Professional("hjemmesykepleier-bergen", "Kari Årstad", "05107124170", "9144906", "SP",
                 "Sykepleier", "980000001"),
)


def professional(key: str) -> Professional:
    return next(p for p in PROFESSIONALS if p.key == key)


# -- clinical facts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TreatmentLimitationFact:
    """HLR-minus or another behandlingsavklaring. `where`: MUNICIPAL (with `municipality`,
    recorded at `organisation`) or KJERNEJOURNAL."""

    id: str
    code: str  # SNOMED CT
    display: str
    description: str
    decided_at: datetime
    decided_by: str
    reason: str
    where: str
    municipality: str | None = None
    organisation: str | None = None
    system: str = SNOMED  # the code's system: SNOMED CT, or KJ_LIMITATION in Kjernejournal
    security: tuple[str, ...] = ()  # meta.security codes, e.g. ("R",): restricted


@dataclass(frozen=True)
class AllergyFact:
    id: str
    substance_system: str
    substance_code: str
    substance: str
    reaction: str
    severity: str  # mild | moderate | severe
    recorded_at: datetime
    where: str
    drug_reaction: bool = True
    municipality: str | None = None


@dataclass(frozen=True)
class CriticalConditionFact:
    id: str
    code: str  # ICD-10
    display: str
    onset: date
    recorded_at: datetime
    where: str = KJERNEJOURNAL


@dataclass(frozen=True)
class ServiceFact:
    id: str
    code: str  # Volven 9151
    display: str
    status: str  # active | planned | completed
    started: date
    municipality: str
    unit: str  # orgnr
    decided_at: date
    ended: date | None = None
    description: str = ""


@dataclass(frozen=True)
class ConditionFact:
    id: str
    system: str
    code: str
    display: str
    onset: date
    municipality: str
    clinical_status: str = "active"


@dataclass(frozen=True)
class MedicationFact:
    """A treatment with a drug. `in_pll`: on Pasientens legemiddelliste (with `pll_id`);
    `prescription_id`: a valid e-prescription in Reseptformidleren; `administered_in`: a
    municipality whose store records administration (nursing home, home care)."""

    id: str
    atc: str
    name: str
    dosage: str
    started: date
    reason_code: str | None = None  # ICPC-2
    reason: str | None = None
    in_pll: bool = False
    pll_id: str | None = None
    prescription_id: str | None = None
    treatment_id: str | None = None
    administered_in: str | None = None
    status: str = "active"
    eresept_dosage: str | None = None  # when e-resept disagrees with PLL


@dataclass(frozen=True)
class LabValueFact:
    code: str  # NLK / NPU
    display: str
    value: str
    unit: str | None
    low: float | None = None
    high: float | None = None
    members: tuple[LabValueFact, ...] = ()

    @property
    def abnormal(self) -> str | None:
        """'H' or 'L' against the reference range, None when normal or not numeric."""
        try:
            v = float(self.value)
        except ValueError:
            return None
        if self.high is not None and v > self.high:
            return "H"
        if self.low is not None and v < self.low:
            return "L"
        return None


@dataclass(frozen=True)
class LabReportFact:
    id: str
    category: str  # LAB | PAT | BLD (kodeverk 8202)
    code: str
    display: str
    issued: datetime
    effective: datetime
    performer: str
    values: tuple[LabValueFact, ...]


@dataclass(frozen=True)
class DocumentFact:
    id: str
    type_code: str
    type_display: str
    title: str
    date: datetime
    author: str  # organisation orgnr
    municipality: str
    confidential: bool = False  # meta.security R (restricted) in the municipal store


@dataclass(frozen=True)
class Patient:
    nin: str
    name: str
    born: date
    gender: str
    municipality: str
    tags: tuple[str, ...]
    treatment_limitations: tuple[TreatmentLimitationFact, ...] = ()
    allergies: tuple[AllergyFact, ...] = ()
    critical_conditions: tuple[CriticalConditionFact, ...] = ()
    services: tuple[ServiceFact, ...] = ()
    conditions: tuple[ConditionFact, ...] = ()
    medications: tuple[MedicationFact, ...] = ()
    lab_reports: tuple[LabReportFact, ...] = ()
    documents: tuple[DocumentFact, ...] = ()
    # privacy state, per source
    kj_reserved: bool = False
    kj_restricted: bool = False
    kj_blocked_hpr: tuple[str, ...] = ()
    # (kommunenummer, HPR number): a local block of a named professional in that store
    municipal_blocks: tuple[tuple[str, str], ...] = ()
    pps_outcome: str | None = None  # Specific | General | Reservation
    extra: dict[str, str] = field(default_factory=dict)
    # the population registry (Folkeregisteret via Persontjenesten)
    deceased: date | None = None  # the date of death, when the registry records one
    in_registry: bool = True  # False: the registry does not know this number
    # Folkeregisteret's adressebeskyttelse grade (fortrolig, strengtFortrolig,
    # strengtFortroligUtland), None for an ungraded address
    address_protection: str | None = None


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def _d(s: str) -> date:
    return date.fromisoformat(s)


HB = LabValueFact("NPU02319", "B-Hemoglobin", "10.9", "g/dL", 13.4, 17.0)
CRP_HIGH = LabValueFact("NPU19748", "P-CRP", "87", "mg/L", None, 5)
CREA = LabValueFact("NPU18016", "P-Kreatinin", "142", "umol/L", 60, 105)
NA = LabValueFact("NPU03230", "P-Natrium", "138", "mmol/L", 137, 145)
K = LabValueFact("NPU03429", "P-Kalium", "4.1", "mmol/L", 3.5, 5.0)
ELECTROLYTES = LabValueFact("NOR05300", "Elektrolytter", "", None, members=(NA, K))
HBA1C = LabValueFact("NPU27300", "B-HbA1c", "58", "mmol/mol", None, 48)

PATIENTS: tuple[Patient, ...] = (
    Patient(
        nin="14033841389",
        name="Arne Hvilested",
        born=_d("1938-03-14"),
        gender="male",
        municipality="0301",
        tags=("legevakt-hlr",),
        treatment_limitations=(
            TreatmentLimitationFact(
                id="hlr-1",
                code="304253006",
                display="Ikke-gjenoppliving (HLR-minus)",
                description="HLR-minus: ikke start hjerte-lunge-redning ved hjertestans.",
                decided_at=_dt("2026-09-02T10:15:00+02:00"),
                decided_by="Sykehjemslege, Lindeberg sykehjem",
                reason="Pasientens ønske, drøftet med pårørende",
                where=MUNICIPAL,
                municipality="0301",
                organisation="950000007",
            ),
        ),
        allergies=(
            AllergyFact("cave-1", ATC, "J01CE", "Penicilliner", "Anafylaksi", "severe",
                        _dt("2019-04-11T09:00:00+02:00"), KJERNEJOURNAL),
        ),
        critical_conditions=(),
        services=(
            ServiceFact("svc-a1", "25", "Langtidsopphold i institusjon", "active",
                        _d("2025-11-01"), "0301", "950000007", _d("2025-10-20")),
        ),
        conditions=(
            ConditionFact("cond-a1", ICPC2, "K77", "Hjertesvikt", _d("2019-02-01"), "0301"),
            ConditionFact("cond-a2", ICPC2, "P70", "Demens", _d("2023-06-15"), "0301"),
        ),
        medications=(
            MedicationFact("med-a1", "C03CA01", "Furosemid 40 mg tablett", "1 tablett morgen",
                           _d("2019-02-10"), "K77", "Hjertesvikt", in_pll=True,
                           pll_id="pll-a1", prescription_id="rx-a1", treatment_id="tr-a1",
                           administered_in="0301"),
            MedicationFact("med-a2", "B01AC06", "Albyl-E 75 mg tablett", "1 tablett daglig",
                           _d("2018-05-01"), "K77", "Hjertesvikt", in_pll=True,
                           pll_id="pll-a2", prescription_id="rx-a2", treatment_id="tr-a2",
                           administered_in="0301"),
            MedicationFact("med-a3", "N06AB04", "Citalopram 10 mg tablett", "1 tablett kveld",
                           _d("2024-01-12"), "P70", "Demens", in_pll=True, pll_id="pll-a3",
                           treatment_id="tr-a3", administered_in="0301"),
        ),
        lab_reports=(
            LabReportFact("lab-a1", "LAB", "NOR09000", "Klinisk kjemi",
                          _dt("2026-11-20T08:30:00+01:00"), _dt("2026-11-20T07:45:00+01:00"),
                          "Fürst Medisinsk Laboratorium", (HB, CRP_HIGH, CREA, ELECTROLYTES)),
        ),
        documents=(
            DocumentFact("doc-a1", "A03", "Epikrise", "Innkomstnotat sykehjem",
                         _dt("2025-11-02T12:00:00+01:00"), "950000007", "0301"),
            DocumentFact("doc-a2", "A06", "Journalnotat", "Samtale om livets sluttfase",
                         _dt("2026-09-02T10:30:00+02:00"), "950000007", "0301",
                         confidential=True),
        ),
    ),
    Patient(
        nin="02075123305",
        name="Bodil Reservert",
        born=_d("1951-07-02"),
        gender="female",
        municipality="0301",
        tags=("reserved-kj",),
        allergies=(
            AllergyFact("cave-b1", ATC, "N02BA", "Acetylsalisylsyre", "Urtikaria", "moderate",
                        _dt("2015-01-05T10:00:00+01:00"), KJERNEJOURNAL),
        ),
        conditions=(
            ConditionFact("cond-b1", ICPC2, "T90", "Diabetes type 2", _d("2012-03-01"), "0301"),
        ),
        medications=(
            MedicationFact("med-b1", "A10BA02", "Metformin 500 mg tablett", "1 tablett x 2",
                           _d("2012-03-10"), "T90", "Diabetes type 2", in_pll=True,
                           pll_id="pll-b1", prescription_id="rx-b1", treatment_id="tr-b1"),
        ),
        lab_reports=(
            LabReportFact("lab-b1", "LAB", "NOR09001", "Diabeteskontroll",
                          _dt("2026-10-03T11:00:00+02:00"), _dt("2026-10-03T08:10:00+02:00"),
                          "Oslo universitetssykehus, Avdeling for medisinsk biokjemi", (HBA1C,)),
        ),
        kj_reserved=True,
    ),
    Patient(
        nin="09014412759",
        name="Dagny Mangetjenester",
        born=_d("1944-01-09"),
        gender="female",
        municipality="0301",
        tags=("multi-service",),
        allergies=(
            AllergyFact("cave-d1", SNOMED, "256349002", "Peanøtter", "Angioødem", "severe",
                        _dt("2010-06-01T10:00:00+02:00"), KJERNEJOURNAL, drug_reaction=False),
        ),
        critical_conditions=(
            CriticalConditionFact("crit-d1", "I48", "Atrieflimmer med antikoagulasjon",
                                  _d("2016-08-01"), _dt("2016-08-20T10:00:00+02:00")),
        ),
        services=(
            ServiceFact("svc-d1", "15", "Helsetjenester i hjemmet", "active", _d("2024-02-01"),
                        "0301", "960000005", _d("2024-01-25"),
                        description="Hjemmesykepleie morgen og kveld"),
            ServiceFact("svc-d2", "11", "Praktisk bistand - daglige gjøremål", "active",
                        _d("2024-02-01"), "0301", "960000005", _d("2024-01-25")),
            ServiceFact("svc-d3", "13", "Trygghetsalarm", "active", _d("2023-09-15"), "0301",
                        "960000005", _d("2023-09-10")),
            ServiceFact("svc-d4", "22", "Tidsbegrenset opphold - utredning/behandling",
                        "completed", _d("2026-10-01"), "0301", "950000007", _d("2026-09-28"),
                        ended=_d("2026-10-21")),
        ),
        conditions=(
            ConditionFact("cond-d1", ICPC2, "K78", "Atrieflimmer", _d("2016-08-01"), "0301"),
            ConditionFact("cond-d2", ICPC2, "R95", "KOLS", _d("2014-01-10"), "0301"),
            ConditionFact("cond-d3", ICD10, "E11.9", "Diabetes mellitus type 2",
                          _d("2011-05-05"), "0301"),
        ),
        medications=(
            MedicationFact("med-d1", "B01AF01", "Xarelto 20 mg tablett", "1 tablett kveld",
                           _d("2016-08-20"), "K78", "Atrieflimmer", in_pll=True,
                           pll_id="pll-d1", prescription_id="rx-d1", treatment_id="tr-d1",
                           administered_in="0301"),
            MedicationFact("med-d2", "R03AK06", "Seretide 50/500 inhalasjonspulver",
                           "1 inhalasjon x 2", _d("2014-01-20"), "R95", "KOLS", in_pll=True,
                           pll_id="pll-d2", prescription_id="rx-d2", treatment_id="tr-d2"),
            MedicationFact("med-d3", "A10BA02", "Metformin 500 mg tablett", "1 tablett x 2",
                           _d("2011-05-10"), "T90", "Diabetes type 2", in_pll=True,
                           pll_id="pll-d3", prescription_id="rx-d3", treatment_id="tr-d3",
                           administered_in="0301", eresept_dosage="1 tablett x 3"),
            MedicationFact("med-d4", "N05CF01", "Zopiklon 5 mg tablett", "1 tablett ved behov",
                           _d("2025-03-01"), None, None, prescription_id="rx-d4",
                           treatment_id="tr-d4"),
        ),
        lab_reports=(
            LabReportFact("lab-d1", "LAB", "NOR09000", "Klinisk kjemi",
                          _dt("2026-11-18T09:00:00+01:00"), _dt("2026-11-18T07:30:00+01:00"),
                          "Fürst Medisinsk Laboratorium", (HB, CREA, HBA1C)),
            LabReportFact("lab-d2", "LAB", "NOR09002", "INR-kontroll",
                          _dt("2026-10-10T09:00:00+02:00"), _dt("2026-10-10T07:30:00+02:00"),
                          "Fürst Medisinsk Laboratorium",
                          (LabValueFact("NPU01685", "P-INR", "2.4", None, 2.0, 3.0),)),
        ),
        documents=(
            DocumentFact("doc-d1", "A03", "Epikrise", "Epikrise etter korttidsopphold",
                         _dt("2026-10-21T14:00:00+02:00"), "950000007", "0301"),
        ),
    ),
    Patient(
        nin="23116731894",
        name="Gunnar Bergensen",
        born=_d("1967-11-23"),
        gender="male",
        municipality="4601",
        tags=("other-municipality",),
        allergies=(
            AllergyFact("cave-e1", ATC, "J01EE", "Sulfonamider (trimetoprim-sulfa)", "Utslett",
                        "moderate", _dt("2008-02-02T10:00:00+01:00"), KJERNEJOURNAL),
        ),
        services=(
            ServiceFact("svc-e1", "15", "Helsetjenester i hjemmet", "active", _d("2026-06-01"),
                        "4601", "980000001", _d("2026-05-20"),
                        description="Sårstell tre ganger i uken"),
        ),
        conditions=(
            ConditionFact("cond-e1", ICPC2, "S97", "Kronisk sår", _d("2026-05-01"), "4601"),
            ConditionFact("cond-e2", ICPC2, "T90", "Diabetes type 2", _d("2015-01-01"), "4601"),
        ),
        treatment_limitations=(
            TreatmentLimitationFact(
                id="tl-e1",
                code="385763009",
                display="Begrenset intensivbehandling",
                description="Ikke respiratorbehandling; drøftet med pasient.",
                decided_at=_dt("2026-06-10T13:00:00+02:00"),
                decided_by="Fastlege",
                reason="Pasientens ønske",
                where=MUNICIPAL,
                municipality="4601",
                organisation="980000001",
            ),
        ),
        medications=(
            MedicationFact("med-e1", "A10BA02", "Metformin 1000 mg tablett", "1 tablett x 2",
                           _d("2015-01-10"), "T90", "Diabetes type 2", in_pll=True,
                           pll_id="pll-e1", prescription_id="rx-e1", treatment_id="tr-e1"),
        ),
    ),
    Patient(
        nin="57099032172",
        name="Frida Ukjent",
        born=_d("1990-09-17"),
        gender="female",
        municipality="0301",
        tags=("no-data",),
    ),
    Patient(
        nin="16045333195",
        name="Cecilie Sperretsen",
        born=_d("1953-04-16"),
        gender="female",
        municipality="0301",
        tags=("restricted-lab", "restricted-kj"),
        allergies=(
            AllergyFact("cave-c1", ATC, "M01AE", "Ibuprofen og andre propionsyrederivater",
                        "Bronkospasme", "severe", _dt("2017-03-03T10:00:00+01:00"),
                        KJERNEJOURNAL),
        ),
        conditions=(
            ConditionFact("cond-c1", ICPC2, "K86", "Hypertensjon ukomplisert", _d("2010-01-01"),
                          "0301"),
        ),
        medications=(
            MedicationFact("med-c1", "C09AA05", "Ramipril 5 mg tablett", "1 tablett morgen",
                           _d("2010-01-15"), "K86", "Hypertensjon", in_pll=True,
                           pll_id="pll-c1", prescription_id="rx-c1", treatment_id="tr-c1"),
        ),
        lab_reports=(
            LabReportFact("lab-c1", "LAB", "NOR09000", "Klinisk kjemi",
                          _dt("2026-11-01T09:00:00+01:00"), _dt("2026-11-01T07:30:00+01:00"),
                          "Fürst Medisinsk Laboratorium", (HB, CREA)),
        ),
        kj_restricted=True,
        pps_outcome="Specific",
    ),
    Patient(
        nin="24086642650",
        name="Harald Blokkersen",
        born=_d("1966-08-24"),
        gender="male",
        municipality="0301",
        tags=("blocked-kj",),
        allergies=(
            AllergyFact("cave-h1", ATC, "J01CE", "Penicilliner", "Urtikaria", "moderate",
                        _dt("2012-03-03T10:00:00+01:00"), KJERNEJOURNAL),
        ),
        conditions=(
            ConditionFact("cond-h1", ICPC2, "P76", "Depresjon", _d("2020-01-01"), "0301"),
        ),
        kj_blocked_hpr=("9144901",),
    ),
    Patient(
        nin="12054130021",
        name="Ola Ferietur",
        born=_d("1941-05-12"),
        gender="male",
        municipality="0301",
        tags=("holiday",),
        treatment_limitations=(
            TreatmentLimitationFact(
                id="hlr-o1", code="304253006", display="Ikke-gjenoppliving (HLR-minus)",
                description="HLR-minus: ikke start hjerte-lunge-redning ved hjertestans.",
                decided_at=_dt("2026-03-04T11:00:00+01:00"),
                decided_by="Fastlege, Oslo", reason="Pasientens ønske",
                where=MUNICIPAL, municipality="0301", organisation="960000005"),
        ),
        allergies=(
            AllergyFact("cave-o1", ATC, "J01CE", "Penicilliner", "Anafylaksi", "severe",
                        _dt("2014-02-02T10:00:00+01:00"), KJERNEJOURNAL),
        ),
        services=(
            ServiceFact("svc-o1", "15", "Helsetjenester i hjemmet", "active", _d("2025-09-01"),
                        "0301", "960000005", _d("2025-08-20"),
                        description="Hjemmesykepleie morgen"),
        ),
        conditions=(
            ConditionFact("cond-o1", ICPC2, "K77", "Hjertesvikt", _d("2021-04-01"), "0301"),
        ),
    ),
    Patient(
        nin="03023630086",
        name="Astrid Nasjonal",
        born=_d("1936-02-03"),
        gender="female",
        municipality="0301",
        tags=("kj-only-hlr",),
        treatment_limitations=(
            TreatmentLimitationFact(
                id="kj-hlr-a1", code="HLR-MINUS", display="HLR-minus",
                description="HLR-minus: ikke gjenoppliving ved hjertestans.",
                decided_at=_dt("2026-05-20T09:30:00+02:00"),
                decided_by="Fastlege", reason="Pasientens ønske, drøftet med pårørende",
                where=KJERNEJOURNAL, system=KJ_LIMITATION),
        ),
        conditions=(
            ConditionFact("cond-n1", ICPC2, "R95", "KOLS", _d("2015-03-01"), "0301"),
        ),
    ),
    Patient(
        nin="20104030182",
        name="Per Uenig",
        born=_d("1940-10-20"),
        gender="male",
        municipality="0301",
        tags=("conflicting-limitations",),
        treatment_limitations=(
            TreatmentLimitationFact(
                id="hlr-p1", code="304253006", display="Ikke-gjenoppliving (HLR-minus)",
                description="HLR-minus: ikke start hjerte-lunge-redning ved hjertestans.",
                decided_at=_dt("2025-01-10T10:00:00+01:00"),
                decided_by="Sykehjemslege, Lindeberg sykehjem", reason="Pasientens ønske",
                where=MUNICIPAL, municipality="0301", organisation="950000007"),
            TreatmentLimitationFact(
                id="kj-full-p1", code="FULL-BEHANDLING", display="Full behandling inkludert HLR",
                description="Full behandling inkludert hjerte-lunge-redning.",
                decided_at=_dt("2026-10-01T14:00:00+02:00"),
                decided_by="Fastlege", reason="Pasienten ønsker nå full behandling",
                where=KJERNEJOURNAL, system=KJ_LIMITATION),
        ),
        conditions=(
            ConditionFact("cond-p1", ICPC2, "K77", "Hjertesvikt", _d("2020-01-15"), "0301"),
        ),
    ),
    Patient(
        nin="01124530063",
        name="Liv Skjermet",
        born=_d("1945-12-01"),
        gender="female",
        municipality="0301",
        tags=("labelled-hlr",),
        treatment_limitations=(
            TreatmentLimitationFact(
                id="hlr-l1", code="304253006", display="Ikke-gjenoppliving (HLR-minus)",
                description="HLR-minus: ikke start hjerte-lunge-redning ved hjertestans.",
                decided_at=_dt("2026-08-14T13:00:00+02:00"),
                decided_by="Sykehjemslege, Lindeberg sykehjem", reason="Pasientens ønske",
                where=MUNICIPAL, municipality="0301", organisation="950000007",
                security=("R",)),
        ),
        conditions=(
            ConditionFact("cond-l1", ICPC2, "P70", "Demens", _d("2022-11-01"), "0301"),
        ),
    ),
    Patient(
        nin="06065830041",
        name="Mona Lokal",
        born=_d("1958-06-06"),
        gender="female",
        municipality="0301",
        tags=("municipal-cave",),
        allergies=(
            AllergyFact("cave-m1", SNOMED, "111088007", "Lateks", "Anafylaktisk reaksjon",
                        "severe", _dt("2023-05-05T10:00:00+02:00"), MUNICIPAL,
                        drug_reaction=False, municipality="0301"),
            AllergyFact("cave-m2", ATC, "J01CE", "Penicilliner", "Urtikaria", "severe",
                        _dt("2016-09-09T10:00:00+02:00"), KJERNEJOURNAL),
            AllergyFact("cave-m3", ATC, "J01CE", "Penicilliner", "Utslett", "moderate",
                        _dt("2024-01-15T10:00:00+01:00"), MUNICIPAL, municipality="0301"),
        ),
        services=(
            ServiceFact("svc-m1", "15", "Helsetjenester i hjemmet", "active", _d("2024-03-01"),
                        "0301", "960000005", _d("2024-02-20"), description="Sårstell"),
        ),
    ),
    Patient(
        nin="09037230100",
        name="Tor Sperrelund",
        born=_d("1972-03-09"),
        gender="male",
        municipality="0301",
        tags=("blocked-everywhere",),
        allergies=(
            AllergyFact("cave-t1", ATC, "N02BA", "Acetylsalisylsyre", "Astma", "moderate",
                        _dt("2011-01-01T10:00:00+01:00"), KJERNEJOURNAL),
        ),
        services=(
            ServiceFact("svc-t1", "11", "Praktisk bistand - daglige gjøremål", "active",
                        _d("2025-01-01"), "0301", "960000005", _d("2024-12-15")),
        ),
        conditions=(
            ConditionFact("cond-t1", ICPC2, "P76", "Depresjon", _d("2019-01-01"), "0301"),
            ConditionFact("cond-t2", ICPC2, "P15", "Kronisk alkoholmisbruk", _d("2018-06-01"),
                          "0301"),
        ),
        kj_blocked_hpr=("9144901",),
        municipal_blocks=(("0301", "9144901"),),
    ),
    Patient(
        nin="23073410010",
        name="Erling Avdød",
        born=_d("1934-07-23"),
        gender="male",
        municipality="0301",
        tags=("deceased",),
        conditions=(
            ConditionFact("cond-avd1", ICPC2, "K77", "Hjertesvikt", _d("2019-02-01"), "0301"),
        ),
        deceased=_d("2026-11-20"),
    ),
    Patient(
        nin="08115020189",
        name="Nora Uregistrert",
        born=_d("1950-11-08"),
        gender="female",
        municipality="0301",
        tags=("not-in-registry",),
        services=(
            ServiceFact("svc-ureg1", "15", "Helsetjenester i hjemmet", "active", _d("2026-01-10"),
                        "0301", "960000005", _d("2026-01-05"), description="Insulin morgen"),
        ),
        in_registry=False,
    ),
    Patient(
        nin="17048641385",
        name="Silje Skjermet",
        born=_d("1986-04-17"),
        gender="female",
        municipality="0301",
        tags=("address-protected",),
        services=(
            ServiceFact("svc-skj1", "15", "Helsetjenester i hjemmet", "active", _d("2026-03-02"),
                        "0301", "960000005", _d("2026-02-20"), description="Sårstell"),
        ),
        address_protection="strengtFortrolig",
    ),
)


# Scenario patients a vendor added (a folder of FHIR Bundles, `sandbox.scenarios`): request-
# scoped like the bulk knob, so two sandboxes in one process each see their own. The key names
# the set for caches keyed on the world's contents.
_ADDED: ContextVar[tuple[str, tuple[Patient, ...]]] = ContextVar(
    "kilde_sandbox_scenarios", default=("", ()))


@contextmanager
def scenarios_scope(key: str, added: tuple[Patient, ...]) -> Iterator[None]:
    """Within this block, `patients()` and `patient()` include `added` (named `key`)."""
    token = _ADDED.set((key, added))
    try:
        yield
    finally:
        _ADDED.reset(token)


def scenarios_key() -> str:
    """Names the scenario patients in scope ("" for the built-in world only)."""
    return _ADDED.get()[0]


def patients() -> tuple[Patient, ...]:
    """Every scenario patient: the built-in ones, then any a scenario folder added."""
    return PATIENTS + _ADDED.get()[1]


def patient(nin: str) -> Patient | None:
    return next((p for p in patients() if p.nin == nin), None)


def by_tag(tag: str) -> Patient:
    return next(p for p in patients() if tag in p.tags)
