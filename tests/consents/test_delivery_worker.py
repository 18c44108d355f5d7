import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import time_machine
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from consents.errors import DomainError
from consents.models import DeliveryAttempt, DeliveryOutcome, DeliveryStatus, OutboxEvent
from consents.services.consents import consent_grant, consent_revoke
from consents.services.delivery import (
    MAX_ATTEMPTS,
    RETRY_SCHEDULE,
    AttemptResult,
    DeliveryClaim,
    Unclaimed,
    claim_lease,
    outbox_attempt_record,
    outbox_event_claim,
    outbox_event_redrive,
    outbox_events_send,
    partner_deferred_queue,
    partner_webhook_enable,
)
from consents.tasks.delivery import outbox_event_deliver, outbox_events_deliver, outbox_relay
from tests.conftest import ROOT
from tests.consents.webhook_support import database_url_for_worker
from tests.factories import PartnerFactory, PurposeFactory, SharingFactory, StaffFactory, UserFactory

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def loopback_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def purpose(db):
    return PurposeFactory(slug="offers")


@pytest.fixture
def partner(purpose, webhook_receiver, loopback_allowed):
    partner = PartnerFactory(slug="shop", name="Shop", webhook_url=webhook_receiver.url)
    SharingFactory(partner=partner, purpose=purpose)
    return partner


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=True) as traveller:
        yield traveller


def revoke(user, purpose, capture):
    """Revoke and run the after-commit enqueue (tasks are eager in these tests)."""
    with capture(execute=True):
        return consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))


def attempts_of(event):
    return list(event.delivery_attempts.order_by("attempted_at").values_list("status_code", "outcome"))


def test_success_on_first_attempt_is_delivered_and_recorded(
    consumer, purpose, partner, webhook_receiver, celery_eager, django_capture_on_commit_callbacks
):
    revoke(consumer, purpose, django_capture_on_commit_callbacks)

    event = OutboxEvent.objects.get()
    assert event.status == DeliveryStatus.DELIVERED
    assert event.delivered_at is not None
    assert event.attempts == 1
    (attempt,) = event.delivery_attempts.all()
    assert (attempt.status_code, attempt.outcome, attempt.error) == (200, DeliveryOutcome.DELIVERED, "")
    assert attempt.duration_ms >= 0
    (received,) = webhook_receiver.requests
    assert received.verify(partner.webhook_secret) == event.payload


def test_500_then_success_is_delivered_on_retry_with_the_same_webhook_id(
    consumer, purpose, partner, webhook_receiver, celery_eager, clock, django_capture_on_commit_callbacks
):
    webhook_receiver.respond(500)

    revoke(consumer, purpose, django_capture_on_commit_callbacks)

    event = OutboxEvent.objects.get()
    assert event.status == DeliveryStatus.RETRYING
    assert "HTTP 500" in event.last_error
    wait = event.next_attempt_at - timezone.now()
    assert RETRY_SCHEDULE[1] * 0.85 <= wait <= RETRY_SCHEDULE[1] * 1.1
    assert outbox_event_deliver(str(event.id)) == "skipped", "not due yet"

    clock.shift(RETRY_SCHEDULE[1] * 1.1)
    assert outbox_event_deliver(str(event.id)) == DeliveryStatus.DELIVERED

    event.refresh_from_db()
    assert event.attempts == 2
    assert attempts_of(event) == [(500, DeliveryOutcome.RETRY), (200, DeliveryOutcome.DELIVERED)]
    first, second = webhook_receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(event.id)
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert second.verify(partner.webhook_secret)["id"] == str(event.id)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 400, 401, 404, 302])
def test_transient_and_other_client_errors_are_retried(
    status, consumer, purpose, partner, webhook_receiver, celery_eager, clock, django_capture_on_commit_callbacks
):
    webhook_receiver.respond(status)

    revoke(consumer, purpose, django_capture_on_commit_callbacks)

    event = OutboxEvent.objects.get()
    assert event.status == DeliveryStatus.RETRYING
    assert attempts_of(event) == [(status, DeliveryOutcome.RETRY)]


