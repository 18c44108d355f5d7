"""The /oauth/ endpoints: client-secret hashing, rate limits, the live-token cap, own-token introspection."""

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.hashers import get_hasher, identify_hasher, make_password
from oauth2_provider.models import AccessToken, Application

from tests.conftest import oauth_token

# The middle of a fixed one-minute window, so no test straddles a window boundary by accident.
WINDOW_START = datetime(2026, 11, 30, 12, 0, 20, tzinfo=UTC)


def basic(partner) -> dict[str, str]:
    raw = f"{partner.credential.application.client_id}:{partner.secret}".encode()
    return {"authorization": f"Basic {base64.b64encode(raw).decode()}"}


def api_status(client, token: str) -> int:
    """200 for a token the partner API accepts, 401 for one it does not."""
    return client.get("/api/v1/events", headers={"authorization": f"Bearer {token}"}).status_code


@pytest.fixture
def count_calls(monkeypatch) -> Callable[[type, str], list[int]]:
    """``count_calls(cls, "verify")`` → a list that grows by one each time that method runs (it still runs)."""

    def install(cls: type, name: str) -> list[int]:
        calls: list[int] = []
        original = getattr(cls, name)

        def counted(self, *args, **kwargs):
            calls.append(1)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)
        return calls

    return install


# Client secrets -----------------------------------------------------------------------------


def test_client_secrets_are_stored_with_the_keyed_verifier_not_the_password_hasher(api_partner_factory):
    partner = api_partner_factory()
    stored = partner.credential.application.client_secret
    assert identify_hasher(stored).algorithm == "hmac_sha256"
    assert get_hasher("default").algorithm != "hmac_sha256"  # user passwords keep the default


def test_a_wrong_secret_is_answered_without_running_the_password_hasher(client, api_partner_factory, count_calls):
    partner = api_partner_factory()
    password_hasher_calls = count_calls(type(get_hasher("default")), "verify")
    verifier_calls = count_calls(type(get_hasher("hmac_sha256")), "verify")

    response = oauth_token(client, partner.credential, "not-the-secret")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert password_hasher_calls == []
    assert len(verifier_calls) == 1


def test_the_verifier_is_keyed_by_the_server_key(client, api_partner_factory, settings):
    partner = api_partner_factory()
    settings.CLIENT_SECRET_HMAC_KEY = "another-key"
    assert oauth_token(client, partner.credential, partner.secret).status_code == 401


