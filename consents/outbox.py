"""The transactional outbox: partner events written with the change they announce, and their delivery state.

Every consent change writes one ``OutboxEvent`` per partner that receives data for the purpose, in
the same transaction as the change. After commit one delivery task per event is queued; the relay
(``outbox_due_requeue``) re-queues whatever is still waiting, so neither a broker outage nor a crash
between commit and enqueue loses an event. The same rows are the partner's event feed.

Delivery state machine (``OutboxEvent.status``)::

    pending ──2xx──▶ delivered
       │  └─410──▶ no_endpoint (partner webhook disabled, staff alerted)
       └─other─▶ retrying ──▶ ... ──▶ dead (after the last attempt; staff can re-drive)
    no_endpoint: the partner has no (enabled) webhook and reads the feed instead.

A delivery attempt *claims* the event with one conditional UPDATE that moves ``next_attempt_at``
a lease into the future, so two workers never send the same attempt at once, a duplicate task finds
nothing to claim, and a worker that dies mid-send is replaced by the relay when the lease runs out.
"""

import logging
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import Actor, event_record
from consents.models import (
    Consent,
    DeliveryAttempt,
    DeliveryOutcome,
    DeliveryStatus,
    EventType,
    OutboxEvent,
    Partner,
    PartnerStatus,
    PartnerSubject,
    Sharing,
)
from portal.models import User

logger = logging.getLogger(__name__)

# The Standard Webhooks (Svix) schedule: the delay before each attempt, counted from the previous
# failure. Attempt 1 goes out at once; after the eighth failure the event is a dead letter.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE)
RETRY_JITTER = 0.10
# A partner's Retry-After can push a retry later than the schedule, but not past a day.
RETRY_AFTER_MAX = timedelta(hours=24)
# Longer than one send can take (10 s for each of connect, write and read), so a live sender
# never loses its claim; a dead one's event becomes due again after this.
CLAIM_LEASE = timedelta(seconds=120)
WAITING = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
REDRIVABLE = (DeliveryStatus.DEAD, DeliveryStatus.NO_ENDPOINT)

_jitter = random.SystemRandom()


