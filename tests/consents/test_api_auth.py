"""Partner authentication: OAuth client credentials, token states, scopes, throttling, credential admin."""

import base64
from datetime import timedelta

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.hashers import check_password
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken

from audit.models import AuditEvent
from audit.services import Actor
from consents.models import PartnerCredential, PartnerStatus
from consents.services.partners import partner_credential_create, partner_credential_revoke, partner_credential_rotate
from tests.conftest import oauth_token
from tests.factories import PartnerFactory, StaffFactory

PROBLEM = "application/problem+json"


def check_url(world) -> str:
    return f"/api/v1/subjects/{world.sid('a', 'alice')}/consents/marketing"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"]
    assert body["detail"]
    assert body["errors"] == []
    return body


def test_token_endpoint_issues_one_hour_tokens_with_the_credentials_scopes(client, api_partner_factory):
    partner = api_partner_factory(scopes=("consents:read", "acks:write"))
    response = oauth_token(client, partner.credential, partner.secret)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == {"consents:read", "acks:write"}
    assert "refresh_token" not in body


def test_token_endpoint_accepts_client_credentials_in_the_form_body(client, api_partner_factory):
    partner = api_partner_factory()
    response = client.post(
        "/oauth/token/",
        {
            "grant_type": "client_credentials",
            "client_id": partner.credential.application.client_id,
            "client_secret": partner.secret,
        },
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


def test_token_endpoint_refuses_a_wrong_secret(client, api_partner_factory):
    partner = api_partner_factory()
    response = oauth_token(client, partner.credential, "not-the-secret")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token_endpoint_refuses_scopes_beyond_the_credential(client, api_partner_factory):
    partner = api_partner_factory(scopes=("consents:read",))
    response = oauth_token(client, partner.credential, partner.secret, scope="consents:read events:read")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_client_secret_is_stored_hashed(api_partner_factory):
    partner = api_partner_factory()
    stored = partner.credential.application.client_secret
    assert stored != partner.secret
    assert check_password(partner.secret, stored)
    assert partner.secret not in str(AuditEvent.objects.filter(action="partner.credential_created").get().data)


def test_access_tokens_are_not_stored_in_clear(api_partner_factory):
    partner = api_partner_factory()
    token = AccessToken.objects.get(application=partner.credential.application)
    assert token.token != partner.token


def test_missing_token_is_401_problem_with_bearer_challenge(client, api_world):
    response = client.get(check_url(api_world))
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer "])
def test_unknown_or_malformed_credentials_are_401_problems(client, api_world, header):
    response = client.get(check_url(api_world), headers={"authorization": header})
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] in {"invalid_token", "not_authenticated"}


def test_token_in_the_query_string_is_not_accepted(client, api_world):
    response = client.get(check_url(api_world) + f"?access_token={api_world.a.token}")
    assert_problem(response, 401, "not_authenticated")


def test_expired_token_is_refused_even_when_recently_used(client, api_world):
    assert client.get(check_url(api_world), headers=api_world.a.headers).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        response = client.get(check_url(api_world), headers=api_world.a.headers)
    assert_problem(response, 401, "invalid_token")


def test_token_revoked_through_the_revocation_endpoint_stops_working_at_once(client, api_world):
    partner = api_world.a
    assert client.get(check_url(api_world), headers=partner.headers).status_code == 200
    basic = base64.b64encode(f"{partner.credential.application.client_id}:{partner.secret}".encode()).decode()
    revoked = client.post("/oauth/revoke_token/", {"token": partner.token}, headers={"authorization": f"Basic {basic}"})
    assert revoked.status_code == 200
    assert_problem(client.get(check_url(api_world), headers=partner.headers), 401, "invalid_token")


def test_revoked_credential_ends_its_tokens_and_gets_no_new_ones(client, api_world):
    partner = api_world.a
    assert client.get(check_url(api_world), headers=partner.headers).status_code == 200
    partner_credential_revoke(credential=partner.credential, actor=Actor.system("tests"))
    assert_problem(client.get(check_url(api_world), headers=partner.headers), 401, "invalid_token")
    assert oauth_token(client, partner.credential, partner.secret).status_code == 401
    assert not AccessToken.objects.filter(application=partner.credential.application).exists()


