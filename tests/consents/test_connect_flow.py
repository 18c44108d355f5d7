"""Connected apps, end to end: PAR, consent screen, code with PKCE, tokens, introspection, and each refusal."""

import base64
import hashlib
import json
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken
from oauth2_provider.settings import oauth2_settings

from audit.services import Actor
from consents.models import AppGrant, AppGrantToken, OutboxEvent, PushedAuthorization
from consents.services.partners import partner_credential_create
from consents.tasks.expiry import app_grants_expire_due
from tests.factories import (
    DataCategoryFactory,
    PartnerFactory,
    PurposeFactory,
    UserFactory,
    connected_app_create_for_tests,
)

REDIRECT = "https://app.example.com/callback"


@pytest.fixture
def world(db):
    spending = DataCategoryFactory(slug="transactions", name="Transactions")
    balances = DataCategoryFactory(slug="balances", name="Balances")
    purpose = PurposeFactory(slug="budgeting", name="Budgeting", notice__categories=[spending, balances])
    partner = PartnerFactory(slug="budgetco", name="BudgetCo", country="IE")
    app, secret = connected_app_create_for_tests(partner=partner, purpose=purpose)
    return {"app": app, "secret": secret, "purpose": purpose, "partner": partner}


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _details(**overrides) -> str:
    obj = {
        "type": "portal_data_access",
        "purpose": "budgeting",
        "data_categories": [
            {"category": "transactions", "required": True, "reason": "To show your spending."},
            {"category": "balances"},
        ],
        "duration": {"type": "time_bound", "period_days": 90},
        "lookback_days": 365,
    }
    obj.update(overrides)
    return json.dumps([obj])


def _par(client, world, challenge: str | None = None, **overrides):
    data = {
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "code_challenge": challenge or _pkce()[1],
        "code_challenge_method": "S256",
        "state": "xyz-state",
        "authorization_details": _details(),
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(reverse("connect:par"), data, **_basic(world["app"].application.client_id, world["secret"]))


def _authorize_url(world, request_uri: str, client_id: str | None = None) -> str:
    client_id = client_id or world["app"].application.client_id
    return reverse("connect:authorize") + "?" + f"client_id={client_id}&request_uri={request_uri}"


def _approve(client, url: str, **extra):
    data = {"decision": "approve", "duration": "time_bound", "until": (timezone.localdate() + timedelta(days=30))}
    data.update(extra)
    return client.post(url, data)


def _token(client, world, code: str, verifier: str):
    return client.post(
        reverse("oauth2_provider:token"),
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier},
        **_basic(world["app"].application.client_id, world["secret"]),
    )


def _introspect(client, client_id: str, secret: str, token: str):
    return client.post(reverse("oauth2_provider:introspect"), {"token": token}, **_basic(client_id, secret))


def _code_from(response) -> dict[str, list[str]]:
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return parse_qs(location.query)


def _connect(client, world, consumer, optional: list[str] | None = None) -> tuple[dict, str]:
    verifier, challenge = _pkce()
    request_uri = _par(client, world, challenge).json()["request_uri"]
    client.force_login(consumer)
    query = _code_from(_approve(client, _authorize_url(world, request_uri), optional_categories=optional or []))
    return query, verifier


