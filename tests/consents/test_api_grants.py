"""The grant resource: GET /api/v1/grants/{id} and PUT /api/v1/grants/{id}/revocation."""

import json
import uuid

import pytest
import time_machine
from django.utils import timezone

from consents.models import AppGrantToken, OutboxEvent
from tests.factories import AppGrantFactory, ConnectedAppFactory, app_grant_tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(api_partner_factory, consumer):
    a = api_partner_factory("partner-a")
    b = api_partner_factory("partner-b")
    grant = AppGrantFactory(user=consumer, app=ConnectedAppFactory(partner=a.partner, name="Budget Buddy"))
    return a, b, grant


def _get(client, grant_id, headers):
    return client.get(f"/api/v1/grants/{grant_id}", headers=headers)


def _revoke(client, grant_id, headers, body=None):
    return client.put(
        f"/api/v1/grants/{grant_id}/revocation",
        json.dumps(body or {"reason": "USER_ACTION"}),
        content_type="application/json",
        headers=headers,
    )


def test_partner_reads_its_own_grant(client, world):
    a, _b, grant = world
    response = _get(client, grant.pk, a.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(grant.pk)
    assert body["status"] == "ACTIVE"
    assert body["durationType"] == "PERSISTENT"
    assert body["dataCategories"] == sorted(c.slug for c in grant.data_categories.all())
    assert {p["type"] for p in body["parties"]} == {"DATA_RECIPIENT", "DATA_PROVIDER"}
    assert body["revocationReason"] is None


def test_another_partners_grant_is_the_same_404_as_an_unknown_one(client, world):
    _a, b, grant = world
    theirs = _get(client, grant.pk, b.headers)
    unknown = _get(client, uuid.uuid4(), b.headers)
    garbage = _get(client, "not-a-uuid", b.headers)
    assert theirs.status_code == unknown.status_code == garbage.status_code == 404
    assert theirs.json() == unknown.json() == garbage.json()
    assert _revoke(client, grant.pk, b.headers).json() == unknown.json()
    grant.refresh_from_db()
    assert grant.status == "granted"
    assert not OutboxEvent.objects.exists()


def test_partner_revokes_a_grant_once(client, world):
    a, _b, grant = world
    app_grant_tokens(grant)
    assert _revoke(client, grant.pk, a.headers, {"reason": "BUSINESS_RULE", "note": "fraud"}).status_code == 204
    assert _revoke(client, grant.pk, a.headers).status_code == 204

    grant.refresh_from_db()
    assert (grant.status, grant.revocation_reason, grant.changed_by) == ("revoked", "business_rule", "partner")
    assert not AppGrantToken.objects.filter(grant=grant).exists()
    assert OutboxEvent.objects.filter(event_type="consent.revoked").count() == 1
    body = _get(client, grant.pk, a.headers).json()
    assert body["status"] == "REVOKED"
    assert body["revocationReason"] == {"reason": "BUSINESS_RULE", "initiator": "DATA_RECIPIENT"}


def test_revocation_needs_a_known_reason(client, world):
    a, _b, grant = world
    assert _revoke(client, grant.pk, a.headers, {"reason": "BORED"}).status_code == 400
    grant.refresh_from_db()
    assert grant.status == "granted"


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer not-a-token"}], ids=["anonymous", "bad token"])
def test_without_a_valid_token_nothing_is_read_or_ended(client, world, headers):
    _a, _b, grant = world
    assert _get(client, grant.pk, headers).status_code == 401
    assert _revoke(client, grant.pk, headers).status_code == 401
    grant.refresh_from_db()
    assert grant.status == "granted"
    assert not OutboxEvent.objects.exists()


def test_scopes_are_required(client, api_partner_factory, consumer):
    reader = api_partner_factory("reader", scopes=("consents:read",))
    grant = AppGrantFactory(user=consumer, app=ConnectedAppFactory(partner=reader.partner))
    assert _get(client, grant.pk, reader.headers).status_code == 200
    assert _revoke(client, grant.pk, reader.headers).status_code == 403
    grant.refresh_from_db()
    assert grant.status == "granted"


def test_app_token_reaches_its_own_grant_only(client, world, consumer):
    _a, _b, grant = world
    sibling = AppGrantFactory(user=consumer, app=grant.app)
    headers = {"authorization": f"Bearer {app_grant_tokens(grant)}"}

    assert _get(client, grant.pk, headers).status_code == 200
    assert _get(client, sibling.pk, headers).status_code == 404
    assert _revoke(client, sibling.pk, headers).status_code == 404
    sibling.refresh_from_db()
    assert sibling.status == "granted"


def test_app_revokes_its_grant_and_its_token_is_refused_afterwards(client, world):
    _a, _b, grant = world
    headers = {"authorization": f"Bearer {app_grant_tokens(grant)}"}

    assert _revoke(client, grant.pk, headers).status_code == 204

    grant.refresh_from_db()
    assert grant.status == "revoked"
    refused = _get(client, grant.pk, headers)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"


def test_token_of_a_grant_withdrawn_by_the_consumer_is_refused(client, world, consumer):
    from audit.services import Actor
    from consents.services.apps import app_grant_revoke

    _a, _b, grant = world
    headers = {"authorization": f"Bearer {app_grant_tokens(grant)}"}
    assert _get(client, grant.pk, headers).status_code == 200
    app_grant_revoke(grant, initiator=Actor.consumer(consumer), reason="user_action")
    assert _get(client, grant.pk, headers).status_code == 401


def test_grant_operations_are_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", headers={"accept": "application/json"}).json()
    assert schema["paths"]["/api/v1/grants/{grant_id}"]["get"]["operationId"] == "grant_get"
    assert schema["paths"]["/api/v1/grants/{grant_id}/revocation"]["put"]["operationId"] == "grant_revoke"


def test_app_tokens_count_in_their_partners_rate_window(client, world, settings):
    a, _b, grant = world
    settings.PARTNER_API_RATE = "3/minute"
    app_headers = {"authorization": f"Bearer {app_grant_tokens(grant)}"}
    partner_headers = {"authorization": f"Bearer {a.token}"}

    # One frozen minute, so that the four requests share one window on any clock.
    with time_machine.travel(timezone.now().replace(second=1), tick=False):
        statuses = [_get(client, grant.pk, app_headers).status_code for _ in range(2)]
        statuses.append(_get(client, grant.pk, partner_headers).status_code)
        refused = _get(client, grant.pk, app_headers)

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