def test_a_secret_hashed_by_the_password_hasher_still_works_and_is_rehashed_on_first_use(
    client, api_partner_factory, count_calls, settings
):
    settings.PASSWORD_HASHERS = [*settings.PASSWORD_HASHERS, "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    partner = api_partner_factory()
    application = partner.credential.application
    Application.objects.filter(pk=application.pk).update(
        client_secret=make_password(partner.secret, hasher="pbkdf2_sha256")
    )
    slow_calls = count_calls(type(get_hasher("pbkdf2_sha256")), "verify")

    assert oauth_token(client, partner.credential, partner.secret).status_code == 200
    application.refresh_from_db()
    assert identify_hasher(application.client_secret).algorithm == "hmac_sha256"
    assert oauth_token(client, partner.credential, "not-the-secret").status_code == 401
    assert oauth_token(client, partner.credential, partner.secret).status_code == 200
    assert len(slow_calls) == 1  # the legacy hash was checked once, then never again


def test_a_wrong_secret_does_not_rehash_a_legacy_secret(client, api_partner_factory, settings):
    settings.PASSWORD_HASHERS = [*settings.PASSWORD_HASHERS, "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    partner = api_partner_factory()
    legacy = make_password(partner.secret, hasher="pbkdf2_sha256")
    Application.objects.filter(pk=partner.credential.application.pk).update(client_secret=legacy)

    assert oauth_token(client, partner.credential, "not-the-secret").status_code == 401
    assert Application.objects.get(pk=partner.credential.application.pk).client_secret == legacy


# Rate limits --------------------------------------------------------------------------------


def test_token_requests_beyond_the_per_client_limit_get_429_with_retry_after(client, api_partner_factory, settings):
    settings.OAUTH_TOKEN_RATE_PER_CLIENT = "3/minute"
    with time_machine.travel(WINDOW_START, tick=False):
        partner = api_partner_factory()  # one request
        other = api_partner_factory(slug="partner-b")  # its own client window
        assert oauth_token(client, partner.credential, "wrong").status_code == 401
        assert oauth_token(client, partner.credential, "wrong").status_code == 401
        tokens_before = AccessToken.objects.count()

        refused = oauth_token(client, partner.credential, partner.secret)

        assert refused.status_code == 429
        assert refused["Retry-After"] == "40"
        assert refused.json()["error"] == "slow_down"
        assert refused.json()["error_description"]
        assert AccessToken.objects.count() == tokens_before
        assert oauth_token(client, other.credential, other.secret).status_code == 200

    with time_machine.travel(WINDOW_START + timedelta(minutes=1), tick=False):
        assert oauth_token(client, partner.credential, partner.secret).status_code == 200


def test_the_per_client_limit_counts_the_client_id_sent_in_the_form_body(client, api_partner_factory, settings):
    settings.OAUTH_TOKEN_RATE_PER_CLIENT = "2/minute"
    with time_machine.travel(WINDOW_START, tick=False):
        partner = api_partner_factory()
        body = {"grant_type": "client_credentials", "client_id": partner.credential.application.client_id}
        assert client.post("/oauth/token/", {**body, "client_secret": "wrong"}).status_code == 401
        assert client.post("/oauth/token/", {**body, "client_secret": partner.secret}).status_code == 429


def test_token_requests_beyond_the_per_address_limit_get_429_whatever_the_client(client, api_partner_factory, settings):
    with time_machine.travel(WINDOW_START, tick=False):
        first = api_partner_factory()
        second = api_partner_factory(slug="partner-b")
        settings.OAUTH_TOKEN_RATE_PER_IP = "2/minute"
        attacker = {"REMOTE_ADDR": "203.0.113.9"}
        assert client.post("/oauth/token/", {"grant_type": "client_credentials"}, **attacker).status_code == 401
        assert oauth_token_from(client, first, "wrong", **attacker).status_code == 401

        refused = oauth_token_from(client, second, second.secret, **attacker)

        assert refused.status_code == 429
        assert int(refused["Retry-After"]) == 40
        assert oauth_token_from(client, second, second.secret, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_introspection_has_its_own_windows_and_leaves_the_token_endpoints_alone(client, api_partner_factory, settings):
    """A resource server introspects on every call it serves: that must not lock its partner out of tokens."""
    with time_machine.travel(WINDOW_START, tick=False):
        partner = api_partner_factory()  # one token request
        settings.OAUTH_TOKEN_RATE_PER_CLIENT = "2/minute"
        settings.OAUTH_INTROSPECT_RATE_PER_CLIENT = "5/minute"
        ask = {"token": partner.token}
        answers = [client.post("/oauth/introspect/", ask, headers=basic(partner)) for _ in range(6)]

        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[0].json()["active"] is True
        assert oauth_token(client, partner.credential, partner.secret).status_code == 200


def oauth_token_from(client, partner, secret: str, **extra):
    raw = f"{partner.credential.application.client_id}:{secret}".encode()
    return client.post(
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        headers={"authorization": f"Basic {base64.b64encode(raw).decode()}"},
        **extra,
    )


@pytest.mark.parametrize("path", ["/oauth/token/", "/oauth/revoke_token/", "/oauth/introspect/"])
def test_every_oauth_endpoint_is_rate_limited_before_it_checks_the_secret(
    client, api_partner_factory, settings, count_calls, path
):
    with time_machine.travel(WINDOW_START, tick=False):
        partner = api_partner_factory()
        settings.OAUTH_TOKEN_RATE_PER_CLIENT = "1/minute"  # the factory's request already used it
        settings.OAUTH_INTROSPECT_RATE_PER_CLIENT = "1/minute"
        if path == "/oauth/introspect/":  # introspection counts in its own window: use it up first
            client.post(path, {"token": partner.token}, headers=basic(partner))
        verifier_calls = count_calls(type(get_hasher("hmac_sha256")), "verify")

        data = {"token": partner.token, "grant_type": "client_credentials"}
        response = client.post(path, data, headers=basic(partner))

        assert response.status_code == 429
        assert response["Retry-After"] == "40"
        assert verifier_calls == []
        assert AccessToken.objects.filter(application=partner.credential.application).count() == 1


# Live tokens per credential -----------------------------------------------------------------


def test_issuing_beyond_the_live_token_cap_revokes_the_oldest(client, api_partner_factory, settings):
    settings.OAUTH_MAX_LIVE_TOKENS_PER_CREDENTIAL = 3
    partner = api_partner_factory()
    other = api_partner_factory(slug="partner-b")
    tokens = [partner.token]
    start = datetime.now(UTC)
    for minute in range(1, 5):
        with time_machine.travel(start + timedelta(minutes=minute), tick=False):
            tokens.append(oauth_token(client, partner.credential, partner.secret).json()["access_token"])

    assert AccessToken.objects.filter(application=partner.credential.application).count() == 3
    assert [api_status(client, token) for token in tokens] == [401, 401, 200, 200, 200]
    assert api_status(client, other.token) == 200


def test_expired_tokens_do_not_count_towards_the_cap(client, api_partner_factory, settings):
    settings.OAUTH_MAX_LIVE_TOKENS_PER_CREDENTIAL = 2
    partner = api_partner_factory()
    AccessToken.objects.filter(application=partner.credential.application).update(
        expires=datetime.now(UTC) - timedelta(seconds=1)
    )
    fresh = [oauth_token(client, partner.credential, partner.secret).json()["access_token"] for _ in range(2)]

    assert [api_status(client, token) for token in fresh] == [200, 200]
    assert AccessToken.objects.filter(application=partner.credential.application).count() == 3


# Introspection and revocation are limited to the caller's own tokens -------------------------


def test_a_partner_can_introspect_its_own_token(client, api_partner_factory):
    partner = api_partner_factory(scopes=("consents:read",))
    response = client.post("/oauth/introspect/", {"token": partner.token}, headers=basic(partner))
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == partner.credential.application.client_id
    assert body["scope"] == "consents:read"


def test_introspecting_another_partners_token_answers_like_an_unknown_token(client, api_partner_factory):
    partner_a = api_partner_factory()
    partner_b = api_partner_factory(slug="partner-b")

    other = client.post("/oauth/introspect/", {"token": partner_b.token}, headers=basic(partner_a))
    unknown = client.post("/oauth/introspect/", {"token": "no-such-token"}, headers=basic(partner_a))
    by_query = client.get(f"/oauth/introspect/?token={partner_b.token}", headers=basic(partner_a))

    assert other.status_code == unknown.status_code == by_query.status_code == 200
    assert other.json() == unknown.json() == by_query.json() == {"active": False}


def test_introspection_needs_client_authentication(client, api_partner_factory):
    partner = api_partner_factory()
    response = client.post(
        "/oauth/introspect/", {"token": partner.token}, headers={"authorization": f"Bearer {partner.token}"}
    )
    assert response.status_code in {401, 403}
    assert b"active" not in response.content


def test_revoking_another_partners_token_answers_200_and_revokes_nothing(client, api_partner_factory):
    partner_a = api_partner_factory()
    partner_b = api_partner_factory(slug="partner-b")

    response = client.post("/oauth/revoke_token/", {"token": partner_b.token}, headers=basic(partner_a))

    assert response.status_code == 200
    assert AccessToken.objects.filter(application=partner_b.credential.application).count() == 1
    assert api_status(client, partner_b.token) == 200
