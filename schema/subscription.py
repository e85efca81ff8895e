"""The root `Subscription`: `patientUpdates(nin)` tells a client when a patient's data changed.

Sits beside `Query`, fed by the change bus (`Services.changes`, gateway/live). An update says
which source changed which categories when, never what changed: the client asks `patient` again
for what it shows, through the same policies, judgement and audit as any query. The same
policies decide the subscription when it starts (`decide_patient`: a care relationship bound to
this patient, a citizen for themself) and again for every change (an attest that has grown old
ends it with FORBIDDEN), and per change which categories this caller may hear of
(`decide_category`, the municipal border, a source rolled out elsewhere): a change of nothing
the caller may see is not sent at all. Each update sent is an access the audit trail records
(`Notice`, written by the gateway's audit extension before the update leaves).

>>> # subscription { patientUpdates(nin: "...") { source categories changedAt origin } }
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry
from strawberry.types import Info

from connectors.identifiers import is_valid_nin
from connectors.model import AnyCategory
from connectors.registry import Registered
from policies import allowed_municipalities, decide_category, decide_patient
from policies.model import Principal
from schema import types
from schema.context import Context, Denial, Services
from schema.errors import BadUserInputError, ForbiddenError, UpstreamUnavailableError
from schema.pipeline.ledger import Notice
from schema.pipeline.plan import in_use


class UpdateUnavailableError(UpstreamUnavailableError):
    """This Kilde has no change bus: live updates are not served (source "live")."""

    def __init__(self, message: str) -> None:
        super().__init__("live", message)


@strawberry.enum(description="Where Kilde heard of a change.")
class UpdateOrigin(enum.Enum):
    SOURCE_EVENT = "events"  # the source's event store (POST /events)
    KILDE_WRITE = "kilde"  # a write through Kilde (a mutation)
    FHIR_SUBSCRIPTION = "fhir-subscription"  # a FHIR store's subscription notification
    RESYNC = "resync"  # changes may have been missed (a replica lost Redis): ask again for all


@strawberry.type(description="A patient's data changed: which source, which categories, "
                 "when. It carries no clinical content: ask `patient` again for what you show.")
class PatientUpdate:
    source: str | None = strawberry.field(description="The source that changed (a connector "
                                          "name); null on RESYNC, which means every source.")
    categories: list[types.Category] = strawberry.field(
        description="The categories that changed, of those you may see (never empty).")
    changed_at: datetime = strawberry.field(description="When the source says it changed.")
    origin: UpdateOrigin


def _sources(services: Services, source: str | None) -> list[Registered]:
    if source is None:
        return list(services.registry)
    entry = services.registry.get(source)
    return [entry] if entry is not None else []


def visible_categories(principal: Principal, services: Services, source: str | None,
                       categories: tuple[str, ...], municipality: str | None
                       ) -> list[AnyCategory]:
    """The categories of a change `principal` may hear of, as a query would plan them: the
    source is used for this caller, a store the caller may see, each category permitted."""
    rules = services.rules
    reachable_all = allowed_municipalities(principal, rules=rules, tenants=services.tenants)
    if municipality is not None and municipality not in reachable_all:
        return []  # a store across the border (no agreement): nothing of it is heard
    seen: dict[str, AnyCategory] = {}
    for entry in _sources(services, source):
        if not in_use(entry.settings.municipalities, principal):
            continue
        stores = frozenset(entry.settings.stores)
        if stores and not (reachable_all & stores):
            continue
        if municipality is not None and stores and municipality not in stores:
            continue
        for category in entry.connector.categories:
            if categories and category.value not in categories:
                continue
            if decide_category(principal, category.value, rules=rules).allowed:
                seen[category.value] = category
    return [seen[value] for value in sorted(seen)]


def _check(ctx: Context, nin: str) -> str:
    decision = decide_patient(ctx.principal, nin, now=datetime.now(UTC),
                              rules=ctx.services.rules)
    if not decision.allowed:
        ctx.denials.append(Denial(nin, decision))
        raise ForbiddenError("You may not see this patient.", reason=decision.reason)
    return decision.reason


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Tells you whenever this patient's data changes at a "
                             "source, for the categories you may see (over graphql-transport-ws "
                             "at /graphql). Decided like `patient` when it starts and for every "
                             "change; each update is audited; it ends when your token expires.")
    async def patient_updates(self, info: Info[Context, None], nin: str
                              ) -> AsyncGenerator[PatientUpdate, None]:
        ctx = info.context
        if not is_valid_nin(nin):
            raise BadUserInputError(
                "The national identity number is not valid: it must be 11 digits with valid "
                "mod-11 control digits.", argument="nin")
        _check(ctx, nin)
        feed = ctx.services.changes
        if feed is None:
            raise UpdateUnavailableError("Live updates are not available here; ask again "
                                         "instead.", source="live")
        async with feed.watch(nin) as changes:
            ctx.watching.set()  # from here on no change is missed (tests and the door wait)
            async for change in changes:
                reason = _check(ctx, nin)  # an attest grown old ends the subscription here
                categories = visible_categories(ctx.principal, ctx.services, change.source,
                                                change.categories, change.municipality)
                if not categories:
                    continue  # nothing this caller may see changed: nothing is sent
                ctx.notices.append(Notice(nin=nin, reason=reason, source=change.source,
                                          categories=tuple(categories)))
                yield PatientUpdate(source=change.source, categories=categories,
                                    changed_at=change.changed_at,
                                    origin=UpdateOrigin(change.origin))