class OutboxError(Exception):
    """A staff action on the outbox that is not possible; ``message`` is safe to show."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def consent_event_data(*, consent: Consent, subject: PartnerSubject) -> dict[str, Any]:
    """The ``data`` of a consent event, as the partner sees it (pairwise subject id, no user id)."""
    return {
        "subject_id": subject.subject_id,
        "purpose": consent.purpose.slug,
        "status": consent.status,
        "granted": consent.is_active,
        "notice_version": consent.version.number,
        "granted_at": _iso(consent.granted_at),
        "expires_at": _iso(consent.expires_at),
        "revoked_at": _iso(consent.revoked_at),
        "reason": consent.revocation_reason or None,
    }


def _event_build(
    *,
    partner: Partner,
    subject: PartnerSubject,
    event_type: str,
    at: datetime,
    data: dict[str, Any],
    consent: Consent | None = None,
) -> OutboxEvent:
    event_id = uuid.uuid4()
    has_endpoint = bool(partner.webhook_url) and partner.webhook_disabled_at is None
    return OutboxEvent(
        id=event_id,
        partner=partner,
        subject=subject,
        consent=consent,
        event_type=event_type,
        payload={"id": str(event_id), "type": str(event_type), "timestamp": _iso(at), "data": data},
        created_at=timezone.now(),
        status=DeliveryStatus.PENDING if has_endpoint else DeliveryStatus.NO_ENDPOINT,
        next_attempt_at=timezone.now() if has_endpoint else None,
    )


def _events_save(events: list[OutboxEvent]) -> list[OutboxEvent]:
    OutboxEvent.objects.bulk_create(events)
    deliver_later([e.id for e in events if e.status == DeliveryStatus.PENDING])
    return events


def _subjects_for(*, user_id: int, partners: list[Partner]) -> dict[int, PartnerSubject]:
    subjects = {s.partner_id: s for s in PartnerSubject.objects.filter(user_id=user_id, partner__in=partners)}
    for partner in partners:
        if partner.pk not in subjects:
            # The first time this partner receives this consumer: mint their pairwise id.
            subjects[partner.pk], _created = PartnerSubject.objects.get_or_create(partner=partner, user_id=user_id)
    return subjects


@transaction.atomic
def outbox_consent_changed(*, consent: Consent, event_type: str) -> list[OutboxEvent]:
    """One event per active partner with an active sharing for the consent's purpose.

    Called by every consent change inside its transaction; delivery is queued after commit.
    """
    partners = [
        sharing.partner
        for sharing in Sharing.objects.filter(
            purpose_id=consent.purpose_id, is_active=True, partner__status=PartnerStatus.ACTIVE
        ).select_related("partner")
    ]
    if not partners:
        return []
    subjects = _subjects_for(user_id=consent.user_id, partners=partners)
    events = [
        _event_build(
            partner=partner,
            subject=subjects[partner.pk],
            event_type=event_type,
            at=consent.updated_at,
            data=consent_event_data(consent=consent, subject=subjects[partner.pk]),
            consent=consent,
        )
        for partner in partners
    ]
    return _events_save(events)


@transaction.atomic
def outbox_subject_erasure(*, user: User, request_id: str, due_at: datetime | date) -> list[OutboxEvent]:
    """Ask every partner that ever received this consumer to erase their data, by ``due_at``."""
    subjects = list(PartnerSubject.objects.filter(user=user).select_related("partner").order_by("partner_id"))
    now = timezone.now()
    events = [
        _event_build(
            partner=subject.partner,
            subject=subject,
            event_type=EventType.SUBJECT_ERASURE_REQUESTED,
            at=now,
            data={"subject_id": subject.subject_id, "request_id": str(request_id), "due_at": _iso(due_at)},
        )
        for subject in subjects
    ]
    return _events_save(events)


def deliver_later(event_ids: Iterable[uuid.UUID]) -> None:
    """Queue one delivery task per event once the current transaction commits."""
    ids = [str(event_id) for event_id in event_ids]
    if ids:
        transaction.on_commit(partial(delivery_queue, ids), robust=True)


def delivery_queue(event_ids: list[str], *, countdown: float = 0) -> None:
    """Queue delivery tasks now. A broker failure is logged, not raised: the relay will queue them."""
    # Imported here: the task module calls the services in this one.
    from consents.tasks_delivery import outbox_event_deliver

    for event_id in event_ids:
        try:
            outbox_event_deliver.apply_async(
                (event_id,),
                countdown=countdown or None,
                # Fail fast: a consumer's request must not hang on a broker outage.
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
            )
        except Exception:
            logger.warning("could not queue delivery of outbox event %s; the relay will retry", event_id, exc_info=True)


@dataclass(frozen=True)
class DeliveryClaim:
    """What one attempt needs to send, read after the claim so it reflects the partner's current endpoint."""

    event_id: uuid.UUID
    attempt: int
    url: str
    secrets: list[str]
    payload: dict[str, Any]


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    duration_ms: int
    error: str = ""
    retry_after: timedelta | None = None
    refused: bool = False


