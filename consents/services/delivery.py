"""Delivering outbox events to partners' webhooks: claim → send → record, and the staff actions on delivery.

``outbox_event_send`` is the whole story of one attempt; the steps follow it in the order it runs.

Delivery state machine (``OutboxEvent.status``)::

    pending ──2xx──▶ delivered
       │  └─410──▶ no_endpoint (partner webhook disabled, its waiting events left to the feed, staff alerted)
       └─other─▶ retrying ──▶ ... ──▶ dead (after the last attempt; staff can re-drive)
    no_endpoint: the partner has no (enabled) webhook and reads the feed instead.

An attempt *claims* its event with a conditional UPDATE that moves ``next_attempt_at`` a lease
into the future, so two workers never send the same attempt at once, a duplicate task finds nothing
to claim, and a worker that dies mid-send is replaced by the relay once the lease runs out. The
network call (``consents.webhook_client``) happens between the claim and ``outbox_attempt_record``,
outside any transaction.

Fairness: a partner may have at most ``WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER`` attempts in flight
(``sending_until`` in the future), counted under a lock on the partner's row so two workers cannot
both take the last place. A task whose partner is at its cap *defers*: it leaves the event due and
frees its slot for other partners' deliveries at once, and the partner's next finished attempt
queues the partner's next due event (the relay is the backstop). So a partner that answers in 10 s
slows only its own deliveries.
"""

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.errors import DomainError
from consents.models import DeliveryAttempt, DeliveryOutcome, DeliveryStatus, OutboxEvent, Partner
from consents.models.partners import webhook_signing_secrets
from consents.services.outbox import DEFERRED_KEY, deliver_later, delivery_queue, partner_deferred_mark
from consents.webhook_client import WebhookError, encode_body, webhook_send
from portal.request_id import current_request_id

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
# How long an attempt may run, past WEBHOOK_TIMEOUT_SECONDS, before the delivery task's soft time
# limit ends it (recorded as a timeout) and then its hard limit kills it; and how long its claim
# lasts. The timeout bounds each phase of a send, not the whole, so the task's time limits are what
# guarantee a live sender is gone before its lease runs out (never two senders of one attempt). A
# worker killed mid-send leaves its event to the relay once the lease ends: with the defaults the
# event goes out again at most lease + relay grace + relay interval = 17 + 5 + 5 s after the claim.
SOFT_LIMIT_MARGIN_SECONDS = 3.0
HARD_LIMIT_MARGIN_SECONDS = 5.0
LEASE_MARGIN_SECONDS = 7.0
# Retries due this soon are queued with a countdown right away; later ones are left to the relay,
# because long broker ETAs outlive Redis's visibility timeout and get delivered twice.
COUNTDOWN_MAX = timedelta(minutes=1)
WAITING = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
REDRIVABLE = (DeliveryStatus.DEAD, DeliveryStatus.NO_ENDPOINT)
# Each event handed to a new task is marked for a few seconds so two hand-offs never pick the same.
HANDOFF_KEY = "outbox:handoff:{event_id}:{due}"
HANDOFF_SECONDS = 5
HANDOFF_SPARE = 8
# Queued by its pinned name: the task module calls the services in this one.
DISABLED_NOTIFY_TASK = "consents.tasks_delivery.partner_webhook_disabled_notify"

_jitter = random.SystemRandom()


def claim_lease() -> timedelta:
    """How long a claim keeps other workers off an attempt: longer than the task may live."""
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)


def attempt_time_limits() -> tuple[float, float]:
    """The delivery task's (soft, hard) time limits in seconds, both shorter than ``claim_lease()``."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    return timeout + SOFT_LIMIT_MARGIN_SECONDS, timeout + HARD_LIMIT_MARGIN_SECONDS


@dataclass(frozen=True)
class DeliveryClaim:
    """What one attempt needs to send, read after the claim so it reflects the partner's current endpoint."""

    event_id: uuid.UUID
    partner_id: int
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


@dataclass(frozen=True)
class AttemptRecorded:
    outcome: DeliveryOutcome
    status: str  # the event's status now, or "superseded" if a later attempt or staff action owns it
    next_attempt_at: datetime | None = None


