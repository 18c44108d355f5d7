"""The outbox: events for partners, written in the caller's transaction."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from consents.models import DeliveryStatus, EventType, OutboxEvent, PartnerSubject
from portal.models import User


@transaction.atomic
def outbox_subject_erasure(*, user: User, request_id: str, due_at: datetime) -> list[OutboxEvent]:
    """Ask every partner that ever received this consumer to erase them: one event per partner."""
    events = []
    now = timezone.now()
    for subject in PartnerSubject.objects.filter(user=user).select_related("partner").order_by("partner__name"):
        event = OutboxEvent(
            partner=subject.partner, subject=subject, event_type=EventType.SUBJECT_ERASURE_REQUESTED, created_at=now
        )
        event.payload = {
            "id": str(event.id),
            "type": EventType.SUBJECT_ERASURE_REQUESTED.value,
            "timestamp": now.isoformat(),
            "data": {"subject_id": subject.subject_id, "request_id": request_id, "due_at": due_at.isoformat()},
        }
        event.status = DeliveryStatus.PENDING if subject.partner.webhook_url else DeliveryStatus.NO_ENDPOINT
        event.save()
        events.append(event)
    return events
