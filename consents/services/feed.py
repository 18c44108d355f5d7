"""The partner's pull feed and acknowledgements: feed positions for committed events, the partner's answers."""

import uuid

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.errors import DomainError
from consents.models import FeedSequencer, OutboxEvent, Partner
from consents.models.outbox import AckStatus

FEED_SEQUENCE_BATCH = 5_000


def outbox_feed_sequence() -> int:
    """Give committed outbox events without a feed position the next positions, oldest first.

    Runs under a lock on the sequencer row, so positions are handed out by one writer at a time
    and only to events whose transactions have committed: an event that commits late gets a
    later position instead of slipping behind a cursor that has already moved on. Returns the
    number of events sequenced. The check for work comes first and outside the transaction, so
    a feed read with nothing new does not take the write lock (on SQLite, the whole database's).
    """
    if not OutboxEvent.objects.filter(feed_seq__isnull=True).exists():
        return 0
    return _outbox_feed_sequence_locked()


@transaction.atomic
def _outbox_feed_sequence_locked() -> int:
    sequencer, _created = FeedSequencer.objects.select_for_update().get_or_create(id=FeedSequencer.SINGLETON_ID)
    pending = list(
        OutboxEvent.objects.filter(feed_seq__isnull=True).order_by("created_at", "id").only("id")[:FEED_SEQUENCE_BATCH]
    )
    for event in pending:
        sequencer.last_seq += 1
        event.feed_seq = sequencer.last_seq
    OutboxEvent.objects.bulk_update(pending, ["feed_seq"], batch_size=500)
    sequencer.save(update_fields=["last_seq"])
    return len(pending)


class EventAckConflict(DomainError):
    """The event was already acknowledged as processed; a different answer cannot replace that.

    Its own type because the API answers it with 409 Conflict, unlike a refused request.
    """


@transaction.atomic
def outbox_event_ack(*, partner: Partner, event_id: uuid.UUID | str, status: str, detail: str) -> OutboxEvent:
    """Record the partner's acknowledgement of one of its events.

    Repeating the same acknowledgement changes nothing. ``failed`` may later become
    ``processed`` (the partner retried and succeeded); ``processed`` is final, and anything else
    after it raises ``EventAckConflict``. Another partner's event is ``OutboxEvent.DoesNotExist``.
    """
    # Test events concern no consumer and are not acknowledged: they are "not found" here.
    events = OutboxEvent.objects.select_for_update(of=("self",)).select_related("subject__user")
    events = events.filter(subject__isnull=False)
    event = events.get(partner=partner, pk=event_id)
    assert event.subject is not None  # filtered above
    if event.ack_status == status:
        return event
    if event.ack_status == AckStatus.PROCESSED:
        raise EventAckConflict(str(_("This event was already acknowledged as processed.")), code="already_acknowledged")
    event.ack_status = status
    event.ack_detail = detail.strip()[:1000]
    event.acked_at = timezone.now()
    event.save(update_fields=["ack_status", "ack_detail", "acked_at"])
    event_record(
        actor=Actor.partner(partner),
        subject=event.subject.user,
        action=AuditAction.PARTNER_EVENT_ACKNOWLEDGED,
        target=event,
        data={"event_id": str(event.pk), "type": event.event_type, "status": status},
        # The partner's own words may name the person: beside the sealed row, erasable on deletion.
        note=event.ack_detail,
    )
    return event
