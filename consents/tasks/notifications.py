"""Emails the consumer chose to get: material notice changes, flagged accesses, the monthly digest.

Each email is claimed in ``audit.NotificationSent`` before it goes (one per consumer and notice
version, flagged access, or month), so a task that runs twice, or twice at once, sends it once.
"""

import logging
from datetime import datetime, timedelta

from celery import Task, shared_task
from django.db.models import Count, Q
from django.utils import timezone

from audit.models import AccessEvent, AccessVerdict, NotificationKind, NotificationSent
from audit.notifications import notification_claim, notification_last_key, notification_release
from consents.models import Consent, ConsentStatus, Partner, PurposeVersion
from consents.notifications import (
    PartnerMonth,
    flagged_access_send,
    material_change_send,
    monthly_digest_send,
)
from portal.emails import EmailError
from portal.models import User
from portal.timezones import user_zone

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
FLAGGED = (AccessVerdict.NO_CONSENT, AccessVerdict.OUTSIDE_SHARING)
# An email lists at most this many flagged accesses and says how many more there were.
FLAGGED_LISTED = 20
# Only recent flagged accesses are news: turning the setting on does not mail the whole history.
FLAGGED_LOOKBACK = timedelta(days=1)
RETRY_DELAY = 300


@shared_task(name="consents.tasks.material_change_notify", bind=True, max_retries=12)
def material_change_notify(self: Task, version_id: int) -> int:
    """Email each consumer asked to decide again by this notice version, once; the number sent.

    Only consumers who keep ``notify_material_changes`` on; none once a newer version replaced this
    one (its own task tells them). Failed sends are retried later; the sent ones are not repeated.
    """
    version = PurposeVersion.objects.select_related("purpose").filter(pk=version_id).first()
    if version is None or version.purpose.current_version_id != version.pk:
        return 0
    asked = Consent.objects.filter(purpose=version.purpose, status=ConsentStatus.RECONSENT_REQUIRED)
    users = User.objects.filter(is_active=True, notify_material_changes=True, pk__in=asked.values("user_id"))
    sent = failed = 0
    last_pk = 0
    while batch := list(users.filter(pk__gt=last_pk).order_by("pk")[:BATCH_SIZE]):
        last_pk = batch[-1].pk
        for user in batch:
            key = str(version.pk)
            if not notification_claim(user_id=user.pk, kind=NotificationKind.MATERIAL_CHANGE, key=key):
                continue
            try:
                material_change_send(user=user, version=version)
            except EmailError:
                logger.exception("could not email user %s about notice version %s", user.pk, version.pk)
                notification_release(user_id=user.pk, kind=NotificationKind.MATERIAL_CHANGE, key=key)
                failed += 1
                continue
            sent += 1
    if failed:
        raise self.retry(countdown=RETRY_DELAY)
    return sent


@shared_task(name="consents.tasks.flagged_access_notify", bind=True, max_retries=12)
def flagged_access_notify(self: Task, user_id: int) -> int:
    """One email about every flagged access to this consumer's data not told yet; the number covered.

    Queued a few minutes after a flagged access (``flagged_access_notify_schedule``), so a burst
    becomes one email. Nothing for consumers who turned ``notify_flagged_access`` off.
    """
    user = User.objects.filter(pk=user_id, is_active=True, notify_flagged_access=True).first()
    if user is None:
        return 0
    told_up_to = int(notification_last_key(user_id=user.pk, kind=NotificationKind.FLAGGED_ACCESS) or 0)
    events = AccessEvent.objects.filter(
        user=user, verdict__in=FLAGGED, pk__gt=told_up_to, received_at__gte=timezone.now() - FLAGGED_LOOKBACK
    ).order_by("pk")
    listed = list(events.select_related("partner", "purpose")[:FLAGGED_LISTED])
    if not listed:
        return 0
    total = events.count()
    key = str(events.values_list("pk", flat=True).last())
    if not notification_claim(user_id=user.pk, kind=NotificationKind.FLAGGED_ACCESS, key=key):
        return 0
    try:
        flagged_access_send(user=user, events=listed, total=total)
    except EmailError as error:
        notification_release(user_id=user.pk, kind=NotificationKind.FLAGGED_ACCESS, key=key)
        raise self.retry(countdown=RETRY_DELAY, exc=error) from error
    return total


def _previous_month(local_now: datetime) -> tuple[datetime, datetime]:
    """The month before ``local_now``'s, as [start, end) in ``local_now``'s zone."""
    zone = local_now.tzinfo
    end = datetime(local_now.year, local_now.month, 1, tzinfo=zone)
    before = end - timedelta(days=1)
    return datetime(before.year, before.month, 1, tzinfo=zone), end


def _first_of_month_somewhere(now: datetime) -> bool:
    """True while it is the 1st of a month in some time zone (UTC-12 to UTC+14)."""
    return any((now + timedelta(hours=hours)).day == 1 for hours in range(-12, 15))


@shared_task(name="consents.tasks.monthly_digests_send")
def monthly_digests_send() -> int:
    """Send last month's "who accessed your data" to each consumer who asked for it, once; the number sent.

    Beat runs this hourly; it works only while it is the 1st somewhere, and mails each consumer when
    it is the 1st in their own zone, about their previous month in that zone. A consumer whose email
    failed is tried again at the next run that day.
    """
    now = timezone.now()
    if not _first_of_month_somewhere(now):
        return 0
    users = User.objects.filter(is_active=True, monthly_digest=True)
    sent = 0
    last_pk = 0
    while batch := list(users.filter(pk__gt=last_pk).order_by("pk")[:BATCH_SIZE]):
        last_pk = batch[-1].pk
        done = set(
            NotificationSent.objects.filter(
                user_id__in=[user.pk for user in batch], kind=NotificationKind.MONTHLY_DIGEST
            ).values_list("user_id", "key")
        )
        for user in batch:
            local_now = now.astimezone(user_zone(user))
            if local_now.day != 1:
                continue
            start, end = _previous_month(local_now)
            key = f"{start:%Y-%m}"
            if (user.pk, key) in done or not notification_claim(
                user_id=user.pk, kind=NotificationKind.MONTHLY_DIGEST, key=key
            ):
                continue
            try:
                monthly_digest_send(user=user, month_start=start, rows=_month_by_partner(user, start, end))
            except EmailError:
                logger.exception("could not send user %s the digest of %s", user.pk, key)
                notification_release(user_id=user.pk, kind=NotificationKind.MONTHLY_DIGEST, key=key)
                continue
            sent += 1
    return sent


def _month_by_partner(user: User, start: datetime, end: datetime) -> list[PartnerMonth]:
    """Accesses per partner in [start, end), most first.

    Counted from the events rather than the daily rollups: those are UTC days, and the consumer's
    month begins at their own midnight. One grouped query on the (user, partner, time) index.
    """
    counts = list(
        AccessEvent.objects.filter(user=user, accessed_at__gte=start, accessed_at__lt=end)
        .values("partner_id")
        .annotate(events=Count("pk"), flagged=Count("pk", filter=Q(verdict__in=FLAGGED)))
        .order_by()
    )
    partners = Partner.objects.in_bulk([row["partner_id"] for row in counts])
    rows = [PartnerMonth(partners[row["partner_id"]], row["events"], row["flagged"]) for row in counts]
    return sorted(rows, key=lambda row: (-row.events, row.partner.name))
