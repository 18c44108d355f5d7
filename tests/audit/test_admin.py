import pytest
from django.urls import reverse
from django.utils import translation

from audit.models import NOTE_REMOVED, AuditEvent
from audit.services import Actor, audit_notes_scrub, event_record
from tests.factories import StaffFactory, UserFactory, staff_reason_state


@pytest.fixture
def events(consumer, other_consumer):
    made = [
        event_record(actor=Actor.consumer(consumer), subject=consumer, action="consent.granted", data={"n": 1}),
        event_record(actor=Actor.system("expiry"), subject=consumer, action="consent.expired"),
        event_record(actor=Actor.consumer(other_consumer), subject=other_consumer, action="consent.revoked"),
        event_record(actor=Actor.system("tests"), subject=None, action="purpose.version_published"),
    ]
    return made


@pytest.fixture
def staff_client(staff_client, mfa_staff, consumer, other_consumer):
    """The admin asks why before showing a consumer's records: a support request for each."""
    staff_reason_state(mfa_staff, consumer, other_consumer)
    return staff_client


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_audit_pages_load_for_staff_with_mfa(staff_client, events):
    assert staff_client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    detail = staff_client.get(reverse("admin:audit_auditevent_change", args=[events[0].pk]))
    assert detail.status_code == 200
    assert "consent.granted" in detail.content.decode()
    assert "&quot;n&quot;: 1" in detail.content.decode()


def test_audit_events_are_read_only(staff_client, events):
    event = events[0]
    before = AuditEvent.objects.filter(subject=event.subject).count()
    change_url = reverse("admin:audit_auditevent_change", args=[event.pk])

    assert b'name="_save"' not in staff_client.get(change_url).content
    assert staff_client.post(change_url, {"action": "consent.revoked"}).status_code == 403
    assert staff_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert (
        staff_client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    )
    event.refresh_from_db()
    assert event.action == "consent.granted"
    # Opening the event is itself recorded (staff looked at the consumer's records); nothing else changed.
    assert AuditEvent.objects.filter(subject=event.subject).exclude(action="access.staff_viewed").count() == before


def test_audit_list_filters_by_actor_kind_action_and_date(staff_client, events):
    url = reverse("admin:audit_auditevent_changelist")

    by_actor = staff_client.get(url, {"actor_kind__exact": "system"})
    by_action = staff_client.get(url, {"action": "consent.revoked"})
    by_date = staff_client.get(url, {"occurred_at__gte": "2000-01-01", "occurred_at__lt": "2000-01-02"})

    assert {e.action for e in by_actor.context["cl"].result_list} == {"consent.expired", "purpose.version_published"}
    assert [e.action for e in by_action.context["cl"].result_list] == ["consent.revoked"]
    assert list(by_date.context["cl"].result_list) == []


def test_audit_list_searches_by_subject_email(staff_client, events, other_consumer):
    response = staff_client.get(reverse("admin:audit_auditevent_changelist"), {"q": "other@example"})
    assert [e.subject for e in response.context["cl"].result_list] == [other_consumer]


def test_verify_chains_action_reports_intact_chains(staff_client, events):
    response = staff_client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "verify_chains", "_selected_action": [events[0].pk, events[2].pk]},
        follow=True,
    )
    assert _messages(response) == ["Verified 2 audit chains: all intact."]


def test_verify_chains_action_names_the_first_broken_row(staff_client, events, consumer):
    AuditEvent.objects.filter(pk=events[1].pk).update(data={"forged": True})

    response = staff_client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "verify_chains", "_selected_action": [events[0].pk]},
        follow=True,
    )

    assert _messages(response) == [
        f"Audit chain subject:{consumer.pk} is broken at position 2 (event {events[1].pk}): "
        "the row no longer matches its seal (edited)."
    ]


def test_verify_chains_action_covers_many_chains_in_one_pass(staff_client, events):
    extra = [
        event_record(actor=Actor.consumer(user), subject=user, action="test.touch")
        for user in [UserFactory() for _ in range(25)]
    ]
    AuditEvent.objects.filter(pk=extra[-1].pk).update(action="test.forged")

    response = staff_client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "verify_chains", "select_across": "1", "_selected_action": [events[0].pk]},
        follow=True,
    )

    (message,) = _messages(response)
    assert f"Audit chain subject:{extra[-1].subject_id} is broken at position 1" in message
    assert "edited" in message


def test_verify_all_button_checks_every_chain(staff_client, events):
    changelist = staff_client.get(reverse("admin:audit_auditevent_changelist"))
    assert reverse("admin:audit_auditevent_verify") in changelist.content.decode()

    intact = staff_client.post(reverse("admin:audit_auditevent_verify"), follow=True)
    assert _messages(intact) == ["Verified 3 audit chains: all intact."]

    AuditEvent.objects.filter(pk=events[3].pk).delete()
    broken = staff_client.post(reverse("admin:audit_auditevent_verify"), follow=True)
    assert _messages(broken) == [
        "Audit chain global is broken at position 1: events are missing at the end (truncated)."
    ]


def test_verify_all_only_accepts_post(staff_client, events):
    assert staff_client.get(reverse("admin:audit_auditevent_verify")).status_code == 405


def test_consumers_cannot_reach_the_audit_admin(consumer_client, events):
    for url in [
        reverse("admin:audit_auditevent_changelist"),
        reverse("admin:audit_auditevent_change", args=[events[2].pk]),
    ]:
        response = consumer_client.get(url)
        assert response.status_code in {302, 403}
        assert b"consent.revoked" not in response.content
    response = consumer_client.post(reverse("admin:audit_auditevent_verify"))
    assert response.status_code in {302, 403}


def test_staff_without_mfa_cannot_reach_the_audit_admin(client, events):
    client.force_login(StaffFactory(email="nomfa@example.com"))
    for url in [
        reverse("admin:audit_auditevent_changelist"),
        reverse("admin:audit_auditevent_change", args=[events[0].pk]),
    ]:
        assert client.get(url).status_code == 302
    assert client.post(reverse("admin:audit_auditevent_verify")).status_code == 302


def test_event_page_shows_its_note_until_the_account_deletion_removes_it(staff_client, consumer):
    event = event_record(
        actor=Actor.system("tests"), subject=consumer, action="partner.event_acknowledged", note="Erased Jo Bloggs"
    )
    url = reverse("admin:audit_auditevent_change", args=[event.pk])
    assert "Erased Jo Bloggs" in staff_client.get(url).content.decode()

    audit_notes_scrub(subject=consumer)
    page = staff_client.get(url).content.decode()
    assert "Erased Jo Bloggs" not in page
    assert "removed on account deletion" in page
    with translation.override("zh-hans"):
        assert str(NOTE_REMOVED) == "已随账户删除而移除"
