"""Partner self-service over the API (scope ``webhooks:manage``): endpoint, secret, test event, deliveries."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from audit.actions import AuditAction
from audit.models import AuditEvent
from consents.models import (
    PARTNER_DEFAULT_SCOPES,
    DeliveryAttempt,
    DeliveryOutcome,
    DeliveryStatus,
    OutboxEvent,
    Partner,
)
from consents.services.delivery import DeliveryClaim, outbox_event_claim
from tests.factories import outbox_event_create

pytestmark = pytest.mark.django_db

WEBHOOK = "/api/v1/webhook"
ROTATION = "/api/v1/webhook/secret/rotation"
TEST_EVENT = "/api/v1/webhook/test"
DELIVERIES = "/api/v1/webhook/deliveries"
DEAD_LETTERS = "/api/v1/webhook/dead-letters/redelivery"


@pytest.fixture
def allow_private(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True


def _state(partner: Partner) -> tuple:
    """Everything a refused call must leave as it was."""
    partner.refresh_from_db()
    return (
        partner.webhook_url,
        partner.webhook_secret,
        partner.webhook_secret_previous,
        partner.webhook_secret_previous_expires_at,
        sorted(OutboxEvent.objects.values_list("pk", "status", "attempts")),
        AuditEvent.objects.count(),
        partner.history.count(),
    )


def _post(client, path: str, caller) -> object:
    """A body-less POST, as a partner's HTTP client sends it (no body, JSON accepted)."""
    return client.generic("POST", path, headers=caller.headers)


def _dead_letter(partner: Partner, user) -> OutboxEvent:
    event = outbox_event_create(partner=partner, user=user)
    OutboxEvent.objects.filter(pk=event.pk).update(status=DeliveryStatus.DEAD, attempts=8, last_error="HTTP 503")
    DeliveryAttempt.objects.create(event=event, status_code=503, outcome=DeliveryOutcome.DEAD, error="HTTP 503")
    return event


def test_read_endpoint(api_world, client):
    partner = api_world.a.partner
    Partner.objects.filter(pk=partner.pk).update(webhook_url="https://hooks.example.com/p")
    response = client.get(WEBHOOK, headers=api_world.a.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["url"] == "https://hooks.example.com/p"
    assert body["disabled_at"] is None
    assert body["previous_secret_fingerprint"] is None
    assert "whsec_" not in response.content.decode()


def test_change_url_is_validated_saved_and_in_the_partners_history(api_world, client, allow_private):
    partner = api_world.a.partner
    response = client.put(
        WEBHOOK, {"url": "http://127.0.0.1:9/hooks"}, content_type="application/json", headers=api_world.a.headers
    )
    assert response.status_code == 200, response.content
    assert response.json()["url"] == "http://127.0.0.1:9/hooks"
    partner.refresh_from_db()
    assert partner.webhook_url == "http://127.0.0.1:9/hooks"
    latest = partner.history.latest()
    assert latest.webhook_url == "http://127.0.0.1:9/hooks"
    assert latest.history_change_reason.startswith("webhook URL changed by partner")
    (audited,) = AuditEvent.objects.filter(action="partner.webhook_url_changed")
    assert (audited.actor_kind, audited.actor_id) == ("partner", str(partner.pk))
    assert audited.data == {"partner": partner.slug, "origin": "http://127.0.0.1:9"}


def test_empty_url_means_feed_only(api_world, client):
    Partner.objects.filter(pk=api_world.a.partner.pk).update(webhook_url="https://hooks.example.com/p")
    response = client.put(WEBHOOK, {"url": ""}, content_type="application/json", headers=api_world.a.headers)
    assert response.status_code == 200
    assert Partner.objects.get(pk=api_world.a.partner.pk).webhook_url == ""


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://127.0.0.1/hooks", "webhook_url_refused"),
        ("https://10.0.0.8/hooks", "webhook_url_refused"),
        ("https://169.254.169.254/latest", "webhook_url_refused"),
        ("http://hooks.example.com/p", "webhook_url_refused"),
        ("not a url", "invalid"),
        ("https://" + "a" * 200 + ".example.com/", "max_length"),
    ],
)
def test_bad_url_is_a_400_with_code_and_message_and_changes_nothing(api_world, client, url, code):
    before = _state(api_world.a.partner)
    response = client.put(WEBHOOK, {"url": url}, content_type="application/json", headers=api_world.a.headers)
    assert response.status_code == 400
    body = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert body["code"] == "invalid"
    [error] = body["errors"]
    assert (error["field"], error["code"]) == ("url", code)
    assert error["detail"]
    assert _state(api_world.a.partner) == before