def test_suspended_partner_is_refused_at_once_and_works_again_when_reinstated(client, api_world):
    partner = api_world.a
    assert client.get(check_url(api_world), headers=partner.headers).status_code == 200
    partner.partner.status = PartnerStatus.SUSPENDED
    partner.partner.save(update_fields=["status"])
    assert_problem(client.get(check_url(api_world), headers=partner.headers), 403, "partner_suspended")
    assert oauth_token(client, partner.credential, partner.secret).status_code == 401
    partner.partner.status = PartnerStatus.ACTIVE
    partner.partner.save(update_fields=["status"])
    assert client.get(check_url(api_world), headers=partner.headers).status_code == 200


def test_other_partners_are_unaffected_by_a_suspension(client, api_world):
    api_world.a.partner.status = PartnerStatus.SUSPENDED
    api_world.a.partner.save(update_fields=["status"])
    url = f"/api/v1/subjects/{api_world.sid('b', 'alice')}/consents/marketing"
    assert client.get(url, headers=api_world.b.headers).status_code == 200


def test_rotation_ends_old_tokens_and_the_old_secret(client, api_world):
    partner = api_world.a
    assert client.get(check_url(api_world), headers=partner.headers).status_code == 200
    new_secret = partner_credential_rotate(credential=partner.credential, actor=Actor.system("tests"))
    assert new_secret != partner.secret
    assert_problem(client.get(check_url(api_world), headers=partner.headers), 401, "invalid_token")
    assert oauth_token(client, partner.credential, partner.secret).status_code == 401
    fresh = oauth_token(client, partner.credential, new_secret).json()["access_token"]
    assert client.get(check_url(api_world), headers={"authorization": f"Bearer {fresh}"}).status_code == 200


