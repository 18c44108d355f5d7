"""Emails the consumer chose to get: material notice changes, flagged accesses, the monthly digest.

Each email is claimed in ``audit.NotificationSent`` before it goes (one per consumer and notice
version, flagged access, or month), so a task that runs twice, or twice at once, sends it once.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import Task, shared_task
from django.db.models import CharField, Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from audit.models import AccessEvent, AccessVerdict, NotificationKind, NotificationSent
from audit.notifications import (
    notification_claim,
    notification_claim_all,
    notification_keys_since,
    notification_release,
    notification_release_all,
)
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
# How often a run that lost a race for some flagged accesses looks again at what is left.
CLAIM_ATTEMPTS = 3
# A flagged access not told this long after it arrived is the sweep's (its own task runs after
# FLAGGED_ACCESS_NOTIFY_DELAY, 3 minutes by default), and the most consumers one sweep emails.
FLAGGED_SWEEP_GRACE = timedelta(minutes=10)
FLAGGED_SWEEP_MAX_USERS = 500
# Material changes older than this are not emailed any more by the sweep: the consumer sees the
# change on their next visit, and an email weeks late reads as news it is not.
MATERIAL_CHANGE_SWEEP_WINDOW = timedelta(days=7)


def _material_change_send_all(version: PurposeVersion) -> tuple[int, int]:
    """Email every consumer this version asks to decide again who has not had its email; (sent, failed)."""
    key = str(version.pk)
    asked = Consent.objects.filter(purpose=version.purpose, status=ConsentStatus.RECONSENT_REQUIRED)
    told = NotificationSent.objects.filter(kind=NotificationKind.MATERIAL_CHANGE, key=key)
    users = User.objects.filter(is_active=True, notify_material_changes=True, pk__in=asked.values("user_id")).exclude(
        pk__in=told.values("user_id")
    )
    sent = failed = 0
    last_pk = 0
    while batch := list(users.filter(pk__gt=last_pk).order_by("pk")[:BATCH_SIZE]):
        last_pk = batch[-1].pk
        for user in batch:
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
    return sent, failed


@shared_task(name="consents.tasks.material_change_notify", bind=True, max_retries=12)
def material_change_notify(self: Task, version_id: int) -> int:
    """Email each consumer asked to decide again by this notice version, once; the number sent.

    Only consumers who keep ``notify_material_changes`` on; none once a newer material version
    replaced this one (its own task tells them). A newer minor version does not cancel the email:
    the consumers are still asked to decide because of this one's change. Failed sends are retried
    later; the sent ones are not repeated.
    """
    version = PurposeVersion.objects.select_related("purpose").filter(pk=version_id).first()
    if (
        version is None
        or not version.material
        or _later_material(purpose=version.purpose_id, number=version.number).exists()
    ):
        return 0
    sent, failed = _material_change_send_all(version)
    if failed:
        raise self.retry(countdown=RETRY_DELAY)
    return sent


@shared_task(name="consents.tasks.material_change_notify_sweep")
def material_change_notify_sweep() -> int:
    """Send the material-change emails that no task sent; the number sent.

    A publication queues ``material_change_notify`` after it commits; when the broker is down then,
    or the task is lost or runs out of retries, the emails are still owed. What is owed needs no
    record of its own: a consumer asked to decide again by the latest material version of a purpose
    (minor versions after it change nothing about that), who keeps the setting on and has no
    ``NotificationSent`` for that version. Beat runs this every few
    minutes over the versions published in the last ``MATERIAL_CHANGE_SWEEP_WINDOW``; the claims
    make it safe beside the publication's own task.
    """
    recent = timezone.now() - MATERIAL_CHANGE_SWEEP_WINDOW
    versions = (
        PurposeVersion.objects.filter(material=True, number__gt=1, published_at__gte=recent)
        .exclude(Exists(_later_material(purpose=OuterRef("purpose_id"), number=OuterRef("number"))))
        .select_related("purpose")
    )
    return sum(_material_change_send_all(version)[0] for version in versions.order_by("pk"))


def _later_material(*, purpose: Any, number: Any) -> QuerySet[PurposeVersion]:
    """The purpose's material versions after version ``number`` (values, or ``OuterRef``s in a subquery)."""
    return PurposeVersion.objects.filter(purpose_id=purpose, material=True, number__gt=number)


