"""The audit hash chain: how rows are linked when written and checked when verified (pure).

Sits under both audit stores. Each stored row carries `seq` (1, 2, 3, ...), `prev_hash` (the
previous row's hash; 32 zero bytes before the first row) and `hash = sha256(prev_hash +
canonical_bytes(event))`. The store also keeps the chain's `head` (last seq and hash, updated in
the same transaction as every write, so removing the newest rows is detected too) and an
`anchor`: the seq and hash of the last row a retention purge deleted, where verification starts.

>>> first = link(GENESIS, b"{}")
>>> rows = [ChainRow(seq=1, prev_hash=GENESIS, hash=first, body=b"{}")]
>>> verify_rows(rows, Anchor(0, GENESIS), head=Anchor(1, first), check_content=False).ok
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.audit.events import canonical_bytes, event_from_json, format_time

GENESIS = bytes(32)
MAX_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class Anchor:
    """A point in the chain: a seq and the hash of the row with that seq (0 and GENESIS at start)."""

    seq: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One stored row as read back for verification.

    `event_id`, `recorded_at` (the stored-event time string) and `patient_nin` are the row's
    indexed columns, which queries filter on; when given they must agree with the hashed body.
    """

    seq: int
    prev_hash: bytes
    hash: bytes
    body: bytes
    event_id: str | None = None
    recorded_at: str | None = None
    patient_nin: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking a trail: `ok`, rows `checked`, and one sentence per problem."""

    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)


def link(prev_hash: bytes, body: bytes) -> bytes:
    """The hash of a row whose predecessor's hash is `prev_hash` and whose content is `body`."""
    return hashlib.sha256(prev_hash + body).digest()


def link_batch(head: Anchor, bodies: Iterable[bytes]) -> list[tuple[int, bytes, bytes]]:
    """(seq, prev_hash, hash) for each body appended after `head`, in order."""
    out = []
    seq, prev = head.seq, head.hash
    for body in bodies:
        seq += 1
        current = link(prev, body)
        out.append((seq, prev, current))
        prev = current
    return out


class ChainVerifier:
    """Checks rows fed in ascending seq order, so a long trail can be streamed page by page."""

    def __init__(self, anchor: Anchor, *, check_content: bool = True) -> None:
        self.checked = 0
        self._problems: list[str] = []
        self._dropped = 0
        self._next_seq = anchor.seq + 1
        self._prev = anchor.hash
        self._check_content = check_content

    def _problem(self, text: str) -> None:
        if len(self._problems) < MAX_PROBLEMS:
            self._problems.append(text)
        else:
            self._dropped += 1

    def feed(self, row: ChainRow) -> None:
        self.checked += 1
        if row.seq < self._next_seq:
            self._problem(
                f"seq {row.seq}: appears after seq {self._next_seq - 1} (rows reordered or duplicated)."
            )
        elif row.seq > self._next_seq:
            missing = f"{self._next_seq}..{row.seq - 1}" if row.seq > self._next_seq + 1 else row.seq - 1
            self._problem(f"seq {missing}: missing (rows removed).")
        elif row.prev_hash != self._prev:
            self._problem(
                f"seq {row.seq}: prev_hash does not match the preceding row (rows removed, "
                "reordered or rewritten)."
            )
        if link(row.prev_hash, row.body) != row.hash:
            self._problem(f"seq {row.seq}: hash does not match the row's content (row altered).")
        if self._check_content:
            self._check_body(row)
        self._next_seq = max(self._next_seq, row.seq + 1)
        self._prev = row.hash

    def _check_body(self, row: ChainRow) -> None:
        try:
            event = event_from_json(row.body)
        except ValueError:
            self._problem(f"seq {row.seq}: content is not a valid audit event (row altered).")
            return
        if canonical_bytes(event) != row.body:
            self._problem(f"seq {row.seq}: content is not in canonical form (row altered).")
        indexed = (row.event_id, row.recorded_at, row.patient_nin)
        hashed = (event.event_id, format_time(event.recorded_at), event.patient_nin)
        if indexed != hashed:
            self._problem(
                f"seq {row.seq}: indexed columns differ from the hashed content (row altered)."
            )

    def finish(self, head: Anchor | None) -> VerifyResult:
        last = self._next_seq - 1
        if head is not None:
            if head.seq != last:
                self._problem(
                    f"the chain head records seq {head.seq} but the last row is seq {last} "
                    "(newest rows removed, or the head was altered)."
                )
            elif head.hash != self._prev:
                self._problem("the chain head's hash differs from the last row's hash.")
        problems = list(self._problems)
        if self._dropped:
            problems.append(f"... and {self._dropped} more problems.")
        return VerifyResult(ok=not problems, checked=self.checked, problems=problems)


def verify_rows(
    rows: Iterable[ChainRow],
    anchor: Anchor,
    *,
    head: Anchor | None = None,
    check_content: bool = True,
) -> VerifyResult:
    """Check `rows` (ascending seq) continue the chain from `anchor` and end at `head`.

    Detects an altered row (its hash no longer matches its content, or its indexed columns
    differ from the hashed event), removed rows (a seq gap, a broken prev_hash link, or a head
    beyond the last row) and reordered rows (seq out of order, or links that no longer join).
    """
    verifier = ChainVerifier(anchor, check_content=check_content)
    for row in rows:
        verifier.feed(row)
    return verifier.finish(head)
