"""The root `Query`: thin resolvers that validate input, ask the policies, and hand over.

`patient` validates the identity number before anything else (no upstream sees a bad one),
asks `decide_patient`, works out which categories the query selects, and starts the fan-out
for just those. Access-log fields read the audit store through the context.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

import strawberry
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionSetNode,
)
from strawberry.extensions import ParserCache
from strawberry.types import Info
from strawberry.types.nodes import convert_arguments

from connectors.errors import ConnectorError
from connectors.identifiers import is_valid_nin
from connectors.model import CategorySpec
from policies import decide_access_log, decide_patient, reasons
from policies.model import EMERGENCY_PURPOSES
from policies.model import PrincipalKind as _Kind
from schema import types
from schema.context import Context, Denial, LogRead
from schema.errors import BadUserInputError, ForbiddenError, KildeError, is_input_error
from schema.execution import PlainDataExecutor
from schema.inputs import ARGUMENT_LIMITS, ValidateInputs, free_text
from schema.mutations import Mutation
from schema.oversight import oversight_of
from schema.patient import Patient
from schema.pipeline.plan import requested_categories
from schema.pipeline.request import PatientRequest
from schema.plugins import extend_category_enum, plugin_query
from schema.subscription import Subscription
from schema.validation import Validate, Validator

log = logging.getLogger("kilde.schema")

MAX_PAGE = 100
MAX_EMERGENCY_REASON = ARGUMENT_LIMITS["emergencyReason"]  # characters: a sentence


def _field_selections(info: Info[Context, None]) -> tuple[list[str], dict[str, Any]]:
    """Names of the Patient fields selected (through fragments), and labResults' arguments.

    Walks the operation's own nodes: `info.selected_fields` would convert the whole selection
    tree below `patient` (~60 nodes, their arguments and directives) to read one level."""
    raw = info._raw_info
    names: list[str] = []
    lab_args: dict[str, Any] = {}
    for field in raw.field_nodes:
        _walk(raw, field.selection_set, names, lab_args)
    return names, lab_args


def _walk(raw: Any, selection_set: SelectionSetNode | None, names: list[str],
          lab_args: dict[str, Any]) -> None:
    # a module function, not a closure that calls itself: that closure's cell is a cycle that
    # held `raw` (and through it the request's Context and answer) for the cyclic collector
    for sel in selection_set.selections if selection_set is not None else ():
        if isinstance(sel, FieldNode):
            names.append(sel.name.value)
            if sel.name.value == "labResults":
                lab_args.update(convert_arguments(raw, sel.arguments))
        elif isinstance(sel, InlineFragmentNode):
            _walk(raw, sel.selection_set, names, lab_args)
        elif isinstance(sel, FragmentSpreadNode):
            _walk(raw, raw.fragments[sel.name.value].selection_set, names, lab_args)


def _since(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BadUserInputError("labResults(since:) must be a date like 2026-01-31.") from None


def _check_nin(nin: str) -> None:
    if not is_valid_nin(nin):
        raise BadUserInputError(
            "The national identity number is not valid: it must be 11 digits with valid "
            "mod-11 control digits.", argument="nin",
        )


def _page_size(first: int | None) -> int:
    if first is None:
        return 20
    if first < 1 or first > MAX_PAGE:
        raise BadUserInputError(f"'first' must be between 1 and {MAX_PAGE}.", argument="first")
    return first


def _entry(event: Any) -> types.AccessLogEntry:
    deliveries = [types.AccessDelivery(category=d.category, source=d.source, status=d.status,
                                       count=d.count, municipality=d.municipality)
                  for d in event.deliveries]
    categories = sorted({d.category for d in event.deliveries if d.count > 0})
    return types.AccessLogEntry(
        id=event.event_id,
        patient_nin=event.patient_nin,
        time=event.recorded_at,
        outcome=event.outcome,
        reason=event.reason,
        who=event.actor_name,
        profession=event.actor_profession_text,
        organisation=event.legal_entity_name,
        point_of_care=event.point_of_care_name,
        purpose_of_use=event.purpose_of_use,
        emergency=event.emergency,
        emergency_reason=event.emergency_reason,
        categories=categories,
        deliveries=deliveries,
    )


def _connection(page: Any) -> types.AccessLogConnection:
    cursors = list(getattr(page, "cursors", None) or [])
    edges = [types.AccessLogEdge(cursor=cursors[i] if i < len(cursors) else "", node=_entry(e))
             for i, e in enumerate(page.events)]
    return types.AccessLogConnection(
        edges=edges,
        page_info=types.PageInfo(end_cursor=page.end_cursor, has_next_page=page.has_next_page),
        total_count=page.total,
    )


def _instant(value: datetime | None, name: str) -> datetime | None:
    """An access-log bound: it must say its time zone (an instant, not a wall-clock time)."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise BadUserInputError(f"'{name}' must include a time zone, like "
                                "2026-01-31T08:00:00+01:00 or 2026-01-31T07:00:00Z.",
                                argument=name)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 with a negative offset
        raise BadUserInputError(f"'{name}' is out of range.", argument=name) from None


