"""What a request owes the audit trail: one event per patient access, and which outcome."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.model import Category, Status
from gateway.recording import events_for
from policies.model import Decision
from schema.pipeline.ledger import Delivery, Denial, Ledger, LogRead, PatientLedger
from tests.policies.people import HLR_PATIENT, OSLO_PATIENT, clinician, privacy_officer

TL, LAB = Category.TREATMENT_LIMITATIONS, Category.LAB_RESULTS


def _view(nin: str = HLR_PATIENT, delivered: dict[Any, Any] | None = None,
          **fields: Any) -> PatientLedger:
    """One patient's ledger; `delivered` maps (category, source) to (status, count)."""
    deliveries = tuple(Delivery(category, source, status, count)
                       for (category, source), (status, count) in sorted(
                           (delivered or {}).items(), key=lambda kv: (kv[0][0].value, kv[0][1])))
    values: dict[str, Any] = {"reason": "CARE_RELATIONSHIP", **fields}
    return PatientLedger(nin=nin, deliveries=deliveries, **values)


def _ctx(principal: Any = None, views: tuple[PatientLedger, ...] | list[PatientLedger] = (),
         denials: list[Denial] | None = None, log_reads: list[LogRead] | None = None) -> Ledger:
    """The request's ledger, as `Context.finish()` returns it."""
    return Ledger(principal=principal or clinician(), request_id="req-1",
                  patients=tuple(views), denials=tuple(denials or ()),
                  log_reads=tuple(log_reads or ()))


def test_a_delivering_view_is_one_delivered_event_with_counts_per_source() -> None:
    view = _view(delivered={(TL, "municipal"): (Status.OK, 1), (TL, "kjernejournal"): (
        Status.EMPTY, 0)})
    [event] = events_for(_ctx(views=[view]))
    assert (event.outcome, event.reason, event.request_id) == ("DELIVERED", "CARE_RELATIONSHIP", "req-1")
    assert [(d.source, d.status, d.count) for d in event.deliveries] == [
        ("kjernejournal", "EMPTY", 0), ("municipal", "OK", 1)]


def test_an_emergency_opening_carries_its_flag_and_reason() -> None:
    view = _view(emergency=True, emergency_reason="Bevisstløs",
                 delivered={(TL, "kjernejournal"): (Status.OK, 2)})
    [event] = events_for(_ctx(views=[view]))
    assert (event.reason, event.emergency, event.emergency_reason) == (
        "EMERGENCY_OPENING", True, "Bevisstløs")


@pytest.mark.parametrize(("delivered", "outcome", "reason"), [
    ({(LAB, "proevesvar"): (Status.DENIED, 0)}, "DENIED", "PROFESSION_NOT_PERMITTED"),
    ({(LAB, "proevesvar"): (Status.DENIED, 0), (TL, "municipal"): (Status.OK, 1)},
     "DELIVERED", "CARE_RELATIONSHIP"),
    ({(LAB, "proevesvar"): (Status.DENIED, 0), (TL, "municipal"): (Status.EMPTY, 0)},
     "DELIVERED", "CARE_RELATIONSHIP"),
])
def test_a_view_whose_every_category_was_denied_is_a_denial(
    delivered: dict[Any, Any], outcome: str, reason: str
) -> None:
    view = _view(delivered=delivered, denied={LAB: Decision.deny("PROFESSION_NOT_PERMITTED")})
    [event] = events_for(_ctx(views=[view]))
    assert (event.outcome, event.reason) == (outcome, reason)


def test_denials_views_and_log_reads_each_give_one_event() -> None:
    ctx = _ctx(privacy_officer(),
               denials=[Denial(OSLO_PATIENT, Decision.deny("CARE_RELATIONSHIP_MISSING"))],
               views=[_view()],
               log_reads=[LogRead(HLR_PATIENT, Decision.permit("PRIVACY_OFFICER"))])
    events = events_for(ctx)
    assert [(e.patient_nin, e.outcome, e.reason) for e in events] == [
        (OSLO_PATIENT, "DENIED", "CARE_RELATIONSHIP_MISSING"),
        (HLR_PATIENT, "DELIVERED", "CARE_RELATIONSHIP"),
        (HLR_PATIENT, "DELIVERED", "PRIVACY_OFFICER"),
    ]
    assert events[2].deliveries == ()
    assert len({e.event_id for e in events}) == 3


def test_a_request_that_touched_no_patient_owes_nothing() -> None:
    assert events_for(_ctx()) == []
