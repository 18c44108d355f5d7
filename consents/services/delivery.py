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
from typing import Any, cast

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import AuditAction
from audit.services import Actor, event_record
from consents.errors import DomainError
from consents.models import DeliveryAttempt, DeliveryOutcome, DeliveryStatus, OutboxEvent, Partner
from consents.models.partners import webhook_signing_secrets
from consents.services.outbox import (
    DEFERRED_KEY,
    deliver_later,
    delivery_batch_queue,
    delivery_queue,
    partner_deferred_mark,
)
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
# A batch (``outbox_events_send``) starts another attempt only this long after the task started, so
# each attempt has at least WEBHOOK_TIMEOUT_SECONDS + 1 s before the soft time limit: a phase that
# times out is recorded as such, not cut short by the limit.
BATCH_START_SECONDS = SOFT_LIMIT_MARGIN_SECONDS - 1.0
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
    status, partner_id = _event_send(event_id)
    if partner_id is not None:
        partner_deferred_queue(partner_id=partner_id)
    return status


def outbox_events_send(*, event_ids: list[str]) -> list[str]:
    """Make the next attempt of several events of one partner in turn, as ``outbox_event_send`` does each.

    One task, one database connection and one keep-alive connection to the partner serve the
    whole batch, and the batch holds one of the partner's places in flight, as a single attempt
    does: each event is claimed just before it is sent, so its lease is its own. A failed attempt
    is recorded and the batch goes on. The batch stops early, leaving the rest due, if the partner
    is at its cap (the claim marked it, so its finished attempts hand the rest on) or once the task
    has run ``BATCH_START_SECONDS`` (the rest go to a new task, so that every attempt still has its
    whole timeout before the task's time limit). Returns each sent event's status as
    ``outbox_event_send`` would, in order; events not reached are left out.
    """
    started = time.monotonic()
    statuses: list[str] = []
    partners: set[int] = set()
    for index, event_id in enumerate(event_ids):
        if index and time.monotonic() - started >= BATCH_START_SECONDS:
            delivery_batch_queue(event_ids[index:])
            break
        status, partner_id = _event_send(event_id)
        statuses.append(status)
        if partner_id is not None:
            partners.add(partner_id)
        if status == Unclaimed.DEFERRED:
            break
    for partner_id in partners:
        partner_deferred_queue(partner_id=partner_id)
    return statuses


def _event_send(event_id: uuid.UUID | str) -> tuple[str, int | None]:
    """One attempt: claim, send, record. Returns the status and the partner whose place it held, if any."""
    claim = outbox_event_claim(event_id=event_id)
    if isinstance(claim, Unclaimed):
        return claim.value, None
    # The claim is already committed: the network call happens outside any transaction.
    result = _attempt(claim)
    recorded = outbox_attempt_record(event_id=claim.event_id, attempt=claim.attempt, result=result)
    if recorded.status == DeliveryStatus.RETRYING and recorded.next_attempt_at is not None:
        wait = recorded.next_attempt_at - timezone.now()
        if wait <= COUNTDOWN_MAX:
            delivery_queue([str(claim.event_id)], countdown=max(0.0, wait.total_seconds()))
    return recorded.status, claim.partner_id


class Unclaimed(StrEnum):
    """Why a delivery task did not get to send."""

    SKIPPED = "skipped"  # not due, or another worker holds the claim
    DEFERRED = "deferred"  # the partner has as many attempts in flight as it may