def test_timeout_is_retried(
    consumer, purpose, partner, settings, webhook_receiver, celery_eager, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    webhook_receiver.delay = 1

    revoke(consumer, purpose, django_capture_on_commit_callbacks)

    event = OutboxEvent.objects.get()
    assert event.status == DeliveryStatus.RETRYING
    (attempt,) = event.delivery_attempts.all()
    assert attempt.status_code is None
    assert "timed out" in attempt.error


@pytest.mark.parametrize("header", ["600", "date"])
def test_retry_after_is_honoured_when_longer_than_the_schedule(
    header, consumer, purpose, partner, webhook_receiver, celery_eager, clock, django_capture_on_commit_callbacks
):
    value = "600" if header == "600" else format_datetime(START + timedelta(minutes=10), usegmt=True)
    webhook_receiver.respond((503, {"Retry-After": value}))

    revoke(consumer, purpose, django_capture_on_commit_callbacks)

    event = OutboxEvent.objects.get()
    wait = event.next_attempt_at - timezone.now()
    assert timedelta(minutes=9) <= wait <= timedelta(minutes=10)
    clock.shift(timedelta(seconds=30))
    assert outbox_event_deliver(str(event.id)) == "skipped", "the schedule's 5 s gave way to Retry-After"


def test_shorter_retry_after_does_not_shorten_the_schedule(
    consumer, purpose, partner, webhook_receiver, celery_eager, clock, django_capture_on_commit_callbacks
):
    webhook_receiver.respond(500, (429, {"Retry-After": "1"}))
    revoke(consumer, purpose, django_capture_on_commit_callbacks)
    event = OutboxEvent.objects.get()
    clock.shift(timedelta(seconds=6))

    outbox_event_deliver(str(event.id))

    event.refresh_from_db()
    assert event.attempts == 2
    assert event.next_attempt_at - timezone.now() >= RETRY_SCHEDULE[2] * 0.9


def test_410_disables_the_webhook_leaves_events_to_the_feed_and_alerts_staff(
    consumer, purpose, partner, webhook_receiver, celery_eager, django_capture_on_commit_callbacks
):
    staff = StaffFactory(email="ops@example.com")
    other = UserFactory(email="someone@example.com")
    with django_capture_on_commit_callbacks(execute=False):  # queued but not yet sent
        consent_revoke(user=other, purpose=purpose, actor=Actor.consumer(other))
    waiting = OutboxEvent.objects.get()
    webhook_receiver.respond(410)

    revoke(consumer, purpose, django_capture_on_commit_callbacks)

    partner.refresh_from_db()
    assert partner.webhook_disabled_at is not None
    gone = OutboxEvent.objects.exclude(pk=waiting.pk).get()
    assert gone.status == DeliveryStatus.NO_ENDPOINT
    assert attempts_of(gone) == [(410, DeliveryOutcome.GONE)]
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.NO_ENDPOINT
    assert outbox_event_deliver(str(waiting.pk)) == "skipped"
    audit = AuditEvent.objects.get(action="partner.webhook_disabled")
    assert audit.target_id == str(partner.pk)
    assert audit.data["events_left_to_feed"] == 1
    (email,) = mail.outbox
    assert email.to == [staff.email]
    assert "Shop" in email.subject
    assert partner.webhook_url in email.body
    assert "answered “410 Gone”" in email.body
    # Later changes for this partner are feed-only until staff re-enable the webhook.
    with django_capture_on_commit_callbacks(execute=True):
        consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    assert OutboxEvent.objects.latest("created_at").status == DeliveryStatus.NO_ENDPOINT
    assert len(webhook_receiver.requests) == 1


def test_the_last_failure_dead_letters_and_redrive_delivers(
    consumer, purpose, partner, webhook_receiver, celery_eager, clock, django_capture_on_commit_callbacks
):
    webhook_receiver.default = (500, {})
    revoke(consumer, purpose, django_capture_on_commit_callbacks)
    event = OutboxEvent.objects.get()

    for expected_attempt in range(2, MAX_ATTEMPTS + 1):
        event.refresh_from_db()
        assert event.status == DeliveryStatus.RETRYING
        clock.move_to(event.next_attempt_at + timedelta(seconds=1))
        outbox_relay()  # long retries are the relay's job
        event.refresh_from_db()
        assert event.attempts == expected_attempt

    assert event.status == DeliveryStatus.DEAD
    assert event.next_attempt_at is None
    outcomes = [outcome for _code, outcome in attempts_of(event)]
    assert outcomes == [DeliveryOutcome.RETRY] * (MAX_ATTEMPTS - 1) + [DeliveryOutcome.DEAD]
    assert len(webhook_receiver.requests) == MAX_ATTEMPTS
    clock.shift(timedelta(days=2))
    assert outbox_relay() == 0
    assert outbox_event_deliver(str(event.id)) == "skipped"

    webhook_receiver.default = (204, {})
    staff = StaffFactory()
    with django_capture_on_commit_callbacks(execute=True):
        outbox_event_redrive(event=event, actor=Actor.staff(staff))

    event.refresh_from_db()
    assert event.status == DeliveryStatus.DELIVERED
    assert event.attempts == 1
    assert webhook_receiver.requests[-1].headers["webhook-id"] == str(event.id)
    assert AuditEvent.objects.filter(action="outbox.event_redriven", actor_id=str(staff.pk)).exists()


def test_redrive_refuses_events_in_flight_and_partners_without_endpoint(consumer, purpose, partner):
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    event = OutboxEvent.objects.get()
    staff = StaffFactory()

    with pytest.raises(DomainError) as caught:
        outbox_event_redrive(event=event, actor=Actor.staff(staff))
    assert caught.value.code == "not_redrivable"

    OutboxEvent.objects.update(status=DeliveryStatus.DEAD)
    partner.webhook_disabled_at = timezone.now()
    partner.save()
    with pytest.raises(DomainError) as caught:
        outbox_event_redrive(event=event, actor=Actor.staff(staff))
    assert caught.value.code == "no_endpoint"
    event.refresh_from_db()
    assert event.status == DeliveryStatus.DEAD

    partner_webhook_enable(partner=partner, actor=Actor.staff(staff))
    assert outbox_event_redrive(event=event, actor=Actor.staff(staff)).status == DeliveryStatus.PENDING
    assert AuditEvent.objects.filter(action="partner.webhook_enabled").count() == 1


def test_a_duplicate_task_for_a_delivered_event_does_nothing(
    consumer, purpose, partner, webhook_receiver, celery_eager, django_capture_on_commit_callbacks
):
    revoke(consumer, purpose, django_capture_on_commit_callbacks)
    event = OutboxEvent.objects.get()

    assert outbox_event_deliver(str(event.id)) == "skipped"
    assert outbox_event_deliver(str(event.id)) == "skipped"

    assert len(webhook_receiver.requests) == 1
    assert DeliveryAttempt.objects.count() == 1


def test_two_workers_cannot_claim_the_same_attempt(consumer, purpose, partner, clock):
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    event = OutboxEvent.objects.get()

    first = outbox_event_claim(event_id=event.id)
    second = outbox_event_claim(event_id=event.id)

    assert isinstance(first, DeliveryClaim)
    assert first.attempt == 1
    assert second == Unclaimed.SKIPPED


def test_a_partner_at_its_in_flight_cap_defers_and_its_finished_attempt_queues_the_next(
    purpose, partner, settings, webhook_receiver, celery_eager, clock
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 1
    other = PartnerFactory(slug="other", webhook_url=webhook_receiver.url)
    SharingFactory(partner=other, purpose=purpose)
    first_user, second_user = UserFactory(), UserFactory()
    consent_revoke(user=first_user, purpose=purpose, actor=Actor.consumer(first_user))
    consent_revoke(user=second_user, purpose=purpose, actor=Actor.consumer(second_user))
    first, second = OutboxEvent.objects.filter(partner=partner).order_by("created_at")
    others = OutboxEvent.objects.filter(partner=other).order_by("created_at")
    claim = outbox_event_claim(event_id=first.id)  # in flight: the partner's one place is taken
    assert isinstance(claim, DeliveryClaim)

    assert outbox_event_deliver(str(second.id)) == "deferred"
    second.refresh_from_db()
    assert (second.status, second.attempts, second.sending_until) == (DeliveryStatus.PENDING, 0, None)
    assert outbox_event_deliver(str(others[0].id)) == DeliveryStatus.DELIVERED, "another partner is not held up"

    # The first attempt ends (the worker sending it records its answer); the partner's next event follows.
    outbox_attempt_record(
        event_id=first.id, attempt=claim.attempt, result=AttemptResult(status_code=200, duration_ms=5)
    )
    assert partner_deferred_queue(partner_id=partner.pk) == [str(second.id)]

    second.refresh_from_db()
    assert second.status == DeliveryStatus.DELIVERED
    assert partner_deferred_queue(partner_id=partner.pk) == [], "nothing left: the mark is cleared"
    assert OutboxEvent.objects.filter(sending_until__isnull=False).count() == 0


def test_attempts_ending_together_hand_their_free_places_to_different_deferred_events(
    purpose, partner, settings, monkeypatch, clock
):
    from consents.services import delivery

    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 2
    queued: list[list[str]] = []
    monkeypatch.setattr(delivery, "delivery_queue", lambda ids, countdown=0: queued.append(list(ids)))
    for user in UserFactory.create_batch(6):
        consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))
    events = [str(pk) for pk in OutboxEvent.objects.order_by("created_at").values_list("pk", flat=True)]
    claims = [outbox_event_claim(event_id=event_id) for event_id in events[:3]]
    assert [type(c) for c in claims] == [DeliveryClaim, DeliveryClaim, Unclaimed], "the third one is deferred"
    for claim in claims[:2]:  # both attempts end; neither hand-off has been picked up by a worker yet
        assert isinstance(claim, DeliveryClaim)
        outbox_attempt_record(event_id=claim.event_id, attempt=claim.attempt, result=AttemptResult(200, 5))

    first = partner_deferred_queue(partner_id=partner.pk)
    second = partner_deferred_queue(partner_id=partner.pk)

    assert first == events[2:4]
    assert second == events[4:6], "the second hand-off took the next events, not the same two"
    assert queued == [first, second]