def outbox_event_claim(*, event_id: uuid.UUID | str) -> DeliveryClaim | None:
    """Take the next attempt of a due event, or ``None`` if it is not due or someone else has it.

    Runs in autocommit (no transaction), so the claim is visible to other workers at once.
    """
    now = timezone.now()
    claimed = (
        OutboxEvent.objects.filter(pk=event_id, status__in=WAITING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(attempts=F("attempts") + 1, next_attempt_at=now + CLAIM_LEASE)
    )
    if not claimed:
        return None
    event = OutboxEvent.objects.select_related("partner").get(pk=event_id)
    partner = event.partner
    if not partner.webhook_url or partner.webhook_disabled_at is not None:
        # The endpoint was removed or disabled after the event was written: the feed serves it.
        OutboxEvent.objects.filter(pk=event.pk, attempts=event.attempts).update(
            status=DeliveryStatus.NO_ENDPOINT, next_attempt_at=None, attempts=F("attempts") - 1
        )
        return None
    secrets = [partner.webhook_secret]
    if partner.webhook_secret_previous:
        secrets.append(partner.webhook_secret_previous)
    return DeliveryClaim(
        event_id=event.pk, attempt=event.attempts, url=partner.webhook_url, secrets=secrets, payload=event.payload
    )


def retry_delay(*, attempts_made: int, retry_after: timedelta | None = None) -> timedelta:
    """The wait before the next attempt: the schedule with ±10 % jitter, or a longer Retry-After."""
    base = RETRY_SCHEDULE[min(attempts_made, MAX_ATTEMPTS - 1)]
    delay = base * _jitter.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, RETRY_AFTER_MAX)
    return delay


def _outcome(result: AttemptResult, attempt: int) -> DeliveryOutcome:
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return DeliveryOutcome.DELIVERED
    if code == 410:
        return DeliveryOutcome.GONE
    if result.refused:
        return DeliveryOutcome.REFUSED
    # Every other answer is retried: 429 and 5xx are transient by definition, and 3xx and other 4xx
    # (400, 401, 403, 404, ...) usually mean the partner's endpoint is misconfigured, for example a
    # new signing secret not yet deployed. A revocation must not be dropped for that, so the partner
    # gets the whole schedule (about 28 hours) to fix it before the event becomes a dead letter.
    return DeliveryOutcome.DEAD if attempt >= MAX_ATTEMPTS else DeliveryOutcome.RETRY


def _describe(result: AttemptResult) -> str:
    if result.status_code is None:
        return result.error[:500]
    text = f"HTTP {result.status_code}"
    return f"{text}: {result.error}"[:500] if result.error else text


@transaction.atomic
def outbox_attempt_record(*, event_id: uuid.UUID | str, attempt: int, result: AttemptResult) -> OutboxEvent:
    """Record one attempt and move the event on: delivered, retrying, dead, or endpoint gone."""
    now = timezone.now()
    event = OutboxEvent.objects.select_for_update().select_related("partner").get(pk=event_id)
    outcome = _outcome(result, attempt)
    DeliveryAttempt.objects.create(
        event=event,
        attempted_at=now - timedelta(milliseconds=result.duration_ms),
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=_describe(result) if outcome != DeliveryOutcome.DELIVERED else "",
        outcome=outcome,
    )
    fields = ["status", "next_attempt_at", "last_error"]
    if outcome == DeliveryOutcome.DELIVERED:
        if event.status == DeliveryStatus.DELIVERED:
            return event
        event.status = DeliveryStatus.DELIVERED
        event.delivered_at = now
        event.next_attempt_at = None
        event.last_error = ""
        event.save(update_fields=[*fields, "delivered_at"])
        return event
    if event.attempts != attempt or event.status not in WAITING:
        # A later attempt or a staff action owns the event now; this attempt is history only.
        return event
    event.last_error = _describe(result)
    if outcome == DeliveryOutcome.GONE:
        event.status = DeliveryStatus.NO_ENDPOINT
        event.next_attempt_at = None
        event.save(update_fields=fields)
        partner_webhook_disable(partner=event.partner, event=event)
    elif attempt >= MAX_ATTEMPTS:
        event.status = DeliveryStatus.DEAD
        event.next_attempt_at = None
        event.save(update_fields=fields)
    else:
        event.status = DeliveryStatus.RETRYING
        event.next_attempt_at = now + retry_delay(attempts_made=attempt, retry_after=result.retry_after)
        event.save(update_fields=fields)
    return event


