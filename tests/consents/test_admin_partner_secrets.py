"""Partner admin: signing secrets shown once to staff who may change partners, webhook URLs checked on save."""

import socket

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import Permission
from django.urls import reverse

from consents.models import Partner
from consents.services.partners import secret_fingerprint
from tests.factories import PartnerFactory, StaffFactory


@pytest.fixture
def partner(db):
    return PartnerFactory(slug="brightside", name="Brightside Ads", kind="advertiser", country="US")


@pytest.fixture
def viewer_client(client, db):
    viewer = StaffFactory(email="viewer@example.com", is_superuser=False)
    viewer.user_permissions.add(Permission.objects.get(codename="view_partner"))
    TOTP.activate(viewer, generate_totp_secret())
    client.force_login(viewer)
    return client


def partner_form(**fields) -> dict[str, str]:
    return {
        "name": "Brightside Ads",
        "slug": "brightside",
        "kind": "advertiser",
        "country": "US",
        "status": "active",
        "webhook_url": "",
        **fields,
    }


def test_view_only_staff_never_see_the_signing_secret(viewer_client, partner):
    partner.webhook_secret_previous = "whsec_" + "P" * 43 + "="
    partner.save()

    response = viewer_client.get(reverse("admin:consents_partner_change", args=[partner.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "Brightside Ads" in content
    assert partner.webhook_secret not in content
    assert partner.webhook_secret_previous not in content
    assert secret_fingerprint(partner.webhook_secret) in content


def test_the_partner_page_shows_only_a_fingerprint_to_staff_who_may_change_it(staff_client, partner):
    response = staff_client.get(reverse("admin:consents_partner_change", args=[partner.pk]))

    content = response.content.decode()
    assert partner.webhook_secret not in content
    assert secret_fingerprint(partner.webhook_secret) in content


def test_view_only_staff_cannot_rotate_a_secret(viewer_client, partner):
    old_secret = partner.webhook_secret

    response = viewer_client.post(
        reverse("admin:consents_partner_changelist"),
        {"action": "rotate_webhook_secret", "_selected_action": [partner.pk]},
    )

    assert partner.webhook_secret not in response.content.decode()
    assert Partner.objects.get(pk=partner.pk).webhook_secret == old_secret


def test_rotation_shows_the_new_secret_once_on_an_uncached_page(staff_client, partner):
    response = staff_client.post(
        reverse("admin:consents_partner_changelist"),
        {"action": "rotate_webhook_secret", "_selected_action": [partner.pk]},
    )

    rotated = Partner.objects.get(pk=partner.pk)
    assert response.status_code == 200
    assert rotated.webhook_secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    later = staff_client.get(reverse("admin:consents_partner_change", args=[partner.pk])).content.decode()
    assert rotated.webhook_secret not in later
    assert secret_fingerprint(rotated.webhook_secret) in later


def test_adding_a_partner_shows_its_secret_once(staff_client, db):
    response = staff_client.post(reverse("admin:consents_partner_add"), partner_form(slug="newco", name="NewCo"))

    partner = Partner.objects.get(slug="newco")
    assert response.status_code == 200
    assert partner.webhook_secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://169.254.10.10/hooks", "link-local"),
        ("https://[fe80::1]/hooks", "link-local"),
        ("https://10.0.0.5/hooks", "private"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("http://93.184.215.14/hooks", "use https"),
    ],
)
def test_saving_a_refused_webhook_url_is_an_error_and_changes_nothing(staff_client, partner, settings, url, reason):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    response = staff_client.post(
        reverse("admin:consents_partner_change", args=[partner.pk]), partner_form(webhook_url=url)
    )

    assert response.status_code == 200
    assert reason in str(response.context["adminform"].form.errors["webhook_url"])
    assert Partner.objects.get(pk=partner.pk).webhook_url == ""


@pytest.mark.parametrize("url", ["https://169.254.10.10/hooks", "http://[fe80::1]/hooks"])
def test_link_local_webhook_urls_are_refused_on_save_even_with_the_development_flag(
    staff_client, partner, settings, url
):
    settings.WEBHOOK_ALLOW_PRIVATE = True

    response = staff_client.post(
        reverse("admin:consents_partner_change", args=[partner.pk]), partner_form(webhook_url=url)
    )

    assert "link-local" in str(response.context["adminform"].form.errors["webhook_url"])
    assert Partner.objects.get(pk=partner.pk).webhook_url == ""


def test_a_public_https_webhook_url_is_saved(staff_client, partner, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    url = "https://93.184.215.14/hooks"

    response = staff_client.post(
        reverse("admin:consents_partner_change", args=[partner.pk]), partner_form(webhook_url=url)
    )

    assert response.status_code == 302
    assert Partner.objects.get(pk=partner.pk).webhook_url == url


def test_a_local_http_webhook_url_is_saved_with_the_development_flag(staff_client, partner, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    url = "http://127.0.0.1:8001/hooks"

    response = staff_client.post(
        reverse("admin:consents_partner_change", args=[partner.pk]), partner_form(webhook_url=url)
    )

    assert response.status_code == 302
    assert Partner.objects.get(pk=partner.pk).webhook_url == url


def test_a_name_that_does_not_resolve_yet_is_saved_and_checked_again_at_send_time(
    staff_client, partner, settings, monkeypatch
):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    url = "https://hooks.partner-to-be.example/events"

    response = staff_client.post(
        reverse("admin:consents_partner_change", args=[partner.pk]), partner_form(webhook_url=url)
    )

    assert response.status_code == 302
    assert Partner.objects.get(pk=partner.pk).webhook_url == url
