"""One write, in order: decide, remember, audit the attempt, send once, audit the outcome,
then evict and tell.

Sits between the mutations (schema/mutations.py, thin resolvers that validate input) and the
writing connector (`connectors.writing.Writer`). `record()` is the whole path:

1. decide (`policies.decide_write`); a denial is FORBIDDEN and audited as DENIED like a denied
   read (`ctx.denials`), and the store sees no request;
2. a repeat under the same `Idempotency-Key` whose first result is remembered
   (schema/write/idempotency.py) is answered with it, audited as WRITTEN with `replayed`,
   without calling the store; the same key for a different write is BAD_USER_INPUT;
3. WRITE_ATTEMPTED is written to the audit trail *before* the store is called: if that fails
   nothing is sent (AUDIT_UNAVAILABLE, `writeOutcome` NOT_WRITTEN);
4. the writer sends the record once, never retried: a failure before the record was sent
   (`ConnectorError.sent is False`: the patient search timed out, say) is WRITE_FAILED and
   `writeOutcome` NOT_WRITTEN; a timeout or a lost answer to the record itself may have been
   recorded, so it is WRITE_UNKNOWN (`writeOutcome` UNKNOWN: repeat it with the same key or
   `clientIdentifier`, which the store's conditional create makes safe); a store's refusal is
   WRITE_REJECTED and UPSTREAM_REJECTED with the OperationOutcome's issue codes;
5. the outcome is audited; if *that* fails the answer is AUDIT_UNAVAILABLE with `writeOutcome`
   UNKNOWN, never the record: a write is reported done only once its outcome is in the trail;
6. the patient's cache entries for the source are evicted and a change event is published
   (what changed, never the record).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import orjson

from connectors.base import Requester
from connectors.cachestore import CacheUnavailableError
from connectors.deadline import timed_out
from connectors.errors import ConnectorError, UpstreamRejectedError, UpstreamUnavailableError
from connectors.writing import Draft, Writer, WriteRequest, WriteResult, Written, writer_of
from policies import decide_write
from policies.model import Principal
from schema.errors import AuditUnavailableError, BadUserInputError, ForbiddenError, KildeError
from schema.pipeline.ledger import Denial
from schema.write.idempotency import IdempotencyStore, Remembered

if TYPE_CHECKING:
    from schema.context import Context

log = logging.getLogger("kilde.write")

RECORD_ID_SYSTEM = "https://kilde.no/fhir/sid/record-id/"  # + the client's id (HelseID client)
MIN_WRITE_SECONDS = 2.0  # a write's budget when the request deadline has less left
MAX_KEY_CHARS = 255


class WriteStage:
    ATTEMPTED = "WRITE_ATTEMPTED"
    WRITTEN = "WRITTEN"
    REJECTED = "WRITE_REJECTED"
    FAILED = "WRITE_FAILED"
    UNKNOWN = "WRITE_UNKNOWN"


@dataclass(frozen=True, slots=True)
class WriteEntry:
    """One audit record of a write, as the schema hands it to the gateway's audit sink
    (gateway/recording.py `write_event` makes the AuditEvent). `entry_id` is the audit event's
    id; an outcome names its attempt in `attempt_id`. No record content."""

    entry_id: str
    principal: Principal
    request_id: str
    nin: str
    stage: str
    reason: str
    category: str
    municipality: str
    source: str
    record_id: str | None = None
    attempt_id: str | None = None
    replayed: bool = False


WriteAudit = Callable[[WriteEntry], Awaitable[None]]  # raises AuditUnavailableError


class Evict(Protocol):
    async def __call__(self, source: str, nin: str) -> None: ...


class WriteRejectedError(UpstreamRejectedError):
    """The store refused the record (its OperationOutcome's issue codes in `issues`)."""

    def __init__(self, message: str, *, source: str, **extensions: Any) -> None:
        super().__init__(source, message)
        self.extensions.update(extensions)


class NoWriterError(UpstreamUnavailableError):
    """No enabled connector records this category (`source` names the category)."""

    def __init__(self, message: str, category: str) -> None:
        super().__init__(category, message)


class WriteNotSentError(KildeError):
    """The store could not be asked (before the record was sent): nothing was written."""

    def __init__(self, error: ConnectorError) -> None:
        super().__init__(f"{error.message} Nothing was written; try again shortly.",
                         source=error.source, writeOutcome="NOT_WRITTEN")
        self.code = error.code


class WriteUnknownError(KildeError):
    """The store did not answer as it should; whether it recorded is not known."""

    def __init__(self, error: ConnectorError) -> None:
        super().__init__(
            f"{error.message} The record may or may not have been written: repeat the "
            "mutation with the same Idempotency-Key or clientIdentifier (it cannot make a "
            "second record).", source=error.source, writeOutcome="UNKNOWN")
        self.code = error.code


def idempotency_key(value: str | None) -> str | None:
    """The `Idempotency-Key` header's value, checked (BAD_USER_INPUT names the header)."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_KEY_CHARS or not value.isascii() or not value.isprintable():
        raise BadUserInputError(f"The Idempotency-Key header must be 1-{MAX_KEY_CHARS} "
                                "printable ASCII characters.", header="Idempotency-Key")
    return value


def _fingerprint_parts(mutation: str, nin: str, municipality: str, draft: Draft,
                       client_identifier: str | None) -> tuple[str, ...]:
    body = orjson.dumps(draft, default=str, option=orjson.OPT_SORT_KEYS)
    return (mutation, nin, municipality, client_identifier or "",
            hashlib.sha256(body).hexdigest())


def _requester(principal: Principal) -> Requester:
    return Requester(hpr_number=principal.hpr_number, role_code=principal.profession or None,
                     orgnr=principal.legal_entity, point_of_care=principal.point_of_care,
                     purpose_of_use=principal.purpose_of_use.value if principal.purpose_of_use
                     else "TREAT")


def writers_of(registry: Any) -> dict[str, Writer]:
    """The enabled connectors that can write, by name, found behind the read wrappers."""
    found = {}
    for entry in registry:
        writer = writer_of(entry.connector)
        if writer is not None:
            found[writer.name] = writer
    return found


def choose_writer(writers: Mapping[str, Writer], category: Any) -> Writer | None:
    return next((w for w in writers.values() if category in w.writes), None)


async def record(ctx: Context, *, mutation: str, nin: str, draft: Draft,
                 municipality: str | None, client_identifier: str | None) -> Written:
    """Write `draft` for patient `nin` (see the module docstring, steps 1-6)."""
    services, principal = ctx.services, ctx.principal
    category = draft.category
    target = municipality or principal.municipality or ""
    decision = decide_write(principal, nin, category.value, target, now=datetime.now(UTC),
                            rules=services.rules)
    if not decision.allowed:
        ctx.denials.append(Denial(nin, decision))
        raise ForbiddenError("You may not record this for this patient.",
                             reason=decision.reason)
    writer = choose_writer(services.writers, category)
    if writer is None:
        raise NoWriterError(f"No source configured here records {category.value!r}.",
                            category.value)

    def entry(stage: str, **fields: Any) -> WriteEntry:
        return WriteEntry(entry_id=str(uuid.uuid4()), principal=principal,
                          request_id=ctx.request_id, nin=nin, stage=stage,
                          reason=fields.pop("reason", None) or decision.reason,
                          category=category.value, municipality=target, source=writer.name,
                          **fields)

    client = principal.client_id or "unknown-client"
    key = ctx.idempotency_key
    idem: IdempotencyStore | None = services.idempotency
    fingerprint = ""
    if key is not None and idem is not None:
        fingerprint = idem.fingerprint(*_fingerprint_parts(mutation, nin, target, draft,
                                                           client_identifier))
        first = await idem.recall(principal.person_id, client, key)
        if first is not None:
            if first.fingerprint != fingerprint:
                raise BadUserInputError("This Idempotency-Key was used for a different write; "
                                        "use a new key for a new record.",
                                        header="Idempotency-Key")
            await _audit(ctx, entry(WriteStage.WRITTEN, record_id=first.item.provenance.record_id,
                                    attempt_id=first.attempt_id, replayed=True), unknown=True)
            return first.item

    identifier = _identifier(client, client_identifier, key, principal, idem)
    attempt = entry(WriteStage.ATTEMPTED)
    await _audit(ctx, attempt, unknown=False)
    request = WriteRequest(patient_nin=nin, municipality=target, draft=draft,
                           identifier=identifier, requester=_requester(principal),
                           request_id=ctx.request_id,
                           timeout=max(ctx.remaining(), MIN_WRITE_SECONDS),
                           credentials=ctx.credentials)
    try:
        result: WriteResult = await writer.write(request)
    except UpstreamRejectedError as exc:
        await _audit(ctx, entry(WriteStage.REJECTED, attempt_id=attempt.entry_id,
                                reason=exc.code), unknown=False)
        raise WriteRejectedError(exc.message, source=exc.source, issues=list(exc.issues),
                                    writeOutcome="NOT_WRITTEN") from None
    except (ConnectorError, TimeoutError) as exc:
        error = exc if isinstance(exc, ConnectorError) else timed_out(writer.name)
        if error.sent is False:  # failed before the record left Kilde: not written
            await _audit(ctx, entry(WriteStage.FAILED, attempt_id=attempt.entry_id,
                                    reason=error.code), unknown=False)
            raise WriteNotSentError(error) from None
        await _audit(ctx, entry(WriteStage.UNKNOWN, attempt_id=attempt.entry_id,
                                reason=error.code), unknown=True)
        raise WriteUnknownError(error) from None
    await _audit(ctx, entry(WriteStage.WRITTEN, record_id=result.item.provenance.record_id,
                            attempt_id=attempt.entry_id), unknown=True)
    if key is not None and idem is not None:
        await idem.remember(principal.person_id, client, key,
                            Remembered(fingerprint, attempt.entry_id, result.item, result.created))
    await _after(ctx, nin, writer.name, category.value)
    return result.item


def _identifier(client: str, given: str | None, key: str | None, principal: Principal,
                idem: IdempotencyStore | None) -> tuple[str, str]:
    """(system, value) of the record's business identifier: the client's own id; else one
    derived from its Idempotency-Key; else a new one (that write is not repeatable)."""
    system = RECORD_ID_SYSTEM + quote(client, safe="")
    if given is not None:
        return system, given
    if key is not None and idem is not None:
        return system, idem.record_identifier(principal.person_id, client, key)
    return system, "u-" + uuid.uuid4().hex


async def _audit(ctx: Context, entry: WriteEntry, *, unknown: bool) -> None:
    """Write `entry` to the audit trail; AUDIT_UNAVAILABLE if it cannot be (`unknown`: the
    store may have been called, so the write's outcome is UNKNOWN, else NOT_WRITTEN)."""
    audit = ctx.services.write_audit
    try:
        if audit is None:
            raise AuditUnavailableError("No audit trail is configured for writes.")
        await audit(entry)
    except AuditUnavailableError:
        log.error("audit write failed for a %s write (%s)", entry.source, entry.stage,
                  extra={"request_id": ctx.request_id})
        if unknown:
            raise AuditUnavailableError(
                "The write's outcome could not be recorded in the audit trail, so it is not "
                "reported as done: repeat it with the same Idempotency-Key or "
                "clientIdentifier (it cannot make a second record).",
                writeOutcome="UNKNOWN") from None
        raise AuditUnavailableError("The write could not be recorded in the audit trail, so "
                                    "nothing was sent to the store; try again shortly.",
                                    writeOutcome="NOT_WRITTEN") from None


async def _after(ctx: Context, nin: str, source: str, category: str) -> None:
    """Evict the patient's cache entries for the source, then publish a change event."""
    evict = ctx.services.evict
    if evict is not None:
        try:
            await evict(source, nin)
        except CacheUnavailableError:
            log.warning("cache eviction after a write failed; entries expire within their TTL")
    changes = getattr(ctx.services, "changes", None)
    if changes is not None:
        await changes.publish(nin=nin, source=source, categories=(category,), origin="kilde")