def outbox_event_claim(*, event_id: uuid.UUID | str) -> DeliveryClaim | Unclaimed:
    """Take the next attempt of a due event, or say why not (see ``Unclaimed``).

    The claim commits before this returns, so it is visible to other workers at once.
    """
    event_pk = uuid.UUID(str(event_id))
    for _try in range(2):
        now = timezone.now()
        due = OutboxEvent.objects.filter(pk=event_pk, status__in=WAITING).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )
        with transaction.atomic():
            # One statement locks the partner and reads what the attempt needs: the event's payload and
            # attempt count, and the partner's current endpoint and secrets (its row is locked, so they
            # are the latest). FOR NO KEY UPDATE: claims for one partner take turns, while consent
            # changes, which only need the partner row as a foreign key (FOR KEY SHARE), are not held
            # up. SQLite has no row locks; its IMMEDIATE transactions take turns anyway.
            row = _claim_read(event_pk, now)
            if row is None:
                return Unclaimed.SKIPPED
            partner_id, attempts, url, disabled = row.partner_id, row.attempts, row.url, row.disabled
            if not url or disabled:
                # The endpoint was removed or disabled after the event was written: the feed serves it.
                due.filter(attempts=attempts).update(
                    status=DeliveryStatus.NO_ENDPOINT, next_attempt_at=None, sending_until=None
                )
                return Unclaimed.SKIPPED
            # The event's columns were read before the lock was granted, so the claim is conditional on
            # them: if another worker claimed the event meanwhile, nothing is updated. The places in
            # flight are counted in the same statement, which (unlike the locking one) sees every claim
            # committed by the partner's previous lock holders.
            if _claim_take(event_pk, partner_id=partner_id, attempts=attempts, now=now):
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
        secret=row.secret, previous=row.previous, previous_expires_at=row.previous_expires_at, at=timezone.now()
    )
    return DeliveryClaim(
        event_id=event_pk, partner_id=partner_id, attempt=attempts + 1, url=url, secrets=secrets, payload=row.payload
    )


# The claim's two statements are written out rather than built by the ORM: building them cost more
# worker CPU than anything else in a delivery (about 5 ms of 11 on PostgreSQL, measured 2026-12-02).
# Parameters are adapted, and columns converted, by the models' own fields, so both databases
# store and read exactly what the ORM would.
_CLAIM_READ_SQL = (
    "SELECT e.partner_id, e.attempts, e.payload, p.webhook_url, p.webhook_disabled_at IS NOT NULL, "
    "p.webhook_secret, p.webhook_secret_previous, p.webhook_secret_previous_expires_at "
    "FROM consents_outboxevent e INNER JOIN consents_partner p ON p.id = e.partner_id "
    "WHERE e.id = %s AND e.status IN (%s, %s) AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= %s)"
)
_CLAIM_TAKE_SQL = (
    "UPDATE consents_outboxevent SET attempts = attempts + 1, next_attempt_at = %s, sending_until = %s "
    "WHERE id = %s AND attempts = %s AND status IN (%s, %s) AND (next_attempt_at IS NULL OR next_attempt_at <= %s) "
    "AND (SELECT COUNT(*) FROM consents_outboxevent f WHERE f.partner_id = %s AND f.sending_until > %s) < %s"
)


_WAITING_VALUES = tuple(status.value for status in WAITING)


@dataclass(frozen=True)
class _ClaimRow:
    partner_id: int
    attempts: int
    payload: dict[str, Any]
    url: str
    disabled: bool
    secret: str
    previous: str
    previous_expires_at: datetime | None


def _db_value(model: type[models.Model], name: str, value: Any) -> Any:
    """``value`` as the ORM would pass it to the database for the field ``name``."""
    return cast(models.Field, model._meta.get_field(name)).get_db_prep_value(value, connection)


def _python_value(model: type[models.Model], name: str, value: Any) -> Any:
    """A column read by hand, converted as the ORM converts it (JSON, decryption, SQLite datetimes)."""
    column = cast(models.Field, model._meta.get_field(name)).get_col(model._meta.db_table)
    for convert in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
        value = convert(value, column, connection)
    return value