def test_rotation_shows_the_new_secret_once_and_both_sign_during_the_overlap(api_world, client, settings):
    settings.WEBHOOK_SECRET_OVERLAP_HOURS = 24
    partner = api_world.a.partner
    old = partner.webhook_secret
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        response = _post(client, ROTATION, api_world.a)
        assert response.status_code == 201
        assert "no-store" in response["Cache-Control"]
        new = response.json()["secret"]
        partner.refresh_from_db()
        assert partner.webhook_secret == new != old
        assert partner.webhook_signing_secrets(at=start) == [new, old]
        # The secret is never shown again.
        assert new not in client.get(WEBHOOK, headers=api_world.a.headers).content.decode()
    assert partner.webhook_signing_secrets(at=start + timedelta(hours=23, minutes=59)) == [new, old]
    assert partner.webhook_signing_secrets(at=start + timedelta(hours=24)) == [new]
    event = AuditEvent.objects.get(action=AuditAction.PARTNER_WEBHOOK_SECRET_ROTATED)
    assert (event.actor_kind, event.actor_id) == ("partner", str(partner.pk))
    assert old not in str(event.data)
    assert new not in str(event.data)


def test_deliveries_are_signed_with_the_previous_secret_only_until_the_overlap_ends(
    api_world, client, settings, allow_private
):
    settings.WEBHOOK_SECRET_OVERLAP_HOURS = 2
    partner = api_world.a.partner
    Partner.objects.filter(pk=partner.pk).update(webhook_url="http://127.0.0.1:9/hooks")
    old = partner.webhook_secret
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        new = _post(client, ROTATION, api_world.a).json()["secret"]
        partner.refresh_from_db()
        during = outbox_event_create(partner=partner, user=api_world.alice)
        OutboxEvent.objects.filter(pk=during.pk).update(status=DeliveryStatus.PENDING)
        claim = outbox_event_claim(event_id=during.pk)
    assert isinstance(claim, DeliveryClaim)
    assert claim.secrets == [new, old]
    with time_machine.travel(start + timedelta(hours=2, seconds=1), tick=False):
        after = outbox_event_create(partner=partner, user=api_world.alice)
        OutboxEvent.objects.filter(pk=after.pk).update(status=DeliveryStatus.PENDING)
        claim = outbox_event_claim(event_id=after.pk)
    assert isinstance(claim, DeliveryClaim)
    assert claim.secrets == [new]


def test_test_event_is_a_real_signed_delivery(
    api_world, client, allow_private, webhook_receiver, celery_eager, django_capture_on_commit_callbacks
):
    partner = api_world.a.partner
    Partner.objects.filter(pk=partner.pk).update(webhook_url=webhook_receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, TEST_EVENT, api_world.a)
    assert response.status_code == 202, response.content
    delivery_id = response.json()["id"]
    assert response.json()["type"] == "webhook.test"
    (audited,) = AuditEvent.objects.filter(action=AuditAction.PARTNER_WEBHOOK_TEST_SENT)
    assert (audited.actor_id, audited.data["event"]) == (str(partner.pk), delivery_id)
    [received] = webhook_receiver.wait_for(1)
    payload = received.verify(partner.webhook_secret)
    assert payload["type"] == "webhook.test"
    assert received.headers["webhook-id"] == delivery_id
    detail = client.get(f"{DELIVERIES}/{delivery_id}", headers=api_world.a.headers).json()
    assert (detail["status"], detail["attempts"], detail["last_status_code"]) == ("delivered", 1, 200)
    assert [a["status_code"] for a in detail["attempt_history"]] == [200]
    # Not in the feed, and nothing to acknowledge.
    assert client.get("/api/v1/events", headers=api_world.a.headers).json()["events"] == []
    ack = client.post(
        f"/api/v1/events/{delivery_id}/ack",
        {"status": "processed"},
        content_type="application/json",
        headers=api_world.a.headers,
    )
    assert ack.status_code == 404


