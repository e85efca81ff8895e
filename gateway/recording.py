"""Turn the request's ledger into audit events: one per patient access, permitted or denied.

Sits between the GraphQL execution and the response: the endpoint takes the `Ledger` the
execution left (`schema.pipeline.ledger`, from `Context.finish()`), writes these events and
only then lets the data leave (docs/architecture.md, principle 5). What is recorded:

- every `patient(nin)` the policies let through: DELIVERED, with one `Delivery` per (category,
  source) and the item count; `EMERGENCY_OPENING` with the reason when restricted data was
  opened. When the policies denied every category asked for, nothing was delivered and the
  event is DENIED with the first category's reason; when the patient has blocked this
  professional (reported by any source) and so nothing was delivered, DENIED with
  PATIENT_BLOCKED_REQUESTER;
- every denied `patient(nin)` and every denied `accessLog(nin)`: DENIED, with the reason code;
- every live update sent (`patientUpdates`): DELIVERED with the decision's reason, one delivery
  per category said to have changed, status CHANGED, count 0;
- a privacy officer's `accessLog(nin)` read: DELIVERED, reason PRIVACY_OFFICER, no deliveries.
  Who read a patient's access log is itself something the patient may ask about, so it shows
  up in their `myAccessLog`. A citizen reading their own log (`myAccessLog`) is *not*
  recorded: it is no access to anybody else's data, and recording it would grow the very log
  they are reading on every look.

A write (a mutation, schema/write/record.py) is recorded by `write_event` as it happens, not
from the ledger: WRITE_ATTEMPTED before the store is called, then WRITTEN, WRITE_REJECTED or
WRITE_UNKNOWN naming the attempt (`attempt_id`), with the category, the store's municipality
and, once known, the store's record id; one `Delivery` (count 1) for a record written, so the
patient's access log shows who recorded what kind of record. A denied write is a DENIED event
from the ledger like a denied read, its reason a WRITE_* code.

Requests that never reach a policy (no or bad token, invalid input) identify no one to
audit; the request log keeps their request id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.audit import AuditEvent, Delivery
from gateway.audit.events import new_event_id
from policies.model import Decision, Principal
from schema.pipeline.ledger import Ledger, Notice, PatientLedger
from schema.write.record import WriteEntry

DENIED_STATUS = "DENIED"
CHANGED_STATUS = "CHANGED"  # a live update said this category changed (no items sent)


def _base(principal: Principal, request_id: str, nin: str) -> dict[str, object]:
    return {
        "event_id": new_event_id(),
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
        # the attest's time of attestation, as it stood when this access was decided (the
        # HL7 Norway AuditEvent's `toa`; tokens are re-issued, so it cannot be looked up later)
        "toa": int(principal.attested_at.timestamp()) if principal.attested_at else None,
    }


def denial_event(principal: Principal, request_id: str, nin: str, decision: Decision,
                 home_municipality: str | None = None) -> AuditEvent:
    return AuditEvent(**_base(principal, request_id, nin), outcome="DENIED",  # type: ignore[arg-type]
                      reason=decision.reason, emergency=False, emergency_reason=None,
                      deliveries=(), patient_municipality=home_municipality)


def log_read_event(principal: Principal, request_id: str, nin: str,
                   decision: Decision, home_municipality: str | None = None) -> AuditEvent:
    return AuditEvent(**_base(principal, request_id, nin), outcome="DELIVERED",  # type: ignore[arg-type]
                      reason=decision.reason, deliveries=(),
                      patient_municipality=home_municipality)


def patient_event(principal: Principal, request_id: str, patient: PatientLedger) -> AuditEvent:
    """The event for one patient access: what each source delivered per category."""
    deliveries = tuple(
        Delivery(category=d.category.value, source=d.source, status=d.status.value,
                 count=d.count, municipality=d.municipality)
        for d in patient.deliveries
    )
    all_denied = bool(patient.denied) and all(
        d.status == DENIED_STATUS and d.count == 0 for d in deliveries)
    if all_denied:
        first = min(patient.denied, key=lambda c: c.value)
        outcome, reason = "DENIED", patient.denied[first].reason
    elif patient.blocked_by is not None and not any(d.count for d in deliveries):
        # the patient's block of this professional held in every source: nothing left
        outcome, reason = "DENIED", "PATIENT_BLOCKED_REQUESTER"
    else:
        outcome = "DELIVERED"
        reason = "EMERGENCY_OPENING" if patient.emergency else patient.reason
    return AuditEvent(
        **_base(principal, request_id, patient.nin),  # type: ignore[arg-type]
        patient_municipality=patient.home_municipality,
        outcome=outcome,
        reason=reason,
        emergency=patient.emergency,
        emergency_reason=patient.emergency_reason,
        deliveries=deliveries,
    )


def notice_event(principal: Principal, request_id: str, notice: Notice) -> AuditEvent:
    """A live update sent (`patientUpdates`): DELIVERED, one delivery per category said to
    have changed, status CHANGED and no items (the update carries none; the re-query that
    follows is audited as itself)."""
    return AuditEvent(
        **_base(principal, request_id, notice.nin),  # type: ignore[arg-type]
        outcome="DELIVERED", reason=notice.reason, emergency=False, emergency_reason=None,
        deliveries=tuple(Delivery(category=c.value, source=notice.source or "*",
                                  status=CHANGED_STATUS, count=0)
                         for c in notice.categories))


def events_for(ledger: Ledger) -> list[AuditEvent]:
    """Every audit event this request owes: denials, then patient accesses, then log reads,
    then live updates sent."""
    principal, request_id = ledger.principal, ledger.request_id
    events = [denial_event(principal, request_id, d.nin, d.decision, d.home_municipality)
              for d in ledger.denials]
    events.extend(patient_event(principal, request_id, p) for p in ledger.patients)
    events.extend(log_read_event(principal, request_id, r.nin, r.decision, r.home_municipality)
                  for r in ledger.log_reads)
    events.extend(notice_event(principal, request_id, n) for n in ledger.notices)
    return events


def write_event(entry: WriteEntry) -> AuditEvent:
    """The audit event for one stage of a write (no record content: kind, store, id)."""
    written = entry.stage == "WRITTEN"
    base = _base(entry.principal, entry.request_id, entry.nin)
    base["event_id"] = entry.entry_id
    return AuditEvent(
        **base,  # type: ignore[arg-type]
        outcome=entry.stage,
        reason=entry.reason,
        deliveries=(Delivery(category=entry.category, source=entry.source, status="WRITTEN",
                             count=1),) if written else (),
        action="create",
        record_category=entry.category,
        record_store=entry.municipality,
        record_id=entry.record_id,
        attempt_id=entry.attempt_id,
        replayed=True if entry.replayed else None,
    )