def _claim_read(event_pk: uuid.UUID, now: datetime) -> _ClaimRow | None:
    sql = _CLAIM_READ_SQL + (" FOR NO KEY UPDATE OF p" if connection.features.has_select_for_no_key_update else "")
    params = [_db_value(OutboxEvent, "id", event_pk), *_WAITING_VALUES, _db_value(OutboxEvent, "next_attempt_at", now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    partner_id, attempts, payload, url, disabled, secret, previous, previous_expires_at = row
    return _ClaimRow(
        partner_id=partner_id,
        attempts=attempts,
        payload=_python_value(OutboxEvent, "payload", payload),
        url=url,
        disabled=bool(disabled),
        secret=_python_value(Partner, "webhook_secret", secret),
        previous=_python_value(Partner, "webhook_secret_previous", previous),
        previous_expires_at=_python_value(Partner, "webhook_secret_previous_expires_at", previous_expires_at),
    )


def _claim_take(event_pk: uuid.UUID, *, partner_id: int, attempts: int, now: datetime) -> bool:
    lease_end = _db_value(OutboxEvent, "sending_until", now + claim_lease())
    at = _db_value(OutboxEvent, "sending_until", now)
    params = [
        *(lease_end, lease_end, _db_value(OutboxEvent, "id", event_pk), attempts, *_WAITING_VALUES, at),
        *(partner_id, at, settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_TAKE_SQL, params)
        return cursor.rowcount == 1


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
    error = _describe(result) if outcome != DeliveryOutcome.DELIVERED else ""
    with connection.cursor() as cursor:
        # Written out like the claim's statements (see there), on the path every delivery takes.
        cursor.execute(
            _ATTEMPT_INSERT_SQL,
            [
                _db_value(DeliveryAttempt, "event", event_id),
                _db_value(DeliveryAttempt, "attempted_at", now - timedelta(milliseconds=result.duration_ms)),
                *(result.status_code, result.duration_ms, error, outcome.value),
            ],
        )
        event_pk = _db_value(OutboxEvent, "id", event_id)
        if outcome == DeliveryOutcome.DELIVERED:
            # Delivered is delivered, whoever holds the claim now.
            delivered_at = _db_value(OutboxEvent, "delivered_at", now)
            delivered = DeliveryStatus.DELIVERED.value
            cursor.execute(_DELIVERED_SQL, [delivered, delivered_at, event_pk, delivered])
            return AttemptRecorded(outcome, DeliveryStatus.DELIVERED)
        if outcome == DeliveryOutcome.GONE:
            status, next_attempt_at = DeliveryStatus.NO_ENDPOINT, None
        elif attempt >= MAX_ATTEMPTS:
            status, next_attempt_at = DeliveryStatus.DEAD, None
        else:
            status = DeliveryStatus.RETRYING
            next_attempt_at = now + retry_delay(attempts_made=attempt, retry_after=result.retry_after)
        cursor.execute(
            _UNDELIVERED_SQL,
            [
                *(status.value, _db_value(OutboxEvent, "next_attempt_at", next_attempt_at), _describe(result)),
                *(event_pk, attempt, *_WAITING_VALUES),
            ],
        )
        updated = cursor.rowcount
    if outcome == DeliveryOutcome.GONE:
        # The endpoint is gone whichever attempt found out.
        partner_webhook_disable(partner=Partner.objects.get(events__pk=event_id), event_id=event_id)
    if not updated:
        return AttemptRecorded(outcome, "superseded")
    return AttemptRecorded(outcome, status, next_attempt_at)


_ATTEMPT_INSERT_SQL = (
    "INSERT INTO consents_deliveryattempt (event_id, attempted_at, status_code, duration_ms, error, outcome) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
_DELIVERED_SQL = (
    "UPDATE consents_outboxevent SET status = %s, delivered_at = %s, next_attempt_at = NULL, sending_until = NULL, "
    "last_error = '' WHERE id = %s AND status <> %s"
)
# Conditional on the claim still being this attempt's (see outbox_attempt_record).
_UNDELIVERED_SQL = (
    "UPDATE consents_outboxevent SET status = %s, next_attempt_at = %s, sending_until = NULL, last_error = %s "
    "WHERE id = %s AND attempts = %s AND status IN (%s, %s)"
)


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
    deliver_later({partner.pk: [event.pk]})
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
        deliver_later({partner.pk: ids})
    return ids, dead.count()
