"""The contract checks, one coroutine each: what every connector must do, whatever it reads.

Sits inside the contract kit, under `ConnectorContract` (the pytest face); call the checks
directly to use another runner. Each builds the connector from its entry point with an HTTP
client whose transport is a `FaultTransport` in front of the package's own fake upstream,
and fails with an `AssertionError` of one sentence saying what the connector got wrong.

>>> asyncio.run(check_items_and_provenance(setup))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from connectors.base import Connector, ConnectorSettings, FetchRequest, Requester, SourceResult
from connectors.errors import ConnectorError
from connectors.model import (
    AnyCategory,
    Category,
    CategorySpec,
    Coding,
    Condition,
    CriticalInformation,
    Demographics,
    DocumentReference,
    LabReport,
    Medication,
    MunicipalService,
    Provenance,
    Status,
    TreatmentLimitation,
)
from connectors.plugin import ConnectorPlugin
from connectors.testing.faults import MODES, FaultTransport

BASE_URL = "http://upstream.test"
# What each fault must become: the GraphQL extensions.code of the raised ConnectorError.
ERROR_CODES = {
    "hang": "UPSTREAM_TIMEOUT",
    "refuse": "UPSTREAM_UNAVAILABLE",
    "error": "UPSTREAM_UNAVAILABLE",
    "rejected": "UPSTREAM_REJECTED",
    "garbage": "UPSTREAM_INVALID",
    "wrong_shape": "UPSTREAM_INVALID",
}
ITEM_TYPES: dict[Category, type] = {
    Category.TREATMENT_LIMITATIONS: TreatmentLimitation,
    Category.CRITICAL_INFORMATION: CriticalInformation,
    Category.MEDICATIONS: Medication,
    Category.LAB_RESULTS: LabReport,
    Category.MUNICIPAL_SERVICES: MunicipalService,
    Category.CONDITIONS: Condition,
    Category.DOCUMENTS: DocumentReference,
    Category.DEMOGRAPHICS: Demographics,
}
# A connector raises failures; these are the statuses a result itself may carry.
RESULT_STATUSES = frozenset({Status.OK, Status.EMPTY, Status.PARTIAL, Status.RESERVED,
                             Status.RESTRICTED, Status.BLOCKED})


@dataclass(frozen=True)
class ContractSetup:
    """What the checks need: the connector's entry point, its fake, a patient it has data for.

    `settings(base_url)` makes the connector's settings pointing at the fake;
    `municipalities` go into every request (the stores a caller may see).
    """

    name: str
    plugin: ConnectorPlugin
    upstream: Callable[[], Any]
    patient: str
    settings: Callable[[str], ConnectorSettings]
    municipalities: frozenset[str] = frozenset()
    timeout: float = 0.5


@dataclass
class Running:
    connector: Connector
    transport: FaultTransport
    http: httpx.AsyncClient


@asynccontextmanager
async def running(setup: ContractSetup, mode: str = "none") -> AsyncIterator[Running]:
    """The connector, built from its entry point, talking to its fake through the faults."""
    transport = FaultTransport(httpx.ASGITransport(app=setup.upstream()), mode)
    http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0))
    try:
        connector = setup.plugin(setup.settings(BASE_URL), http)
        try:
            yield Running(connector, transport, http)
        finally:
            await connector.aclose()
    finally:
        await http.aclose()


def request_for(setup: ContractSetup, connector: Connector, *,
                categories: frozenset[AnyCategory] | None = None,
                timeout: float | None = None) -> FetchRequest:
    """A clinician's request for the contract's patient (all categories by default)."""
    return FetchRequest(
        patient_nin=setup.patient,
        categories=connector.categories if categories is None else categories,
        requester=Requester(hpr_number="9144900", role_code="LE", orgnr="910000004",
                            purpose_of_use="TREAT"),
        municipalities=setup.municipalities or frozenset(setup.settings(BASE_URL).stores),
        timeout=setup.timeout if timeout is None else timeout,
        request_id="contract-kit",
    )


def _fail(setup: ContractSetup, sentence: str) -> AssertionError:
    return AssertionError(f"Connector {setup.name!r} {sentence}")


async def check_declaration(setup: ContractSetup) -> None:
    """It implements the protocol, under its entry-point name, with valid categories."""
    async with running(setup) as run:
        connector = run.connector
        if not isinstance(connector, Connector):
            raise _fail(setup, "does not implement Connector (name, categories, fetch, aclose).")
        if connector.name != setup.name:
            raise _fail(setup, f"calls itself {connector.name!r}.")
        categories = connector.categories
        if not isinstance(categories, frozenset) or not categories:
            raise _fail(setup, "must serve a non-empty frozenset of categories.")
        for category in categories:
            if not isinstance(category, Category | CategorySpec):
                raise _fail(setup, f"serves {category!r}, not a Category or CategorySpec.")


async def check_items_and_provenance(setup: ContractSetup) -> None:
    """Items of the right type for their category, each with this source's provenance."""
    async with running(setup) as run:
        request = request_for(setup, run.connector)
        result = await run.connector.fetch(request)
    _check_result(setup, result, request)
    found = [(c, item) for c, items in result.items.items() for item in items]
    if not found:
        raise _fail(setup, "returned no items for the contract's patient; pick one the fake "
                           "upstream has data for.")
    for category, item in found:
        expected = category.item_type if isinstance(category, CategorySpec) else (
            ITEM_TYPES[category])
        if not isinstance(item, expected):
            raise _fail(setup, f"returned a {type(item).__name__} in {category.value!r}, "
                               f"not a {expected.__name__}.")
        provenance = getattr(item, "provenance", None)
        if not isinstance(provenance, Provenance):
            raise _fail(setup, f"returned an item in {category.value!r} without provenance.")
        if provenance.source != setup.name or not provenance.record_id:
            raise _fail(setup, f"returned an item in {category.value!r} whose provenance "
                               "does not name this source and the upstream record.")
        if not isinstance(provenance.fetched_at, datetime) or provenance.fetched_at.tzinfo is None:
            raise _fail(setup, "must stamp provenance.fetched_at with an aware datetime.")
        security = getattr(item, "security", None)
        if not isinstance(security, tuple) or not all(isinstance(s, Coding) for s in security):
            raise _fail(setup, "must give each item its security labels as a tuple of Codings.")