@shared_task(name="consents.tasks.flagged_access_notify", bind=True, max_retries=12)
def flagged_access_notify(self: Task, user_id: int) -> int:
    """One email about every flagged access to this consumer's data not told yet; the number covered.

    Queued a few minutes after a flagged access (``flagged_access_notify_schedule``), so a burst
    becomes one email. Nothing for consumers who turned ``notify_flagged_access`` off. Each access
    is claimed on its own (its id is the key), not by a high-water mark: an access whose
    transaction commits after a later one was told (ids are taken before commit) is still told.
    """
    try:
        return _flagged_access_tell(user_id)
    except EmailError as error:
        raise self.retry(countdown=RETRY_DELAY, exc=error) from error


@shared_task(name="consents.tasks.flagged_access_notify_sweep")
def flagged_access_notify_sweep() -> int:
    """Send the flagged-access emails that no task sent; the number of consumers emailed.

    An ingest queues ``flagged_access_notify`` through the cache and the broker; when either is down
    then, or the task is lost or runs out of retries, the email is still owed. What is owed needs no
    record of its own: a flagged access received in the last ``FLAGGED_LOOKBACK``, more than
    ``FLAGGED_SWEEP_GRACE`` ago (its own task has had its turn), with no ``NotificationSent`` for its
    id, to a consumer who keeps the setting on. Beat runs this every few minutes; the per-access
    claims make it safe beside the consumers' own tasks.
    """
    now = timezone.now()
    told = NotificationSent.objects.filter(
        user_id=OuterRef("user_id"), kind=NotificationKind.FLAGGED_ACCESS, key=Cast(OuterRef("pk"), CharField())
    )
    owed = (
        AccessEvent.objects.filter(
            verdict__in=FLAGGED,
            received_at__gte=now - FLAGGED_LOOKBACK,
            received_at__lt=now - FLAGGED_SWEEP_GRACE,
            user__is_active=True,
            user__notify_flagged_access=True,
        )
        .exclude(Exists(told))
        .order_by("user_id")
        .values_list("user_id", flat=True)
        .distinct()
    )
    emailed = 0
    for user_id in owed[:FLAGGED_SWEEP_MAX_USERS]:
        try:
            if _flagged_access_tell(user_id):
                emailed += 1
        except EmailError:
            logger.exception("could not email user %s about flagged accesses", user_id)
    return emailed


def _flagged_access_tell(user_id: int) -> int:
    """``flagged_access_notify``'s work; on ``EmailError`` the claims are released and it is raised."""
    user = User.objects.filter(pk=user_id, is_active=True, notify_flagged_access=True).first()
    if user is None:
        return 0
    since = timezone.now() - FLAGGED_LOOKBACK
    recent = AccessEvent.objects.filter(user=user, verdict__in=FLAGGED, received_at__gte=since)
    for _attempt in range(CLAIM_ATTEMPTS):
        told = notification_keys_since(user_id=user.pk, kind=NotificationKind.FLAGGED_ACCESS, since=since)
        ids = [pk for pk in recent.order_by("pk").values_list("pk", flat=True) if str(pk) not in told]
        if not ids:
            return 0
        keys = [str(pk) for pk in ids]
        # Another run claimed some of them first: look again at what is left.
        if notification_claim_all(user_id=user.pk, kind=NotificationKind.FLAGGED_ACCESS, keys=keys):
            break
    else:
        return 0
    listed = list(AccessEvent.objects.filter(pk__in=ids[:FLAGGED_LISTED]).select_related("partner", "purpose"))
    listed.sort(key=lambda event: event.pk)
    try:
        flagged_access_send(user=user, events=listed, total=len(ids))
    except EmailError:
        notification_release_all(user_id=user.pk, kind=NotificationKind.FLAGGED_ACCESS, keys=keys)
        raise
    return len(ids)


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
