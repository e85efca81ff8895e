"""Plan, the first stage of a patient request: what to ask, of whom, before anything is fetched.

Sits under the `patient` resolver. `plan_patient()` asks the policies per requested category
(a denied section is never fetched), works out which sources serve the allowed ones and which
municipal stores the caller may reach, and returns a `Plan`: a frozen value the fetch stage
(`schema.pipeline.fetch`) starts and the judge stage (`schema.pipeline.judge`) reads. Nothing
here does IO.

>>> plan = plan_patient(principal, nin, requested, services=services)  # doctest: +SKIP
>>> sorted(plan.fetches)                                               # doctest: +SKIP
['kjernejournal', 'municipal']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from connectors.base import AccessBasis, Connector, FetchRequest, Requester
from connectors.model import AnyCategory, Category, CategorySpec, Status
from policies import (
    access_basis,
    allowed_municipalities,
    decide_category,
    emergency_agreement_providers,
    emergency_municipalities,
    reasons,
)
from policies.model import Decision, Principal, PrincipalKind
from schema.pipeline.home import Home, registry_entry

if TYPE_CHECKING:
    from schema.context import Services


STORE_NOT_CONNECTED = "STORE_NOT_CONNECTED"  # the home store is not connected to Kilde


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One row of `Patient.sources`: how one source answered (or was not asked) for one
    category in this request."""

    source: str
    category: AnyCategory
    status: Status
    latency_ms: float | None = None
    fetched_at: datetime | None = None
    from_cache: bool = False
    detail: str | None = None
    reason: str | None = None  # a stable code: MUNICIPAL_BORDER, UPSTREAM_TIMEOUT, ...
    municipality: str | None = None  # the store a row is about, for per-store rows


@dataclass(frozen=True, slots=True)
class PlannedFetch:
    """One source to ask: the connector and the request, with the source's own timeout (the
    fetch stage cuts it to what is left of the request deadline)."""

    connector: Connector
    request: FetchRequest
    # asked only for the plan's own routing (the registry, for the home municipality): it
    # delivers nothing, so it serves no category here
    routing: bool = False
    # waits for the home municipality: an emergency-only agreement may add the home store
    after_home: bool = False

    @property
    def categories(self) -> frozenset[AnyCategory]:
        return frozenset() if self.routing else self.request.categories


@dataclass(frozen=True, slots=True)
class StoreSource:
    """A source with one store per municipality, asked for `categories`: its configured
    `stores` and the ones this caller's request asks (`asked`), for the border rows."""

    name: str
    categories: frozenset[AnyCategory]
    stores: frozenset[str]
    asked: frozenset[str]


@dataclass(frozen=True)
class Plan:
    """What the policies allowed before the fetch, and what to fetch.

    `denied` are the categories the caller may not see (with the decision, for the error and
    the audit trail); `not_asked` the rows of sources deliberately not consulted; `fetches` one
    `PlannedFetch` per source to ask; `municipalities` the stores the caller may see (items
    from any other store are dropped by the judge stage, defence in depth).
    """

    nin: str
    principal: Principal
    reason: str  # why the patient was permitted (audited), e.g. CARE_RELATIONSHIP
    requested: frozenset[AnyCategory]
    emergency_reason: str | None = None
    denied: Mapping[AnyCategory, Decision] = field(default_factory=dict)
    not_asked: tuple[StatusRow, ...] = ()
    fetches: Mapping[str, PlannedFetch] = field(default_factory=dict)
    municipalities: frozenset[str] = frozenset()
    block_sources: frozenset[str] = frozenset()  # asked for blocks; a block there holds for all
    # the registry source asked for the patient's home municipality (None: not asked)
    home_source: str | None = None
    store_sources: tuple[StoreSource, ...] = ()
    # stores an emergency-only agreement lets this request ask, for the patient's home only
    emergency_municipalities: frozenset[str] = frozenset()
    # stores an emergency with a reason could ask (emergency-only agreements), for the rows
    openable_by_emergency: frozenset[str] = frozenset()

    # sources_of's answers, made once per category (the plan is read by every field)
    _sources: dict[AnyCategory, list[str]] = field(default_factory=dict, init=False,
                                                   repr=False, compare=False)

    def sources_of(self, category: AnyCategory) -> list[str]:
        """The sources asked for `category`, in plan order."""
        if not self._sources:  # every category's sources, in one walk of the fetches
            for name, planned in self.fetches.items():
                for asked in planned.categories:
                    self._sources.setdefault(asked, []).append(name)
        return list(self._sources.get(category, ()))