def _check_result(setup: ContractSetup, result: Any, request: FetchRequest) -> None:
    if not isinstance(result, SourceResult):
        raise _fail(setup, f"returned a {type(result).__name__}, not a SourceResult.")
    if result.source != setup.name:
        raise _fail(setup, f"returned a result for source {result.source!r}.")
    if result.status not in RESULT_STATUSES:
        raise _fail(setup, f"returned status {result.status.name}; failures are raised as "
                           "ConnectorError.")
    extra = sorted(c.value for c in {*result.items, *result.category_status}
                   if c not in request.categories)
    if extra:
        raise _fail(setup, f"returned categories it was not asked for: {extra}.")


async def check_requested_categories_only(setup: ContractSetup) -> None:
    """Asked for one category, it answers that one; asked for none, it asks nothing upstream."""
    async with running(setup) as run:
        for category in sorted(run.connector.categories, key=lambda c: c.value):
            request = request_for(setup, run.connector, categories=frozenset({category}))
            _check_result(setup, await run.connector.fetch(request), request)
        asked = len(run.transport.requests)
        request = request_for(setup, run.connector, categories=frozenset())
        result = await run.connector.fetch(request)
        _check_result(setup, result, request)
        if len(run.transport.requests) != asked:
            raise _fail(setup, "called its upstream although no category it serves was asked "
                               "for (a denied section must not be fetched).")


async def check_error(setup: ContractSetup, mode: str) -> ConnectorError:
    """The fault `mode` raises the ConnectorError with the code in `ERROR_CODES`, in time."""
    budget = setup.timeout
    async with running(setup, mode) as run:
        request = request_for(setup, run.connector, timeout=budget)
        started = time.monotonic()
        try:
            async with asyncio.timeout(budget * 4 + 2) as guard:
                result = await run.connector.fetch(request)
        except ConnectorError as exc:
            error = exc
        except TimeoutError:
            if guard.expired():
                raise _fail(setup, f"was still waiting long after its {budget} s timeout "
                                   f"(upstream {mode}).") from None
            raise _fail(setup, "let a TimeoutError escape; raise UpstreamTimeoutError.") from None
        except Exception as exc:
            raise _fail(setup, f"let a {type(exc).__name__} escape when its upstream "
                               f"{mode_text(mode)}; raise a ConnectorError.") from exc
        else:
            raise _fail(setup, f"returned {result.status.name} when its upstream "
                               f"{mode_text(mode)}; raise a ConnectorError.")
    elapsed = time.monotonic() - started
    if error.code != ERROR_CODES[mode]:
        raise _fail(setup, f"raised {error.code} when its upstream {mode_text(mode)}; "
                           f"expected {ERROR_CODES[mode]}.")
    if error.source != setup.name:
        raise _fail(setup, f"raised an error naming source {error.source!r}.")
    if elapsed > budget * 2 + 0.5:  # generous: a busy test machine delays timers too
        raise _fail(setup, f"took {elapsed:.2f} s to fail with a {budget} s timeout.")
    return error


