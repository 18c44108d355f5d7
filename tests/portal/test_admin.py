from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse

from tests.factories import StaffFactory


def test_admin_login_form_is_not_exposed_and_sends_to_allauth(client, db):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_anonymous_admin_visit_goes_to_the_allauth_login(client, db):
    response = client.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("account_login"))


def test_staff_without_mfa_cannot_reach_admin(client, db):
    staff = StaffFactory(email="staff@example.com")
    client.force_login(staff)
    response = client.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("mfa_activate_totp")) or any(
        reverse("account_reauthenticate") in url for url, _ in response.redirect_chain
    )
    assert b"Site administration" not in response.content
    assert client.get(reverse("admin:portal_user_changelist")).status_code == 302


def test_staff_with_mfa_can_reach_admin(client, db):
    staff = StaffFactory(email="staff@example.com")
    TOTP.activate(staff, generate_totp_secret())
    assert Authenticator.objects.filter(user=staff).exists()
    client.force_login(staff)
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:portal_user_changelist")).status_code == 200


def test_consumer_cannot_reach_admin(consumer_client):
    response = consumer_client.get(reverse("admin:index"), follow=True)
    assert response.status_code == 403
