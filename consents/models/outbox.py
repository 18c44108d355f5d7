"""The transactional outbox: one event per (partner, change), delivered by webhook and served by the feed."""

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consents.models.consent import Consent
from consents.models.partners import Partner, PartnerSubject


class EventType(models.TextChoices):
    CONSENT_GRANTED = "consent.granted", _("Consent granted")
    CONSENT_REVOKED = "consent.revoked", _("Consent withdrawn")
    CONSENT_EXPIRED = "consent.expired", _("Consent expired")
    CONSENT_RECONSENT_REQUIRED = "consent.reconsent_required", _("Consent needs renewing")
    SUBJECT_ERASURE_REQUESTED = "subject.erasure_requested", _("Erasure requested")
    WEBHOOK_TEST = "webhook.test", _("Test event")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RETRYING = "retrying", _("Retrying")
    DELIVERED = "delivered", _("Delivered")
    DEAD = "dead", _("Dead letter")
    NO_ENDPOINT = "no_endpoint", _("Feed only (no webhook)")


class AckStatus(models.TextChoices):
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")


class OutboxEvent(models.Model):
    """Written in the same transaction as the change it announces, so no change goes untold."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, verbose_name=_("partner"), on_delete=models.CASCADE, related_name="events")
    # Empty only for test events, which concern no consumer.
    subject = models.ForeignKey(
        PartnerSubject,
        verbose_name=_("subject"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
    )
    consent = models.ForeignKey(
        Consent, verbose_name=_("consent"), on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    event_type = models.CharField(_("type"), max_length=40, choices=EventType.choices)
    payload = models.JSONField(_("payload"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    feed_seq = models.BigIntegerField(_("feed position"), null=True, blank=True, unique=True, editable=False)

    status = models.CharField(_("delivery"), max_length=16, choices=DeliveryStatus.choices)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    # Set while an attempt is in flight (to its claim's lease end), so the number of attempts each
    # partner has in flight can be capped: a slow partner must not hold every delivery slot.
    sending_until = models.DateTimeField(_("sending until"), null=True, blank=True, editable=False)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)

    acked_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    ack_status = models.CharField(_("acknowledgement"), max_length=16, choices=AckStatus.choices, blank=True)
    ack_detail = models.CharField(_("acknowledgement detail"), max_length=1000, blank=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbox_due_for_delivery"),
            models.Index(fields=["partner", "feed_seq"], name="outbox_feed_by_partner"),
            models.Index(fields=["consent", "partner", "-created_at"], name="outbox_latest_per_consent"),
            # The acknowledgement-latency figure of /metrics reads the last day's acknowledgements.
            models.Index(fields=["acked_at"], name="outbox_acked", condition=models.Q(acked_at__isnull=False)),
            models.Index(
                fields=["partner", "sending_until"],
                name="outbox_in_flight_by_partner",
                condition=models.Q(sending_until__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.partner} ({self.id})"


class DeliveryOutcome(models.TextChoices):
    DELIVERED = "delivered", _("Delivered")
    RETRY = "retry", _("Will retry")
    GONE = "gone", _("Endpoint gone (410)")
    DEAD = "dead", _("Gave up")
    REFUSED = "refused", _("Refused before sending")


class DeliveryAttempt(models.Model):
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="delivery_attempts")
    attempted_at = models.DateTimeField(_("attempted at"), default=timezone.now)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=DeliveryOutcome.choices)

    class Meta:
        ordering = ["-attempted_at"]
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")

    def __str__(self) -> str:
        return f"{self.event_id} @ {self.attempted_at:%Y-%m-%d %H:%M:%S}: {self.outcome}"
