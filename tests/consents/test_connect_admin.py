"""Staff register connected apps; django-oauth-toolkit's own tables are not in the admin."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from oauth2_provider.models import AccessToken, Application, Grant, IDToken, RefreshToken

from consents.models import ConnectedApp
from portal.roles import AUDITOR, PARTNER_MANAGER, SUPPORT_AGENT, staff_roles_ensure
from tests.factories import PartnerFactory, PurposeFactory, UserFactory, connected_app_create_for_tests


def _member(role: str):
    user = UserFactory(email=f"{role.replace(' ', '-').lower()}@staff.example.com", is_staff=True)
    if not Group.objects.filter(name=role).exists():
        staff_roles_ensure()
    user.groups.add(Group.objects.get(name=role))
    TOTP.activate(user, generate_totp_secret())
    return user


def test_django_oauth_toolkits_models_are_not_in_the_admin():
    for model in (Application, AccessToken, RefreshToken, Grant, IDToken):
        assert not admin.site.is_registered(model)


def _form(partner, purpose, uris="https://app.example.com/callback"):
    return {
        "partner": partner.pk,
        "name": "Budget helper",
        "redirect_uris": uris,
        "purposes": [purpose.pk],
        "data_categories": [c.pk for c in purpose.current_version.data_categories.all()],
        "max_duration_days": "90",
        "max_lookback_days": "365",
    }


def test_a_partner_manager_creates_an_app_and_sees_its_secret_once(client, db):
    partner, purpose = PartnerFactory(), PurposeFactory()
    client.force_login(_member(PARTNER_MANAGER))

    response = client.post(reverse("admin:consents_connectedapp_add"), _form(partner, purpose))

    app = ConnectedApp.objects.get()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    application = app.application
    assert application.client_type == Application.CLIENT_CONFIDENTIAL
    assert application.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert application.redirect_uris == "https://app.example.com/callback"
    assert application.client_id in response.content.decode()


def test_an_app_with_a_fragment_in_its_redirect_uri_is_refused(client, db):
    partner, purpose = PartnerFactory(), PurposeFactory()
    client.force_login(_member(PARTNER_MANAGER))

    response = client.post(
        reverse("admin:consents_connectedapp_add"), _form(partner, purpose, "https://app.example.com/cb#x")
    )

    assert response.status_code == 200
    assert not ConnectedApp.objects.exists()


def test_editing_the_redirect_uris_keeps_the_oauth_client_in_step(client, db):
    app, _secret = connected_app_create_for_tests()
    client.force_login(_member(PARTNER_MANAGER))
    data = _form(app.partner, app.purposes.get(), "https://app.example.com/new\nhttps://app.example.com/two")
    data.pop("partner")

    response = client.post(reverse("admin:consents_connectedapp_change", args=[app.pk]), data)

    assert response.status_code == 302
    app.application.refresh_from_db()
    assert app.application.redirect_uris == "https://app.example.com/new https://app.example.com/two"


def test_rotate_and_disable(client, db):
    app, _secret = connected_app_create_for_tests()
    client.force_login(_member(PARTNER_MANAGER))

    rotated = client.post(reverse("admin:consents_connectedapp_rotate", args=[app.pk]))
    disabled = client.post(reverse("admin:consents_connectedapp_disable", args=[app.pk]))

    assert rotated.status_code == 200
    assert disabled.status_code == 302
    app.refresh_from_db()
    assert app.disabled_at is not None
    assert not app.is_active


@pytest.mark.parametrize("role", [SUPPORT_AGENT, AUDITOR])
def test_support_and_auditors_cannot_manage_apps(client, db, role):
    app, _secret = connected_app_create_for_tests()
    client.force_login(_member(role))

    responses = [
        client.get(reverse("admin:consents_connectedapp_changelist")),
        client.post(reverse("admin:consents_connectedapp_add"), _form(app.partner, app.purposes.get())),
        client.post(reverse("admin:consents_connectedapp_rotate", args=[app.pk])),
        client.post(reverse("admin:consents_connectedapp_disable", args=[app.pk])),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    app.refresh_from_db()
    assert app.disabled_at is None
    assert ConnectedApp.objects.count() == 1