def plan_patient(
    principal: Principal,
    nin: str,
    requested: frozenset[AnyCategory],
    *,
    services: Services,
    reason: str = "PERMITTED",
    emergency_reason: str | None = None,
    since: date | None = None,
    fresh: bool = False,
    request_id: str = "",
) -> Plan:
    """Decide per category, then plan one fetch per source that serves an allowed category."""
    rules = services.rules
    allowed: set[AnyCategory] = set()
    denied: dict[AnyCategory, Decision] = {}
    not_asked: list[StatusRow] = []
    for category in sorted(requested, key=lambda c: c.value):
        decision = decide_category(principal, category.value, rules=rules)
        if decision.allowed:
            allowed.add(category)
            continue
        denied[category] = decision
        for entry in services.registry.serving(category):
            if in_use(entry.settings.municipalities, principal):
                not_asked.append(StatusRow(entry.connector.name, category, Status.DENIED,
                                           detail=decision.reason, reason=decision.reason))
    municipalities = allowed_municipalities(principal, rules=rules, tenants=services.tenants)
    basis = AccessBasis(access_basis(principal, emergency_reason))
    requester = requester_of(principal)
    registry = registry_entry(services.registry)
    # A clinician's request crosses no border but by agreement; the patient's home store (from
    # the registry) is then reported, asked or not. A citizen sees every tenant's store.
    routed = principal.kind is PrincipalKind.CLINICIAN and registry is not None
    emergency = (emergency_municipalities(principal, rules=rules,
                                          emergency_reason=emergency_reason)
                 if routed else frozenset())
    fetches: dict[str, PlannedFetch] = {}
    store_sources: list[StoreSource] = []
    for entry in services.registry:
        connector = entry.connector
        wanted = frozenset(allowed & connector.categories)
        if not wanted or not in_use(entry.settings.municipalities, principal):
            continue
        stores = frozenset(entry.settings.stores)
        reachable = municipalities & stores if stores else municipalities
        after_home = bool(stores and emergency & stores)
        if stores and routed:
            store_sources.append(StoreSource(connector.name, wanted, stores, reachable))
        if stores and not reachable and not after_home:
            not_asked.extend(StatusRow(
                connector.name, category, Status.DENIED,
                detail="MUNICIPAL_BORDER: no store you may see without an agreement",
                reason=reasons.MUNICIPAL_BORDER,
            ) for category in sorted(wanted, key=lambda c: c.value))
            continue
        fetches[connector.name] = PlannedFetch(connector, FetchRequest(
            patient_nin=nin,
            categories=wanted,
            requester=requester,
            access_basis=basis,
            municipalities=reachable,
            timeout=entry.settings.timeout,
            request_id=request_id,
            since=since,
            fresh=fresh,
        ), after_home=after_home)
    home_source = None
    if routed and store_sources and registry is not None:
        home_source = registry.connector.name
        if home_source not in fetches:  # not selected: asked for the routing only
            fetches[home_source] = PlannedFetch(registry.connector, FetchRequest(
                patient_nin=nin, categories=frozenset({Category.DEMOGRAPHICS}),
                requester=requester, access_basis=basis, timeout=registry.settings.timeout,
                request_id=request_id, fresh=fresh), routing=True)
    block_sources: set[str] = set()
    if (fetches and principal.kind is PrincipalKind.CLINICIAN and principal.hpr_number
            and rules.block_everywhere):
        # The patient's blocks hold in every source of the request: the sources that record
        # them are asked even when no selected category needs them (a privacy probe: only the
        # patient's privacy state, e.g. Kjernejournal's /status). A block names a professional
        # by HPR number, so a caller without one (a case handler) is never blocked.
        for entry in services.registry:
            name = entry.connector.name
            if name not in rules.block_sources or not in_use(entry.settings.municipalities,
                                                              principal):
                continue
            stores = frozenset(entry.settings.stores)
            reachable = municipalities & stores if stores else municipalities
            if stores and not reachable:
                continue
            block_sources.add(name)
            if name not in fetches:
                fetches[name] = PlannedFetch(entry.connector, FetchRequest(
                    patient_nin=nin, categories=frozenset(), requester=requester,
                    access_basis=basis, municipalities=reachable,
                    timeout=entry.settings.timeout, request_id=request_id, fresh=fresh,
                    privacy_probe=True))
    return Plan(nin=nin, principal=principal, reason=reason, requested=requested,
                emergency_reason=emergency_reason, denied=denied, not_asked=tuple(not_asked),
                fetches=fetches, municipalities=municipalities,
                block_sources=frozenset(block_sources), home_source=home_source,
                store_sources=tuple(store_sources),
                emergency_municipalities=emergency if home_source else frozenset(),
                openable_by_emergency=(emergency_agreement_providers(principal, rules=rules)
                                       if home_source else frozenset()))


def stores_after_home(plan: Plan, source: str, home: Home) -> frozenset[str]:
    """The stores `source` asks once the home municipality is known: those planned, plus the
    home store when an emergency-only agreement lets this request ask it (never another)."""
    planned = plan.fetches[source].request.municipalities
    if home.municipality is not None and home.municipality in plan.emergency_municipalities:
        return planned | {home.municipality}
    return planned


