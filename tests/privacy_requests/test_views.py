import pytest
from django.core import mail
from django.urls import reverse

from audit.models import AuditEvent
from privacy_requests.models import PrivacyRequest, RequestKind, RequestStatus
from privacy_requests.services.requests import privacy_request_deletion_create, privacy_request_export_create
from tests.factories import PASSWORD, PrivacyRequestFactory, UserFactory
from tests.privacy_requests.helpers import consumer_data_seed

pytestmark = pytest.mark.usefixtures("media_root")


def test_requests_page_lists_only_the_consumers_own_requests(consumer_client, consumer, other_consumer):
    mine = privacy_request_export_create(user=consumer, language="en")
    theirs = privacy_request_export_create(user=other_consumer, language="en")
    body = consumer_client.get(reverse("requests:list")).content.decode()
    assert mine.get_absolute_url() in body
    assert theirs.get_absolute_url() not in body
    assert "one month, which we may extend by up to two more months" in body
    assert reverse("profile") in body


def test_nav_and_dashboard_show_the_requests(consumer_client, consumer):
    body = consumer_client.get("/").content.decode()
    assert f'href="{reverse("requests:list")}"' in body
    assert "You have not asked for a copy of your data or for its deletion." in body
    request = privacy_request_export_create(user=consumer, language="en")
    body = consumer_client.get("/").content.decode()
    assert request.get_absolute_url() in body
    assert "Copy of your data" in body


def test_deletion_page_spells_out_the_consequences(consumer_client, consumer, settings):
    settings.CONSENT_PROOF_RETENTION_DAYS = 1095
    data = consumer_data_seed(consumer)
    body = consumer_client.get(reverse("requests:delete")).content.decode()
    for purpose in data.purposes:
        assert purpose.name in body
    for partner in data.partners:
        assert partner.name in body
    assert "for 3 years. Then it is deleted too." in body
    assert "Deletion starts 7 days after you confirm" in body
    assert 'name="confirmation"' in body


def test_deletion_without_reauthentication_is_sent_to_reauthenticate(consumer_client, consumer):
    response = consumer_client.post(reverse("requests:delete"), {"confirmation": "DELETE"})
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_reauthenticate"))
    assert not PrivacyRequest.objects.filter(user=consumer).exists()


def test_reauthentication_resumes_the_deletion_request(consumer_client, consumer):
    reauth_url = consumer_client.post(reverse("requests:delete"), {"confirmation": "DELETE"}).url
    response = consumer_client.post(reauth_url, {"password": PASSWORD})
    request = PrivacyRequest.objects.get(user=consumer)
    assert (request.kind, request.status) == (RequestKind.DELETION, RequestStatus.RECEIVED)
    assert response.url == request.get_absolute_url()


@pytest.mark.parametrize("typed", ["", "DELETE ME", "deleted", "someone@example.com"])
def test_deletion_needs_the_typed_confirmation(reauthenticated_client, consumer, typed):
    response = reauthenticated_client.post(reverse("requests:delete"), {"confirmation": typed})
    assert response.status_code == 400
    assert response.context["form"].errors["confirmation"]
    assert not PrivacyRequest.objects.filter(user=consumer).exists()


