"""Row locking on PostgreSQL: changes about one consumer queue up, other consumers never wait.

SQLite runs one write transaction at a time, so these tests only mean something on PostgreSQL
(``.ci/test`` runs the suite on both).
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import audit_chain_breaks
from audit.services import Actor, event_record
from consents.models import Consent, ConsentReceipt, ConsentStatus
from consents.services.consents import consent_expire, consent_grant, consent_revoke
from consents.services.notices import purpose_version_publish
from tests.factories import PurposeFactory, UserFactory, notice_translations

pytestmark = pytest.mark.django_db(transaction=True)

BLOCKED = 0.7  # seconds a waiting thread is given before we call it blocked


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-level locking is only observable on PostgreSQL")


class Worker(threading.Thread):
    """Runs ``work`` on its own database connection and keeps its result or error."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as error:
            self.error = error
        finally:
            connection.close()

    def finished_within(self, seconds: float) -> bool:
        self.join(seconds)
        return not self.is_alive()


@contextmanager
def held_open(work: Callable[[], Any]) -> Iterator[Worker]:
    """Run ``work`` in a transaction on another connection and keep that transaction open."""
    inside = threading.Event()
    release = threading.Event()

    def hold() -> Any:
        with transaction.atomic():
            result = work()
            inside.set()
            release.wait(30)
        return result

    worker = Worker(hold)
    worker.start()
    assert inside.wait(10), worker.error
    try:
        yield worker
    finally:
        release.set()
        worker.join(10)
    assert worker.error is None, worker.error


def _grant(user, purpose) -> Callable[[], Consent]:
    return lambda: consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))


def _publish_material(purpose) -> Callable[[], Any]:
    return lambda: purpose_version_publish(
        purpose=purpose,
        description="Now also shared with a credit bureau.",
        retention="Five years",
        data_categories=list(purpose.current_version.data_categories.all()),
        material=True,
        change_summary="Adds a credit bureau",
        actor=Actor.system("tests"),
        translations=notice_translations(
            description="Now also shared with a credit bureau.",
            retention="Five years",
            change_summary="Adds a credit bureau",
        ),
    )


def test_audit_events_of_other_subjects_do_not_wait_for_a_held_chain():
    alice, bob = UserFactory(), UserFactory()

    def record(user) -> Callable[[], Any]:
        return lambda: event_record(actor=Actor.consumer(user), subject=user, action="test.touch")

    with held_open(record(alice)):
        other = Worker(record(bob))
        other.start()
        assert other.finished_within(5), "another subject's chain waited for alice's"
        same = Worker(record(alice))
        same.start()
        assert not same.finished_within(BLOCKED), "alice's chain was not locked"
    assert same.finished_within(10)
    assert same.error is None
    assert other.error is None
    assert list(AuditEvent.objects.filter(subject=alice).order_by("seq").values_list("seq", flat=True)) == [1, 2]
    assert list(audit_chain_breaks()) == []


def test_grants_by_different_consumers_for_one_purpose_run_side_by_side():
    purpose = PurposeFactory()
    alice, bob = UserFactory(), UserFactory()
    consent_grant(user=bob, purpose=purpose, actor=Actor.consumer(bob))
    carol = UserFactory()

    with held_open(_grant(alice, purpose)):
        others = [
            Worker(_grant(carol, purpose)),
            Worker(lambda: consent_revoke(user=bob, purpose=purpose, actor=Actor.consumer(bob))),
        ]
        for worker in others:
            worker.start()
        assert all(worker.finished_within(5) for worker in others), "unrelated consumers were serialised"
    assert [w.error for w in others] == [None, None]
    assert Consent.objects.filter(status=ConsentStatus.GRANTED).count() == 2
    assert list(audit_chain_breaks()) == []


def test_concurrent_identical_grants_record_one_decision():
    purpose = PurposeFactory()
    alice = UserFactory()

    with held_open(_grant(alice, purpose)):
        second = Worker(_grant(alice, purpose))
        second.start()
        assert not second.finished_within(BLOCKED), "the second grant did not wait for the first"
    assert second.finished_within(10)
    assert second.error is None
    consent = Consent.objects.get(user=alice)
    assert consent.history.count() == 1
    assert ConsentReceipt.objects.filter(consent=consent).count() == 1
    assert AuditEvent.objects.filter(subject=alice).count() == 1


def test_grant_during_a_material_publication_consents_to_the_new_notice():
    purpose = PurposeFactory()
    alice = UserFactory()

    with held_open(_publish_material(purpose)) as publication:
        grant = Worker(_grant(alice, purpose))
        grant.start()
        assert not grant.finished_within(BLOCKED), "the grant did not wait for the publication"
    assert grant.finished_within(10)
    assert grant.error is None
    consent = Consent.objects.get(user=alice)
    assert consent.status == ConsentStatus.GRANTED
    assert consent.version == publication.result


def test_publication_during_a_grant_asks_that_consumer_again():
    purpose = PurposeFactory()
    alice = UserFactory()

    with held_open(_grant(alice, purpose)):
        publication = Worker(_publish_material(purpose))
        publication.start()
        assert not publication.finished_within(BLOCKED), "the publication did not wait for the grant"
    assert publication.finished_within(10)
    assert publication.error is None
    assert Consent.objects.get(user=alice).status == ConsentStatus.RECONSENT_REQUIRED


