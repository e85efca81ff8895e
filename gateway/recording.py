"""Turn what resolvers recorded into audit events: one per patient delivery, one per denial.

Sits between the GraphQL execution and the response: the endpoint writes these events and
only then lets the data leave (DESIGN.md principle 5).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gateway.audit import AuditEvent, Delivery
from policies.model import Decision, Principal
from schema.context import Context


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


def events_for(ctx: Context) -> list[AuditEvent]:
    """Every audit event this request owes, in the order the accesses happened."""
    events = [denial_event(ctx.principal, ctx.request_id, d.nin, d.decision) for d in ctx.denials]
    for view in ctx.views:
        deliveries = tuple(
            Delivery(category=category.value, source=source, status=status.value, count=count)
            for (category, source), (status, count) in sorted(
                view.delivered.items(), key=lambda kv: (kv[0][0].value, kv[0][1]))
        )
        events.append(AuditEvent(
            **_base(ctx.principal, ctx.request_id, view.nin),  # type: ignore[arg-type]
            outcome="DELIVERED",
            reason="EMERGENCY_OPENING" if view.emergency else "PERMITTED",
            emergency=view.emergency,
            emergency_reason=view.emergency_reason,
            deliveries=deliveries,
        ))
    return events
