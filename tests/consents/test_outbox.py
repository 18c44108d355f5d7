from datetime import date, timedelta

import pytest
import time_machine
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from kombu.exceptions import OperationalError

from audit.services import Actor
from consents.models import (
    ConsentStatus,
    DeliveryStatus,
    EventType,
    OutboxEvent,
    PartnerSubject,
)
from consents.selectors.propagation import DeliveryState, consent_delivery_states
from consents.services.consents import consent_expire, consent_grant, consent_revoke
from consents.services.notices import purpose_version_publish
from consents.services.outbox import DELIVER_TASK, delivery_queue, outbox_subject_erasure
from consents.tasks.delivery import outbox_events_deliver, outbox_relay
from tests.factories import (
    DataCategoryFactory,
    PartnerFactory,
    PurposeFactory,
    SharingFactory,
    UserFactory,
    notice_translations,
)

CONSENT_DATA_KEYS = {
    "subject_id",
    "purpose",
    "status",
    "granted",
    "notice_version",
    "granted_at",
    "expires_at",
    "revoked_at",
    "reason",
}


@pytest.fixture
def purpose(db):
    return PurposeFactory(slug="marketing-emails")


@pytest.fixture
def receiving_partner(purpose):
    partner = PartnerFactory(slug="mailer", webhook_url="https://mailer.example/hooks")
    SharingFactory(partner=partner, purpose=purpose)
    return partner


def grant(user, purpose):
    return consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))


def revoke(user, purpose):
    return consent_revoke(user=user, purpose=purpose, actor=Actor.consumer(user))


def test_revoke_writes_one_event_per_partner_with_an_active_sharing(consumer, purpose, receiving_partner):
    feed_only = PartnerFactory(slug="feed-reader")
    SharingFactory(partner=feed_only, purpose=purpose)
    SharingFactory(partner=PartnerFactory(slug="inactive-sharing"), purpose=purpose, is_active=False)
    SharingFactory(partner=PartnerFactory(slug="suspended", status="suspended"), purpose=purpose)
    SharingFactory(partner=PartnerFactory(slug="other-purpose"), purpose=PurposeFactory(slug="analytics"))
    grant(consumer, purpose)
    OutboxEvent.objects.all().delete()

    consent = revoke(consumer, purpose)

    events = {e.partner.slug: e for e in OutboxEvent.objects.select_related("partner", "subject")}
    assert set(events) == {"mailer", "feed-reader"}
    assert events["mailer"].status == DeliveryStatus.PENDING
    assert events["feed-reader"].status == DeliveryStatus.NO_ENDPOINT
    event = events["mailer"]
    assert event.event_type == EventType.CONSENT_REVOKED
    assert event.consent == consent
    assert event.payload["id"] == str(event.id)
    assert event.payload["type"] == "consent.revoked"
    assert event.payload["timestamp"].endswith("Z")
    assert set(event.payload["data"]) == CONSENT_DATA_KEYS
    assert event.payload["data"]["subject_id"] == event.subject.subject_id
    assert event.payload["data"]["purpose"] == "marketing-emails"
    assert event.payload["data"]["status"] == "revoked"
    assert event.payload["data"]["granted"] is False
    assert event.payload["data"]["notice_version"] == 1
    assert event.payload["data"]["reason"] == "user_action"
    assert event.payload["data"]["revoked_at"].endswith("Z")


def test_partners_see_different_pairwise_ids_and_never_the_user_id(consumer, purpose, receiving_partner):
    other = PartnerFactory(slug="other")
    SharingFactory(partner=other, purpose=purpose)

    grant(consumer, purpose)

    subject_ids = {e.payload["data"]["subject_id"] for e in OutboxEvent.objects.all()}
    assert len(subject_ids) == 2
    assert subject_ids == set(PartnerSubject.objects.filter(user=consumer).values_list("subject_id", flat=True))
    for event in OutboxEvent.objects.all():
        assert str(consumer.pk) not in event.payload["data"].values()
        assert consumer.email not in str(event.payload)


def test_every_kind_of_consent_change_writes_its_event_type(consumer, purpose, receiving_partner):
    with time_machine.travel(timezone.now() - timedelta(days=2)):
        consent = consent_grant(
            user=consumer, purpose=purpose, actor=Actor.consumer(consumer), duration_type="time_bound", period_days=1
        )
    consent_expire(consent_id=consent.pk)
    grant(consumer, purpose)
    purpose_version_publish(
        purpose=purpose,
        description="Now also by text message.",
        retention="One year",
        data_categories=[DataCategoryFactory()],
        material=True,
        change_summary="Text messages",
        actor=Actor.system("tests"),
        translations=notice_translations(
            description="Now also by text message.",
            retention="One year",
            change_summary="Text messages",
        ),
    )
    revoke(consumer, purpose)

    assert list(OutboxEvent.objects.order_by("created_at").values_list("event_type", flat=True)) == [
        "consent.granted",
        "consent.expired",
        "consent.granted",
        "consent.reconsent_required",
        "consent.revoked",
    ]
    reconsent = OutboxEvent.objects.get(event_type="consent.reconsent_required")
    assert reconsent.payload["data"]["status"] == ConsentStatus.RECONSENT_REQUIRED
    assert reconsent.payload["data"]["granted"] is False