def outbox_event_send(*, event_id: uuid.UUID | str) -> str:
    """Make the next attempt of one outbox event if it is due, and record what happened.

    Returns the event's status afterwards, ``"skipped"`` if there was nothing to send (not due, or
    another worker holds the claim), ``"deferred"`` if its partner already has as many attempts in
    flight as it may, or ``"superseded"`` if a later attempt or staff action took over.
    """
    claim = outbox_event_claim(event_id=event_id)
    if isinstance(claim, Unclaimed):
        return claim.value
    # The claim is already committed: the network call happens outside any transaction.
    result = _attempt(claim)
    recorded = outbox_attempt_record(event_id=claim.event_id, attempt=claim.attempt, result=result)
    if recorded.status == DeliveryStatus.RETRYING and recorded.next_attempt_at is not None:
        wait = recorded.next_attempt_at - timezone.now()
        if wait <= COUNTDOWN_MAX:
            delivery_queue([str(claim.event_id)], countdown=max(0.0, wait.total_seconds()))
    partner_deferred_queue(partner_id=claim.partner_id)
    return recorded.status


class Unclaimed(StrEnum):
    """Why a delivery task did not get to send."""

    SKIPPED = "skipped"  # not due, or another worker holds the claim
    DEFERRED = "deferred"  # the partner has as many attempts in flight as it may


def outbox_event_claim(*, event_id: uuid.UUID | str) -> DeliveryClaim | Unclaimed:
    """Take the next attempt of a due event, or say why not (see ``Unclaimed``).

    The claim commits before this returns, so it is visible to other workers at once.
    """
    for _try in range(2):
        now = timezone.now()
        due = OutboxEvent.objects.filter(pk=event_id, status__in=WAITING).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )
        with transaction.atomic():
            # One statement locks the partner and reads what the attempt needs: the event's payload and
            # attempt count, and the partner's current endpoint and secrets (its row is locked, so they
            # are the latest). FOR NO KEY UPDATE: claims for one partner take turns, while consent
            # changes, which only need the partner row as a foreign key (FOR KEY SHARE), are not held
            # up. A no-op on SQLite, whose IMMEDIATE transactions take turns anyway.
            event = (
                due.select_for_update(no_key=True, of=("partner",))
                .select_related("partner")
                .only(
                    "attempts",
                    "payload",
                    "partner__webhook_url",
                    "partner__webhook_secret",
                    "partner__webhook_secret_previous",
                    "partner__webhook_secret_previous_expires_at",
                    "partner__webhook_disabled_at",
                )
                .first()
            )
            if event is None:
                return Unclaimed.SKIPPED
            partner, attempts = event.partner, event.attempts
            partner_id, url, disabled_at = partner.pk, partner.webhook_url, partner.webhook_disabled_at
            if not url or disabled_at is not None:
                # The endpoint was removed or disabled after the event was written: the feed serves it.
                due.filter(attempts=attempts).update(
                    status=DeliveryStatus.NO_ENDPOINT, next_attempt_at=None, sending_until=None
                )
                return Unclaimed.SKIPPED
            # The event's columns were read before the lock was granted, so the claim is conditional on
            # them: if another worker claimed the event meanwhile, nothing is updated. The places in
            # flight are counted in the same statement, which (unlike the locking one) sees every claim
            # committed by the partner's previous lock holders.
            in_flight = (
                OutboxEvent.objects.filter(partner_id=OuterRef("partner_id"), sending_until__gt=now)
                .order_by()
                .values("partner_id")
                .annotate(n=Count("pk"))
                .values("n")
            )
            lease_end = now + claim_lease()
            claimed = (
                due.filter(attempts=attempts)
                .alias(in_flight=Coalesce(Subquery(in_flight), 0))
                .filter(in_flight__lt=settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER)
                .update(attempts=F("attempts") + 1, next_attempt_at=lease_end, sending_until=lease_end)
            )
            if claimed:
                break
            if not due.filter(attempts=attempts).exists():
                return Unclaimed.SKIPPED
            partner_deferred_mark(partner_id)
        # An attempt that ended between the count and the mark missed the mark and handed nothing on;
        # it shows here as a free place, and the claim is tried once more.
        if OutboxEvent.objects.filter(partner_id=partner_id, sending_until__gt=timezone.now()).count() >= (
            settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER
        ):
            return Unclaimed.DEFERRED
    else:
        return Unclaimed.DEFERRED
    secrets = webhook_signing_secrets(
        secret=partner.webhook_secret,
        previous=partner.webhook_secret_previous,
        previous_expires_at=partner.webhook_secret_previous_expires_at,
        at=timezone.now(),
    )
    return DeliveryClaim(
        event_id=event.pk, partner_id=partner_id, attempt=attempts + 1, url=url, secrets=secrets, payload=event.payload
    )


