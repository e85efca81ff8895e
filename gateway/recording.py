"""Turn what resolvers recorded into audit events: one per patient access, permitted or denied.

Sits between the GraphQL execution and the response: the endpoint writes these events and
only then lets the data leave (DESIGN.md principle 5). What is recorded:

- every `patient(nin)` the policies let through: DELIVERED, with one `Delivery` per (category,
  source) and the item count; `EMERGENCY_OPENING` with the reason when restricted data was
  opened. When the policies denied every category asked for, nothing was delivered and the
  event is DENIED with the first category's reason;
- every denied `patient(nin)` and every denied `accessLog(nin)`: DENIED, with the reason code;
- a privacy officer's `accessLog(nin)` read: DELIVERED, reason PRIVACY_OFFICER, no deliveries.
  Who read a patient's access log is itself something the patient may ask about, so it shows
  up in their `myAccessLog`. A citizen reading their own log (`myAccessLog`) is *not*
  recorded: it is no access to anybody else's data, and recording it would grow the very log
  they are reading on every look.

Requests that never reach a policy (no or bad token, invalid input) identify no one to
audit; the request log keeps their request id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gateway.audit import AuditEvent, Delivery
from policies.model import Decision, Principal
from schema.context import Context
from schema.view import PatientView

DENIED_STATUS = "DENIED"


def _base(principal: Principal, request_id: str, nin: str) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "recorded_at": datetime.now(UTC),
        "request_id": request_id,
        "principal_kind": principal.kind.value,
        "actor_person_id": principal.person_id,
        "actor_name": principal.name,
        "actor_hpr": principal.hpr_number,
        "actor_profession": principal.profession,
        "actor_profession_text": principal.profession_text,
        "legal_entity": principal.legal_entity,
        "legal_entity_name": principal.legal_entity_name,
        "point_of_care": principal.point_of_care,
        "point_of_care_name": principal.point_of_care_name,
        "actor_municipality": principal.municipality,
        "client_id": principal.client_id,
        "patient_nin": nin,
        "purpose_of_use": principal.purpose_of_use.value if principal.purpose_of_use else None,
        "decision_ref": principal.decision_ref,
        "decision_description": principal.decision_description,
        "user_selected": principal.user_selected,
    }


def denial_event(principal: Principal, request_id: str, nin: str, decision: Decision) -> AuditEvent:
    return AuditEvent(**_base(principal, request_id, nin), outcome="DENIED",  # type: ignore[arg-type]
                      reason=decision.reason, emergency=False, emergency_reason=None,
                      deliveries=())


def log_read_event(principal: Principal, request_id: str, nin: str,
                   decision: Decision) -> AuditEvent:
    return AuditEvent(**_base(principal, request_id, nin), outcome="DELIVERED",  # type: ignore[arg-type]
                      reason=decision.reason, deliveries=())


def view_event(principal: Principal, request_id: str, view: PatientView) -> AuditEvent:
    """The event for one patient view: what each source delivered per category."""
    deliveries = tuple(
        Delivery(category=category.value, source=source, status=status.value, count=count)
        for (category, source), (status, count) in sorted(
            view.delivered.items(), key=lambda kv: (kv[0][0].value, kv[0][1]))
    )
    all_denied = bool(view.denied) and all(
        d.status == DENIED_STATUS and d.count == 0 for d in deliveries)
    if all_denied:
        first = min(view.denied, key=lambda c: c.value)
        outcome, reason = "DENIED", view.denied[first].reason
    else:
        outcome = "DELIVERED"
        reason = "EMERGENCY_OPENING" if view.emergency else view.reason
    return AuditEvent(
        **_base(principal, request_id, view.nin),  # type: ignore[arg-type]
        outcome=outcome,
        reason=reason,
        emergency=view.emergency,
        emergency_reason=view.emergency_reason,
        deliveries=deliveries,
    )


def events_for(ctx: Context) -> list[AuditEvent]:
    """Every audit event this request owes: denials, then patient views, then log reads."""
    events = [denial_event(ctx.principal, ctx.request_id, d.nin, d.decision) for d in ctx.denials]
    events.extend(view_event(ctx.principal, ctx.request_id, view) for view in ctx.views)
    events.extend(log_read_event(ctx.principal, ctx.request_id, r.nin, r.decision)
                  for r in ctx.log_reads)
    return events
