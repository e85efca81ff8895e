"""The connector contract: what the fan-out asks of every source, built-in or external.

A connector is a small object with a `name`, the `categories` it serves, `fetch()` and
`aclose()`. The gateway's registry creates one per enabled source at start-up with
`create(settings, http)`, where `http` is the one shared `httpx.AsyncClient`.

>>> class Hello:
...     name = "hello"
...     categories = frozenset({Category.DOCUMENTS})
...     async def fetch(self, request: FetchRequest) -> SourceResult:
...         return SourceResult.empty(self.name, request.categories)
...     async def aclose(self) -> None: ...
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, cast, runtime_checkable

import httpx

from connectors.credentials.upstream import NO_CREDENTIALS, Credentials
from connectors.deadline import Budget
from connectors.frozen import quick_init
from connectors.model import AnyCategory, Category, CategorySpec, PrivacyState, Status
from connectors.redact import redacted_repr


class AccessBasis(enum.Enum):
    """The legal access basis sent to national sources (tilgangsgrunnlag).

    Each connector maps it to its upstream's vocabulary (`HPAKUTT`, `AKUTT`, `akutt`, ...).
    FORHOYET_* ("elevated") opens a restriction (sperring); it never opens a blocking.
    """

    UNNTAK = "UNNTAK"
    SAMTYKKE = "SAMTYKKE"
    AKUTT = "AKUTT"
    FORHOYET_SAMTYKKE = "FORHOYET_SAMTYKKE"
    FORHOYET_AKUTT = "FORHOYET_AKUTT"


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks, as upstreams need it in their headers. No name, no identity number."""

    hpr_number: str | None = None
    role_code: str | None = None  # kodeverk 9060, e.g. "LE" (lege), "SP" (sykepleier)
    orgnr: str | None = None  # legal entity
    point_of_care: str | None = None
    purpose_of_use: str = "TREAT"  # TREAT | ETREAT | COC | BTG
    citizen: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One request to one source for one patient.

    `municipalities` lists the municipal stores the caller may see (policy has already applied
    the municipal border); `timeout` is this source's budget in seconds, already cut to the
    request deadline, and `budget` the same as a point in time (`connectors.deadline.Budget`:
    `Budget.of(request)` in a connector that makes several calls). `fresh` asks the cache layer to bypass cached entries. `privacy_probe`
    (with no categories) asks only whether the patient has blocked the requester.
    `credentials` carry the caller's token towards upstreams (`credentials.to(audience)`, see
    `connectors.credentials`); they are no part of the request's identity: not in `repr`,
    equality or any cache key.
    """

    patient_nin: str
    categories: frozenset[AnyCategory]
    requester: Requester = field(default_factory=Requester)
    access_basis: AccessBasis = AccessBasis.UNNTAK
    municipalities: frozenset[str] = frozenset()
    timeout: float = 2.0
    request_id: str = ""
    since: date | None = None
    fresh: bool = False
    # Asked for no category, only for the patient's privacy state (blocks of the requester):
    # a source that records blocks answers it cheaply (Kjernejournal's /status); any other
    # source answers empty without calling its upstream.
    privacy_probe: bool = False
    credentials: Credentials = field(default=NO_CREDENTIALS, repr=False, compare=False)
    # this source's share of the request deadline, which every layer asks
    # (`connectors.deadline`); None: one of `timeout` seconds from when a layer first asks
    budget: Budget | None = field(default=None, repr=False, compare=False)

    def carrying(self, budget: Budget, timeout: float,
                 credentials: Credentials | None = None) -> FetchRequest:
        """This request with `budget` and `timeout` (and `credentials`, when given): the copy
        the fetch path makes at each layer (`Budget.request`), at a third of what
        `dataclasses.replace` costs. Every field is named: tests/connectors/test_deadline.py
        fails when one is added here but not there."""
        return FetchRequest(
            patient_nin=self.patient_nin, categories=self.categories, requester=self.requester,
            access_basis=self.access_basis, municipalities=self.municipalities,
            timeout=timeout, request_id=self.request_id, since=self.since, fresh=self.fresh,
            privacy_probe=self.privacy_probe,
            credentials=self.credentials if credentials is None else credentials,
            budget=budget)


# What `SourceResult.of` takes: a dict keyed by built-in categories only, by a plugin's specs
# only, or by both (Mapping's key is invariant, so each needs naming)
CategoryItems = (Mapping[Category, Sequence[Any]] | Mapping[CategorySpec, Sequence[Any]]
                 | Mapping[AnyCategory, Sequence[Any]])
CategoryStatus = (Mapping[Category, Status] | Mapping[CategorySpec, Status]
                  | Mapping[AnyCategory, Status])


@dataclass(frozen=True, slots=True)
class Reason:
    """Why one category's status is what it is: a stable `code` (`UNREADABLE_RECORDS`,
    `UPSTREAM_UNSUPPORTED`, an `UPSTREAM_*` code, ...) and one sentence without personal data."""

    code: str
    detail: str


CategoryReason = (Mapping[Category, Reason] | Mapping[CategorySpec, Reason]
                  | Mapping[AnyCategory, Reason])


@quick_init
@dataclass(frozen=True, slots=True)
class SourceResult:
    """What one source answered: items per category, a status, and in-band privacy state.

    `status` is OK, EMPTY, PARTIAL, RESERVED, RESTRICTED or BLOCKED here; failures of the whole
    source are raised as `ConnectorError` and become TIMEOUT/UNAVAILABLE/INVALID in the fan-out.
    `category_status` overrides `status` for single categories (e.g. only lab results
    restricted; one search of several failed: its categories INVALID/UNAVAILABLE/TIMEOUT, the
    others keep their answers), and `category_reason` says why (else `detail` does). `detail`
    is one human sentence without personal data.
    """

    source: str
    status: Status
    # `Item`s for built-in categories, the spec's `item_type` for a plugin's `CategorySpec`
    items: Mapping[AnyCategory, Sequence[Any]] = field(default_factory=dict)
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    privacy: PrivacyState = field(default_factory=PrivacyState)
    category_status: Mapping[AnyCategory, Status] = field(default_factory=dict)
    detail: str | None = None
    from_cache: bool = False
    category_reason: Mapping[AnyCategory, Reason] = field(default_factory=dict)

    @classmethod
    def empty(cls, source: str, categories: frozenset[AnyCategory] = frozenset()
              ) -> SourceResult:
        return cls(source=source, status=Status.EMPTY, items={c: () for c in categories})

    @classmethod
    def of(
        cls,
        source: str,
        items: CategoryItems,
        *,
        privacy: PrivacyState | None = None,
        category_status: CategoryStatus | None = None,
        detail: str | None = None,
        fetched_at: datetime | None = None,
        category_reason: CategoryReason | None = None,
    ) -> SourceResult:
        """A result whose status is OK when any item came back and EMPTY otherwise."""
        status = Status.OK if any(items.values()) else Status.EMPTY
        return cls(
            source=source,
            status=status,
            # read-only from here on, so a narrower key type is safe to widen
            items=cast("Mapping[AnyCategory, Sequence[Any]]", items),
            privacy=privacy or PrivacyState(),
            category_status=cast("Mapping[AnyCategory, Status]", category_status or {}),
            detail=detail,
            fetched_at=fetched_at or datetime.now(UTC),
            category_reason=cast("Mapping[AnyCategory, Reason]", category_reason or {}),
        )

    def status_for(self, category: AnyCategory) -> Status:
        if category in self.category_status:
            return self.category_status[category]
        if self.status in (Status.OK, Status.EMPTY):
            return Status.OK if self.items.get(category) else Status.EMPTY
        return self.status

    def reason_for(self, category: AnyCategory) -> Reason | None:
        """Why `category` reads as it does, when the connector said so for it alone."""
        return self.category_reason.get(category)


@runtime_checkable
class Connector(Protocol):
    """A read-only upstream source. Instances are shared between requests.

    `fetch` returns a `SourceResult` or raises a `ConnectorError`; it must honour
    `request.timeout`, be safe to cancel, and never log or raise personal data.
    """

    # read-only members: a class attribute `categories = frozenset({Category.X})` (a
    # frozenset[Category]) or a property satisfies them, as a plain attribute would not
    @property
    def name(self) -> str: ...

    @property
    def categories(self) -> frozenset[AnyCategory]: ...

    async def fetch(self, request: FetchRequest) -> SourceResult: ...

    async def aclose(self) -> None: ...


@redacted_repr
@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """Settings for one connector, from `KILDE_CONNECTORS__<NAME>__*`.

    Its `repr()` hides URL passwords and options named like secrets (connectors/redact.py).

    `base_url` is the upstream root; `stores` maps municipality numbers to base URLs for
    sources with one store per municipality; `options` holds the rest, as strings, under
    lower-case names. `municipalities`, when not empty, are the only municipalities that use
    the source (gradual rollout): the gateway asks it only on their behalf. `audience`, `scope`
    and `grant` say which HelseID token the upstream wants (`connectors.credentials.Audience`):
    empty `audience` means none is sent.
    """

    name: str
    base_url: str = ""
    timeout: float = 2.0
    stores: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    municipalities: frozenset[str] = frozenset()
    audience: str = ""
    scope: str = ""
    grant: str = "token_exchange"


class ConnectorFactory(Protocol):
    """The entry point a connector package exposes (`kilde.connectors` group)."""

    def __call__(self, settings: ConnectorSettings, http: httpx.AsyncClient) -> Connector: ...