def test_test_event_without_an_endpoint_is_a_409(api_world, client):
    before = _state(api_world.a.partner)
    response = _post(client, TEST_EVENT, api_world.a)
    assert response.status_code == 409
    assert response.json()["code"] == "no_endpoint"
    assert _state(api_world.a.partner) == before


def test_deliveries_list_is_paginated_filtered_and_only_the_partners_own(api_world, client):
    a, b = api_world.a.partner, api_world.b.partner
    base = datetime(2026, 5, 1, 12, tzinfo=UTC)
    mine = [
        outbox_event_create(partner=a, user=api_world.alice, created_at=base + timedelta(minutes=i)) for i in range(5)
    ]
    dead = _dead_letter(a, api_world.bob)
    outbox_event_create(partner=b, user=api_world.alice)
    response = client.get(DELIVERIES, {"limit": 2}, headers=api_world.a.headers)
    assert response.status_code == 200
    seen = [item["id"] for item in response.json()["results"]]
    next_url = response.json()["next"]
    while next_url:
        page = client.get(next_url, headers=api_world.a.headers).json()
        seen += [item["id"] for item in page["results"]]
        next_url = page["next"]
    assert sorted(seen) == sorted(str(e.pk) for e in [*mine, dead])
    [only] = client.get(DELIVERIES, {"status": "dead"}, headers=api_world.a.headers).json()["results"]
    assert (only["id"], only["attempts"], only["last_status_code"]) == (str(dead.pk), 8, 503)


def test_bad_list_parameters_are_400s(api_world, client):
    for params, code in (
        ({"limit": 0}, "invalid"),
        ({"status": "lost"}, "invalid"),
        ({"cursor": "zz"}, "invalid_cursor"),
    ):
        response = client.get(DELIVERIES, params, headers=api_world.a.headers)
        assert (response.status_code, response.json()["code"]) == (400, code)


def test_redeliver_one_dead_letter_is_queued_and_audited(api_world, client, allow_private):
    partner = api_world.a.partner
    Partner.objects.filter(pk=partner.pk).update(webhook_url="http://127.0.0.1:9/hooks")
    dead = _dead_letter(partner, api_world.alice)
    response = _post(client, f"{DELIVERIES}/{dead.pk}/redelivery", api_world.a)
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)
    dead.refresh_from_db()
    assert dead.status == DeliveryStatus.PENDING
    audit = AuditEvent.objects.get(action=AuditAction.OUTBOX_EVENT_REDRIVEN)
    assert (audit.actor_kind, audit.actor_id, audit.target_id) == ("partner", str(partner.pk), str(dead.pk))


def test_redelivering_a_delivered_event_is_a_409(api_world, client):
    Partner.objects.filter(pk=api_world.a.partner.pk).update(webhook_url="https://hooks.example.com/p")
    event = outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    OutboxEvent.objects.filter(pk=event.pk).update(status=DeliveryStatus.DELIVERED)
    before = _state(api_world.a.partner)
    response = _post(client, f"{DELIVERIES}/{event.pk}/redelivery", api_world.a)
    assert (response.status_code, response.json()["code"]) == (409, "not_redrivable")
    assert _state(api_world.a.partner) == before


def test_redeliver_all_dead_letters(api_world, client):
    partner = api_world.a.partner
    Partner.objects.filter(pk=partner.pk).update(webhook_url="https://hooks.example.com/p")
    dead = [_dead_letter(partner, user) for user in (api_world.alice, api_world.bob)]
    others = _dead_letter(api_world.b.partner, api_world.alice)
    delivered = outbox_event_create(partner=partner, user=api_world.alice)
    OutboxEvent.objects.filter(pk=delivered.pk).update(status=DeliveryStatus.DELIVERED)
    response = _post(client, DEAD_LETTERS, api_world.a)
    assert response.status_code == 202
    assert sorted(response.json()["redelivered"]) == sorted(str(e.pk) for e in dead)
    assert response.json()["remaining"] == 0
    statuses = dict(OutboxEvent.objects.values_list("pk", "status"))
    assert [statuses[e.pk] for e in dead] == [DeliveryStatus.PENDING] * 2
    assert (statuses[others.pk], statuses[delivered.pk]) == (DeliveryStatus.DEAD, DeliveryStatus.DELIVERED)
    audit = AuditEvent.objects.get(action=AuditAction.OUTBOX_EVENT_REDRIVEN)
    assert (audit.actor_kind, audit.data["events"]) == ("partner", 2)