def test_happy_path_grants_only_the_ticked_categories_and_introspection_shows_them(client, world):
    consumer = UserFactory()
    verifier, challenge = _pkce()
    par = _par(client, world, challenge)
    assert par.status_code == 201
    assert 60 <= par.json()["expires_in"] <= 90
    url = _authorize_url(world, par.json()["request_uri"])
    client.force_login(consumer)

    page = client.get(url)
    content = page.content.decode()
    assert page.status_code == 200
    assert "BudgetCo" in content
    assert "Ireland" in content
    assert "To show your spending." in content
    assert "checked" not in content  # nothing pre-ticked
    form = page.context["form"]
    assert form.latest is not None
    assert form["until"].value() == form.latest  # the app's proposal, ready to shorten

    query = _code_from(_approve(client, url))  # "balances" (optional) left unticked
    assert query["state"] == ["xyz-state"]
    assert query["iss"] == [settings.SITE_URL]
    client.logout()

    token = _token(client, world, query["code"][0], verifier)
    body = token.json()
    assert token.status_code == 200, body
    grant = AppGrant.objects.get()
    assert body["grant_id"] == str(grant.id)
    assert body["expires_in"] == settings.CONNECT_ACCESS_TOKEN_SECONDS
    assert [c["category"] for c in body["authorization_details"][0]["data_categories"]] == ["transactions"]
    assert AppGrantToken.objects.filter(grant=grant, access_token__isnull=False).count() == 1
    assert AppGrantToken.objects.filter(grant=grant, refresh_token__isnull=False).count() == 1

    seen = _introspect(client, world["app"].application.client_id, world["secret"], body["access_token"]).json()
    assert seen["active"] is True
    assert seen["grant_id"] == str(grant.id)
    assert seen["purpose"] == "budgeting"
    assert seen["data_categories"] == ["transactions"]
    assert seen["sub"] == consumer.partner_subjects.get(partner=world["partner"]).subject_id
    assert "username" not in seen


def test_the_partners_credential_may_introspect_its_apps_tokens_another_partner_may_not(client, world):
    query, verifier = _connect(client, world, UserFactory(), optional=["balances"])
    client.logout()
    access = _token(client, world, query["code"][0], verifier).json()["access_token"]
    own, own_secret = partner_credential_create(
        partner=world["partner"], label="rs", scopes=["consents:read"], actor=Actor.system("tests")
    )
    other, other_secret = partner_credential_create(
        partner=PartnerFactory(slug="other"), label="rs", scopes=["consents:read"], actor=Actor.system("tests")
    )

    mine = _introspect(client, own.application.client_id, own_secret, access).json()
    theirs = _introspect(client, other.application.client_id, other_secret, access).json()

    assert mine["active"] is True
    assert mine["data_categories"] == ["balances", "transactions"]
    assert theirs == {"active": False}


def test_introspection_is_false_as_soon_as_the_grant_ends(client, world):
    query, verifier = _connect(client, world, UserFactory())
    client.logout()
    tokens = _token(client, world, query["code"][0], verifier).json()
    now = timezone.now()
    AppGrant.objects.update(status="revoked", revoked_at=now, updated_at=now)

    seen = _introspect(client, world["app"].application.client_id, world["secret"], tokens["access_token"])
    refresh = client.post(
        reverse("oauth2_provider:token"),
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        **_basic(world["app"].application.client_id, world["secret"]),
    )

    assert seen.json() == {"active": False}
    assert refresh.status_code == 400


def test_refresh_rotates_and_links_the_new_tokens_to_the_grant(client, world):
    query, verifier = _connect(client, world, UserFactory())
    client.logout()
    tokens = _token(client, world, query["code"][0], verifier).json()

    refreshed = client.post(
        reverse("oauth2_provider:token"),
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        **_basic(world["app"].application.client_id, world["secret"]),
    )

    body = refreshed.json()
    assert refreshed.status_code == 200, body
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["grant_id"] == tokens["grant_id"]
    assert AppGrantToken.objects.filter(refresh_token__isnull=False).count() == 2


def test_deny_redirects_with_access_denied_and_grants_nothing(client, world):
    request_uri = _par(client, world).json()["request_uri"]
    client.force_login(UserFactory())

    query = _code_from(client.post(_authorize_url(world, request_uri), {"decision": "deny"}))

    assert query["error"] == ["access_denied"]
    assert query["state"] == ["xyz-state"]
    assert query["iss"] == [settings.SITE_URL]
    assert not AppGrant.objects.exists()
    assert client.get(_authorize_url(world, request_uri)).status_code == 400


def test_a_consumer_not_logged_in_logs_in_first_then_continues(client, world):
    request_uri = _par(client, world).json()["request_uri"]
    url = _authorize_url(world, request_uri)

    response = client.get(url)

    assert response.status_code == 302
    login = urlsplit(response["Location"])
    assert login.path == reverse("account_login")
    assert parse_qs(login.query)["next"] == [url]
    client.force_login(UserFactory())
    assert client.get(parse_qs(login.query)["next"][0]).status_code == 200