async def _read_log(ctx: Context, nin: str, start: datetime | None, end: datetime | None,
                    first: int | None, after: str | None,
                    municipality: str | None = None) -> Any:
    """A page of the access log (with `municipality`, only the entries that concern it); a
    foreign or malformed `after` is the store's `AuditCursorError`, a BAD_USER_INPUT."""
    size = _page_size(first)
    return await ctx.services.access_log.query(
        patient_nin=nin, start=_instant(start, "from"), end=_instant(end, "to"), first=size,
        after=after, municipality=municipality)


def _privacy_officer(ctx: Context) -> str:
    """The privacy officer's municipality, for the views across patients (usage, emergency
    openings): FORBIDDEN for anyone else, or an officer of no municipality this Kilde serves."""
    principal = ctx.principal
    decision = decide_access_log(principal, None, rules=ctx.services.rules)
    if principal.kind is not _Kind.PRIVACY_OFFICER or not decision.allowed:
        reason = (decision.reason if principal.kind is _Kind.PRIVACY_OFFICER
                  else "NOT_PRIVACY_OFFICER")
        raise ForbiddenError(decision.detail if reason == reasons.NO_MUNICIPALITY
                             else "Only a privacy officer may read this.", reason=reason)
    assert principal.municipality is not None  # decide_access_log denies NO_MUNICIPALITY
    return principal.municipality