def test_another_partners_delivery_is_the_same_404_as_an_unknown_one(api_world, client):
    Partner.objects.filter(pk=api_world.b.partner.pk).update(webhook_url="https://hooks.example.com/b")
    theirs = _dead_letter(api_world.b.partner, api_world.alice)
    before = _state(api_world.b.partner)
    answers = []
    for delivery_id in (theirs.pk, uuid.uuid4(), "not-a-uuid"):
        for method, path in (
            ("get", f"{DELIVERIES}/{delivery_id}"),
            ("post", f"{DELIVERIES}/{delivery_id}/redelivery"),
        ):
            response = getattr(client, method)(path, headers=api_world.a.headers)
            answers.append((response.status_code, response.json()))
    assert {status for status, _body in answers} == {404}
    assert len({str(body) for _status, body in answers}) == 1
    assert _state(api_world.b.partner) == before
    # Re-delivering "all" touches only the caller's own dead letters.
    Partner.objects.filter(pk=api_world.a.partner.pk).update(webhook_url="https://hooks.example.com/a")
    assert _post(client, DEAD_LETTERS, api_world.a).json() == {"redelivered": [], "remaining": 0}
    theirs.refresh_from_db()
    assert theirs.status == DeliveryStatus.DEAD


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", WEBHOOK),
        ("put", WEBHOOK),
        ("post", ROTATION),
        ("post", TEST_EVENT),
        ("get", DELIVERIES),
        ("get", f"{DELIVERIES}/00000000-0000-0000-0000-000000000000"),
        ("post", f"{DELIVERIES}/00000000-0000-0000-0000-000000000000/redelivery"),
        ("post", DEAD_LETTERS),
    ],
)
def test_a_credential_without_the_scope_gets_403_and_changes_nothing(api_partner_factory, client, method, path):
    caller = api_partner_factory("no-scope", scopes=PARTNER_DEFAULT_SCOPES, webhook_url="https://hooks.example.com/")
    before = _state(caller.partner)
    response = getattr(client, method)(
        path, {"url": "https://hooks.example.com/new"}, content_type="application/json", headers=caller.headers
    )
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "insufficient_scope"
    assert body["detail"]
    assert 'scope="webhooks:manage"' in response["WWW-Authenticate"]
    assert _state(caller.partner) == before


def test_new_credentials_do_not_get_the_scope_by_default():
    from consents.models import PartnerCredential

    assert "webhooks:manage" not in PartnerCredential._meta.get_field("scopes").get_default().split()


def test_unauthenticated_is_401(client, db):
    assert client.get(WEBHOOK).status_code == 401
    assert reverse("api:webhook") == WEBHOOK


def test_the_partners_own_changes_are_on_its_admin_page(api_world, client, staff_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    partner = api_world.a.partner
    put = client.put(
        WEBHOOK, {"url": "http://127.0.0.1:9/hooks"}, content_type="application/json", headers=api_world.a.headers
    )
    assert put.status_code == 200
    rotated = _post(client, ROTATION, api_world.a).json()
    dead = _dead_letter(partner, api_world.alice)
    assert _post(client, f"{DELIVERIES}/{dead.pk}/redelivery", api_world.a).status_code == 202
    page = staff_client.get(reverse("admin:consents_partner_change", args=[partner.pk])).content.decode()
    assert "Partner webhook URL changed" in page
    assert "http://127.0.0.1:9" in page
    assert "Partner webhook secret rotated" in page
    assert rotated["secret_fingerprint"] in page
    assert rotated["secret"] not in page
    assert "Partner event sent again" in page
    assert str(dead.pk) in page
    # Another partner's page shows none of it.
    other = staff_client.get(reverse("admin:consents_partner_change", args=[api_world.b.partner.pk])).content.decode()
    assert "Partner webhook URL changed" not in other
    assert "Partner webhook secret rotated" not in other
