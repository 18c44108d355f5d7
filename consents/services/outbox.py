"""The transactional outbox: partner events written in the same transaction as the change they announce.

Every consent change writes one ``OutboxEvent`` per partner that receives data for the purpose, in
the same transaction as the change; an erasure request writes one per partner that ever received
the consumer. After commit one delivery task per event is queued (``consents.tasks.delivery``); the
relay re-queues whatever is still waiting (``outbox_due_requeue``), so neither a broker outage nor a
crash between commit and enqueue loses an event. The same rows are the partner's event feed
(``consents.services.feed``). Delivery itself is in ``consents.services.delivery``.
"""

import functools
import logging
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import AuditAction
from audit.services import Actor, event_record
from audit.timestamps import iso_utc
from consents.errors import DomainError
from consents.models import (
    AppGrant,
    Consent,
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

# Queued by its pinned name: the task module calls the services in this one, so importing it here
# would make the two modules import each other.
DELIVER_TASK = "consents.tasks_delivery.outbox_event_deliver"
DELIVER_BATCH_TASK = "consents.tasks_delivery.outbox_events_deliver"
# The most events of one partner one delivery task sends in turn (consents.services.delivery.outbox_events_send).
BATCH_MAX = 10
# Set while a partner has due events that no task was queued for (its places were full), so that
# its finished attempts queue the next ones (see consents.services.delivery).
DEFERRED_KEY = "outbox:deferred:{partner_id}"
DEFERRED_MARK_SECONDS = 60


def consent_event_data(*, consent: Consent, subject: PartnerSubject) -> dict[str, Any]:
    """The ``data`` of a consent event, as the partner sees it (pairwise subject id, no user id)."""
    return {
        "subject_id": subject.subject_id,
        "purpose": consent.purpose.slug,
        "status": consent.status,
        "granted": consent.is_active,
        "notice_version": consent.version.number,
        "granted_at": iso_utc(consent.granted_at),
        "expires_at": iso_utc(consent.expires_at),
        "revoked_at": iso_utc(consent.revoked_at),
        "reason": consent.revocation_reason or None,
    }


def _event_build(
    *,
    partner: Partner,
    subject: PartnerSubject | None,
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
        payload={"id": str(event_id), "type": str(event_type), "timestamp": iso_utc(at), "data": data},
        created_at=timezone.now(),
        status=DeliveryStatus.PENDING if has_endpoint else DeliveryStatus.NO_ENDPOINT,
        next_attempt_at=timezone.now() if has_endpoint else None,
    )


def _events_save(events: list[OutboxEvent]) -> list[OutboxEvent]:
    OutboxEvent.objects.bulk_create(events)
    by_partner: dict[int, list[uuid.UUID]] = {}
    for event in events:
        if event.status == DeliveryStatus.PENDING:
            by_partner.setdefault(event.partner_id, []).append(event.id)
    deliver_later(by_partner)
    return events


def _subjects_for(*, user_id: int, partners: list[Partner]) -> dict[int, PartnerSubject]:
    subjects = {s.partner_id: s for s in PartnerSubject.objects.filter(user_id=user_id, partner__in=partners)}
    for partner in partners:
        if partner.pk not in subjects:
            # The first time this partner receives this consumer: mint their pairwise id.
            subjects[partner.pk], _created = PartnerSubject.objects.get_or_create(partner=partner, user_id=user_id)
    return subjects


def _partners_receiving(purpose_id: int) -> list[Partner]:
    sharings = Sharing.objects.filter(purpose_id=purpose_id, is_active=True, partner__status=PartnerStatus.ACTIVE)
    return [sharing.partner for sharing in sharings.select_related("partner")]


def _consent_events(
    consent: Consent, partners: list[Partner], subjects: dict[int, PartnerSubject], event_type: str
) -> list[OutboxEvent]:
    return [
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


@transaction.atomic
def outbox_consent_changed(*, consent: Consent, event_type: str) -> list[OutboxEvent]:
    """One event per active partner with an active sharing for the consent's purpose.

    Called by every consent change inside its transaction; delivery is queued after commit.
    """
    partners = _partners_receiving(consent.purpose_id)
    if not partners:
        return []
    subjects = _subjects_for(user_id=consent.user_id, partners=partners)
    return _events_save(_consent_events(consent, partners, subjects, event_type))


@transaction.atomic
def outbox_consents_changed(*, consents: list[Consent], event_type: str) -> list[OutboxEvent]:
    """``outbox_consent_changed`` for a batch of consents of one purpose, with one insert of all events.

    The consumers' pairwise ids are read (and the missing ones minted) in one statement each.
    """
    if not consents:
        return []
    partners = _partners_receiving(consents[0].purpose_id)
    if not partners:
        return []
    user_ids = {consent.user_id for consent in consents}
    existing = PartnerSubject.objects.filter(user_id__in=user_ids, partner__in=partners)
    subjects = {(s.user_id, s.partner_id): s for s in existing}
    missing = [(u, p.pk) for u in sorted(user_ids) for p in partners if (u, p.pk) not in subjects]
    if missing:
        # First time these partners receive these consumers; a pairwise id minted meanwhile stands.
        PartnerSubject.objects.bulk_create(
            [PartnerSubject(user_id=u, partner_id=p) for u, p in missing], ignore_conflicts=True
        )
        created = PartnerSubject.objects.filter(user_id__in={u for u, _p in missing}, partner__in=partners)
        subjects.update({(s.user_id, s.partner_id): s for s in created})
    events = []
    for consent in consents:
        mine = {p.pk: subjects[(consent.user_id, p.pk)] for p in partners}
        events += _consent_events(consent, partners, mine, event_type)
    return _events_save(events)


@transaction.atomic
def outbox_app_grant_changed(*, grant: AppGrant, event_type: str) -> list[OutboxEvent]:
    """The event for a connected app's grant, to the app's partner only (if it is active).

    Shaped like a consent event, so the partner's webhook handler and feed reader need nothing
    new, with the grant named in ``grant_id``.
    """
    partner = grant.app.partner
    if partner.status != PartnerStatus.ACTIVE:
        return []
    subject = _subjects_for(user_id=grant.user_id, partners=[partner])[partner.pk]
    data = {
        "subject_id": subject.subject_id,
        "purpose": grant.purpose.slug,
        "status": grant.status,
        "granted": grant.is_active,
        "notice_version": grant.version.number,
        "granted_at": iso_utc(grant.granted_at),
        "expires_at": iso_utc(grant.expires_at),
        "revoked_at": iso_utc(grant.revoked_at),
        "reason": grant.revocation_reason or None,
        "grant_id": str(grant.pk),
    }
    return _events_save(
        [_event_build(partner=partner, subject=subject, event_type=event_type, at=grant.updated_at, data=data)]
    )


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
            data={"subject_id": subject.subject_id, "request_id": str(request_id), "due_at": iso_utc(due_at)},
        )
        for subject in subjects
    ]
    return _events_save(events)


