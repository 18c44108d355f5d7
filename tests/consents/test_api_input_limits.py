"""Malformed or oversized input gets a problem-details answer (413 or 400), never a server error."""

import json

import pytest
from django.conf import settings

from audit.models import AccessEvent
from consents.api.access_events import CATEGORIES_MAX, DETAIL_MAX, EVENT_ID_MAX, IDENTIFIER_MAX, INGEST_MAX

MIB = 1024 * 1024


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"] == f"urn:privacy-portal:problem:{code}"
    return body


def _largest_legitimate_batch() -> bytes:
    """1,000 events with every field at its maximum, each detail character escaped to 12 bytes."""
    event = {
        "event_id": "e" * EVENT_ID_MAX,
        "subject_id": "s" * IDENTIFIER_MAX,
        "purpose": "p" * IDENTIFIER_MAX,
        "categories": ["c" * IDENTIFIER_MAX] * CATEGORIES_MAX,
        "accessed_at": "2026-01-01T00:00:00.000000+00:00",
        "action": "delete",
        # Characters outside the BMP count once against the limit, but json.dumps writes each as a
        # surrogate pair: twelve bytes, the longest a character can be written.
        "detail": "\U0001f600" * DETAIL_MAX,
    }
    return json.dumps({"events": [event] * INGEST_MAX}, indent=2).encode()


def test_the_body_limit_leaves_room_for_the_largest_legitimate_access_event_batch():
    size = len(_largest_legitimate_batch())
    assert size > 7 * MIB  # sanity: the worst case really is that large
    assert size < settings.DATA_UPLOAD_MAX_MEMORY_SIZE < 20 * MIB


def test_a_maximal_access_event_batch_is_read_not_refused_for_size(client, api_world):
    response = client.post(
        "/api/v1/access-events",
        _largest_legitimate_batch(),
        content_type="application/json",
        headers=api_world.a.headers,
    )
    assert response.status_code == 200
    assert response.json()["rejected"] == INGEST_MAX  # unknown subjects: judged one by one, not refused whole


def test_a_20_mib_body_is_refused_with_413(client, api_world):
    body = b'{"events": [' + b'"x",' * (5 * MIB) + b'"x"]}'
    assert len(body) > 20 * MIB
    response = client.post("/api/v1/access-events", body, content_type="application/json", headers=api_world.a.headers)
    _problem(response, 413, "payload_too_large")
    assert not AccessEvent.objects.exists()


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_is_refused_with_400(client, api_world, depth):
    body = "[" * depth + "]" * depth
    response = client.post("/api/v1/consents/check", body, content_type="application/json", headers=api_world.a.headers)
    _problem(response, 400, "parse_error")


def test_nesting_within_the_limit_is_parsed_and_judged_by_the_serializer(client, api_world):
    body = {"items": [{"subject_id": "sub_x", "purpose": "[" * 20}]}
    nested = json.dumps(body)[:-1] + ', "extra": ' + "[" * 60 + "]" * 60 + "}"
    response = client.post(
        "/api/v1/consents/check", nested, content_type="application/json", headers=api_world.a.headers
    )
    assert response.status_code != 500
    assert response.json().get("code") != "parse_error"


def test_thousands_of_query_parameters_are_refused_with_400(client, api_world):
    query = "&".join(f"p{n}=1" for n in range(5000))
    response = client.get(f"/api/v1/events?{query}", headers=api_world.a.headers)
    _problem(response, 400, "too_many_parameters")


def test_thousands_of_query_parameters_are_refused_with_400_before_authentication(client, db):
    query = "&".join(f"p{n}=1" for n in range(5000))
    response = client.get(f"/api/v1/events?{query}")
    assert response.status_code in {400, 401}
    assert response["Content-Type"] == "application/problem+json"