@strawberry.type
class Query:
    @strawberry.field(description="One patient's unified view. A clinician needs a care "
                      "relationship bound to this patient; a citizen may ask for themself. "
                      "`emergencyReason` opens restricted (sperret) information under ETREAT or "
                      "BTG; it is specially audited and shown to the patient. `fresh` asks "
                      "for live data instead of cached (rate-limited; over the limit, cached "
                      "data is served).")
    async def patient(
        self, info: Info[Context, None], nin: str, emergency_reason: str | None = None,
        fresh: bool | None = None,
    ) -> Patient | None:
        ctx = info.context
        _check_nin(nin)
        fresh_refused = False
        if fresh or ctx.fresh:  # the argument or `cache-control: no-cache`
            limiter = ctx.services.fresh_limiter
            ctx.fresh = limiter is None or await limiter.allow(ctx.principal.person_id)
            fresh_refused = not ctx.fresh  # served from cache: the summary says so
        reason = free_text(emergency_reason, "emergencyReason", MAX_EMERGENCY_REASON)
        if reason is not None and not ctx.principal.is_emergency:
            purpose = ctx.principal.purpose_of_use
            raise BadUserInputError(
                "'emergencyReason' opens restricted information only under purpose of use "
                f"{' or '.join(p.value for p in EMERGENCY_PURPOSES)} (nødtilgang); this token's purpose is "
                f"{purpose.value if purpose else 'none'!r}. Ask again without a reason, or "
                "with a token for an emergency purpose.", argument="emergencyReason")
        decision = decide_patient(ctx.principal, nin, now=datetime.now(UTC),
                                  rules=ctx.services.rules)
        if not decision.allowed:
            ctx.denials.append(Denial(nin, decision))
            raise ForbiddenError("You may not see this patient.", reason=decision.reason)
        names, lab_args = _field_selections(info)
        plugins = ctx.services.registry.plugin_categories
        request = PatientRequest.start(ctx, nin, requested_categories(names, plugins),
                                       reason=decision.reason, emergency_reason=reason,
                                       since=_since(lab_args.get("since")),
                                       path=tuple(info.path.as_list()),
                                       fresh_refused=fresh_refused)
        ctx.patients.append(request)
        # every fetch's outcome, once (each within its own budget, so within the deadline):
        # the fields below then read their items synchronously (schema/patient.py)
        await request.fetched()
        return Patient(nin=nin, pipeline=request)

    @strawberry.field(description="The patient context behind a `launch` id from POST /launch "
                      "(SMART-style handover from an EPJ). It can be read once, by the user who "
                      "created it, before it expires; otherwise BAD_USER_INPUT.")
    async def launch_context(self, info: Info[Context, None], launch: str) -> types.LaunchContext:
        ctx = info.context
        store = ctx.services.launches
        context = await store.redeem(ctx.principal, launch) if store is not None else None
        if context is None:  # unknown, someone else's, used and expired all look the same
            raise BadUserInputError("The launch is unknown, already used or expired; open the "
                                    "app from the EPJ again.", argument="launch")
        return types.LaunchContext(patient=context.patient, encounter=context.encounter)

    @strawberry.field(description="The source catalogue: what each source serves, and its health.")
    def sources(self, info: Info[Context, None]) -> list[types.Source]:
        services = info.context.services
        out = []
        for entry in services.registry:
            connector = entry.connector
            activity = services.activity.get(connector.name) if services.activity else None
            # "used by": the rollout list if one is set, else each municipality with its own
            # store, else every tenant (a national source)
            used_by = entry.settings.municipalities or frozenset(entry.settings.stores)
            out.append(types.Source(
                name=connector.name,
                version=entry.version,
                standard=entry.standard,
                categories=sorted(connector.categories, key=lambda c: c.value),
                municipalities=sorted(used_by) or list(services.tenants),
                timeout_seconds=entry.settings.timeout,
                health=services.health.source_health(connector.name) if services.health else
                "UNKNOWN",
                last_success=activity.last_success if activity else None,
                last_failure=activity.last_failure if activity else None,
                last_error=activity.last_error if activity else None,
                description=entry.description or None,
            ))
        return out

    @strawberry.field(description="Who Kilde takes you to be.")
    def me(self, info: Info[Context, None]) -> types.Principal:
        p = info.context.principal
        return types.Principal(
            kind=p.kind, name=p.name, hpr_number=p.hpr_number, profession=p.profession,
            profession_text=p.profession_text, legal_entity=p.legal_entity,
            legal_entity_name=p.legal_entity_name, point_of_care=p.point_of_care,
            point_of_care_name=p.point_of_care_name, municipality=p.municipality,
            purpose_of_use=p.purpose_of_use, decision_ref=p.decision_ref,
            scopes=sorted(p.scopes),
        )

    @strawberry.field(description="Innsyn: who has accessed my data (citizens only), newest first.")
    async def my_access_log(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> types.AccessLogConnection:
        ctx = info.context
        if ctx.principal.kind is not _Kind.CITIZEN:
            raise ForbiddenError("Only a citizen can read their own access log.",
                                 reason="NOT_CITIZEN")
        decision = decide_access_log(ctx.principal, None, rules=ctx.services.rules)
        if not decision.allowed:
            raise ForbiddenError("You may not read this access log.", reason=decision.reason)
        page = await _read_log(ctx, ctx.principal.person_id, None, None, first, after)
        return _connection(page)

    @strawberry.field(description="The access log for one patient (privacy officer).")
    async def access_log(
        self,
        info: Info[Context, None],
        nin: str,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> types.AccessLogConnection:
        ctx = info.context
        _check_nin(nin)
        for bound, name in ((from_, "from"), (to, "to")):  # the client's mistakes first
            _instant(bound, name)
        _page_size(first)
        principal, services = ctx.principal, ctx.services
        oversight = None
        if (principal.kind is _Kind.PRIVACY_OFFICER and principal.municipality is not None
                and decide_access_log(principal, None, rules=services.rules).allowed):
            # is the patient of the officer's municipality? (registry down: an error, never
            # an unfiltered log)
            oversight = await oversight_of(nin, principal.municipality, services=services,
                                           credentials=ctx.credentials,
                                           request_id=ctx.request_id)
        decision = decide_access_log(principal, nin, rules=services.rules, oversight=oversight)
        home = oversight.home_municipality if oversight else None
        if not decision.allowed:
            # an attempt on a patient's log: audited
            ctx.denials.append(Denial(nin, decision, home_municipality=home))
            raise ForbiddenError("You may not read this access log.", reason=decision.reason)
        own_only = decision.reason == reasons.PRIVACY_OFFICER_OWN_DATA
        page = await _read_log(ctx, nin, from_, to, first, after,
                               municipality=principal.municipality if own_only else None)
        if nin != principal.person_id:  # the patient reading their own log is not audited
            ctx.log_reads.append(LogRead(nin, decision, home_municipality=home))
        return _connection(page)

    @strawberry.field(description="Emergency openings (nødtilgang) that concern the privacy "
                      "officer's own municipality (its patients, its store's data, or, where "
                      "neither is known, its own personnel), across patients, newest first, "
                      "for follow-up review. Reading them is audited for each patient shown.")
    async def emergency_accesses(
        self,
        info: Info[Context, None],
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> types.AccessLogConnection:
        ctx = info.context
        municipality = _privacy_officer(ctx)
        decision = decide_access_log(ctx.principal, None, rules=ctx.services.rules)
        # a foreign cursor is the store's AuditCursorError, a BAD_USER_INPUT
        page = await ctx.services.access_log.query(
            patient_nin=None, start=_instant(from_, "from"), end=_instant(to, "to"),
            first=_page_size(first), after=after, municipality=municipality,
            emergency_only=True)
        # each patient whose log entries are shown: the patient may ask who read them
        for nin in dict.fromkeys(e.patient_nin for e in page.events if e.patient_nin):
            ctx.log_reads.append(LogRead(nin, decision))
        return _connection(page)

    @strawberry.field(description="Deliveries per day, source, category, asking and data "
                      "municipality, of the privacy officer's own municipality only: its "
                      "store's data, and national sources' data of its patients (or, where "
                      "the patient's home is unknown, asked for by its personnel). The "
                      "trial's usage indicator, no personal data.")
    async def usage(
        self,
        info: Info[Context, None],
        from_: Annotated[date | None, strawberry.argument(name="from")] = None,
        to: date | None = None,
    ) -> list[types.UsageRow]:
        ctx = info.context
        municipality = _privacy_officer(ctx)
        rows = await ctx.services.access_log.usage(start=from_, end=to,
                                                   municipality=municipality)
        return [types.UsageRow(day=r.day, source=r.source, category=r.category,
                               municipality=r.municipality,
                               data_municipality=r.data_municipality,
                               deliveries=r.deliveries, items=r.items) for r in rows]


class KildeSchema(strawberry.Schema):
    """Logs only unexpected resolver failures, by type and stack (never the message, which
    might carry input values); expected errors (policy, input, sources) are not log-worthy."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            original = error.original_error
            if is_input_error(error) or isinstance(original, KildeError | ConnectorError):
                continue
            log.error("unexpected %s in resolver:\n%s", type(original).__name__,
                      "".join(traceback.format_tb(original.__traceback__)))


def build_schema(
    *extensions: Any, parsed: Any = None, categories: Sequence[CategorySpec] = (),
    suggestions: bool = True,
) -> strawberry.Schema:
    """The GraphQL schema; built once at start. `parsed` replaces the parser cache when the
    gateway hands over documents it parsed already (gateway/limits.py); `extensions` are added.
    `categories` are the plugin categories of the enabled connectors (schema/plugins.py).
    `suggestions` keeps graphql-core's "Did you mean ...?" in validation errors (the demo;
    production switches them off, schema/validation.py says why).
    """
    query = plugin_query(Query, categories) if categories else Query
    # Parsing and validating the same operation again dominated the request's CPU time
    # (bench/RESULTS.md, profile 2026-11-23); clients send a handful of distinct operations.
    # The caches live at module level, keyed by maxsize: the factories are cheap per request.
    validator = Validator(maxsize=256, suggestions=suggestions)
    # plain data (most of an answer) is completed by compiled plans (schema/execution.py)
    schema = KildeSchema(query=query, mutation=Mutation, subscription=Subscription,
                         extensions=[parsed or (lambda: ParserCache(maxsize=256)),
                                     lambda: Validate(validator), ValidateInputs, *extensions],
                         execution_context_class=PlainDataExecutor)
    if categories:
        extend_category_enum(schema, categories)
    return schema
