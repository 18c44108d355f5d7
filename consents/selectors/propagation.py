"""What the consumer sees of propagation: per partner, how far the latest change of a consent has got."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import models
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils.translation import gettext_lazy as _

from consents.models import Consent, DeliveryStatus, OutboxEvent, Partner
from consents.models.outbox import AckStatus


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Sending")
    DELIVERED = "delivered", _("Delivered")
    CONFIRMED = "confirmed", _("Confirmed")
    PARTNER_FAILED = "partner_failed", _("Partner reported a problem")
    FAILED = "failed", _("Not delivered")
    FEED_ONLY = "feed_only", _("Waiting for the partner to collect it")


@dataclass(frozen=True)
class PartnerDeliveryState:
    partner: Partner
    event_id: str
    event_type: str
    state: DeliveryState
    changed_at: datetime
    delivered_at: datetime | None
    acked_at: datetime | None

    @property
    def state_label(self) -> str:
        return str(self.state.label)

    @property
    def since(self) -> datetime:
        """When the state was reached: the acknowledgement, the delivery, or the change itself."""
        if self.state in {DeliveryState.CONFIRMED, DeliveryState.PARTNER_FAILED} and self.acked_at:
            return self.acked_at
        if self.state == DeliveryState.DELIVERED and self.delivered_at:
            return self.delivered_at
        return self.changed_at


def _state(event: OutboxEvent) -> DeliveryState:
    if event.ack_status == AckStatus.PROCESSED:
        return DeliveryState.CONFIRMED
    if event.ack_status == AckStatus.FAILED:
        return DeliveryState.PARTNER_FAILED
    return {
        DeliveryStatus.PENDING: DeliveryState.PENDING,
        DeliveryStatus.RETRYING: DeliveryState.PENDING,
        DeliveryStatus.DELIVERED: DeliveryState.DELIVERED,
        DeliveryStatus.DEAD: DeliveryState.FAILED,
        DeliveryStatus.NO_ENDPOINT: DeliveryState.FEED_ONLY,
    }[DeliveryStatus(event.status)]


def consent_delivery_states(consents: Iterable[Consent]) -> dict[int, list[PartnerDeliveryState]]:
    """For each consent, per partner, the state of the partner event for its latest change. One query.

    A partner acknowledgement (``processed``) makes it "confirmed" whether the event came by webhook
    or from the feed. Consents without events (no partner receives the purpose) are absent.
    """
    consent_ids = [c.pk for c in consents]
    if not consent_ids:
        return {}
    latest = (
        OutboxEvent.objects.filter(consent_id__in=consent_ids)
        .annotate(
            recency=Window(
                RowNumber(),
                partition_by=[F("consent_id"), F("partner_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(recency=1)
        .select_related("partner")
        .only(
            "id",
            "consent_id",
            "event_type",
            "status",
            "created_at",
            "delivered_at",
            "acked_at",
            "ack_status",
            "partner__id",
            "partner__name",
            "partner__slug",
        )
    )
    states: dict[int, list[PartnerDeliveryState]] = defaultdict(list)
    for event in latest:
        assert event.consent_id is not None
        states[event.consent_id].append(
            PartnerDeliveryState(
                partner=event.partner,
                event_id=str(event.pk),
                event_type=event.event_type,
                state=_state(event),
                changed_at=event.created_at,
                delivered_at=event.delivered_at,
                acked_at=event.acked_at,
            )
        )
    for items in states.values():
        items.sort(key=lambda s: s.partner.name.casefold())
    return dict(states)
