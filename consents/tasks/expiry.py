"""Scheduled work on consents (flow 7): expire time-bound consents, remind consumers before."""

import logging

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from consents.models import AppGrant, Consent, ConsentStatus
from consents.notifications import expiry_reminder_send
from consents.services.apps import app_grant_expire, app_grant_unfinished_end, unfinished_before
from consents.services.consents import consent_expire, consent_reminder_mark
from portal.emails import EmailError

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
REMINDER_LOCK = "consents:remind-expiring"


# The names keep the module path the tasks had before ``consents.tasks`` became a package, so queued
# messages and beat entries still find them.
@shared_task(name="consents.tasks.consents_expire_due")
def consents_expire_due() -> int:
    """Expire every consent whose time has passed, each in its own transaction; the number expired.

    Safe to run twice or side by side: ``consent_expire`` re-checks each row under its lock, so
    a consent expires (and is announced) once. One row that fails is logged and does not hold up
    the others; it is tried again on the next run.
    """
    expired = 0
    last_pk = 0
    while batch := list(
        Consent.objects.due_to_expire().filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:BATCH_SIZE]
    ):
        for consent_id in batch:
            try:
                if consent_expire(consent_id=consent_id) is not None:
                    expired += 1
            except Exception:
                logger.exception("could not expire consent %s; will retry on the next run", consent_id)
        last_pk = batch[-1]
    return expired


@shared_task(name="consents.tasks.consents_remind_expiring")
def consents_remind_expiring() -> int:
    """Email each consumer whose time-bound consent ends soon, once per consent; the number sent.

    The email goes out before the consent is marked, outside any transaction: a mail server that
    fails leaves the consent unmarked for the next run. A cache lock keeps two runs from sending
    the same reminder side by side.
    """
    if not cache.add(REMINDER_LOCK, "1", timeout=3600):
        logger.info("expiry reminders already running elsewhere; skipping this run")
        return 0
    sent = 0
    try:
        for consent_id in list(Consent.objects.reminder_due().order_by("expires_at").values_list("pk", flat=True)):
            consent = Consent.objects.reminder_due().select_related("user", "purpose").filter(pk=consent_id).first()
            if consent is None:
                continue
            try:
                expiry_reminder_send(consent)
            except EmailError:
                logger.exception("could not send the expiry reminder for consent %s", consent_id)
                continue
            consent_reminder_mark(consent_id=consent_id)
            sent += 1
    finally:
        cache.delete(REMINDER_LOCK)
    return sent


@shared_task(name="consents.tasks.app_grants_expire_due")
def app_grants_expire_due() -> int:
    """End every connected-app grant whose time has passed or whose app never finished connecting.

    Returns the number ended. At most ``BATCH_SIZE`` of each a run, oldest first; the rest on the
    next run. Safe to run twice or side by side: ``app_grant_revoke`` re-checks each grant under
    its lock.
    """
    running = AppGrant.objects.filter(status=ConsentStatus.GRANTED)
    expired = running.filter(expires_at__lte=timezone.now()).order_by("expires_at")
    unfinished = running.filter(connected_at__isnull=True, granted_at__lte=unfinished_before()).order_by("granted_at")
    ended = 0
    for due, end in ((expired, app_grant_expire), (unfinished, app_grant_unfinished_end)):
        for grant_id in list(due.values_list("pk", flat=True)[:BATCH_SIZE]):
            try:
                if end(grant_id=grant_id) is not None:
                    ended += 1
            except Exception:
                logger.exception("could not end app grant %s; will retry on the next run", grant_id)
    return ended