ENDPOINTS = [
    ("get", "/api/v1/subjects/{sid}/consents/marketing", None, "consents:read"),
    ("get", "/api/v1/subjects/{sid}/consents", None, "consents:read"),
    ("post", "/api/v1/consents/check", {"items": [{"subject_id": "{sid}", "purpose": "marketing"}]}, "consents:read"),
    ("get", "/api/v1/events", None, "events:read"),
    ("post", "/api/v1/events/00000000-0000-4000-8000-000000000000/ack", {"status": "processed"}, "acks:write"),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_each_endpoint_requires_its_scope(client, api_world, api_partner_factory, method, path, body, scope):
    from consents.services.partners import partner_subject_ensure

    others = tuple(s for s in ("consents:read", "events:read", "access:write", "acks:write") if s != scope)
    narrow = api_partner_factory("partner-narrow", scopes=others)
    sid = partner_subject_ensure(partner=narrow.partner, user=api_world.alice).subject_id
    url = path.format(sid=sid)
    data = {"items": [{"subject_id": sid, "purpose": "marketing"}]} if body and "items" in body else body
    response = getattr(client, method)(url, data, content_type="application/json", headers=narrow.headers)
    assert_problem(response, 403, "insufficient_scope")
    assert f'scope="{scope}"' in response["WWW-Authenticate"]


def test_a_token_asked_with_fewer_scopes_only_gets_those(client, api_world):
    partner = api_world.a
    token = oauth_token(client, partner.credential, partner.secret, scope="events:read").json()["access_token"]
    response = client.get(check_url(api_world), headers={"authorization": f"Bearer {token}"})
    assert_problem(response, 403, "insufficient_scope")
    assert client.get("/api/v1/events", headers={"authorization": f"Bearer {token}"}).status_code == 200


def test_throttling_is_per_partner_and_answers_429_with_retry_after(client, api_world, settings):
    settings.PARTNER_API_RATE = "3/minute"
    for _ in range(3):
        assert client.get(check_url(api_world), headers=api_world.a.headers).status_code == 200
    response = client.get(check_url(api_world), headers=api_world.a.headers)
    assert_problem(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    b_url = f"/api/v1/subjects/{api_world.sid('b', 'alice')}/consents/marketing"
    assert client.get(b_url, headers=api_world.b.headers).status_code == 200


def test_ping_needs_no_token(client, db):
    response = client.get("/api/v1/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_credential_services_leave_audit_events(db):
    partner = PartnerFactory()
    actor = Actor.system("tests")
    credential, _secret = partner_credential_create(partner=partner, label="ci", scopes=["events:read"], actor=actor)
    partner_credential_rotate(credential=credential, actor=actor)
    partner_credential_revoke(credential=credential, actor=actor)
    actions = list(
        AuditEvent.objects.filter(target_id=str(credential.pk)).order_by("seq").values_list("action", flat=True)
    )
    assert actions == ["partner.credential_created", "partner.credential_rotated", "partner.credential_revoked"]


def test_a_credential_needs_at_least_one_known_scope(db):
    from consents.errors import DomainError

    with pytest.raises(DomainError):
        partner_credential_create(partner=PartnerFactory(), label="x", scopes=["admin"], actor=Actor.system("t"))


# Credentials admin ----------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, db):
    staff = StaffFactory(email="staff@example.com")
    TOTP.activate(staff, generate_totp_secret())
    client.force_login(staff)
    return client


def test_staff_create_a_credential_and_see_the_secret_once(staff_client):
    partner = PartnerFactory(name="Acme Analytics")
    response = staff_client.post(
        reverse("admin:consents_partnercredential_add"),
        {"partner": partner.pk, "label": "production", "scopes": ["consents:read", "events:read"]},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    credential = PartnerCredential.objects.get(partner=partner)
    secret = response.context["client_secret"]
    assert secret in response.content.decode()
    assert credential.application.client_id in response.content.decode()
    assert check_password(secret, credential.application.client_secret)
    assert credential.scopes == "consents:read events:read"
    change_page = staff_client.get(reverse("admin:consents_partnercredential_change", args=[credential.pk]))
    assert change_page.status_code == 200
    assert secret not in change_page.content.decode()
    assert secret not in staff_client.get(reverse("admin:consents_partnercredential_changelist")).content.decode()


def test_staff_rotate_a_secret_and_the_old_one_stops_working(staff_client, api_partner_factory):
    partner = api_partner_factory()
    url = reverse("admin:consents_partnercredential_rotate", args=[partner.credential.pk])
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url)
    assert response.status_code == 200
    new_secret = response.context["client_secret"]
    assert new_secret != partner.secret
    assert oauth_token(staff_client, partner.credential, partner.secret).status_code == 401
    assert oauth_token(staff_client, partner.credential, new_secret).status_code == 200


def test_staff_revoke_a_credential_and_its_tokens_go(staff_client, api_partner_factory):
    partner = api_partner_factory()
    response = staff_client.post(reverse("admin:consents_partnercredential_revoke", args=[partner.credential.pk]))
    assert response.status_code == 302
    partner.credential.refresh_from_db()
    assert partner.credential.revoked_at is not None
    assert not AccessToken.objects.filter(application=partner.credential.application).exists()


def test_consumers_cannot_reach_the_credentials_admin(consumer_client, api_partner_factory):
    partner = api_partner_factory()
    for url in (
        reverse("admin:consents_partnercredential_add"),
        reverse("admin:consents_partnercredential_rotate", args=[partner.credential.pk]),
    ):
        response = consumer_client.post(url, {"partner": partner.partner.pk, "label": "x", "scopes": ["events:read"]})
        assert response.status_code in {302, 403}
    assert PartnerCredential.objects.count() == 1
    assert oauth_token(consumer_client, partner.credential, partner.secret).status_code == 200


def test_throttle_limit_holds_across_server_processes(db, settings, monkeypatch):
    """Two processes (each with its own batched local count) share one limit through the cache."""
    from types import SimpleNamespace

    from consents.api import auth

    settings.PARTNER_API_RATE = "1000/minute"
    partner = PartnerFactory()
    token = auth.PartnerToken(1, partner.pk, 1, frozenset(), timezone.now() + timedelta(hours=1))
    request = SimpleNamespace(auth=token)
    process_a, process_b = {}, {}

    def admitted(windows: dict, attempts: int) -> int:
        monkeypatch.setattr(auth, "_windows", windows)
        throttle = auth.PartnerRateThrottle()
        return sum(throttle.allow_request(request, None) for _ in range(attempts))  # type: ignore[arg-type]

    with time_machine.travel(timezone.now().replace(second=1), tick=False):
        total = admitted(process_a, 600) + admitted(process_b, 600) + admitted(process_a, 100)
        assert 1000 <= total <= 1000 + 2 * 10
        assert admitted(process_a, 5) == 0
        assert admitted(process_b, 5) == 0
    with time_machine.travel(timezone.now().replace(second=1) + timedelta(minutes=1), tick=False):
        assert admitted(process_a, 5) == 5