@transaction.atomic
def outbox_webhook_test(*, partner: Partner, actor: Actor) -> OutboxEvent:
    """A signed ``webhook.test`` event to the partner's endpoint, delivered like any other event.

    It concerns no consumer, is not in the event feed and cannot be acknowledged; its deliveries
    (attempts, status codes, retries) are recorded and listed like the others. The request is audited.
    """
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    if not partner.webhook_url or partner.webhook_disabled_at is not None:
        raise DomainError(
            _("%(partner)s has no enabled webhook endpoint. Set or re-enable it first.") % {"partner": partner.name},
            code="no_endpoint",
        )
    now = timezone.now()
    data = {"partner": partner.slug, "message": "A test event sent at your request. No action is needed."}
    event = _events_save(
        [_event_build(partner=partner, subject=None, event_type=EventType.WEBHOOK_TEST, at=now, data=data)]
    )[0]
    event_record(
        actor=actor,
        subject=None,
        action=AuditAction.PARTNER_WEBHOOK_TEST_SENT,
        target=event,
        data={"partner": partner.slug, "event": str(event.pk)},
    )
    return event


def deliver_later(by_partner: dict[int, list[uuid.UUID]]) -> None:
    """Queue the delivery of these events (by partner) once the current transaction commits.

    Each partner's events go out in tasks of up to ``BATCH_MAX`` sent in turn; one event is one
    task. Inside ``deliveries_gathered()`` the events of every call are held until the block ends
    and queued together, so a transaction that makes many changes one by one queues batches too.
    """
    if not any(by_partner.values()):
        return
    gathered = _gathered.get()
    if gathered is not None:
        for partner_id, ids in by_partner.items():
            gathered.setdefault(partner_id, []).extend(str(event_id) for event_id in ids)
        return
    _deliver_after_commit({partner_id: [str(event_id) for event_id in ids] for partner_id, ids in by_partner.items()})


def _deliver_after_commit(by_partner: dict[int, list[str]]) -> None:
    if not transaction.get_connection().in_atomic_block:
        _batches_queue(by_partner)
        return
    if settings.FAULT_CRASH_AFTER_COMMIT:
        transaction.on_commit(_crash)
    transaction.on_commit(functools.partial(_batches_queue, by_partner), robust=True)


def _batches_queue(by_partner: dict[int, list[str]]) -> None:
    for ids in by_partner.values():
        delivery_batch_queue(ids)


_gathered: ContextVar[dict[int, list[str]] | None] = ContextVar("outbox_deliveries_gathered", default=None)


