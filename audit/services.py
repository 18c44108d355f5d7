"""Writing to the audit log. Every service that changes state calls ``event_record`` in its transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import ActorKind, AuditChain, AuditEvent, AuditNote

if TYPE_CHECKING:
    from portal.models import User

GLOBAL_CHAIN = "global"
# The key in a sealed row's data that commits to its note (see ``AuditNote``).
NOTE_DIGEST = "note_sha256"


@dataclass(frozen=True)
class Actor:
    """Who did something: a consumer, a staff member, a partner or the system itself."""

    kind: ActorKind
    id: str = ""
    label: str = ""

    @classmethod
    def consumer(cls, user: User) -> Actor:
        return cls(ActorKind.CONSUMER, str(user.pk), "")

    @classmethod
    def staff(cls, user: User) -> Actor:
        return cls(ActorKind.STAFF, str(user.pk), user.email)

    @classmethod
    def partner(cls, partner: models.Model) -> Actor:
        return cls(ActorKind.PARTNER, str(partner.pk), str(partner))

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(ActorKind.SYSTEM, "", label)

    @classmethod
    def for_user(cls, user: User) -> Actor:
        return cls.staff(user) if user.is_staff else cls.consumer(user)


def _subject_chain_key(subject_id: int) -> str:
    return f"subject:{subject_id}"


def chain_key(subject: User | None) -> str:
    return _subject_chain_key(subject.pk) if subject is not None else GLOBAL_CHAIN


def canonical_json(event: AuditEvent) -> bytes:
    """The bytes the hash covers: every meaningful column, keys sorted, no whitespace."""
    body = {
        "chain": event.chain,
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "actor_kind": event.actor_kind,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "subject_id": event.chain.removeprefix("subject:") if event.chain != GLOBAL_CHAIN else None,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "data": event.data,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def event_seal(event: AuditEvent) -> str:
    """HMAC-SHA256 over the canonical row with the server-held key."""
    return hmac.new(settings.AUDIT_HMAC_KEY.encode(), canonical_json(event), hashlib.sha256).hexdigest()


def note_digest(*, salt: str, text: str) -> str:
    """What a sealed row commits to instead of its note's text; the random salt makes guesses uncheckable."""
    return hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()


def _chain_lock(key: str) -> AuditChain:
    try:
        return AuditChain.objects.select_for_update().get(key=key)
    except AuditChain.DoesNotExist:
        try:
            with transaction.atomic():
                AuditChain.objects.create(key=key)
        except IntegrityError:
            pass  # another writer created it first; lock theirs
        return AuditChain.objects.select_for_update().get(key=key)


def subject_lock(subject: User | None) -> None:
    """Hold the subject's chain head until the caller's transaction ends.

    Services that read a consumer's state, decide, and then write take this lock first, so two
    concurrent changes about the same consumer run one after the other while changes about
    other consumers do not wait. ``event_record`` takes the same lock again (a no-op), so the
    order is always: this lock, then the rows it protects.
    """
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("subject_lock() must be called inside a transaction")
    _chain_lock(chain_key(subject))


def _event_append(
    chain: AuditChain,
    *,
    actor: Actor,
    subject: User | None,
    action: AuditAction,
    target: models.Model | None,
    data: dict[str, Any],
    at: datetime,
) -> AuditEvent:
    """The sealed next event of ``chain`` (not saved); moves the chain's head to it in memory."""
    event = AuditEvent(
        chain=chain.key,
        seq=chain.last_seq + 1,
        occurred_at=at,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label,
        subject=subject,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        data=json.loads(json.dumps(data, default=str)),
        prev_hash=chain.last_hash,
    )
    event.hash = event_seal(event)
    chain.last_seq = event.seq
    chain.last_hash = event.hash
    return event


