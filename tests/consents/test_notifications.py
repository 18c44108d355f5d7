# Chinese text is written with its own (full-width) punctuation.
# ruff: noqa: RUF001
"""Being told by email: material notice changes, flagged accesses, the monthly digest (flow 6 and 3)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from celery import Celery
from django.core import mail
from kombu.exceptions import OperationalError

from audit.models import AccessEvent, NotificationKind, NotificationSent
from audit.services import Actor
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant
from consents.services.notices import purpose_version_publish
from consents.services.partners import partner_subject_ensure
from consents.tasks.notifications import (
    flagged_access_notify,
    flagged_access_notify_sweep,
    material_change_notify,
    material_change_notify_sweep,
    monthly_digests_send,
)
from tests.factories import (
    DataCategoryFactory,
    PartnerFactory,
    PurposeFactory,
    SharingFactory,
    UserFactory,
    notice_translations,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def people(frozen):
    """An English consumer (zone unknown), a Chinese one in Shanghai, and one who turned every email off."""
    return {
        "en": UserFactory(email="en@example.com", language="en"),
        "zh": UserFactory(email="zh@example.com", language="zh-hans", time_zone="Asia/Shanghai"),
        "off": UserFactory(
            email="off@example.com", notify_material_changes=False, notify_flagged_access=False, monthly_digest=False
        ),
    }


@pytest.fixture
def offers(frozen):
    contact = DataCategoryFactory(slug="contact", name="Contact details")
    purpose = PurposeFactory(slug="offers", name="Personalised offers", notice__categories=[contact])
    partner = PartnerFactory(slug="adco", name="AdCo Media")
    SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    return purpose, partner


def _publish(purpose, *, material: bool = True):
    return purpose_version_publish(
        purpose=purpose,
        description="Now also by text message.",
        retention="One year",
        data_categories=list(purpose.current_version.data_categories.all()),
        material=material,
        change_summary="We now also send offers by text message.",
        actor=Actor.system("tests"),
        translations=notice_translations(
            name=purpose.name,
            description="Now also by text message.",
            retention="One year",
            change_summary="We now also send offers by text message.",
        ),
    )


def _mail_to(address: str):
    [message] = [m for m in mail.outbox if m.to == [address]]
    return message


def test_material_change_emails_each_consumer_once_in_their_language(
    people, offers, celery_eager, django_capture_on_commit_callbacks
):
    purpose, _partner = offers
    for user in people.values():
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        version = _publish(purpose)

    assert sorted(m.to[0] for m in mail.outbox) == ["en@example.com", "zh@example.com"]
    english = _mail_to("en@example.com")
    assert english.subject.endswith("“Personalised offers” has changed: please decide again")
    assert "We now also send offers by text message." in english.body
    assert re.search(r"^http://\S+/consents/offers/review/$", english.body, re.MULTILINE)
    assert " UTC" in english.body  # the site's zone, named, while the consumer's is unknown
    chinese = _mail_to("zh@example.com")
    assert "已变更：请重新决定" in chinese.subject
    assert "变更内容：" in chinese.body
    assert " CST" in chinese.body  # Shanghai's abbreviation
    html, mimetype = chinese.alternatives[0]
    assert mimetype == "text/html"
    assert 'lang="zh-hans"' in html

    # The task runs again (a retry, a duplicate message): nobody gets a second email.
    assert material_change_notify(version.pk) == 0
    assert len(mail.outbox) == 2


def test_material_change_emails_owed_when_the_broker_was_down_are_sent_once_by_the_sweep(
    people, offers, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    purpose, _partner = offers
    for user in people.values():
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    mail.outbox.clear()

    def broker_down(self, name, *args, **options):
        raise OperationalError("Error 111 connecting to redis: Connection refused.")

    monkeypatch.setattr(Celery, "send_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        version = _publish(purpose)
    assert mail.outbox == []
    assert f"could not queue the emails about notice version {version.pk}" in caplog.text

    assert material_change_notify_sweep() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["en@example.com", "zh@example.com"]
    assert "已变更：请重新决定" in _mail_to("zh@example.com").subject
    # Swept again, or the publication's own task arriving late: nobody gets a second email.
    assert material_change_notify_sweep() == 0
    assert material_change_notify(version.pk) == 0
    assert len(mail.outbox) == 2


def test_the_sweep_leaves_old_superseded_and_non_material_versions_alone(people, offers, frozen):
    purpose, _partner = offers
    consent_grant(user=people["en"], purpose=purpose, actor=Actor.consumer(people["en"]))
    _publish(purpose, material=False)
    assert material_change_notify_sweep() == 0
    _publish(purpose)
    mail.outbox.clear()
    frozen.shift(timedelta(days=8))
    assert material_change_notify_sweep() == 0, "a week-old change is no news any more"
    assert mail.outbox == []


def test_a_non_material_change_emails_nobody(people, offers, celery_eager, django_capture_on_commit_callbacks):
    purpose, _partner = offers
    consent_grant(user=people["en"], purpose=purpose, actor=Actor.consumer(people["en"]))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        _publish(purpose, material=False)
    assert mail.outbox == []


def test_a_superseded_version_emails_nobody(people, offers):
    purpose, _partner = offers
    consent_grant(user=people["en"], purpose=purpose, actor=Actor.consumer(people["en"]))
    first = _publish(purpose)
    _publish(purpose)
    mail.outbox.clear()
    assert material_change_notify(first.pk) == 0
    assert mail.outbox == []


def test_a_minor_version_published_before_the_emails_went_does_not_cancel_them(people, offers):
    # The material change still asks the consumer to decide; only a newer material version takes over.
    purpose, _partner = offers
    consent_grant(user=people["zh"], purpose=purpose, actor=Actor.consumer(people["zh"]))
    material = _publish(purpose)
    _publish(purpose, material=False)
    mail.outbox.clear()

    assert material_change_notify_sweep() == 1
    assert [m.to[0] for m in mail.outbox] == ["zh@example.com"]
    assert material_change_notify(material.pk) == 0  # the publication's own task, late: already told
    assert len(mail.outbox) == 1


def test_the_publications_own_task_emails_despite_a_later_minor_version(people, offers):
    purpose, _partner = offers
    consent_grant(user=people["en"], purpose=purpose, actor=Actor.consumer(people["en"]))
    material = _publish(purpose)
    minor = _publish(purpose, material=False)
    mail.outbox.clear()

    assert material_change_notify(minor.pk) == 0  # not a material version: nothing to tell
    assert material_change_notify(material.pk) == 1
    assert [m.to[0] for m in mail.outbox] == ["en@example.com"]


def test_every_notification_carries_one_click_unsubscribe_headers(people, offers):
    purpose, _partner = offers
    consent_grant(user=people["en"], purpose=purpose, actor=Actor.consumer(people["en"]))
    version = _publish(purpose)
    mail.outbox.clear()
    material_change_notify(version.pk)
    message = _mail_to("en@example.com")
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(
        r"<http://\S+/email-settings/\S+/unsubscribe/material_change/>", message.extra_headers["List-Unsubscribe"]
    )
    assert re.search(r"http://\S+/email-settings/[^/\s]+/\n", message.body + "\n")


# --- Flagged accesses ---------------------------------------------------------------------------


def _flagged_report(subject, event_id: str, *, minutes_ago: int = 5, categories=("contact",)) -> AccessReport:
    return AccessReport(
        event_id=event_id,
        subject_id=subject.subject_id,
        purpose="offers",
        categories=tuple(categories),
        accessed_at=NOW - timedelta(minutes=minutes_ago),
        action="read",
        detail="",
    )


@pytest.fixture
def flagged_setup(people, offers):
    """Two partners that report accesses the consumers never consented to."""
    _purpose, adco = offers
    mailer = PartnerFactory(slug="mailer", name="Mailer GmbH")
    SharingFactory(partner=mailer, purpose=offers[0])
    return adco, mailer


def test_a_burst_of_flagged_accesses_becomes_one_email(
    people, flagged_setup, celery_eager, django_capture_on_commit_callbacks
):
    adco, _mailer = flagged_setup
    subject = partner_subject_ensure(partner=adco, user=people["zh"])
    for n in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            access_events_ingest(partner=adco, reports=[_flagged_report(subject, f"burst-{n}")])
    # The first access queued the consumer's task; the rest of the burst waits for it (one email).
    assert [m.to for m in mail.outbox] == [["zh@example.com"]]


def test_flagged_access_email_names_partners_and_links_to_the_entries(people, flagged_setup):
    adco, mailer = flagged_setup
    user = people["en"]
    access_events_ingest(partner=adco, reports=[_flagged_report(partner_subject_ensure(partner=adco, user=user), "a1")])
    mailer_subject = partner_subject_ensure(partner=mailer, user=user)
    access_events_ingest(partner=mailer, reports=[_flagged_report(mailer_subject, f"m{n}") for n in range(2)])

    assert flagged_access_notify(user.pk) == 3
    message = _mail_to("en@example.com")
    assert message.subject.endswith("Partners used your data without your consent 3 times")
    assert "AdCo Media:\n" in message.body
    assert "Mailer GmbH:\n" in message.body
    assert message.body.count(" UTC: Read for “Personalised offers”. No consent at the time.") == 3
    assert "/access/events/?partner=adco&flagged=on" in message.body
    assert "/access/events/?partner=mailer&flagged=on" in message.body
    assert message.extra_headers["List-Unsubscribe"].endswith("/unsubscribe/flagged_access/>")

    # Run again: nothing new, nothing sent. A later access: an email about that one alone.
    assert flagged_access_notify(user.pk) == 0
    access_events_ingest(partner=adco, reports=[_flagged_report(partner_subject_ensure(partner=adco, user=user), "a2")])
    assert flagged_access_notify(user.pk) == 1
    assert len(mail.outbox) == 2
    assert "Mailer GmbH" not in mail.outbox[-1].body


def test_a_flagged_access_committed_after_a_later_one_was_told_is_still_told(people, flagged_setup):
    adco, _mailer = flagged_setup
    user = people["en"]
    subject = partner_subject_ensure(partner=adco, user=user)
    access_events_ingest(partner=adco, reports=[_flagged_report(subject, "early")])
    access_events_ingest(partner=adco, reports=[_flagged_report(subject, "late")])
    early, late = AccessEvent.objects.filter(user=user).order_by("pk")
    # The early id was taken by a transaction that commits only after the later access was told.
    AccessEvent.objects.filter(pk=early.pk).delete()
    assert flagged_access_notify(user.pk) == 1
    early.save(force_insert=True)

    assert flagged_access_notify(user.pk) == 1
    assert len(mail.outbox) == 2
    assert set(NotificationSent.objects.filter(user=user).values_list("key", flat=True)) == {
        str(early.pk),
        str(late.pk),
    }
    assert flagged_access_notify(user.pk) == 0


def test_two_runs_side_by_side_tell_each_flagged_access_once(people, flagged_setup):
    adco, _mailer = flagged_setup
    user = people["en"]
    subject = partner_subject_ensure(partner=adco, user=user)
    access_events_ingest(partner=adco, reports=[_flagged_report(subject, f"s{n}") for n in range(2)])
    first, _second = AccessEvent.objects.filter(user=user).order_by("pk")
    # Another run already claimed the first access (and is sending its email).
    NotificationSent.objects.create(user=user, kind=NotificationKind.FLAGGED_ACCESS, key=str(first.pk))

    assert flagged_access_notify(user.pk) == 1
    [message] = mail.outbox
    assert message.body.count("No consent at the time.") == 1


def test_flagged_access_emails_owed_when_the_broker_was_down_are_sent_once_by_the_sweep(
    people, flagged_setup, frozen, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    adco, _mailer = flagged_setup

    def broker_down(self, name, *args, **options):
        raise OperationalError("Error 111 connecting to redis: Connection refused.")

    monkeypatch.setattr(Celery, "send_task", broker_down)
    for user in people.values():
        subject = partner_subject_ensure(partner=adco, user=user)
        with django_capture_on_commit_callbacks(execute=True):
            access_events_ingest(partner=adco, reports=[_flagged_report(subject, f"down-{user.pk}")])
    assert mail.outbox == []
    assert f"could not queue the flagged-access email for user {people['en'].pk}" in caplog.text

    assert flagged_access_notify_sweep() == 0, "the consumers' own tasks still have their turn"
    frozen.shift(timedelta(minutes=11))
    assert flagged_access_notify_sweep() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["en@example.com", "zh@example.com"]
    assert "合作方未经您同意使用了您的数据" in _mail_to("zh@example.com").subject
    # Swept again, or a consumer's own task arriving late: nobody gets a second email.
    assert flagged_access_notify_sweep() == 0
    assert flagged_access_notify(people["en"].pk) == 0
    assert len(mail.outbox) == 2


def test_the_flagged_access_sweep_leaves_accesses_older_than_its_lookback_alone(people, flagged_setup, frozen):
    adco, _mailer = flagged_setup
    subject = partner_subject_ensure(partner=adco, user=people["en"])
    access_events_ingest(partner=adco, reports=[_flagged_report(subject, "old")])
    frozen.shift(timedelta(days=1, minutes=1))
    assert flagged_access_notify_sweep() == 0
    assert mail.outbox == []


def test_flagged_access_email_is_in_the_consumers_language_and_zone(people, flagged_setup):
    adco, _mailer = flagged_setup
    user = people["zh"]
    access_events_ingest(partner=adco, reports=[_flagged_report(partner_subject_ensure(partner=adco, user=user), "z1")])
    flagged_access_notify(user.pk)
    message = _mail_to("zh@example.com")
    assert "合作方未经您同意使用了您的数据" in message.subject
    assert "AdCo Media：\n" in message.body
    assert " CST：查看，用途“中文 Personalised offers”。" in message.body
    assert "No consent at the time" not in message.body


def test_covered_accesses_and_opted_out_consumers_get_no_email(people, offers, flagged_setup):
    adco, _mailer = flagged_setup
    covered = people["en"]
    consent_grant(user=covered, purpose=offers[0], actor=Actor.consumer(covered))
    access_events_ingest(
        partner=adco, reports=[_flagged_report(partner_subject_ensure(partner=adco, user=covered), "c1", minutes_ago=0)]
    )
    off = people["off"]
    access_events_ingest(partner=adco, reports=[_flagged_report(partner_subject_ensure(partner=adco, user=off), "o1")])
    mail.outbox.clear()
    assert flagged_access_notify(covered.pk) == 0
    assert flagged_access_notify(off.pk) == 0
    assert mail.outbox == []
    assert AccessEvent.objects.filter(user=off).exists()


# --- Monthly digest -----------------------------------------------------------------------------


def _access(user, partner, purpose, at: datetime, *, verdict: str = "covered") -> None:
    AccessEvent.objects.create(
        partner=partner,
        partner_event_id=f"{user.pk}-{at.isoformat()}",
        user=user,
        purpose=purpose,
        categories=["contact"],
        action="read",
        accessed_at=at,
        received_at=at,
        verdict=verdict,
        content_hash="x",
    )


def test_digest_covers_the_previous_month_in_each_consumers_zone_once(offers):
    purpose, adco = offers
    mailer = PartnerFactory(slug="mailer", name="Mailer GmbH")
    shanghai = UserFactory(email="sh@example.com", language="zh-hans", time_zone="Asia/Shanghai", monthly_digest=True)
    utc = UserFactory(email="utc@example.com", language="en", monthly_digest=True)
    UserFactory(email="nodigest@example.com")  # off by default
    for user in (shanghai, utc):
        _access(user, adco, purpose, datetime(2026, 10, 31, 15, 0, tzinfo=UTC))  # Shanghai: 31 Oct, 23:00
        _access(user, adco, purpose, datetime(2026, 10, 31, 17, 0, tzinfo=UTC))  # Shanghai: 1 Nov, 01:00
        _access(user, mailer, purpose, datetime(2026, 11, 15, 12, 0, tzinfo=UTC), verdict="no_consent")
        _access(user, adco, purpose, datetime(2026, 11, 30, 17, 0, tzinfo=UTC))  # Shanghai: 1 Dec, 01:00

    with time_machine.travel(datetime(2026, 11, 15, 10, 41, tzinfo=UTC), tick=False):
        assert monthly_digests_send() == 0  # the 15th everywhere

    # 1 December has begun in Shanghai but not in UTC.
    with time_machine.travel(datetime(2026, 11, 30, 17, 41, tzinfo=UTC), tick=False):
        assert monthly_digests_send() == 1
        assert monthly_digests_send() == 0
    message = _mail_to("sh@example.com")
    assert "2026年11月" in message.subject
    assert "- AdCo Media：1 次访问\n" in message.body  # 31 Oct 17:00 UTC is 1 Nov in Shanghai
    assert "- Mailer GmbH：1 次访问 （其中 1 次不在您的同意范围内）" in message.body
    assert message.extra_headers["List-Unsubscribe"].endswith("/unsubscribe/monthly_digest/>")

    with time_machine.travel(datetime(2026, 12, 1, 0, 41, tzinfo=UTC), tick=False):
        assert monthly_digests_send() == 1
    message = _mail_to("utc@example.com")
    assert message.subject.endswith("Who accessed your data in November 2026")
    assert "- AdCo Media: 1 access\n" in message.body  # 31 Oct 17:00 UTC is October here
    assert "Mailer GmbH: 1 access (1 not covered by your consent)" in message.body
    assert [m.to[0] for m in mail.outbox] == ["sh@example.com", "utc@example.com"]
    assert set(NotificationSent.objects.filter(kind=NotificationKind.MONTHLY_DIGEST).values_list("key", flat=True)) == {
        "2026-11"
    }


def test_digest_for_a_quiet_month_says_nobody_accessed(offers):
    UserFactory(email="quiet@example.com", language="en", monthly_digest=True)
    with time_machine.travel(datetime(2027, 1, 1, 8, 41, tzinfo=UTC), tick=False):
        assert monthly_digests_send() == 1
    assert "No partner accessed your data in December 2026." in _mail_to("quiet@example.com").body
