"""Reading the audit log: chain verification."""

from collections.abc import Iterator
from dataclasses import dataclass

from audit.models import AuditChain, AuditEvent
from audit.services import event_seal


@dataclass(frozen=True)
class ChainBreak:
    chain: str
    seq: int
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        row = f"event {self.event_id}" if self.event_id is not None else "a missing event"
        return f"chain {self.chain!r} broken at seq {self.seq} ({row}): {self.problem}"


def _chain_breaks(key: str, head_seq: int | None, head_hash: str | None) -> Iterator[ChainBreak]:
    expected_seq = 1
    prev_hash = ""
    for event in AuditEvent.objects.filter(chain=key).order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            yield ChainBreak(key, expected_seq, event.pk, f"expected seq {expected_seq}, found {event.seq} (deleted)")
            return
        if event.prev_hash != prev_hash:
            yield ChainBreak(key, event.seq, event.pk, "previous-hash link does not match (reordered or deleted)")
            return
        if event.hash != event_seal(event):
            yield ChainBreak(key, event.seq, event.pk, "seal does not match the row (edited)")
            return
        prev_hash = event.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if head_seq is not None and (last_seq != head_seq or prev_hash != head_hash):
        yield ChainBreak(key, last_seq + 1, None, f"chain head says {head_seq} events, found {last_seq} (truncated)")


def audit_chain_breaks(chain: str | None = None) -> Iterator[ChainBreak]:
    """The first break of every damaged chain (or of one chain), in chain order."""
    heads = {c.key: (c.last_seq, c.last_hash) for c in AuditChain.objects.all()}
    keys = set(heads) | set(AuditEvent.objects.values_list("chain", flat=True).distinct())
    if chain is not None:
        keys &= {chain}
    for key in sorted(keys):
        head_seq, head_hash = heads.get(key, (None, None))
        yield from _chain_breaks(key, head_seq, head_hash)
