import json

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse

from audit.models import AccessEvent, AuditEvent
from audit.services import Actor, audit_notes_scrub, event_record
from audit.signing import document_verify
from audit.trail import audit_trail_document
from consents.services.access import AccessReport, access_events_ingest
from consents.services.partners import partner_subject_ensure
from portal.models import User
from tests.factories import PartnerFactory, PurposeFactory, SharingFactory, StaffFactory, staff_reason_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    staff = StaffFactory(email="agent@example.com")
    TOTP.activate(staff, generate_totp_secret())
    client.force_login(staff)
    return client


def _flagged_event(user):
    purpose = PurposeFactory(slug="offers")
    partner = PartnerFactory(slug="acme")
    SharingFactory(partner=partner, purpose=purpose)
    subject = partner_subject_ensure(partner=partner, user=user)
    from django.utils import timezone

    access_events_ingest(
        partner=partner,
        reports=[
            AccessReport(
                event_id="x1",
                subject_id=subject.subject_id,
                purpose="offers",
                categories=(purpose.current_version.data_categories.get().slug,),
                accessed_at=timezone.now(),
                action="read",
            )
        ],
    )


def test_staff_opening_a_consumer_creates_an_access_event_the_consumer_sees(staff_client, client, consumer):
    staff_reason_state(User.objects.get(email="agent@example.com"), consumer)
    response = staff_client.get(reverse("admin:portal_user_change", args=[consumer.pk]))
    assert response.status_code == 200
    event = AccessEvent.objects.get(user=consumer)
    assert event.staff_user.email == "agent@example.com"
    assert event.purpose.slug == "customer-support"
    client.force_login(consumer)
    overview = client.get(reverse("audit:access"))
    assert "Customer support (our staff)" in overview.content.decode()
    activity = client.get(reverse("audit:activity"))
    assert any(e.action == "access.staff_viewed" and e.who == "Our staff" for e in activity.context["entries"])


def test_flagged_accesses_are_filterable_and_counted_on_the_admin_index(staff_client, consumer):
    _flagged_event(consumer)
    index = staff_client.get(reverse("admin:index"))
    assert "1 data access without consent" in index.content.decode()
    flagged = staff_client.get(reverse("admin:audit_accessevent_changelist") + "?flagged=yes")
    assert flagged.status_code == 200
    assert flagged.context["cl"].result_count == 1


def test_access_events_are_read_only_in_admin(staff_client, consumer):
    _flagged_event(consumer)
    event = AccessEvent.objects.get()
    assert staff_client.get(reverse("admin:audit_accessevent_add")).status_code == 403
    response = staff_client.post(reverse("admin:audit_accessevent_delete", args=[event.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert AccessEvent.objects.filter(pk=event.pk).exists()


def test_signed_audit_trail_export_verifies_and_covers_the_whole_chain(staff_client, consumer):
    _flagged_event(consumer)
    staff_client.get(reverse("admin:portal_user_change", args=[consumer.pk]))
    response = staff_client.post(
        reverse("admin:portal_user_changelist"),
        {"action": "export_audit_trail", "_selected_action": [consumer.pk]},
    )
    assert response["Content-Type"] == "application/jose"
    payload = document_verify(response.content.decode())
    assert payload["chain_intact"] is True
    assert [e["seq"] for e in payload["events"]] == list(
        AuditEvent.objects.filter(subject=consumer).order_by("seq").values_list("seq", flat=True)
    )
    assert payload["events"][-1]["action"] == "audit.trail_exported"
    assert json.dumps(payload)


def test_consumers_and_staff_without_mfa_cannot_reach_access_admin(client, consumer):
    client.force_login(consumer)
    assert client.get(reverse("admin:audit_accessevent_changelist")).status_code in {302, 403}
    staff = StaffFactory(email="nomfa@example.com")
    client.force_login(staff)
    response = client.get(reverse("admin:audit_accessevent_changelist"))
    assert response.status_code == 302


def test_signed_audit_trail_carries_each_note_until_it_is_erased(consumer):
    staff = StaffFactory(email="regulator-desk@example.com")
    noted = event_record(actor=Actor.system("tests"), subject=consumer, action="test.noted", note="Words qz7")

    def notes() -> dict[int, str | None]:
        payload = document_verify(audit_trail_document(subject=consumer, requested_by=staff))
        assert payload["chain_intact"] is True
        return {e["seq"]: e["note"] for e in payload["events"]}

    assert notes()[noted.seq] == "Words qz7"
    audit_notes_scrub(subject=consumer)
    assert notes()[noted.seq] is None
