"""Celery tasks that deliver outbox events to partners' webhooks, and the relay that backs them up.

The tasks take ids and are idempotent: the outbox row, not the broker, says what still has to be
sent, so a duplicate, late or redelivered task finds nothing to claim and does nothing.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.urls import NoReverseMatch, reverse

from consents.models import Partner
from consents.services.delivery import attempt_time_limits, outbox_event_send, outbox_events_send
from consents.services.outbox import outbox_due_requeue
from portal.emails import EmailError, send_mail, staff_recipients

logger = logging.getLogger(__name__)

SOFT_TIME_LIMIT, TIME_LIMIT = attempt_time_limits()


# The names keep the module path the tasks had before ``consents.tasks`` became a package, so queued
# messages and beat entries still find them. The time limits keep a live sender from outliving its
# claim (see ``consents.services.delivery``).
@shared_task(
    name="consents.tasks_delivery.outbox_event_deliver",
    ignore_result=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def outbox_event_deliver(event_id: str) -> str:
    """Make the next attempt of one outbox event if it is due, and record what happened."""
    return outbox_event_send(event_id=event_id)


@shared_task(
    name="consents.tasks_delivery.outbox_events_deliver",
    ignore_result=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def outbox_events_deliver(event_ids: list[str]) -> list[str]:
    """Make the next attempt of several due events of one partner in turn (the limits are the batch's)."""
    return outbox_events_send(event_ids=event_ids)


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