# Refusals at the pushed-request endpoint --------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"redirect_uri": "https://app.example.com/other"}, "invalid_request"),
        ({"redirect_uri": REDIRECT + "/"}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "invalid_request"),
        ({"state": None}, "invalid_request"),
        ({"authorization_details": "not json"}, "invalid_authorization_details"),
        ({"authorization_details": _details(type="other")}, "invalid_authorization_details"),
        ({"authorization_details": _details(purpose="marketing")}, "invalid_authorization_details"),
        (
            {"authorization_details": _details(data_categories=[{"category": "health"}])},
            "invalid_authorization_details",
        ),
        (
            {"authorization_details": _details(duration={"type": "time_bound", "period_days": 91})},
            "invalid_authorization_details",
        ),
        ({"authorization_details": _details(duration={"type": "persistent"})}, "invalid_authorization_details"),
        ({"authorization_details": _details(lookback_days=366)}, "invalid_authorization_details"),
        (
            {"authorization_details": _details(data_categories=[{"category": "transactions", "required": True}])},
            "invalid_authorization_details",
        ),
    ],
)
def test_par_refuses_requests_outside_the_rules_and_the_registration(client, world, overrides, error):
    DataCategoryFactory(slug="health")
    PurposeFactory(slug="marketing")

    response = _par(client, world, **overrides)

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert not PushedAuthorization.objects.exists()


def test_par_refuses_a_wrong_secret_and_a_partner_credential(client, world):
    credential, secret = partner_credential_create(
        partner=world["partner"], label="api", scopes=["consents:read"], actor=Actor.system("tests")
    )
    wrong = client.post(reverse("connect:par"), {}, **_basic(world["app"].application.client_id, "nope"))
    not_app = client.post(reverse("connect:par"), {}, **_basic(credential.application.client_id, secret))

    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert not_app.json()["error"] == "unauthorized_client"


# Refusals at the consent screen -----------------------------------------------------------------


def test_an_expired_request_uri_shows_an_error_page(client, world):
    request_uri = _par(client, world).json()["request_uri"]
    client.force_login(UserFactory())

    with time_machine.travel(timezone.now() + timedelta(seconds=settings.CONNECT_REQUEST_URI_SECONDS + 1)):
        response = client.get(_authorize_url(world, request_uri))

    assert response.status_code == 400
    assert not AppGrant.objects.exists()


def test_a_used_request_uri_cannot_be_approved_again(client, world):
    request_uri = _par(client, world).json()["request_uri"]
    client.force_login(UserFactory())
    _code_from(_approve(client, _authorize_url(world, request_uri)))

    again = _approve(client, _authorize_url(world, request_uri))

    assert again.status_code == 400
    assert AppGrant.objects.count() == 1


def test_another_apps_client_id_cannot_use_the_request_uri(client, world):
    other, _secret = connected_app_create_for_tests(partner=PartnerFactory(slug="other"), purpose=world["purpose"])
    request_uri = _par(client, world).json()["request_uri"]
    client.force_login(UserFactory())

    response = _approve(client, _authorize_url(world, request_uri, client_id=other.application.client_id))

    assert response.status_code == 400
    assert not AppGrant.objects.exists()


def test_the_consumer_cannot_choose_a_longer_duration_than_proposed(client, world):
    request_uri = _par(client, world).json()["request_uri"]
    client.force_login(UserFactory())
    url = _authorize_url(world, request_uri)

    too_long = _approve(client, url, until=timezone.localdate() + timedelta(days=91))
    forever = _approve(client, url, duration="persistent")

    assert too_long.status_code == forever.status_code == 400
    assert not AppGrant.objects.exists()


# Refusals at the token endpoint -----------------------------------------------------------------


def test_a_wrong_code_verifier_is_refused(client, world):
    query, _verifier = _connect(client, world, UserFactory())
    client.logout()

    response = _token(client, world, query["code"][0], _pkce()[0])

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()


def test_a_reused_code_is_refused_and_revokes_the_tokens_it_issued(client, world):
    query, verifier = _connect(client, world, UserFactory())
    client.logout()
    first = _token(client, world, query["code"][0], verifier)
    assert first.status_code == 200

    again = _token(client, world, query["code"][0], verifier)

    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.exists()
    seen = _introspect(client, world["app"].application.client_id, world["secret"], first.json()["access_token"])
    assert seen.json() == {"active": False}