def test_no_partner_no_event(consumer, purpose):
    revoke(consumer, purpose)
    assert not OutboxEvent.objects.exists()


def test_rolled_back_change_leaves_no_event_and_no_subject_id(consumer, purpose, receiving_partner):
    def revoke_then_fail() -> None:
        with transaction.atomic():
            revoke(consumer, purpose)
            assert OutboxEvent.objects.count() == 1
            raise RuntimeError("the request failed after the revocation")

    with pytest.raises(RuntimeError):
        revoke_then_fail()

    assert not OutboxEvent.objects.exists()
    assert not PartnerSubject.objects.exists()
    assert consumer.consents.count() == 0


def test_delivery_is_queued_only_after_commit(consumer, purpose, receiving_partner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        revoke(consumer, purpose)
        event = OutboxEvent.objects.get()
        assert event.attempts == 0

    # One callback for the outbox (after the receipt and audit writes, which queue nothing).
    assert len(callbacks) == 1
    assert OutboxEvent.objects.get().status == DeliveryStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_committed_change_keeps_its_events_when_the_broker_is_down(monkeypatch):
    consumer = UserFactory()
    purpose = PurposeFactory(slug="offers")
    partner = PartnerFactory(slug="shop", webhook_url="https://shop.example/hooks")
    SharingFactory(partner=partner, purpose=purpose)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis: Connection refused.")

    monkeypatch.setattr(outbox_events_deliver, "apply_async", broker_down)
    consent = revoke(consumer, purpose)

    consent.refresh_from_db()
    assert consent.status == ConsentStatus.REVOKED
    event = OutboxEvent.objects.get()
    assert event.status == DeliveryStatus.PENDING
    assert event.attempts == 0


def test_queueing_a_delivery_subscribes_to_no_result(consumer, purpose, receiving_partner, monkeypatch):
    """Nobody reads delivery results; subscribing to one holds the request for 20 s while Redis is down."""
    from celery import Celery

    sent = []
    monkeypatch.setattr(Celery, "send_task", lambda self, name, *args, **options: sent.append((name, options)))
    delivery_queue(["7b7d1f0e-0000-4000-8000-000000000001"])

    ((name, options),) = sent
    assert name == DELIVER_TASK
    assert options["ignore_result"] is True


def test_a_broker_outage_costs_one_failed_enqueue_not_one_per_event(monkeypatch, caplog):
    from celery import Celery

    attempts = []

    def broker_down(self, name, *args, **options):
        attempts.append(name)
        raise OperationalError("Error 111 connecting to redis: Connection refused.")

    monkeypatch.setattr(Celery, "send_task", broker_down)
    delivery_queue([f"7b7d1f0e-0000-4000-8000-00000000000{n}" for n in range(5)])

    assert len(attempts) == 1
    assert "could not queue 5 delivery tasks" in caplog.text


def test_the_crash_fault_kills_the_process_after_commit_and_before_the_enqueue(
    consumer, purpose, receiving_partner, settings, monkeypatch, django_capture_on_commit_callbacks
):
    import signal

    from consents.services import outbox

    settings.FAULT_CRASH_AFTER_COMMIT = True
    steps = []
    monkeypatch.setattr(outbox.os, "kill", lambda pid, sig: steps.append(("kill", sig)))
    monkeypatch.setattr(outbox, "delivery_batch_queue", lambda ids: steps.append(("queue", len(ids))))
    with django_capture_on_commit_callbacks(execute=True):
        revoke(consumer, purpose)
        assert steps == [], "nothing happens before the commit"

    assert steps == [("kill", signal.SIGKILL), ("queue", 1)]


def test_without_the_crash_fault_nothing_is_killed(consumer, purpose, receiving_partner, monkeypatch):
    from consents.services import outbox

    monkeypatch.setattr(outbox.os, "kill", lambda pid, sig: pytest.fail("killed"))
    with transaction.atomic():
        revoke(consumer, purpose)


def test_relay_resends_an_event_whose_enqueue_was_lost(
    consumer, purpose, settings, webhook_receiver, celery_eager, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    partner = PartnerFactory(slug="late", webhook_url=webhook_receiver.url)
    SharingFactory(partner=partner, purpose=purpose)
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        # The process dies between commit and enqueue: the on-commit callbacks never run.
        with django_capture_on_commit_callbacks(execute=False):
            revoke(consumer, purpose)
        event = OutboxEvent.objects.get()

        assert outbox_relay() == 0, "the relay leaves fresh events to their own task"
        traveller.shift(timedelta(seconds=settings.OUTBOX_RELAY_GRACE_SECONDS + 1))
        assert outbox_relay() == 1

    event.refresh_from_db()
    assert event.status == DeliveryStatus.DELIVERED
    (received,) = webhook_receiver.requests
    assert received.headers["webhook-id"] == str(event.id)
    assert received.verify(partner.webhook_secret)["data"]["status"] == "revoked"


def test_relay_batch_is_bounded(consumer, settings, django_capture_on_commit_callbacks, celery_eager):
    settings.OUTBOX_RELAY_BATCH = 2
    settings.WEBHOOK_ALLOW_PRIVATE = False
    purpose = PurposeFactory(slug="bounded")
    for n in range(3):
        SharingFactory(partner=PartnerFactory(slug=f"p{n}", webhook_url=f"http://10.0.0.{n + 1}/"), purpose=purpose)
    with django_capture_on_commit_callbacks(execute=False):
        revoke(consumer, purpose)

    with time_machine.travel(timezone.now() + timedelta(seconds=30)):
        assert outbox_relay() == 2
        assert outbox_relay() == 1


def test_erasure_request_goes_to_every_partner_that_ever_received_the_consumer(consumer, purpose, receiving_partner):
    former = PartnerFactory(slug="former")
    sharing = SharingFactory(partner=former, purpose=purpose)
    PartnerFactory(slug="never")
    grant(consumer, purpose)
    sharing.is_active = False
    sharing.save()
    former.status = "suspended"
    former.save()
    OutboxEvent.objects.all().delete()

    events = outbox_subject_erasure(user=consumer, request_id="req_123", due_at=date(2026, 4, 30))

    assert {e.partner.slug for e in events} == {"mailer", "former"}
    for event in OutboxEvent.objects.select_related("subject"):
        assert event.event_type == EventType.SUBJECT_ERASURE_REQUESTED
        assert event.consent is None
        assert event.payload["type"] == "subject.erasure_requested"
        assert event.payload["data"] == {
            "subject_id": event.subject.subject_id,
            "request_id": "req_123",
            "due_at": "2026-04-30",
        }


def test_erasure_request_for_a_consumer_no_partner_received_writes_nothing(consumer):
    assert outbox_subject_erasure(user=consumer, request_id="r", due_at=timezone.now()) == []


def test_delivery_states_follow_the_latest_change_in_one_query(
    consumer, purpose, receiving_partner, django_assert_num_queries
):
    feed_only = PartnerFactory(slug="feed", name="Feed Reader")
    SharingFactory(partner=feed_only, purpose=purpose)
    other_purpose = PurposeFactory(slug="research")
    SharingFactory(partner=receiving_partner, purpose=other_purpose)
    grant(consumer, purpose)
    OutboxEvent.objects.filter(consent__purpose=purpose).update(status=DeliveryStatus.DELIVERED)
    consent = revoke(consumer, purpose)
    research = revoke(consumer, other_purpose)
    acked_at = timezone.now()

    with django_assert_num_queries(1):
        states = consent_delivery_states([consent, research])
    assert [(s.partner.slug, s.state) for s in states[consent.pk]] == [
        ("feed", DeliveryState.FEED_ONLY),
        ("mailer", DeliveryState.PENDING),
    ]
    assert all(s.event_type == "consent.revoked" for s in states[consent.pk])

    OutboxEvent.objects.filter(consent=consent, partner=receiving_partner).update(
        status=DeliveryStatus.DELIVERED, delivered_at=acked_at
    )
    assert consent_delivery_states([consent])[consent.pk][1].state == DeliveryState.DELIVERED
    OutboxEvent.objects.filter(consent=consent).update(acked_at=acked_at, ack_status="processed")
    confirmed = consent_delivery_states([consent])[consent.pk]
    assert {s.state for s in confirmed} == {DeliveryState.CONFIRMED}
    assert confirmed[1].since == acked_at
    OutboxEvent.objects.filter(consent=research).update(status=DeliveryStatus.DEAD)
    assert consent_delivery_states([research])[research.pk][0].state == DeliveryState.FAILED


def test_delivery_states_of_nothing_cost_no_query(django_assert_num_queries, db):
    with django_assert_num_queries(0):
        assert consent_delivery_states([]) == {}


def test_delivery_state_partial_says_it_in_words(consumer, purpose, receiving_partner):
    consent = revoke(consumer, purpose)
    OutboxEvent.objects.update(acked_at=timezone.now(), ack_status="processed")
    (state,) = consent_delivery_states([consent])[consent.pk]

    html = render_to_string("consents/_delivery_state.html", {"state": state})

    assert receiving_partner.name in html
    assert "Confirmed" in html
    assert "acted on your decision" in html
    assert f'datetime="{state.since.isoformat()}"' in html
    assert 'aria-hidden="true"' in html


def test_delivery_state_partial_can_leave_the_partner_name_to_screen_readers(consumer, purpose, receiving_partner):
    consent = revoke(consumer, purpose)
    (state,) = consent_delivery_states([consent])[consent.pk]

    html = render_to_string("consents/_delivery_state.html", {"state": state, "hide_partner": True})

    assert f'<span class="visually-hidden">{receiving_partner.name}:</span>' in html
    assert "Sending" in html
    assert "We are sending your decision to the partner." in html
