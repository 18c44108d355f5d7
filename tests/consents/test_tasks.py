from smtplib import SMTPServerDisconnected

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.core.mail.backends.locmem import EmailBackend
from django.utils import translation

from audit.models import AuditEvent
from audit.services import Actor
from consents.models import Consent, ConsentReceipt, ConsentStatus, DurationType
from consents.services.consents import consent_grant, consent_revoke
from consents.tasks import expiry
from tests.factories import PurposeFactory, UserFactory

START = "2026-01-10 08:00Z"


@pytest.fixture
def research(db):
    return PurposeFactory(
        slug="research", name="Research with affiliates", default_duration_type="time_bound", default_period_days=180
    )


def _grant(user, purpose, **terms) -> Consent:
    return consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user), **terms)


def test_beat_runs_expiry_every_minute_and_reminders_regularly(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["consents-expire-due"]["task"] == "consents.tasks.consents_expire_due"
    assert schedule["consents-expire-due"]["schedule"].minute == set(range(60))
    assert schedule["consents-remind-expiring"]["task"] == "consents.tasks.consents_remind_expiring"


def test_expire_due_ends_consents_whose_time_passed(consumer, other_consumer, research):
    with time_machine.travel(START, tick=False):
        mine = _grant(consumer, research)
        one_time = _grant(consumer, PurposeFactory(slug="survey"), duration_type=DurationType.ONE_TIME)
        persistent = _grant(consumer, PurposeFactory(slug="offers"))
    with time_machine.travel("2026-02-01 08:00Z", tick=False):
        theirs = _grant(other_consumer, research)

    with time_machine.travel("2026-01-11 08:00Z", tick=False):
        assert expiry.consents_expire_due() == 1
    assert Consent.objects.get(pk=one_time.pk).status == ConsentStatus.EXPIRED

    with time_machine.travel("2026-07-09 07:59Z", tick=False):
        assert expiry.consents_expire_due() == 0
    with time_machine.travel("2026-07-09 08:00Z", tick=False):
        assert expiry.consents_expire_due() == 1

    statuses = dict(Consent.objects.values_list("pk", "status"))
    assert statuses[mine.pk] == ConsentStatus.EXPIRED
    assert statuses[theirs.pk] == ConsentStatus.GRANTED
    assert statuses[persistent.pk] == ConsentStatus.GRANTED
    assert AuditEvent.objects.filter(action="consent.expired", actor_kind="system").count() == 2


def test_expire_due_twice_changes_nothing_the_second_time(consumer, research):
    with time_machine.travel(START, tick=False):
        consent = _grant(consumer, research)
    with time_machine.travel("2026-12-01", tick=False):
        assert expiry.consents_expire_due() == 1
        assert expiry.consents_expire_due() == 0
    assert ConsentReceipt.objects.filter(consent=consent, event="expired").count() == 1
    assert consent.history.count() == 2


def test_expire_due_leaves_revoked_consents_alone(consumer, research):
    with time_machine.travel(START, tick=False):
        _grant(consumer, research)
        consent_revoke(user=consumer, purpose=research, actor=Actor.consumer(consumer))
    with time_machine.travel("2026-12-01", tick=False):
        assert expiry.consents_expire_due() == 0
    assert Consent.objects.get().status == ConsentStatus.REVOKED


def test_expire_due_works_through_more_than_one_batch(research, monkeypatch):
    monkeypatch.setattr(expiry, "BATCH_SIZE", 2)
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            _grant(UserFactory(), research)
    with time_machine.travel("2026-12-01", tick=False):
        assert expiry.consents_expire_due() == 5
    assert not Consent.objects.filter(status=ConsentStatus.GRANTED).exists()


def test_one_failing_expiry_does_not_hold_up_the_others(research, monkeypatch):
    with time_machine.travel(START, tick=False):
        consents = [_grant(UserFactory(), research) for _ in range(3)]
    real_expire = expiry.consent_expire
    broken_id = consents[1].pk

    def expire_or_fail(*, consent_id: int):
        if consent_id == broken_id:
            raise RuntimeError("disk full")
        return real_expire(consent_id=consent_id)

    monkeypatch.setattr(expiry, "consent_expire", expire_or_fail)
    with time_machine.travel("2026-12-01", tick=False):
        assert expiry.consents_expire_due() == 2
    assert Consent.objects.get(pk=broken_id).status == ConsentStatus.GRANTED

    monkeypatch.setattr(expiry, "consent_expire", real_expire)
    with time_machine.travel("2026-12-01", tick=False):
        assert expiry.consents_expire_due() == 1


def test_reminder_goes_out_once_before_expiry(consumer, research, settings):
    settings.CONSENT_EXPIRY_REMINDER_DAYS = 14
    with time_machine.travel(START, tick=False):
        consent = _grant(consumer, research)
    # expires 2026-07-09 08:00; the reminder window opens 14 days earlier
    with time_machine.travel("2026-06-25 07:00Z", tick=False):
        assert expiry.consents_remind_expiring() == 0
    assert mail.outbox == []

    with time_machine.travel("2026-06-25 09:00Z", tick=False):
        assert expiry.consents_remind_expiring() == 1
        assert expiry.consents_remind_expiring() == 0
    with time_machine.travel("2026-07-01 09:00Z", tick=False):
        assert expiry.consents_remind_expiring() == 0

    (email,) = mail.outbox
    assert email.to == [consumer.email]
    assert email.subject == "[Privacy Portal] Your consent for “Research with affiliates” ends on 9 Jul 2026"
    assert "ends on 9 Jul 2026" in email.body
    assert f"{settings.SITE_URL}/consents/" in email.body
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="{settings.SITE_URL}/consents/"' in html
    consent.refresh_from_db()
    assert consent.reminder_sent_at is not None
    assert AuditEvent.objects.filter(action="consent.expiry_reminder_sent", subject=consumer).count() == 1


def test_reminder_period_follows_the_setting(consumer, research, settings):
    settings.CONSENT_EXPIRY_REMINDER_DAYS = 30
    with time_machine.travel(START, tick=False):
        _grant(consumer, research)
    with time_machine.travel("2026-06-10 09:00Z", tick=False):
        assert expiry.consents_remind_expiring() == 1
    assert len(mail.outbox) == 1


def test_no_reminder_for_revoked_persistent_or_short_consents(consumer, other_consumer, research):
    with time_machine.travel(START, tick=False):
        _grant(consumer, research)
        consent_revoke(user=consumer, purpose=research, actor=Actor.consumer(consumer))
        _grant(consumer, PurposeFactory(slug="offers"))
        _grant(other_consumer, research, duration_type=DurationType.TIME_BOUND, period_days=10)
        _grant(other_consumer, PurposeFactory(slug="survey"), duration_type=DurationType.ONE_TIME)
    with time_machine.travel("2026-01-15", tick=False):
        assert expiry.consents_remind_expiring() == 0
    with time_machine.travel("2026-07-01", tick=False):
        assert expiry.consents_remind_expiring() == 0
    assert mail.outbox == []


def test_renewed_consent_is_reminded_again(consumer, research):
    with time_machine.travel(START, tick=False):
        _grant(consumer, research)
    with time_machine.travel("2026-07-01", tick=False):
        expiry.consents_remind_expiring()
    with time_machine.travel("2026-07-10", tick=False):
        expiry.consents_expire_due()
        _grant(consumer, research)
    with time_machine.travel("2026-12-30", tick=False):
        assert expiry.consents_remind_expiring() == 1
    assert len(mail.outbox) == 2


def test_reminder_that_could_not_be_sent_is_tried_again(consumer, research, monkeypatch):
    with time_machine.travel(START, tick=False):
        consent = _grant(consumer, research)

    def refuse(self, messages):
        raise SMTPServerDisconnected("connection closed")

    with monkeypatch.context() as patched:
        patched.setattr(EmailBackend, "send_messages", refuse)
        with time_machine.travel("2026-07-01", tick=False):
            assert expiry.consents_remind_expiring() == 0
    consent.refresh_from_db()
    assert consent.reminder_sent_at is None

    with time_machine.travel("2026-07-01 01:00Z", tick=False):
        assert expiry.consents_remind_expiring() == 1
    assert len(mail.outbox) == 1


def test_reminders_do_not_run_twice_side_by_side(consumer, research):
    with time_machine.travel(START, tick=False):
        _grant(consumer, research)
    cache.add(expiry.REMINDER_LOCK, "1")
    with time_machine.travel("2026-07-01", tick=False):
        assert expiry.consents_remind_expiring() == 0
    assert mail.outbox == []


def test_reminder_is_written_in_the_language_consent_was_given_in(consumer, research):
    with time_machine.travel(START, tick=False), translation.override("zh-hans"):
        _grant(consumer, research)
    with time_machine.travel("2026-07-01", tick=False):
        expiry.consents_remind_expiring()

    (email,) = mail.outbox
    assert "2026年7月9日" in email.subject
    assert 'lang="zh-hans"' in email.alternatives[0][0]


def test_reminder_falls_back_to_english(consumer, research):
    with time_machine.travel(START, tick=False):
        consent = _grant(consumer, research)
    receipt = consent.receipts.get()
    receipt.payload["language"] = "xx"
    receipt.save(update_fields=["payload"])
    with time_machine.travel("2026-07-01", tick=False):
        expiry.consents_remind_expiring()

    assert "9 Jul 2026" in mail.outbox[0].subject