def test_an_expired_code_is_refused(client, world):
    query, verifier = _connect(client, world, UserFactory())
    client.logout()

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        response = _token(client, world, query["code"][0], verifier)

    assert response.status_code == 400
    assert not AccessToken.objects.exists()


def test_metadata_names_the_endpoints_and_what_is_supported(client, db):
    meta = client.get("/.well-known/oauth-authorization-server").json()

    assert meta["issuer"] == settings.SITE_URL
    assert meta["pushed_authorization_request_endpoint"] == settings.SITE_URL + "/connect/par"
    assert meta["authorization_endpoint"] == settings.SITE_URL + "/connect/authorize"
    assert meta["token_endpoint"] == settings.SITE_URL + "/oauth/token/"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["require_pushed_authorization_requests"] is True
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["authorization_details_types_supported"] == ["portal_data_access"]


def test_the_consent_screen_lets_its_form_answer_redirect_to_the_app_and_nowhere_else(client, world):
    # Chromium applies CSP form-action to the redirect after a form post: the app's origin must be in it.
    request_uri = _par(client, world).json()["request_uri"]
    client.force_login(UserFactory())

    page = client.get(_authorize_url(world, request_uri))

    directives = dict(d.strip().split(" ", 1) for d in page["Content-Security-Policy"].split(";"))
    assert directives["form-action"].split() == ["'self'", "https://app.example.com"]
    assert client.get(reverse("connected:list"))["Content-Security-Policy"].count("app.example.com") == 0


# Connecting again, and approvals the app never finished ---------------------------------------


def test_connecting_again_replaces_the_running_connection_and_ends_its_tokens(client, world):
    consumer = UserFactory()
    query, verifier = _connect(client, world, consumer)
    first_tokens = _token(client, world, query["code"][0], verifier).json()
    first = AppGrant.objects.get(user=consumer)

    query, verifier = _connect(client, world, consumer, optional=["balances"])
    second_tokens = _token(client, world, query["code"][0], verifier).json()

    first.refresh_from_db()
    second = AppGrant.objects.get(user=consumer, status="granted")
    assert (first.status, first.revocation_reason) == ("revoked", "replaced")
    assert second.pk != first.pk
    assert second_tokens["grant_id"] == str(second.pk)
    client_id = world["app"].application.client_id
    assert _introspect(client, client_id, world["secret"], first_tokens["access_token"]).json() == {"active": False}
    assert _introspect(client, client_id, world["secret"], second_tokens["access_token"]).json()["active"] is True
    events = OutboxEvent.objects.filter(partner=world["partner"]).order_by("created_at")
    assert [(kind, payload["data"]["grant_id"]) for kind, payload in events.values_list("event_type", "payload")] == [
        ("consent.granted", str(first.pk)),
        ("consent.revoked", str(first.pk)),
        ("consent.granted", str(second.pk)),
    ]
    page = client.get(reverse("connected:list"))
    assert [row.grant for row in page.context["active"]] == [second]
    assert [row.grant for row in page.context["past"]] == [first]
    assert "You connected the app again" in page.content.decode()


def test_an_approval_the_app_never_finishes_is_pending_then_ended_as_unfinished(client, world):
    consumer = UserFactory()
    approved_at = timezone.now()
    with time_machine.travel(approved_at, tick=False):
        _connect(client, world, consumer)
        grant = AppGrant.objects.get(user=consumer)
        page = client.get(reverse("connected:list"))
    assert grant.connected_at is None
    (row,) = page.context["active"]
    assert row.is_pending
    assert "has not finished connecting yet" in page.content.decode()

    code_life = oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS
    with time_machine.travel(approved_at + timedelta(seconds=code_life + 60), tick=False):
        assert app_grants_expire_due() == 0  # a token request may still be finishing
    with time_machine.travel(approved_at + timedelta(seconds=code_life + 301), tick=False):
        assert app_grants_expire_due() == 1
        assert app_grants_expire_due() == 0

    grant.refresh_from_db()
    assert (grant.status, grant.revocation_reason, grant.changed_by) == ("revoked", "incomplete", "system")
    assert OutboxEvent.objects.filter(partner=world["partner"], event_type="consent.revoked").count() == 1


