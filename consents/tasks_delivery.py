"""Celery tasks that deliver outbox events to partners' webhooks, and the relay that backs them up.

The tasks take ids and are idempotent: the outbox row, not the broker, says what still has to be
sent, so a duplicate, late or redelivered task finds nothing to claim and does nothing.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from consents.delivery import (
    AttemptResult,
    outbox_attempt_record,
    outbox_due_requeue,
    outbox_event_claim,
)
from consents.models import DeliveryStatus, Partner
from consents.outbox import delivery_queue
from consents.webhooks import WebhookError, encode_body, webhook_send
from portal.emails import EmailError, send_mail, staff_recipients

logger = logging.getLogger(__name__)

# Retries due this soon are queued with a countdown right away; later ones are left to the relay,
# because long broker ETAs outlive Redis's visibility timeout and get delivered twice.
COUNTDOWN_MAX = timedelta(minutes=1)


@shared_task(name="consents.tasks_delivery.outbox_event_deliver", ignore_result=True)
def outbox_event_deliver(event_id: str) -> str:
    """Make the next attempt of one outbox event if it is due, and record what happened."""
    claim = outbox_event_claim(event_id=event_id)
    if claim is None:
        return "skipped"
    # The send happens outside any transaction: the claim above is already committed.
    try:
        response = webhook_send(
            url=claim.url, msg_id=str(claim.event_id), body=encode_body(claim.payload), secrets=claim.secrets
        )
        result = AttemptResult(
            status_code=response.status_code,
            duration_ms=response.duration_ms,
            error="" if response.ok else response.body_excerpt.strip(),
            retry_after=response.retry_after,
        )
    except WebhookError as exc:
        result = AttemptResult(status_code=None, duration_ms=exc.duration_ms, error=exc.message, refused=exc.refused)
    recorded = outbox_attempt_record(event_id=claim.event_id, attempt=claim.attempt, result=result)
    if recorded.status == DeliveryStatus.RETRYING and recorded.next_attempt_at is not None:
        wait = recorded.next_attempt_at - timezone.now()
        if wait <= COUNTDOWN_MAX:
            delivery_queue([event_id], countdown=max(0.0, wait.total_seconds()))
    return recorded.status


@shared_task(name="consents.tasks_delivery.outbox_relay", ignore_result=True)
def outbox_relay() -> int:
    """Re-queue outbox events that have waited too long (lost enqueue, retry due, dead worker). Bounded."""
    ids = outbox_due_requeue(limit=settings.OUTBOX_RELAY_BATCH)
    for event_id in ids:
        outbox_event_deliver.delay(str(event_id))
    if ids:
        logger.info("outbox relay re-queued %d events", len(ids))
    return len(ids)


@shared_task(
    name="consents.tasks_delivery.partner_webhook_disabled_notify",
    ignore_result=True,
    autoretry_for=(EmailError,),
    retry_backoff=30,
    max_retries=5,
)
def partner_webhook_disabled_notify(partner_id: int) -> int:
    """Email every active staff member that a partner's webhook answered 410 and was disabled."""
    partner = Partner.objects.filter(pk=partner_id, webhook_disabled_at__isnull=False).first()
    if partner is None:
        return 0  # re-enabled in the meantime, or gone
    recipients = staff_recipients()
    if not recipients:
        return 0
    try:
        path = reverse("admin:consents_outboxevent_changelist") + f"?partner__id__exact={partner.pk}"
    except NoReverseMatch:
        path = reverse("admin:index")
    context = {"partner": partner, "admin_url": settings.SITE_URL + path}
    send_mail("consents/email/webhook_disabled", to=recipients, context=context)
    return len(recipients)