def mode_text(mode: str) -> str:
    return MODES[mode]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def check_no_identity_number(setup: ContractSetup, mode: str) -> None:
    """Neither errors, details nor any log line (the HTTP client logs every URL) carry the
    patient's identity number; our own messages carry no URL either."""
    root = logging.getLogger()
    handler, level = _Records(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    texts: list[tuple[str, str]] = []
    try:
        async with running(setup, mode) as run:
            try:
                result = await run.connector.fetch(request_for(setup, run.connector))
                texts.append(("the result's detail", result.detail or ""))
                texts.append(("the privacy detail", result.privacy.detail or ""))
            except ConnectorError as exc:
                texts += [("an error message", str(exc)), ("an error message", exc.message)]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    for where, text in texts:
        if setup.patient in text or "://" in text:
            raise _fail(setup, f"put the identity number or a URL in {where} "
                               f"(upstream {mode}).")
    for record in handler.records:
        message = record.getMessage()
        if setup.patient in message:
            raise _fail(setup, f"let the identity number into a log line of logger "
                               f"{record.name!r} (upstream {mode}); keep it out of URLs too.")


def _comparable(value: Any) -> Any:
    """Results and items as plain data, without the times of fetching."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _comparable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name != "fetched_at"}
    if isinstance(value, dict):
        return {getattr(k, "value", k): _comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_comparable(v) for v in value]
    return value


async def check_unknown_fields(setup: ContractSetup) -> None:
    """Unknown fields in every JSON object the upstream sends change nothing."""
    answers = []
    for mode in ("none", "unknown_fields"):
        async with running(setup, mode) as run:
            try:
                result = await run.connector.fetch(request_for(setup, run.connector))
            except ConnectorError as exc:
                if mode == "none":
                    raise
                raise _fail(setup, f"failed ({exc.code}) when the upstream added fields it "
                                   "does not know; ignore unknown fields.") from exc
            answers.append(_comparable(result))
    if answers[0] != answers[1]:
        raise _fail(setup, "answered differently when the upstream added fields it does not "
                           "know; ignore unknown fields.")


async def check_cancellation(setup: ContractSetup) -> None:
    """Cancelled mid-fetch, it stops, leaves no task behind, and works again afterwards."""
    async with running(setup, "hang") as run:
        current = asyncio.current_task()
        task = asyncio.ensure_future(run.connector.fetch(
            request_for(setup, run.connector, timeout=30.0)))
        async with asyncio.timeout(5):
            await run.transport.arrived.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled():
            raise _fail(setup, "swallowed the cancellation of its fetch; let CancelledError "
                               "propagate.")
        deadline = time.monotonic() + 1.0
        while leftover := [t for t in asyncio.all_tasks() if t is not current and not t.done()]:
            if time.monotonic() > deadline:
                raise _fail(setup, f"left {len(leftover)} task(s) running after its fetch was "
                                   "cancelled.")
            await asyncio.sleep(0.01)
        run.transport.mode = "none"
        result = await run.connector.fetch(request_for(setup, run.connector))
        if not isinstance(result, SourceResult):
            raise _fail(setup, "did not work again after a cancelled fetch.")


async def check_aclose(setup: ContractSetup) -> None:
    """`aclose()` releases the connector's own resources, never the shared HTTP client."""
    async with running(setup) as run:
        await run.connector.aclose()
        if run.http.is_closed:
            raise _fail(setup, "closed the shared HTTP client in aclose(); it belongs to the "
                               "gateway.")