def border_rows(plan: Plan, home: Home) -> tuple[StatusRow, ...]:
    """The `sources` rows the home municipality adds: the home store that may hold records and
    was not asked (DENIED, MUNICIPAL_BORDER, with its municipality; RESTRICTED when an
    emergency with a reason may ask it), or, when the registry could not say where the patient
    lives, that no one knows which other store may hold records; and the registry's own
    failure when it was asked only for the routing."""
    if plan.home_source is None:
        return ()
    rows: list[StatusRow] = []
    routing = plan.fetches[plan.home_source].routing
    if routing and home.failed:
        rows.append(StatusRow(plan.home_source, Category.DEMOGRAPHICS, home.status,
                              detail=home.detail, reason=home.reason))
    for store in plan.store_sources:
        categories = sorted(store.categories, key=lambda c: c.value)
        if not home.known:
            rows.extend(StatusRow(store.name, category, Status.DENIED, detail=home.detail,
                                  reason=home.reason) for category in categories)
            continue
        number = home.municipality
        assert number is not None
        if number in store.asked or number in stores_after_home_of(plan, store, home):
            continue
        if number not in store.stores:
            detail = (f"The patient's home municipality ({number}) has no store connected to "
                      "Kilde; its records were not asked.")
            rows.extend(StatusRow(store.name, category, Status.UNAVAILABLE, detail=detail,
                                  reason=STORE_NOT_CONNECTED, municipality=number)
                        for category in categories)
            continue
        openable = _emergency_could_open(plan, number)
        status = Status.RESTRICTED if openable else Status.DENIED
        detail = ("MUNICIPAL_BORDER: the patient's home municipality's store may hold records; "
                  + ("an emergency access (nødtilgang) with a reason may ask it under the "
                     "emergency-only agreement" if openable
                     else "no agreement lets you ask it"))
        rows.extend(StatusRow(store.name, category, status, detail=detail,
                              reason=reasons.MUNICIPAL_BORDER, municipality=number)
                    for category in categories)
    return tuple(rows)


def stores_after_home_of(plan: Plan, store: StoreSource, home: Home) -> frozenset[str]:
    if store.name not in plan.fetches:
        return frozenset()
    return stores_after_home(plan, store.name, home) & store.stores


def _emergency_could_open(plan: Plan, number: str) -> bool:
    """Would an emergency with a reason ask this store (an emergency-only agreement the policy
    honours), though this request is not one?"""
    return number in plan.openable_by_emergency


def in_use(municipalities: frozenset[str], principal: Principal) -> bool:
    """Is a source rolled out to `municipalities` (empty: everywhere) used for this caller?

    A clinician's request consults it only when their own municipality is listed (what it
    may return is still the policy's business: border, agreements). A citizen's innsyn covers
    their data wherever it is kept, so a citizen's request consults it wherever it is in use.
    """
    if not municipalities or principal.kind is PrincipalKind.CITIZEN:
        return True
    return principal.municipality in municipalities


def requester_of(principal: Principal) -> Requester:
    """Who asks, as upstreams need it in their headers (no name, no identity number)."""
    return Requester(
        hpr_number=principal.hpr_number,
        role_code=principal.profession or None,
        orgnr=principal.legal_entity,
        point_of_care=principal.point_of_care,
        purpose_of_use=principal.purpose_of_use.value if principal.purpose_of_use else "TREAT",
        citizen=principal.kind is PrincipalKind.CITIZEN,
    )


FIELD_CATEGORIES: dict[str, frozenset[AnyCategory]] = {
    "alerts": frozenset({Category.TREATMENT_LIMITATIONS, Category.CRITICAL_INFORMATION}),
    "treatmentLimitations": frozenset({Category.TREATMENT_LIMITATIONS}),
    "criticalInformation": frozenset({Category.CRITICAL_INFORMATION}),
    "medications": frozenset({Category.MEDICATIONS}),
    "labResults": frozenset({Category.LAB_RESULTS}),
    "municipalServices": frozenset({Category.MUNICIPAL_SERVICES}),
    "conditions": frozenset({Category.CONDITIONS}),
    "documents": frozenset({Category.DOCUMENTS}),
    "demographics": frozenset({Category.DEMOGRAPHICS}),
}


def requested_categories(
    names: Sequence[str], plugins: Sequence[CategorySpec] = ()
) -> frozenset[AnyCategory]:
    """The categories a selection of Patient fields needs (alerts need two); `plugins` are
    the plugin categories, each behind its own field."""
    fields: dict[str, frozenset[AnyCategory]] = {**FIELD_CATEGORIES}
    fields.update((spec.field_name, frozenset({spec})) for spec in plugins)
    out: set[AnyCategory] = set()
    for name in names:
        out |= fields.get(name, frozenset())
    return frozenset(out)