@pytest.mark.parametrize("typed", ["DELETE", "delete", "Delete", "Consumer@Example.com"])
def test_typed_confirmation_schedules_the_deletion_and_emails_a_cancel_link(
    reauthenticated_client, consumer, typed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = reauthenticated_client.post(reverse("requests:delete"), {"confirmation": typed}, follow=True)
    request = PrivacyRequest.objects.get(user=consumer)
    assert request.grace_ends_at is not None
    body = response.content.decode()
    assert "Your account is scheduled for deletion" in body
    assert "Cancel the deletion" in body
    email = mail.outbox[-1]
    assert email.to == [consumer.email]
    assert email.subject == "Your account is scheduled for deletion"
    assert "/requests/cancel/" in email.body
    assert AuditEvent.objects.filter(subject=consumer, action="privacy_request.received").exists()


def test_a_second_deletion_request_goes_to_the_first(reauthenticated_client, consumer):
    first = privacy_request_deletion_create(user=consumer, language="en")
    response = reauthenticated_client.get(reverse("requests:delete"))
    assert response.status_code == 302
    assert response.url == first.get_absolute_url()
    reauthenticated_client.post(reverse("requests:delete"), {"confirmation": "DELETE"})
    assert PrivacyRequest.objects.filter(user=consumer).count() == 1


def test_unknown_request_is_404(consumer_client):
    url = reverse("requests:detail", args=["00000000-0000-0000-0000-000000000000"])
    assert consumer_client.get(url).status_code == 404


def test_deletion_request_pages_of_another_consumer_are_404(client, consumer):
    request = privacy_request_deletion_create(user=consumer, language="en")
    client.force_login(UserFactory(email="intruder@example.com"))
    assert client.get(request.get_absolute_url()).status_code == 404
    assert client.get(reverse("requests:status", args=[request.pk])).status_code == 404
    assert client.post(reverse("requests:cancel", args=[request.pk])).status_code == 404
    assert client.get(reverse("requests:download", args=[request.pk])).status_code == 404
    request.refresh_from_db()
    assert request.status == RequestStatus.RECEIVED


def test_deletion_request_has_no_download(consumer_client, consumer):
    request = privacy_request_deletion_create(user=consumer, language="en")
    assert consumer_client.get(reverse("requests:download", args=[request.pk])).status_code == 404


def test_profile_sets_the_privacy_law_and_logs_only_field_names(consumer_client, consumer):
    page = consumer_client.get(reverse("profile"))
    assert page.status_code == 200
    response = consumer_client.post(
        reverse("profile"), {"first_name": "Grace", "last_name": "Hopper", "jurisdiction": "ccpa"}
    )
    assert response.status_code == 302
    consumer.refresh_from_db()
    assert (consumer.first_name, consumer.last_name, consumer.jurisdiction) == ("Grace", "Hopper", "ccpa")
    event = AuditEvent.objects.get(subject=consumer, action="profile.updated")
    assert event.data == {"fields": ["first_name", "last_name", "jurisdiction"]}
    assert "Grace" not in str(event.data)
    body = consumer_client.get(reverse("requests:list")).content.decode()
    assert "45 days, which we may extend once by up to 45 more days" in body


def test_profile_refuses_an_unknown_privacy_law(consumer_client, consumer):
    response = consumer_client.post(reverse("profile"), {"first_name": "X", "last_name": "", "jurisdiction": "mars"})
    assert response.status_code == 400
    assert response.context["form"].errors["jurisdiction"]
    consumer.refresh_from_db()
    assert (consumer.first_name, consumer.jurisdiction) == ("", "gdpr")
    assert not AuditEvent.objects.filter(subject=consumer, action="profile.updated").exists()


def test_profile_needs_a_login(client, db):
    response = client.get(reverse("profile"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_status_poll_answers_204_while_nothing_changed_so_the_live_region_stays_quiet(consumer_client, consumer):
    request = PrivacyRequestFactory(user=consumer, kind="export")
    url = reverse("requests:status", args=[request.pk])
    first = consumer_client.get(url, HTTP_HX_REQUEST="true")
    assert first.status_code == 200
    seen = f"{request.status}-{request.progress}"
    assert f"?seen={seen}" in first.content.decode()
    assert consumer_client.get(url, {"seen": seen}, HTTP_HX_REQUEST="true").status_code == 204
    PrivacyRequest.objects.filter(pk=request.pk).update(progress=40)
    changed = consumer_client.get(url, {"seen": seen}, HTTP_HX_REQUEST="true")
    assert changed.status_code == 200
    assert 'value="40"' in changed.content.decode()


def test_status_poll_of_another_consumers_request_is_404_even_with_a_seen_state(client, consumer):
    request = PrivacyRequestFactory(user=consumer, kind="export")
    client.force_login(UserFactory(email="intruder@example.com"))
    url = reverse("requests:status", args=[request.pk])
    assert client.get(url, {"seen": f"{request.status}-{request.progress}"}).status_code == 404
