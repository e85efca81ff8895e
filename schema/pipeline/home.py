"""The patient's home municipality, from the population registry: whose store may hold records.

Sits beside the pipeline stages. The planner (`schema.pipeline.plan`) asks the registry (the
source serving `Category.DEMOGRAPHICS`, Persontjenesten) in every request that reads municipal
stores; `home_of()` reads its outcome. Other code that needs a patient's home municipality
outside a patient request (the privacy officer's own-municipality rule) calls
`home_municipality()`: one registry lookup with Kilde's own HelseID token, through the cache,
like any other fetch. Neither guesses: a failed or empty lookup is a `Home` that says why.

>>> home = await home_municipality(services, nin, credentials=ctx.credentials)  # doctest: +SKIP
>>> home.municipality if home.known else home.reason                            # doctest: +SKIP
'0301'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from connectors.base import FetchRequest
from connectors.credentials import NO_CREDENTIALS, Credentials
from connectors.fanout import Outcome, fetch_one
from connectors.model import Category, Demographics, Status

if TYPE_CHECKING:
    from connectors.registry import Registered, Registry
    from schema.context import Services

# Why a home is unknown (stable codes, as `SourceStatus.reason` and the completeness summary)
HOME_UNKNOWN = "HOME_MUNICIPALITY_UNKNOWN"  # the registry failed: we cannot tell
NOT_IN_REGISTRY = "NOT_IN_REGISTRY"  # the registry does not know the number
NO_HOME_RECORDED = "NO_HOME_RECORDED"  # known, but no residential address (e.g. emigrated)
NO_REGISTRY = "NO_REGISTRY"  # no source serves demographics in this deployment
ADDRESS_PROTECTED = "ADDRESS_PROTECTED"  # fortrolig / strengt fortrolig adresse: withheld


@dataclass(frozen=True, slots=True)
class Home:
    """What the registry said about where the patient lives.

    `municipality` is the kommunenummer when known; otherwise `reason` says why not, and
    `status` is the registry's own status (TIMEOUT, UNAVAILABLE, INVALID, EMPTY for a number
    it does not know). `person` is the registry's answer itself, for the demographics field."""

    municipality: str | None
    status: Status
    reason: str | None = None
    detail: str | None = None
    person: Demographics | None = None

    @property
    def known(self) -> bool:
        return self.municipality is not None

    @property
    def failed(self) -> bool:
        """The registry did not answer: nobody can say where the patient lives."""
        return self.status in (Status.TIMEOUT, Status.UNAVAILABLE, Status.INVALID)


_ERROR_STATUS = {"UPSTREAM_TIMEOUT": Status.TIMEOUT, "UPSTREAM_INVALID": Status.INVALID}


def home_of(outcome: Outcome | None) -> Home:
    """The home municipality in a registry outcome (None: no registry was asked)."""
    if outcome is None:
        return Home(None, Status.DENIED, NO_REGISTRY,
                    "No population registry is configured; the home municipality is unknown.")
    if outcome.error is not None:
        return Home(None, _ERROR_STATUS.get(outcome.error.code, Status.UNAVAILABLE),
                    HOME_UNKNOWN, "The population registry did not answer "
                    f"({outcome.error.code}); the home municipality is unknown.")
    result = outcome.result
    assert result is not None  # an Outcome has a result or an error
    people = [i for i in result.items.get(Category.DEMOGRAPHICS, ())
              if isinstance(i, Demographics)]
    if not people:
        return Home(None, Status.EMPTY, NOT_IN_REGISTRY,
                    "The population registry does not know this identity number; the home "
                    "municipality is unknown.")
    person = people[0]
    if person.address_protection is not None:
        # the connector never read the municipality; nothing here may name or guess it
        return Home(None, Status.OK, ADDRESS_PROTECTED, "The population registry marks the "
                    "patient's address as protected (fortrolig or strengt fortrolig adresse); "
                    "Kilde withholds the home municipality, so it cannot tell which other "
                    "municipality's store may hold records.", person)
    if person.home_municipality is None:
        return Home(None, Status.OK, NO_HOME_RECORDED, "The population registry records no "
                    "residential address; the home municipality is unknown.", person)
    return Home(person.home_municipality, Status.OK, person=person)


def registry_entry(registry: Registry) -> Registered | None:
    """The source that serves demographics (the population registry), if one is enabled."""
    return next((e for e in registry if Category.DEMOGRAPHICS in e.connector.categories), None)


async def home_municipality(services: Services, nin: str, *,
                            credentials: Credentials = NO_CREDENTIALS, request_id: str = "",
                            timeout: float | None = None) -> Home:
    """Ask the registry where `nin` lives (never raises for an upstream failure: the `Home`
    says it). `timeout` defaults to the registry's own; the call is cached like any fetch."""
    entry = registry_entry(services.registry)
    if entry is None:
        return home_of(None)
    request = FetchRequest(patient_nin=nin, categories=frozenset({Category.DEMOGRAPHICS}),
                           timeout=timeout if timeout is not None else entry.settings.timeout,
                           request_id=request_id, credentials=credentials)
    return home_of(await fetch_one(entry.connector, request, services.activity))