@transaction.atomic
def event_record(
    *,
    actor: Actor,
    subject: User | None,
    action: AuditAction,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
    note: str = "",
) -> AuditEvent:
    """Append one event to the subject's chain (or the global one) in the caller's transaction.

    Free text someone typed (a partner's acknowledgement, a staff note) goes in ``note``, never in
    ``data``: it is stored beside the sealed row so that it can be erased (``audit_notes_scrub``).
    """
    chain = _chain_lock(chain_key(subject))
    data = dict(data or {})
    salt = secrets.token_hex(16) if note else ""
    if note:
        data[NOTE_DIGEST] = note_digest(salt=salt, text=note)
    event = _event_append(
        chain, actor=actor, subject=subject, action=action, target=target, data=data, at=timezone.now()
    )
    event.save()
    if note:
        AuditNote.objects.create(event=event, text=note, salt=salt)
    chain.save(update_fields=["last_seq", "last_hash"])
    return event


@dataclass(frozen=True)
class EventEntry:
    """One event for ``events_record``: about whom, what happened, to what, with which facts."""

    subject: User
    action: AuditAction
    target: models.Model
    data: dict[str, Any]


def subjects_lock(subject_ids: Iterable[int]) -> dict[str, AuditChain]:
    """Hold the chain heads of many consumers (``subject_lock`` for a batch), keyed by chain key.

    They are locked in key order, so two batches never wait for each other in a circle; a
    consumer's own change takes one of them, so it simply waits for the batch (or the batch for it).
    """
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("subjects_lock() must be called inside a transaction")
    keys = sorted({_subject_chain_key(pk) for pk in subject_ids})
    chains = {c.key: c for c in AuditChain.objects.select_for_update().filter(key__in=keys).order_by("key")}
    missing = [key for key in keys if key not in chains]
    if missing:
        # First events of these consumers; a writer that created one meanwhile wins, and we lock theirs.
        AuditChain.objects.bulk_create([AuditChain(key=key) for key in missing], ignore_conflicts=True)
        created = AuditChain.objects.select_for_update().filter(key__in=missing).order_by("key")
        chains.update({c.key: c for c in created})
    return chains


@transaction.atomic
def events_record(*, actor: Actor, entries: Sequence[EventEntry]) -> list[AuditEvent]:
    """Append many events about consumers at once, in order: what ``event_record`` does, in bulk.

    Each chain's events are sealed in the order given while its head is locked (once for the whole
    batch), then every event is inserted in one statement and every head moved in one more.
    """
    chains = subjects_lock(entry.subject.pk for entry in entries)
    at = timezone.now()
    events = [
        _event_append(
            chains[chain_key(entry.subject)],
            actor=actor,
            subject=entry.subject,
            action=entry.action,
            target=entry.target,
            data=dict(entry.data),
            at=at,
        )
        for entry in entries
    ]
    AuditEvent.objects.bulk_create(events)
    _chain_heads_save(list(chains.values()))
    return events


def _chain_heads_save(chains: list[AuditChain]) -> None:
    """Move many chain heads in one statement.

    ``bulk_update`` would do it too, but builds a ``CASE`` per row and column in Python, which cost
    more than everything else in a batch; an ``UPDATE ... FROM`` a ``VALUES`` list (PostgreSQL, SQLite
    3.33+) is one short statement.
    """
    table = connection.ops.quote_name(AuditChain._meta.db_table)
    rows = ", ".join(["(%s, CAST(%s AS bigint), %s)"] * len(chains))
    params = [value for chain in chains for value in (chain.key, chain.last_seq, chain.last_hash)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH heads (key, last_seq, last_hash) AS (VALUES {rows})"  # noqa: S608
            f" UPDATE {table} SET last_seq = heads.last_seq, last_hash = heads.last_hash"
            f" FROM heads WHERE {table}.key = heads.key",
            params,
        )


@transaction.atomic
def audit_notes_scrub(*, subject: User) -> int:
    """Erase the free text of every audit event about ``subject``; the events and their seals stay intact."""
    return AuditNote.objects.filter(event__subject=subject, scrubbed_at__isnull=True).update(
        text="", salt="", scrubbed_at=timezone.now()
    )