def test_a_connection_made_is_never_ended_as_unfinished(client, world):
    consumer = UserFactory()
    approved_at = timezone.now()
    with time_machine.travel(approved_at, tick=False):
        query, verifier = _connect(client, world, consumer)
        assert _token(client, world, query["code"][0], verifier).status_code == 200
    grant = AppGrant.objects.get(user=consumer)
    assert grant.connected_at == approved_at

    with time_machine.travel(approved_at + timedelta(days=1), tick=False):
        assert app_grants_expire_due() == 0
    grant.refresh_from_db()
    assert grant.status == "granted"


@pytest.mark.parametrize(
    ("page_language", "shown"),
    [("zh-hans", "用于显示您的支出。"), ("en", "To show your spending.")],
)
def test_a_reason_given_per_language_is_shown_in_the_consumers(client, world, page_language, shown):
    reasons = {"en": "To show your spending.", "zh-Hans": "用于显示您的支出。"}
    categories = [{"category": "transactions", "required": True, "reason": reasons}, {"category": "balances"}]
    request_uri = _par(client, world, authorization_details=_details(data_categories=categories)).json()["request_uri"]
    client.force_login(UserFactory())
    client.cookies["django_language"] = page_language

    page = client.get(_authorize_url(world, request_uri)).content.decode()

    assert shown in page
    assert not any(other in page for other in set(reasons.values()) - {shown})


def test_a_reason_only_in_another_language_is_marked_with_it(client, world):
    categories = [{"category": "transactions", "required": True, "reason": {"de": "Für Ihre Ausgaben."}}]
    request_uri = _par(client, world, authorization_details=_details(data_categories=categories)).json()["request_uri"]
    client.force_login(UserFactory())

    page = client.get(_authorize_url(world, request_uri)).content.decode()

    assert '<span lang="de">Für Ihre Ausgaben.</span>' in page


@pytest.mark.parametrize("reason", [{}, {"en": 5}, ["To show"], {"en": "x" * 301}])
def test_a_malformed_reason_is_refused_at_the_pushed_request(client, world, reason):
    categories = [{"category": "transactions", "required": True, "reason": reason}]

    response = _par(client, world, authorization_details=_details(data_categories=categories))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authorization_details"
    assert not PushedAuthorization.objects.exists()


def test_a_reason_in_another_script_of_the_pages_language_is_preferred_and_marked_with_its_tag(client, world):
    reasons = {"de": "Für Ihre Ausgaben.", "zh-Hant": "用於顯示您的支出。"}
    categories = [{"category": "transactions", "required": True, "reason": reasons}]
    request_uri = _par(client, world, authorization_details=_details(data_categories=categories)).json()["request_uri"]
    client.force_login(UserFactory())
    client.cookies["django_language"] = "zh-hans"

    page = client.get(_authorize_url(world, request_uri)).content.decode()

    assert '<span lang="zh-Hant">用於顯示您的支出。</span>' in page
    assert reasons["de"] not in page


def test_introspection_answers_the_same_prepared_or_not_and_sees_a_withdrawal_at_once(client, world, settings):
    query, verifier = _connect(client, world, UserFactory())
    client.logout()
    access = _token(client, world, query["code"][0], verifier).json()["access_token"]
    app_id = world["app"].application.client_id

    answers = {}
    for prepared in (False, True):
        settings.DATABASE_PREPARED_STATEMENTS = prepared
        # More than five calls: from the sixth PostgreSQL runs a prepared statement's generic plan.
        answers[prepared] = {_introspect(client, app_id, world["secret"], access).content for _ in range(7)}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT generic_plans FROM pg_prepared_statements WHERE statement LIKE '%token_checksum%'")
            assert cursor.fetchone()[0] >= 1
    now = timezone.now()
    AppGrant.objects.update(status="revoked", revoked_at=now, updated_at=now)
    withdrawn = _introspect(client, app_id, world["secret"], access)

    assert len(answers[True]) == 1
    assert answers[True] == answers[False]
    assert json.loads(answers[True].pop())["active"] is True
    assert withdrawn.json() == {"active": False}