def test_the_relay_queues_a_backlog_only_up_to_the_partners_free_places_and_hand_offs_do_the_rest(
    purpose, partner, settings, webhook_receiver, celery_eager, clock, monkeypatch
):
    from consents.services import outbox

    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 2
    for user in UserFactory.create_batch(5):
        consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))  # their enqueue is lost
    queued_by_relay: list[str] = []
    relay_queue = outbox.outbox_due_requeue
    monkeypatch.setattr(
        "consents.tasks.delivery.outbox_due_requeue",
        lambda **kw: queued_by_relay.extend(map(str, ids := relay_queue(**kw))) or ids,
    )
    clock.shift(timedelta(seconds=settings.OUTBOX_RELAY_GRACE_SECONDS + 1))

    assert outbox_relay() == 2, "two places: two tasks, not five"

    assert len(queued_by_relay) == 2
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert len(webhook_receiver.requests) == 5
    assert outbox_relay() == 0


def test_a_deferred_event_is_left_to_the_relay_when_the_mark_is_lost(
    consumer, purpose, partner, settings, webhook_receiver, celery_eager, clock
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 1
    other_user = UserFactory()
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    consent_revoke(user=other_user, purpose=purpose, actor=Actor.consumer(other_user))
    first, second = OutboxEvent.objects.order_by("created_at")
    claim = outbox_event_claim(event_id=first.id)
    assert isinstance(claim, DeliveryClaim)
    assert outbox_event_deliver(str(second.id)) == "deferred"
    clock.shift(claim_lease() + timedelta(seconds=settings.OUTBOX_RELAY_GRACE_SECONDS + 1))

    # One place: the relay queues the dead claim's event and marks the partner again, so the
    # deferred one follows it by hand-off.
    assert outbox_relay() == 1

    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert sorted(r.headers["webhook-id"] for r in webhook_receiver.requests) == sorted([str(first.id), str(second.id)])


@pytest.mark.parametrize("failures_before", [0, 1])
def test_a_claim_whose_worker_died_is_resent_by_the_relay_after_the_lease_and_not_before(
    failures_before, consumer, purpose, partner, settings, webhook_receiver, celery_eager, clock
):
    webhook_receiver.respond(*[500] * failures_before)
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    event = OutboxEvent.objects.get()
    for _attempt in range(failures_before):
        outbox_event_deliver(str(event.id))
        event.refresh_from_db()
        clock.move_to(event.next_attempt_at)
    claim = outbox_event_claim(event_id=event.id)  # ... and the worker is killed here
    assert isinstance(claim, DeliveryClaim)
    claimed_at = timezone.now()

    clock.move_to(claimed_at + claim_lease() - timedelta(seconds=1))
    assert outbox_relay() == 0, "the lease still holds"
    assert outbox_event_deliver(str(event.id)) == "skipped"
    clock.move_to(claimed_at + claim_lease() + timedelta(seconds=settings.OUTBOX_RELAY_GRACE_SECONDS + 0.5))
    assert outbox_relay() == 1

    event.refresh_from_db()
    assert event.status == DeliveryStatus.DELIVERED
    assert event.attempts == failures_before + 2
    assert len(webhook_receiver.requests) == failures_before + 1
    assert {r.headers["webhook-id"] for r in webhook_receiver.requests} == {str(event.id)}
    assert outbox_relay() == 0


def test_a_dead_workers_event_is_resent_within_30_seconds_and_no_live_sender_outlives_its_claim():
    soft, hard = outbox_event_deliver.soft_time_limit, outbox_event_deliver.time_limit
    assert django_settings.WEBHOOK_TIMEOUT_SECONDS < soft < hard
    # The worker's pool enforces the hard limit from a timer that checks about once a second.
    assert hard + 1 < claim_lease().total_seconds()
    relay = django_settings.CELERY_BEAT_SCHEDULE["outbox-relay"]["schedule"]
    grace = timedelta(seconds=django_settings.OUTBOX_RELAY_GRACE_SECONDS)
    assert claim_lease() + grace + relay <= timedelta(seconds=30)


def test_an_attempt_ended_by_the_soft_time_limit_is_recorded_as_a_timeout_and_retried(
    consumer, purpose, partner, monkeypatch, celery_eager, clock
):
    def trickle(**kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr("consents.services.delivery.webhook_send", trickle)
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    event = OutboxEvent.objects.get()

    assert outbox_event_deliver(str(event.id)) == DeliveryStatus.RETRYING

    event.refresh_from_db()
    (attempt,) = event.delivery_attempts.all()
    assert (attempt.status_code, attempt.outcome) == (None, DeliveryOutcome.RETRY)
    assert "time limit" in attempt.error
    assert event.next_attempt_at - timezone.now() <= RETRY_SCHEDULE[1] * 1.1


def test_refused_url_is_recorded_and_nothing_is_sent(
    consumer, purpose, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    partner = PartnerFactory(slug="intranet", webhook_url="https://10.20.30.40/hooks")
    SharingFactory(partner=partner, purpose=purpose)

    revoke(consumer, purpose, django_capture_on_commit_callbacks)

    event = OutboxEvent.objects.get()
    assert event.status == DeliveryStatus.RETRYING
    (attempt,) = event.delivery_attempts.all()
    assert attempt.outcome == DeliveryOutcome.REFUSED
    assert attempt.status_code is None
    assert "private address" in attempt.error


def test_endpoint_removed_after_the_event_was_written_leaves_it_to_the_feed(consumer, purpose, partner, celery_eager):
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    partner.webhook_url = ""
    partner.save()
    event = OutboxEvent.objects.get()

    assert outbox_event_deliver(str(event.id)) == "skipped"

    event.refresh_from_db()
    assert event.status == DeliveryStatus.NO_ENDPOINT
    assert event.attempts == 0
    assert not DeliveryAttempt.objects.exists()


def test_during_rotation_the_partner_can_verify_with_either_secret(
    consumer, purpose, partner, webhook_receiver, celery_eager, django_capture_on_commit_callbacks
):
    old_secret = partner.webhook_secret
    partner.webhook_secret_previous = old_secret
    partner.webhook_secret = "whsec_" + "A" * 43 + "="
    partner.save()

    revoke(consumer, purpose, django_capture_on_commit_callbacks)

    (received,) = webhook_receiver.requests
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert received.verify(old_secret)["type"] == "consent.revoked"
    assert received.verify(partner.webhook_secret)["type"] == "consent.revoked"


# --- With a real Celery worker, real Redis and a real local HTTP receiver ---


def wait_for_status(event_id, status, worker, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        event = OutboxEvent.objects.get(pk=event_id)
        if event.status == status:
            return event
        time.sleep(0.2)
    raise AssertionError(f"event {event_id} is {event.status}, not {status}, after {timeout} s")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_delivers_a_signed_revocation(delivery_worker, webhook_receiver):
    consumer = UserFactory(email="real@example.com")
    purpose = PurposeFactory(slug="newsletter")
    partner = PartnerFactory(slug="real-partner", webhook_url=webhook_receiver.url)
    SharingFactory(partner=partner, purpose=purpose)

    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    (received,) = webhook_receiver.wait_for(1, timeout=60)
    event = OutboxEvent.objects.get()
    payload = received.verify(partner.webhook_secret)
    assert payload == event.payload
    assert payload["type"] == "consent.revoked"
    assert payload["data"]["granted"] is False
    assert received.headers["webhook-id"] == str(event.id)
    event = wait_for_status(event.id, DeliveryStatus.DELIVERED, delivery_worker)
    assert event.delivery_attempts.get().status_code == 200


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_retries_a_500_and_then_delivers(delivery_worker, webhook_receiver):
    consumer = UserFactory(email="retry@example.com")
    purpose = PurposeFactory(slug="partner-offers")
    partner = PartnerFactory(slug="flaky-partner", webhook_url=webhook_receiver.url)
    SharingFactory(partner=partner, purpose=purpose)
    webhook_receiver.respond(500)

    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    first, second = webhook_receiver.wait_for(2, timeout=60)
    assert second.received_at - first.received_at >= RETRY_SCHEDULE[1].total_seconds() * 0.85
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    event = wait_for_status(OutboxEvent.objects.get().id, DeliveryStatus.DELIVERED, delivery_worker)
    assert attempts_of(event) == [(500, DeliveryOutcome.RETRY), (200, DeliveryOutcome.DELIVERED)]
    assert second.verify(partner.webhook_secret)["id"] == str(event.id)


def start_celery(*args, tmp_path):
    """A Celery worker or beat in its own process group, on the test database."""
    env = {**os.environ, "DATABASE_URL": database_url_for_worker(), "WEBHOOK_ALLOW_PRIVATE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", *args, "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=(tmp_path / f"{args[0]}.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop_group(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_killed_mid_delivery_is_replaced_and_the_event_goes_out_within_30_seconds(
    webhook_receiver, tmp_path
):
    if not os.environ.get("REDIS_URL"):
        pytest.fail("REDIS_URL must point at the test Redis (the README's test command starts one)")
    consumer = UserFactory(email="killed@example.com")
    purpose = PurposeFactory(slug="killed-offers")
    partner = PartnerFactory(slug="slow-partner", webhook_url=webhook_receiver.url)
    SharingFactory(partner=partner, purpose=purpose)
    worker_args = ("worker", "--concurrency", "1", "--pool", "prefork", "--without-heartbeat", "--without-gossip")
    beat = start_celery("beat", "--schedule", str(tmp_path / "beat-schedule"), tmp_path=tmp_path)
    worker = start_celery(*worker_args, "--without-mingle", tmp_path=tmp_path)
    replacement = None
    try:
        webhook_receiver.delay = 120  # the first delivery hangs until the worker is killed
        consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
        (first,) = webhook_receiver.wait_for(1, timeout=60)
        os.killpg(worker.pid, signal.SIGKILL)  # the main process and its pool child, mid-send
        killed_at = time.time()
        webhook_receiver.delay = 0
        worker.wait()
        replacement = start_celery(*worker_args, "--without-mingle", tmp_path=tmp_path)

        received = webhook_receiver.wait_for(2, timeout=45)
        assert len(received) >= 2, "not re-sent 45 s after the kill"
        resent_after = received[1].received_at - killed_at
        print(f"kill -9 → re-delivery: {resent_after:.1f} s")
        assert resent_after <= 30
        event = wait_for_status(OutboxEvent.objects.get().id, DeliveryStatus.DELIVERED, replacement)
        assert received[1].headers["webhook-id"] == first.headers["webhook-id"] == str(event.id)
        time.sleep(1)
        assert len(webhook_receiver.requests) == 2, "delivered once after the kill, not again"
    finally:
        for proc in (worker, replacement, beat):
            if proc is not None:
                stop_group(proc)


def events_for(partner, users, purpose):
    for user in users:
        consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))
    return list(OutboxEvent.objects.filter(partner=partner).order_by("created_at"))


def test_a_batch_sends_one_partners_events_in_turn_and_a_failure_does_not_stop_it(
    purpose, partner, webhook_receiver, celery_eager, clock
):
    events = events_for(partner, UserFactory.create_batch(3), purpose)
    webhook_receiver.respond(500)

    statuses = outbox_events_deliver([str(event.id) for event in events])

    assert statuses == [DeliveryStatus.RETRYING, DeliveryStatus.DELIVERED, DeliveryStatus.DELIVERED]
    assert [r.headers["webhook-id"] for r in webhook_receiver.requests] == [str(event.id) for event in events]
    for received in webhook_receiver.requests:
        received.verify(partner.webhook_secret)
    for event in events:
        event.refresh_from_db()
        assert event.attempts == 1
        assert event.sending_until is None, "each claim ended with its own attempt"
    assert [event.status for event in events] == statuses


def test_a_batch_stops_starting_attempts_after_its_time_budget_and_queues_the_rest(
    purpose, partner, webhook_receiver, monkeypatch, clock
):
    from consents.services import delivery

    events = events_for(partner, UserFactory.create_batch(3), purpose)
    queued = []
    monkeypatch.setattr(delivery, "delivery_batch_queue", lambda ids: queued.append(list(ids)))
    monkeypatch.setattr(delivery, "BATCH_START_SECONDS", 0.0)

    assert outbox_events_deliver([str(event.id) for event in events]) == [DeliveryStatus.DELIVERED]

    assert queued == [[str(events[1].id), str(events[2].id)]]
    assert len(webhook_receiver.requests) == 1
    assert OutboxEvent.objects.filter(pk__in=[events[1].pk, events[2].pk], attempts=0).count() == 2
    # Every attempt a batch starts has its whole timeout, and a claim's lease outlives the task.
    soft, hard = outbox_events_deliver.soft_time_limit, outbox_events_deliver.time_limit
    assert delivery.BATCH_START_SECONDS == 0.0
    assert soft - 2.0 >= django_settings.WEBHOOK_TIMEOUT_SECONDS + 1
    assert hard < claim_lease().total_seconds()


def test_a_batch_respects_the_partners_in_flight_cap_and_leaves_the_rest_to_the_hand_off(
    purpose, partner, settings, webhook_receiver, celery_eager, clock
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 1
    first, second, third = events_for(partner, UserFactory.create_batch(3), purpose)
    claim = outbox_event_claim(event_id=first.id)  # another worker holds the partner's one place
    assert isinstance(claim, DeliveryClaim)

    assert outbox_events_deliver([str(second.id), str(third.id)]) == [Unclaimed.DEFERRED]

    assert webhook_receiver.requests == []
    assert OutboxEvent.objects.filter(pk__in=[second.pk, third.pk], attempts=0, sending_until=None).count() == 2
    outbox_attempt_record(
        event_id=first.id, attempt=claim.attempt, result=AttemptResult(status_code=200, duration_ms=5)
    )
    # The finished attempt hands its place on: the next events follow, one in flight at a time.
    assert partner_deferred_queue(partner_id=partner.pk) == [str(second.id)]
    assert OutboxEvent.objects.filter(status=DeliveryStatus.DELIVERED).count() == 3


def test_a_transaction_queues_its_events_in_batches_of_one_partner_each(
    purpose, partner, monkeypatch, django_capture_on_commit_callbacks
):
    from celery import Celery
    from django.db import transaction

    from consents.services.outbox import BATCH_MAX, DELIVER_BATCH_TASK, deliveries_gathered

    other = PartnerFactory(slug="other", webhook_url=partner.webhook_url)
    SharingFactory(partner=other, purpose=purpose)
    sent = []
    monkeypatch.setattr(
        Celery, "send_task", lambda self, name, args=None, kwargs=None, **options: sent.append((name, args[0]))
    )
    users = UserFactory.create_batch(BATCH_MAX + 2)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic(), deliveries_gathered():
        try:
            with transaction.atomic():
                consent_revoke(user=users[0], purpose=purpose, actor=Actor.consumer(users[0]))
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        for user in users[1:]:
            consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))

    assert {name for name, _ids in sent} == {DELIVER_BATCH_TASK}
    by_partner = {}
    for _name, ids in sent:
        (owner,) = set(OutboxEvent.objects.filter(pk__in=ids).values_list("partner_id", flat=True))
        by_partner.setdefault(owner, []).append(len(ids))
    # Per partner: the rolled-back revocation's event and the BATCH_MAX + 1 committed ones.
    assert by_partner == {partner.pk: [BATCH_MAX, 2], other.pk: [BATCH_MAX, 2]}
    queued = [event_id for _name, ids in sent for event_id in ids]
    committed = {str(pk) for pk in OutboxEvent.objects.values_list("pk", flat=True)}
    assert len(committed) == 2 * (BATCH_MAX + 1), "the rolled-back revocation wrote no events"
    assert committed <= set(queued)
    assert len(queued) == len(set(queued)) == len(committed) + 2
    # The two queued ids of the rolled-back savepoint name no event: their batch skips them.
    assert outbox_events_send(event_ids=sorted(set(queued) - committed)) == ["skipped", "skipped"]


def test_a_batch_skips_an_event_that_is_gone_or_not_due_and_sends_the_rest(
    purpose, partner, webhook_receiver, celery_eager, clock
):
    first, second = events_for(partner, UserFactory.create_batch(2), purpose)
    OutboxEvent.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    gone = "7b7d1f0e-0000-4000-8000-000000000001"  # written in a savepoint that rolled back

    statuses = outbox_events_deliver([gone, str(first.id), str(second.id)])

    assert statuses == [Unclaimed.SKIPPED, Unclaimed.SKIPPED, DeliveryStatus.DELIVERED]
    assert [r.headers["webhook-id"] for r in webhook_receiver.requests] == [str(second.id)]


def test_an_opt_out_of_several_purposes_reaches_each_partner_in_one_task(
    partner, monkeypatch, django_capture_on_commit_callbacks
):
    from celery import Celery

    from consents.services.consents import sale_sharing_opt_out
    from consents.services.outbox import DELIVER_BATCH_TASK

    purposes = [PurposeFactory(slug=f"sale-{n}", gpc_covered=True) for n in range(3)]
    for purpose in purposes:
        SharingFactory(partner=partner, purpose=purpose)
    user = UserFactory()
    for purpose in purposes:
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    sent = []
    monkeypatch.setattr(
        Celery, "send_task", lambda self, name, args=None, kwargs=None, **options: sent.append((name, args[0]))
    )

    with django_capture_on_commit_callbacks(execute=True):
        opted_out = sale_sharing_opt_out(user=user, actor=Actor.consumer(user), method="gpc")

    assert sorted(opted_out) == ["sale-0", "sale-1", "sale-2"]
    revoked = OutboxEvent.objects.filter(partner=partner, event_type="consent.revoked")
    assert sent == [
        (DELIVER_BATCH_TASK, [str(pk) for pk in revoked.order_by("created_at").values_list("pk", flat=True)])
    ]
