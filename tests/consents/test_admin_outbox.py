import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib import admin
from django.contrib.messages.storage.fallback import FallbackStorage
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from consents.admin.outbox import partner_webhook_enable_action
from consents.models import DeliveryAttempt, DeliveryOutcome, DeliveryStatus, OutboxEvent, Partner
from consents.services.consents import consent_revoke
from tests.factories import PartnerFactory, PurposeFactory, SharingFactory, StaffFactory

CHANGELIST = "admin:consents_outboxevent_changelist"


@pytest.fixture
def staff_client(client, db):
    staff = StaffFactory(email="ops@example.com")
    TOTP.activate(staff, generate_totp_secret())
    client.force_login(staff)
    client.staff = staff
    return client


@pytest.fixture
def dead_event(consumer):
    purpose = PurposeFactory(slug="offers")
    partner = PartnerFactory(slug="shop", name="Shop", webhook_url="https://shop.example/hooks")
    SharingFactory(partner=partner, purpose=purpose)
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    event = OutboxEvent.objects.get()
    OutboxEvent.objects.filter(pk=event.pk).update(
        status=DeliveryStatus.DEAD, attempts=8, next_attempt_at=None, last_error="HTTP 500"
    )
    DeliveryAttempt.objects.create(event=event, status_code=500, duration_ms=12, outcome=DeliveryOutcome.DEAD)
    event.refresh_from_db()
    return event


def test_staff_see_the_outbox_filtered_by_status_partner_and_type(staff_client, dead_event):
    url = reverse(CHANGELIST)

    response = staff_client.get(url, {"status__exact": "dead", "partner__id__exact": dead_event.partner_id})
    assert response.status_code == 200
    assert str(dead_event.partner) in response.content.decode()
    assert response.context["cl"].result_count == 1
    assert staff_client.get(url, {"status__exact": "delivered"}).context["cl"].result_count == 0
    assert staff_client.get(url, {"event_type__exact": "consent.granted"}).context["cl"].result_count == 0


def test_event_page_shows_attempts_and_the_payload_read_only(staff_client, dead_event):
    response = staff_client.get(reverse("admin:consents_outboxevent_change", args=[dead_event.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Delivery attempts" in html or "delivery attempts" in html
    assert "consent.revoked" in html
    assert dead_event.payload["data"]["subject_id"] in html
    assert 'name="status"' not in html, "outbox rows are not editable"
    assert staff_client.get(reverse("admin:consents_outboxevent_add")).status_code == 403


def test_redrive_action_queues_the_dead_letter_again(staff_client, dead_event, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            reverse(CHANGELIST), {"action": "redrive", "_selected_action": [str(dead_event.pk)]}, follow=True
        )

    assert response.status_code == 200
    assert "Queued 1 event for delivery." in response.content.decode()
    assert len(callbacks) == 1
    dead_event.refresh_from_db()
    assert (dead_event.status, dead_event.attempts, dead_event.last_error) == (DeliveryStatus.PENDING, 0, "")
    assert AuditEvent.objects.filter(action="outbox.event_redriven", actor_id=str(staff_client.staff.pk)).exists()


def test_redrive_action_explains_what_it_cannot_send(staff_client, dead_event):
    OutboxEvent.objects.filter(pk=dead_event.pk).update(status=DeliveryStatus.DELIVERED)

    response = staff_client.post(
        reverse(CHANGELIST), {"action": "redrive", "_selected_action": [str(dead_event.pk)]}, follow=True
    )

    assert "can be sent again" in response.content.decode()
    dead_event.refresh_from_db()
    assert dead_event.status == DeliveryStatus.DELIVERED


def test_reenable_action_turns_a_disabled_webhook_back_on(staff_client, dead_event):
    Partner.objects.filter(pk=dead_event.partner_id).update(webhook_disabled_at=timezone.now())

    response = staff_client.post(
        reverse(CHANGELIST), {"action": "webhook_enable", "_selected_action": [str(dead_event.pk)]}, follow=True
    )

    assert "Re-enabled 1 webhook" in response.content.decode()
    assert Partner.objects.get(pk=dead_event.partner_id).webhook_disabled_at is None
    assert AuditEvent.objects.filter(action="partner.webhook_enabled").count() == 1


def test_partner_admin_action_reenables_webhooks(rf, dead_event):
    staff = StaffFactory()
    Partner.objects.filter(pk=dead_event.partner_id).update(webhook_disabled_at=timezone.now())
    request = rf.post("/")
    request.user = staff
    request.session = {}
    request._messages = FallbackStorage(request)
    modeladmin = admin.site._registry[OutboxEvent]

    partner_webhook_enable_action(modeladmin, request, Partner.objects.all())

    assert Partner.objects.get(pk=dead_event.partner_id).webhook_disabled_at is None


def test_consumers_and_staff_without_mfa_cannot_reach_the_outbox_admin(client, consumer_client, dead_event):
    url = reverse(CHANGELIST)
    assert consumer_client.get(url).status_code in {302, 403}
    assert consumer_client.post(url, {"action": "redrive", "_selected_action": [str(dead_event.pk)]}).status_code in {
        302,
        403,
    }
    client.force_login(StaffFactory(email="nomfa@example.com"))
    assert client.get(url).status_code == 302
    dead_event.refresh_from_db()
    assert dead_event.status == DeliveryStatus.DEAD