def partner_deferred_queue(*, partner_id: int) -> list[str]:
    """After one of a partner's attempts ends, queue as many of its deferred events as it has free places.

    Returns the queued events' ids. Cheap when nothing was deferred (one cache read). Two attempts
    ending at once would pick the same oldest events; a short hand-off mark per event (``cache.add``)
    makes each pick a different one, so every free place is refilled.
    """
    key = DEFERRED_KEY.format(partner_id=partner_id)
    try:
        if not cache.get(key):
            return []
    except Exception:
        # The cache is Redis, so the broker is most likely down too: leave deferred events to the relay.
        logger.warning("could not read partner %s's deferred-deliveries mark", partner_id, exc_info=True)
        return []
    now = timezone.now()
    waiting = OutboxEvent.objects.filter(partner_id=partner_id, status__in=WAITING)
    free = settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER - waiting.filter(sending_until__gt=now).count()
    if free <= 0:
        return []
    candidates = list(
        waiting.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(sending_until__isnull=True) | Q(sending_until__lte=now))
        .order_by(F("next_attempt_at").asc(nulls_first=True), "created_at")
        .values_list("pk", "next_attempt_at")[: free + HANDOFF_SPARE]
    )
    if not candidates:
        try:
            cache.delete(key)
        except Exception:
            logger.warning("could not clear partner %s's deferred-deliveries mark", partner_id, exc_info=True)
        return []
    chosen: list[str] = []
    try:
        for event_id, due_at in candidates:
            if len(chosen) == free:
                break
            # Keyed on the due time too: once the event is claimed, re-driven or re-queued by the
            # relay, it is due at another time and a new hand-off is not held up by this mark.
            due = due_at.timestamp() if due_at else "new"
            if cache.add(HANDOFF_KEY.format(event_id=event_id, due=due), True, timeout=HANDOFF_SECONDS):
                chosen.append(str(event_id))
    except Exception:
        logger.warning("could not hand off partner %s's deferred deliveries", partner_id, exc_info=True)
    delivery_queue(chosen)
    return chosen


def _attempt(claim: DeliveryClaim) -> AttemptResult:
    """POST the signed event; any HTTP answer or failure to get one becomes the attempt's result."""
    started = time.monotonic()
    try:
        response = webhook_send(
            url=claim.url,
            msg_id=str(claim.event_id),
            body=encode_body(claim.payload),
            secrets=claim.secrets,
            # The request that caused the event when it queued this task, else the task's own id.
            request_id=current_request_id(),
        )
    except WebhookError as exc:
        return AttemptResult(status_code=None, duration_ms=exc.duration_ms, error=exc.message, refused=exc.refused)
    except SoftTimeLimitExceeded:
        # A partner that answers a byte at a time never trips the per-phase timeout: the task's
        # soft time limit ends the attempt, and it is retried on the schedule like any timeout.
        duration_ms = int((time.monotonic() - started) * 1000)
        return AttemptResult(status_code=None, duration_ms=duration_ms, error="timed out: the attempt's time limit")
    return AttemptResult(
        status_code=response.status_code,
        duration_ms=response.duration_ms,
        error="" if response.ok else response.body_excerpt.strip(),
        retry_after=response.retry_after,
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
def outbox_attempt_record(*, event_id: uuid.UUID, attempt: int, result: AttemptResult) -> AttemptRecorded:
    """Record one attempt and move the event on: delivered, retrying, dead, or endpoint gone.

    Every update is conditional on the claim still being this attempt's, so a stale attempt (its
    lease ran out and another worker took over, or staff re-drove the event) only adds history.
    """
    now = timezone.now()
    outcome = _outcome(result, attempt)
    DeliveryAttempt.objects.create(
        event_id=event_id,
        attempted_at=now - timedelta(milliseconds=result.duration_ms),
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=_describe(result) if outcome != DeliveryOutcome.DELIVERED else "",
        outcome=outcome,
    )
    event = OutboxEvent.objects.filter(pk=event_id)
    if outcome == DeliveryOutcome.DELIVERED:
        # Delivered is delivered, whoever holds the claim now.
        event.exclude(status=DeliveryStatus.DELIVERED).update(
            status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None, sending_until=None, last_error=""
        )
        return AttemptRecorded(outcome, DeliveryStatus.DELIVERED)
    current = event.filter(attempts=attempt, status__in=WAITING)
    if outcome == DeliveryOutcome.GONE:
        status, next_attempt_at = DeliveryStatus.NO_ENDPOINT, None
    elif attempt >= MAX_ATTEMPTS:
        status, next_attempt_at = DeliveryStatus.DEAD, None
    else:
        status = DeliveryStatus.RETRYING
        next_attempt_at = now + retry_delay(attempts_made=attempt, retry_after=result.retry_after)
    updated = current.update(
        status=status, next_attempt_at=next_attempt_at, sending_until=None, last_error=_describe(result)
    )
    if outcome == DeliveryOutcome.GONE:
        # The endpoint is gone whichever attempt found out.
        partner_webhook_disable(partner=Partner.objects.get(events__pk=event_id), event_id=event_id)
    if not updated:
        return AttemptRecorded(outcome, "superseded")
    return AttemptRecorded(outcome, status, next_attempt_at)


@transaction.atomic
def partner_webhook_disable(*, partner: Partner, event_id: uuid.UUID | None = None) -> bool:
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
        action=AuditAction.PARTNER_WEBHOOK_DISABLED,
        target=partner,
        data={
            "webhook_url": partner.webhook_url,
            "reason": "410 Gone",
            "event": str(event_id) if event_id is not None else None,
            "events_left_to_feed": moved,
        },
    )
    transaction.on_commit(partial(_alert_staff, partner.pk), robust=True)
    return True