@transaction.atomic
def partner_webhook_disable(*, partner: Partner, event: OutboxEvent | None = None) -> bool:
    """The partner's endpoint answered 410 Gone: stop sending, leave its waiting events to the feed, alert staff.

    Returns whether this call disabled it (``False`` if it already was).
    """
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    if partner.webhook_disabled_at is not None:
        return False
    partner.webhook_disabled_at = timezone.now()
    partner.save(update_fields=["webhook_disabled_at"])
    moved = OutboxEvent.objects.filter(partner=partner, status__in=WAITING).update(
        status=DeliveryStatus.NO_ENDPOINT, next_attempt_at=None
    )
    event_record(
        actor=Actor.system("webhook delivery"),
        subject=None,
        action="partner.webhook_disabled",
        target=partner,
        data={
            "webhook_url": partner.webhook_url,
            "reason": "410 Gone",
            "event": str(event.pk) if event is not None else None,
            "events_left_to_feed": moved,
        },
    )
    transaction.on_commit(partial(_alert_staff, partner.pk), robust=True)
    return True


def _alert_staff(partner_id: int) -> None:
    from consents.tasks_delivery import partner_webhook_disabled_notify

    try:
        partner_webhook_disabled_notify.delay(partner_id)
    except Exception:
        logger.exception("could not queue the staff alert for partner %s's disabled webhook", partner_id)


@transaction.atomic
def partner_webhook_enable(*, partner: Partner, actor: Actor) -> Partner:
    """Staff turn a disabled webhook back on (after the partner fixed it). Feed-only events can then be re-driven."""
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    if partner.webhook_disabled_at is None:
        return partner
    partner.webhook_disabled_at = None
    partner.save(update_fields=["webhook_disabled_at"])
    event_record(
        actor=actor,
        subject=None,
        action="partner.webhook_enabled",
        target=partner,
        data={"webhook_url": partner.webhook_url},
    )
    return partner


@transaction.atomic
def outbox_event_redrive(*, event: OutboxEvent, actor: Actor) -> OutboxEvent:
    """Send a dead-lettered (or feed-only) event again from the start of the schedule."""
    event = OutboxEvent.objects.select_for_update().select_related("partner").get(pk=event.pk)
    if event.status not in REDRIVABLE:
        raise OutboxError(
            _("Only dead letters and feed-only events can be sent again; this one is “%(status)s”.")
            % {"status": event.get_status_display()},
            code="not_redrivable",
        )
    partner = event.partner
    if not partner.webhook_url or partner.webhook_disabled_at is not None:
        raise OutboxError(
            _("%(partner)s has no enabled webhook endpoint. Set or re-enable it first.") % {"partner": partner.name},
            code="no_endpoint",
        )
    previous = event.status
    event.status = DeliveryStatus.PENDING
    event.attempts = 0
    event.next_attempt_at = timezone.now()
    event.last_error = ""
    event.save(update_fields=["status", "attempts", "next_attempt_at", "last_error"])
    event_record(
        actor=actor,
        subject=None,
        action="outbox.event_redriven",
        target=event,
        data={"partner": partner.slug, "type": event.event_type, "previous_status": previous},
    )
    deliver_later([event.pk])
    return event


def outbox_due_requeue(*, limit: int) -> list[uuid.UUID]:
    """Events waiting longer than the relay's grace period; marks them re-queued and returns their ids.

    Covers a lost enqueue (broker down, crash between commit and enqueue), a retry whose time has
    come, and a claim whose worker died. Marking them (``next_attempt_at`` = now) keeps the next
    relay run from queueing the same events again while their task is still in the queue.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.OUTBOX_RELAY_GRACE_SECONDS)
    due = Q(next_attempt_at__lte=cutoff) | Q(next_attempt_at__isnull=True, created_at__lte=cutoff)
    ids = list(
        OutboxEvent.objects.filter(due, status__in=WAITING)
        .order_by(F("next_attempt_at").asc(nulls_first=True))
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        OutboxEvent.objects.filter(due, pk__in=ids, status__in=WAITING).update(next_attempt_at=now)
    return ids
