"""Isolation matrix: every endpoint by two partners by two consumers — no cross reads or writes.

Both partners receive "marketing" for both consumers, so the only thing that separates them is
whose pairwise subject ids and events they are.
"""

import pytest

from consents.api.selectors import feed_cursor_encode
from consents.models import OutboxEvent
from tests.factories import outbox_event_create

PARTNERS = ["a", "b"]
CONSUMERS = ["alice", "bob"]


def other(partner: str) -> str:
    return "b" if partner == "a" else "a"


@pytest.fixture
def events(api_world) -> dict[tuple[str, str], OutboxEvent]:
    """One outbox event for each (partner, consumer)."""
    return {
        (p, c): outbox_event_create(
            partner=getattr(api_world, p).partner, user=getattr(api_world, c), purpose=api_world.marketing
        )
        for p in PARTNERS
        for c in CONSUMERS
    }


def assert_no_personal_data(api_world, response) -> None:
    body = response.content.decode()
    assert api_world.alice.email not in body
    assert api_world.bob.email not in body


def check_single(client, w, events, caller, consumer):
    me = getattr(w, caller)
    own = client.get(f"/api/v1/subjects/{w.sid(caller, consumer)}/consents/marketing", headers=me.headers)
    foreign = client.get(f"/api/v1/subjects/{w.sid(other(caller), consumer)}/consents/marketing", headers=me.headers)
    assert own.status_code == 200
    assert own.json()["subject_id"] == w.sid(caller, consumer)
    assert foreign.status_code == 404
    assert_no_personal_data(w, own)


def check_subject(client, w, events, caller, consumer):
    me = getattr(w, caller)
    own = client.get(f"/api/v1/subjects/{w.sid(caller, consumer)}/consents", headers=me.headers)
    foreign = client.get(f"/api/v1/subjects/{w.sid(other(caller), consumer)}/consents", headers=me.headers)
    assert own.status_code == 200
    assert {item["subject_id"] for item in own.json()["consents"]} == {w.sid(caller, consumer)}
    assert foreign.status_code == 404
    assert_no_personal_data(w, own)


def check_bulk(client, w, events, caller, consumer):
    me = getattr(w, caller)
    items = [
        {"subject_id": w.sid(caller, consumer), "purpose": "marketing"},
        {"subject_id": w.sid(other(caller), consumer), "purpose": "marketing"},
    ]
    response = client.post(
        "/api/v1/consents/check", {"items": items}, content_type="application/json", headers=me.headers
    )
    results = response.json()["results"]
    assert results[0]["status"] in {"granted", "revoked"}
    assert results[1]["status"] == "not_found"
    assert results[1]["granted"] is False
    assert results[1]["granted_at"] is None


def check_feed(client, w, events, caller, consumer):
    me = getattr(w, caller)
    body = client.get("/api/v1/events", headers=me.headers).json()
    served = {event["id"] for event in body["events"]}
    assert served == {str(events[(caller, c)].id) for c in CONSUMERS}
    assert str(events[(other(caller), consumer)].id) not in served
    assert {event["data"]["subject_id"] for event in body["events"]} == {w.sid(caller, c) for c in CONSUMERS}
    # A cursor handed to the other partner is refused rather than read as a position in this feed.
    foreign_cursor = feed_cursor_encode(partner_id=getattr(w, other(caller)).partner.pk, seq=0)
    refused = client.get("/api/v1/events", {"after": foreign_cursor}, headers=me.headers)
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_cursor"


def check_ack(client, w, events, caller, consumer):
    me = getattr(w, caller)
    foreign = events[(other(caller), consumer)]
    refused = client.post(
        f"/api/v1/events/{foreign.id}/ack", {"status": "processed"}, content_type="application/json", headers=me.headers
    )
    assert refused.status_code == 404
    foreign.refresh_from_db()
    assert foreign.ack_status == ""
    assert foreign.acked_at is None
    own = events[(caller, consumer)]
    accepted = client.post(
        f"/api/v1/events/{own.id}/ack", {"status": "processed"}, content_type="application/json", headers=me.headers
    )
    assert accepted.status_code == 200


ENDPOINT_CHECKS = {
    "GET subjects/{id}/consents/{purpose}": check_single,
    "GET subjects/{id}/consents": check_subject,
    "POST consents/check": check_bulk,
    "GET events": check_feed,
    "POST events/{id}/ack": check_ack,
}


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("caller", PARTNERS)
@pytest.mark.parametrize("endpoint", ENDPOINT_CHECKS)
def test_partner_reaches_only_its_own_subjects_and_events(client, api_world, events, endpoint, caller, consumer):
    ENDPOINT_CHECKS[endpoint](client, api_world, events, caller, consumer)


def test_pairwise_subject_ids_differ_between_partners(api_world):
    for consumer in CONSUMERS:
        assert api_world.sid("a", consumer) != api_world.sid("b", consumer)
    assert len(set(api_world.subjects.values())) == 4