def _alert_staff(partner_id: int) -> None:
    try:
        current_app.signature(DISABLED_NOTIFY_TASK).apply_async((partner_id,), ignore_result=True)
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
        action=AuditAction.PARTNER_WEBHOOK_ENABLED,
        target=partner,
        data={"webhook_url": partner.webhook_url},
    )
    return partner


@transaction.atomic
def outbox_event_redrive(*, event: OutboxEvent, actor: Actor) -> OutboxEvent:
    """Send a dead-lettered (or feed-only) event again from the start of the schedule."""
    event = OutboxEvent.objects.select_for_update().select_related("partner").get(pk=event.pk)
    if event.status not in REDRIVABLE:
        raise DomainError(
            _("Only dead letters and feed-only events can be sent again; this one is “%(status)s”.")
            % {"status": event.get_status_display()},
            code="not_redrivable",
        )
    partner = event.partner
    if not partner.webhook_url or partner.webhook_disabled_at is not None:
        raise DomainError(
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
        action=AuditAction.OUTBOX_EVENT_REDRIVEN,
        target=event,
        data={"partner": partner.slug, "type": event.event_type, "previous_status": previous},
    )
    deliver_later([event.pk])
    return event


@transaction.atomic
def partner_dead_letters_redrive(*, partner: Partner, actor: Actor, limit: int) -> tuple[list[uuid.UUID], int]:
    """Send up to ``limit`` of the partner's dead letters again, oldest first, from the start of the schedule.

    One audit event covers the batch. Returns the re-driven events' ids and how many dead letters
    are left (the caller asks again for the next batch).
    """
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    if not partner.webhook_url or partner.webhook_disabled_at is not None:
        raise DomainError(
            _("%(partner)s has no enabled webhook endpoint. Set or re-enable it first.") % {"partner": partner.name},
            code="no_endpoint",
        )
    dead = OutboxEvent.objects.filter(partner=partner, status=DeliveryStatus.DEAD)
    ids = list(dead.order_by("created_at", "pk").values_list("pk", flat=True)[:limit])
    if ids:
        OutboxEvent.objects.filter(pk__in=ids, status=DeliveryStatus.DEAD).update(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
        )
        event_record(
            actor=actor,
            subject=None,
            action=AuditAction.OUTBOX_EVENT_REDRIVEN,
            target=partner,
            data={"partner": partner.slug, "previous_status": DeliveryStatus.DEAD, "events": len(ids)},
        )
        deliver_later(ids)
    return ids, dead.count()
