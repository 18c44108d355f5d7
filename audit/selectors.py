"""Reading the audit log: chain verification."""

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import groupby

from audit.models import AuditChain, AuditEvent
from audit.services import event_seal


class BreakKind(StrEnum):
    DELETED = "deleted"
    RELINKED = "relinked"
    EDITED = "edited"
    TRUNCATED = "truncated"
    HEAD_MISSING = "head_missing"


@dataclass(frozen=True)
class ChainBreak:
    chain: str
    seq: int
    event_id: int | None
    problem: str
    kind: BreakKind

    def __str__(self) -> str:
        row = f"event {self.event_id}" if self.event_id is not None else "a missing event"
        return f"chain {self.chain!r} broken at seq {self.seq} ({row}): {self.problem}"


def _chain_break(key: str, events: Iterator[AuditEvent], head: tuple[int, str] | None) -> ChainBreak | None:
    """The first break in one chain's events (given in seq order), checked against its head row."""
    expected_seq = 1
    prev_hash = ""
    for event in events:
        if event.seq != expected_seq:
            return ChainBreak(
                key,
                expected_seq,
                event.pk,
                f"expected seq {expected_seq}, found {event.seq} (deleted)",
                BreakKind.DELETED,
            )
        if event.prev_hash != prev_hash:
            return ChainBreak(
                key, event.seq, event.pk, "previous-hash link does not match (reordered or deleted)", BreakKind.RELINKED
            )
        if event.hash != event_seal(event):
            return ChainBreak(key, event.seq, event.pk, "seal does not match the row (edited)", BreakKind.EDITED)
        prev_hash = event.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if head is None:
        return ChainBreak(key, last_seq, None, "the chain's head row is missing (deleted)", BreakKind.HEAD_MISSING)
    head_seq, head_hash = head
    if last_seq != head_seq or prev_hash != head_hash:
        return ChainBreak(
            key,
            last_seq + 1,
            None,
            f"chain head says {head_seq} events, found {last_seq} (truncated)",
            BreakKind.TRUNCATED,
        )
    return None


def audit_chain_breaks(chain: str | None = None) -> Iterator[ChainBreak]:
    """The first break of every damaged chain (or of one chain).

    One ordered pass over the log (the ``(chain, seq)`` unique index serves it), however many
    chains there are.
    """
    heads_qs = AuditChain.objects.all()
    events_qs = AuditEvent.objects.order_by("chain", "seq")
    if chain is not None:
        heads_qs = heads_qs.filter(key=chain)
        events_qs = events_qs.filter(chain=chain)
    heads = {c.key: (c.last_seq, c.last_hash) for c in heads_qs}
    seen: set[str] = set()
    for key, events in groupby(events_qs.iterator(chunk_size=2000), key=lambda e: e.chain):
        seen.add(key)
        if found := _chain_break(key, events, heads.get(key)):
            yield found
    for key in sorted(heads.keys() - seen):
        # A head that counts events none of which exist: the whole chain was deleted.
        if found := _chain_break(key, iter(()), heads[key]):
            yield found