def test_expiries_of_different_consumers_do_not_wait_for_each_other():
    purpose = PurposeFactory(default_duration_type="time_bound", default_period_days=1)
    alice, bob = UserFactory(), UserFactory()
    mine = consent_grant(user=alice, purpose=purpose, actor=Actor.consumer(alice))
    theirs = consent_grant(user=bob, purpose=purpose, actor=Actor.consumer(bob))

    with time_machine.travel(timezone.now() + timedelta(days=2)):
        with held_open(lambda: consent_expire(consent_id=mine.pk)):
            other = Worker(lambda: consent_expire(consent_id=theirs.pk))
            other.start()
            assert other.finished_within(5), "bob's expiry waited for alice's"
        assert other.error is None
    assert Consent.objects.filter(status=ConsentStatus.EXPIRED).count() == 2


def test_workers_claiming_one_partners_events_at_once_never_exceed_its_in_flight_cap(settings):
    from consents.models import OutboxEvent
    from consents.services.delivery import DeliveryClaim, Unclaimed, outbox_event_claim
    from tests.factories import PartnerFactory, SharingFactory

    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 2
    purpose = PurposeFactory()
    SharingFactory(partner=PartnerFactory(webhook_url="https://partner.example/hooks"), purpose=purpose)
    for _ in range(6):
        user = UserFactory()
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    event_ids = list(OutboxEvent.objects.values_list("pk", flat=True))
    start = threading.Barrier(len(event_ids))

    def claim(event_id: Any) -> Any:
        start.wait()
        return outbox_event_claim(event_id=event_id)

    workers = [Worker(lambda event_id=event_id: claim(event_id)) for event_id in event_ids]
    for worker in workers:
        worker.start()
    assert all(worker.finished_within(10) for worker in workers)

    assert [w.error for w in workers] == [None] * len(workers)
    results = [w.result for w in workers]
    assert sum(isinstance(r, DeliveryClaim) for r in results) == 2
    assert results.count(Unclaimed.DEFERRED) == 4
    assert OutboxEvent.objects.filter(sending_until__isnull=False).count() == 2


def _one_partners_events(count: int):
    from consents.models import OutboxEvent
    from tests.factories import PartnerFactory, SharingFactory

    purpose = PurposeFactory()
    SharingFactory(partner=PartnerFactory(webhook_url="https://partner.example/hooks"), purpose=purpose)
    for _ in range(count):
        user = UserFactory()
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    return list(OutboxEvent.objects.values_list("pk", flat=True))


def test_workers_claiming_the_same_event_at_once_hand_it_to_one_of_them(settings):
    from consents.models import OutboxEvent
    from consents.services.delivery import DeliveryClaim, Unclaimed, outbox_event_claim

    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 10  # every round's claim stays in flight
    for event_id in _one_partners_events(3):
        start = threading.Barrier(2)

        def claim(event_id: Any = event_id, start: threading.Barrier = start) -> Any:
            start.wait()
            return outbox_event_claim(event_id=event_id)

        workers = [Worker(claim), Worker(claim)]
        for worker in workers:
            worker.start()
        assert all(worker.finished_within(10) for worker in workers)

        assert [w.error for w in workers] == [None, None]
        results = [w.result for w in workers]
        assert sum(isinstance(r, DeliveryClaim) for r in results) == 1
        assert results.count(Unclaimed.SKIPPED) == 1
        assert next(r for r in results if isinstance(r, DeliveryClaim)).attempt == 1
        assert OutboxEvent.objects.get(pk=event_id).attempts == 1


def test_a_claim_that_waited_for_the_partners_lock_sees_the_event_was_claimed_meanwhile():
    # The waiting claim read the event before the lock was granted (a stale attempt count); the
    # claim itself must still find the event taken and leave it alone.
    from consents.models import OutboxEvent
    from consents.services.delivery import DeliveryClaim, Unclaimed, outbox_event_claim

    [event_id] = _one_partners_events(1)
    with held_open(lambda: outbox_event_claim(event_id=event_id)) as first:
        second = Worker(lambda: outbox_event_claim(event_id=event_id))
        second.start()
        assert not second.finished_within(BLOCKED), "the second claim did not wait for the partner's lock"
    assert second.finished_within(10)
    assert second.error is None
    assert isinstance(first.result, DeliveryClaim)
    assert second.result == Unclaimed.SKIPPED
    event = OutboxEvent.objects.get(pk=event_id)
    assert event.attempts == 1
    assert event.sending_until is not None


def test_concurrent_reports_of_one_event_id_with_different_times_store_one_event(consent_catalogue, consumer):
    # On PostgreSQL the access log is partitioned by accessed_at, so its unique key includes that
    # time: the ingest's event-id lock, not the key, must make the second report a conflict.
    from audit.models import AccessEvent
    from consents.services.access import AccessReport, access_events_ingest
    from consents.services.partners import partner_subject_ensure

    partner = consent_catalogue["adco"]
    subject = partner_subject_ensure(partner=partner, user=consumer).subject_id
    now = timezone.now()

    def report(minutes_ago: int) -> Callable[[], Any]:
        item = AccessReport(
            event_id="evt-1",
            subject_id=subject,
            purpose=consent_catalogue["offers"].slug,
            categories=("contact-details",),
            accessed_at=now - timedelta(minutes=minutes_ago),
            action="read",
            detail="",
        )
        return lambda: access_events_ingest(partner=partner, reports=[item])

    with held_open(report(5)) as first:
        second = Worker(report(1))
        second.start()
        assert not second.finished_within(BLOCKED)
    assert second.finished_within(10)

    assert second.error is None, second.error
    assert [r.status for r in first.result] == ["created"]
    assert [r.status for r in second.result] == ["conflict"]
    assert AccessEvent.objects.filter(partner=partner, partner_event_id="evt-1").count() == 1