@contextmanager
def deliveries_gathered() -> Iterator[None]:
    """Within this block, ``deliver_later`` holds the events of all its calls and queues them at the end.

    For code that makes many changes one by one (each change's events would otherwise be queued as
    tasks of their own): withdrawing every consent of an account, a GPC opt-out. What was gathered is
    queued after the commit of the transaction open when the block ends (at once if none is), also
    when the block raises: a caller may catch the error and commit the changes made before it. An
    event written in a savepoint that rolled back inside the block is queued too; its task finds no
    such event and skips it (``outbox_event_claim``), and the relay stays the backstop for anything
    whose queueing is lost.
    """
    if _gathered.get() is not None:
        yield  # an enclosing block queues everything
        return
    gathered: dict[int, list[str]] = {}
    token = _gathered.set(gathered)
    try:
        yield
    finally:
        _gathered.reset(token)
        if gathered:
            _deliver_after_commit(gathered)


def _crash() -> None:
    # The fault bench/faults.py injects (never in production, see settings): die between commit and enqueue.
    os.kill(os.getpid(), signal.SIGKILL)


def delivery_queue(event_ids: list[str], *, countdown: float = 0) -> None:
    """Queue one delivery task per event now. A broker failure is logged, not raised: the relay will queue them."""
    _tasks_queue(DELIVER_TASK, [(event_id,) for event_id in event_ids], countdown=countdown)


def delivery_batch_queue(event_ids: list[str]) -> None:
    """Queue one partner's events now, in tasks of up to ``BATCH_MAX`` sent in turn (one event: one task)."""
    batches = [event_ids[n : n + BATCH_MAX] for n in range(0, len(event_ids), BATCH_MAX)]
    _tasks_queue(DELIVER_BATCH_TASK, [(batch,) for batch in batches])


def _tasks_queue(name: str, args: list[tuple[Any, ...]], *, countdown: float = 0) -> None:
    deliver = current_app.signature(name)
    for queued, task_args in enumerate(args):
        try:
            deliver.apply_async(
                task_args,
                countdown=countdown or None,
                # Nobody reads the result. Without this, queueing by name subscribes to the task's result
                # in the Redis result backend, whose reconnect loop holds the request for 20 s while
                # Redis is down.
                ignore_result=True,
                # Fail fast: a consumer's request must not hang on a broker outage.
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
            )
        except Exception:
            # The broker is down: the rest would fail the same way, one retry interval each.
            logger.warning(
                "could not queue %d delivery tasks (first for %s); the relay will retry",
                len(args) - queued,
                task_args[0],
                exc_info=True,
            )
            return


def partner_deferred_mark(partner_id: int) -> None:
    """Note that a partner has due events no task was queued for: its next finished attempts hand them on."""
    try:
        cache.set(DEFERRED_KEY.format(partner_id=partner_id), True, timeout=DEFERRED_MARK_SECONDS)
    except Exception:
        # Without the mark the relay still queues the events, a run or two later.
        logger.warning("could not mark partner %s as having deferred deliveries", partner_id, exc_info=True)


def outbox_due_requeue(*, limit: int) -> list[uuid.UUID]:
    """Events the relay must queue (oldest first, at most ``limit``); marks them queued and returns their ids.

    - ``pending`` for longer than the grace period: the enqueue after commit was lost (broker down,
      crash between commit and enqueue), or the worker holding the claim died and its lease ran out;
    - ``retrying`` whose retry time has come (long retries are queued only by the relay).

    Per partner, only as many as it has free places (``WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER`` less its
    attempts in flight); a partner with more is marked, so each of its finished attempts queues the
    next (``consents.services.delivery.partner_deferred_queue``). A long backlog thus neither floods
    the queue with tasks that would only be deferred, ahead of other partners' deliveries, nor waits
    for the next relay run.

    Marking them ``pending`` with ``next_attempt_at`` = now keeps the next relay runs from queueing
    the same events again while their task waits in the queue (until the grace period passes).
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.OUTBOX_RELAY_GRACE_SECONDS)
    due = (
        Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=cutoff)
        | Q(status=DeliveryStatus.PENDING, next_attempt_at__isnull=True, created_at__lte=cutoff)
        | Q(status=DeliveryStatus.RETRYING, next_attempt_at__lte=now)
    )
    waiting = OutboxEvent.objects.filter(due)
    partners = list(waiting.order_by().values_list("partner_id", flat=True).distinct()[:limit])
    in_flight = dict(
        OutboxEvent.objects.filter(partner_id__in=partners, sending_until__gt=now)
        .values("partner_id")
        .annotate(n=Count("pk"))
        .values_list("partner_id", "n")
    )
    ids: list[uuid.UUID] = []
    for partner_id in partners:
        take = min(settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER - in_flight.get(partner_id, 0), limit - len(ids))
        chosen = (
            list(
                waiting.filter(partner_id=partner_id)
                .order_by(F("next_attempt_at").asc(nulls_first=True), "created_at")
                .values_list("pk", flat=True)[: take + 1]
            )
            if take > 0
            else []
        )
        if take <= 0 or len(chosen) > take:
            partner_deferred_mark(partner_id)
        ids += chosen[: max(take, 0)]
    if ids:
        OutboxEvent.objects.filter(due, pk__in=ids).update(status=DeliveryStatus.PENDING, next_attempt_at=now)
    return ids
