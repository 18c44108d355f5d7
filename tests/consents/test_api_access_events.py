import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AccessEvent
from audit.services import Actor
from consents.services.consents import consent_grant
from consents.services.partners import partner_subject_ensure
from tests.factories import DataCategoryFactory, PurposeFactory, SharingFactory

URL = "/api/v1/access-events"


@pytest.fixture
def world(db, api_partner_factory, consumer, other_consumer):
    contact = DataCategoryFactory(slug="contact")
    offers = PurposeFactory(slug="offers", notice__categories=[contact])
    a = api_partner_factory("partner-a")
    b = api_partner_factory("partner-b")
    for api in (a, b):
        SharingFactory(partner=api.partner, purpose=offers, categories=[contact])
    consent_grant(user=consumer, purpose=offers, actor=Actor.consumer(consumer))
    return {
        "a": a,
        "b": b,
        "alice_at_a": partner_subject_ensure(partner=a.partner, user=consumer).subject_id,
        "bob_at_b": partner_subject_ensure(partner=b.partner, user=other_consumer).subject_id,
    }


def event(subject_id, event_id="e-1", **overrides):
    return {
        "event_id": event_id,
        "subject_id": subject_id,
        "purpose": "offers",
        "categories": ["contact"],
        "accessed_at": timezone.now().isoformat(),
        "action": "read",
        "detail": "Newsletter personalised",
    } | overrides


def post(client, api, events):
    return client.post(URL, {"events": events}, content_type="application/json", headers=api.headers)


def test_partner_reports_accesses_and_gets_a_verdict_per_item(client, world):
    at = timezone.now().isoformat()
    response = post(
        client,
        world["a"],
        [
            event(world["alice_at_a"], "covered", accessed_at=at),
            event(world["alice_at_a"], "before", accessed_at=(timezone.now() - timedelta(days=3)).isoformat()),
            event(world["alice_at_a"], "unknown-purpose", purpose="nope"),
        ],
    )
    assert response.status_code == 200
    body = response.json()
    assert [(r["event_id"], r["status"], r.get("verdict")) for r in body["results"]] == [
        ("covered", "created", "covered"),
        ("before", "created", "no_consent"),
        ("unknown-purpose", "rejected", None),
    ]
    assert body["results"][2]["errors"] == [
        {"field": "purpose", "code": "unknown_purpose", "detail": "No such purpose."}
    ]
    assert (body["created"], body["rejected"]) == (2, 1)
    assert AccessEvent.objects.filter(partner=world["a"].partner).count() == 2


def test_replay_is_a_duplicate_and_changed_content_a_conflict(client, world):
    first = event(world["alice_at_a"])
    post(client, world["a"], [first])
    again = post(client, world["a"], [first]).json()["results"][0]
    changed = post(client, world["a"], [first | {"detail": "Something else"}]).json()["results"][0]
    assert again["status"] == "duplicate"
    assert (changed["status"], changed["code"]) == ("conflict", "event_id_conflict")
    assert AccessEvent.objects.count() == 1


def test_a_partner_cannot_report_on_another_partners_subject(client, world):
    response = post(client, world["a"], [event(world["bob_at_b"])])
    result = response.json()["results"][0]
    assert (result["status"], result["code"]) == ("rejected", "unknown_subject")
    assert not AccessEvent.objects.exists()


def test_the_same_event_id_is_independent_between_partners(client, world):
    post(client, world["a"], [event(world["alice_at_a"], "shared-id")])
    result = post(client, world["b"], [event(world["bob_at_b"], "shared-id")]).json()["results"][0]
    assert result["status"] == "created"


def test_future_timestamps_beyond_clock_skew_are_rejected_per_item(client, world):
    soon = (timezone.now() + timedelta(seconds=30)).isoformat()
    later = (timezone.now() + timedelta(hours=2)).isoformat()
    results = post(
        client,
        world["a"],
        [event(world["alice_at_a"], "soon", accessed_at=soon), event(world["alice_at_a"], "later", accessed_at=later)],
    ).json()["results"]
    assert [r["status"] for r in results] == ["created", "rejected"]
    assert results[1]["code"] == "accessed_at_in_future"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": [{"event_id": "x"}]}, "events.0.subject_id"),
        ({"events": [{"event_id": "x", "accessed_at": "yesterday"}]}, "events.0.accessed_at"),
        ({"events": "nope"}, "events"),
        ({"events": []}, "events"),
    ],
)
def test_structurally_broken_batches_are_refused_whole_with_field_errors(client, world, body, field):
    good = event(world["alice_at_a"], "good")
    if isinstance(body["events"], list) and body["events"]:
        body = {"events": [good, *body["events"]]}
        field = field.replace("events.0", "events.1")
    response = client.post(URL, body, content_type="application/json", headers=world["a"].headers)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid"
    assert field in {e["field"] for e in problem["errors"]}
    assert not AccessEvent.objects.exists(), "nothing half-written"


def test_more_than_a_thousand_events_are_refused(client, world):
    events = [event(world["alice_at_a"], f"e{i}") for i in range(1001)]
    response = post(client, world["a"], events)
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_items"
    assert not AccessEvent.objects.exists()


def test_malformed_json_is_a_problem(client, world):
    response = client.post(URL, "{not json", content_type="application/json", headers=world["a"].headers)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_the_access_write_scope_is_required(client, world, api_partner_factory):
    reader = api_partner_factory("reader", scopes=("consents:read",))
    response = post(client, reader, [event(world["alice_at_a"])])
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert client.post(URL, json.dumps({"events": []}), content_type="application/json").status_code == 401


def test_nothing_is_readable_back_through_the_api(client, world):
    post(client, world["a"], [event(world["alice_at_a"])])
    assert client.get(URL, headers=world["a"].headers).status_code == 405
