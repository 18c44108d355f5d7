"""The partner API's endpoints: consent checks, the event feed, acknowledgements, errors, docs."""

import json
import re
import time
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from consents.api.selectors import (
    FEED_CURSOR_MAX_LENGTH,
    FEED_CURSOR_MIN_LENGTH,
    FEED_CURSOR_PATTERN,
    METADATA_SECONDS,
    feed_cursor_encode,
)
from consents.models import OutboxEvent
from consents.services.consents import consent_grant, consent_revoke
from consents.services.feed import outbox_event_ack, outbox_feed_sequence
from consents.services.notices import purpose_version_publish
from consents.services.partners import partner_subject_ensure
from tests.conftest import oauth_token
from tests.factories import PurposeFactory, SharingFactory, UserFactory, notice_translations, outbox_event_create

PROBLEM = "application/problem+json"


def check(client, partner, sid: str, purpose: str):
    return client.get(f"/api/v1/subjects/{sid}/consents/{purpose}", headers=partner.headers)


def bulk(client, partner, items):
    return client.post(
        "/api/v1/consents/check", {"items": items}, content_type="application/json", headers=partner.headers
    )


def feed(client, partner, **params):
    return client.get("/api/v1/events", params, headers=partner.headers)


def ack(client, partner, event_id, status="processed", detail=""):
    return client.post(
        f"/api/v1/events/{event_id}/ack",
        {"status": status, "detail": detail},
        content_type="application/json",
        headers=partner.headers,
    )


# Single check -----------------------------------------------------------------------------------


def test_check_answers_granted_for_an_active_consent(client, api_world):
    response = check(client, api_world.a, api_world.sid("a", "alice"), "marketing")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "granted"
    assert body["granted"] is True
    assert body["legal_basis"] == "consent"
    assert body["notice_version"] == 1
    assert body["granted_at"].endswith("Z")
    assert body["expires_at"] is None
    assert body["revoked_at"] is None
    assert body["subject_id"] == api_world.sid("a", "alice")


def test_check_answers_not_granted_after_a_revocation(client, api_world):
    body = check(client, api_world.a, api_world.sid("a", "bob"), "marketing").json()
    assert body["status"] == "revoked"
    assert body["granted"] is False
    assert body["revoked_at"] is not None


def test_check_never_answers_granted_once_a_revocation_has_committed(client, api_world):
    sid = api_world.sid("a", "alice")
    assert check(client, api_world.a, sid, "marketing").json()["granted"] is True
    consent_revoke(user=api_world.alice, purpose=api_world.marketing, actor=Actor.consumer(api_world.alice))
    assert check(client, api_world.a, sid, "marketing").json()["granted"] is False


def test_check_answers_none_when_the_consumer_never_decided(client, api_world):
    body = check(client, api_world.a, api_world.sid("a", "alice"), "analytics").json()
    assert body["status"] == "none"
    assert body["granted"] is False
    assert body["notice_version"] is None


def test_check_answers_granted_with_the_legal_basis_for_a_non_consent_purpose(client, api_world):
    body = check(client, api_world.a, api_world.sid("a", "bob"), "fraud-prevention").json()
    assert body["granted"] is True
    assert body["status"] == "not_required"
    assert body["legal_basis"] == "legitimate_interest"


def test_check_treats_a_consent_past_its_end_as_expired_before_the_expiry_job_runs(client, api_world):
    consent_grant(
        user=api_world.alice,
        purpose=api_world.analytics,
        actor=Actor.consumer(api_world.alice),
        duration_type="time_bound",
        period_days=30,
    )
    sid = api_world.sid("a", "alice")
    body = check(client, api_world.a, sid, "analytics").json()
    assert body["granted"] is True
    assert body["expires_at"] is not None
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        token = oauth_token(client, api_world.a.credential, api_world.a.secret).json()["access_token"]
        response = client.get(
            f"/api/v1/subjects/{sid}/consents/analytics", headers={"authorization": f"Bearer {token}"}
        )
        body = response.json()
    assert body["status"] == "expired"
    assert body["granted"] is False


def test_check_answers_not_granted_when_a_material_notice_change_needs_a_new_decision(client, api_world):
    purpose_version_publish(
        purpose=api_world.marketing,
        description="We now also share with advertisers.",
        retention="One year",
        data_categories=api_world.marketing.current_version.data_categories.all(),
        material=True,
        change_summary="New recipients",
        actor=Actor.system("tests"),
        translations=notice_translations(
            description="We now also share with advertisers.",
            retention="One year",
            change_summary="New recipients",
        ),
    )
    body = check(client, api_world.a, api_world.sid("a", "alice"), "marketing").json()
    assert body["status"] == "reconsent_required"
    assert body["granted"] is False
    assert body["notice_version"] == 1


def test_check_of_a_purpose_that_is_not_offered_is_404(client, api_world):
    api_world.analytics.is_active = False
    api_world.analytics.save(update_fields=["is_active"])
    response = check(client, api_world.a, api_world.sid("a", "alice"), "analytics")
    assert response.status_code == 404


def test_check_of_a_purpose_whose_sharing_ended_is_404(client, api_world):
    sharing = api_world.a.partner.sharings.get(purpose=api_world.analytics)
    sharing.is_active = False
    sharing.save(update_fields=["is_active"])
    assert check(client, api_world.a, api_world.sid("a", "alice"), "analytics").status_code == 404


def test_ending_a_sharing_reaches_a_running_server_within_seconds(client, api_world, monkeypatch):
    sid = api_world.sid("a", "alice")
    assert check(client, api_world.a, sid, "analytics").status_code == 200  # purposes now cached
    api_world.a.partner.sharings.filter(purpose=api_world.analytics).update(is_active=False)
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + METADATA_SECONDS + 0.1)
    assert check(client, api_world.a, sid, "analytics").status_code == 404


def test_unknown_subject_and_unshared_purpose_answer_the_same_404(client, api_world):
    unknown_subject = check(client, api_world.b, "sub_doesnotexist", "marketing")
    unshared_purpose = check(client, api_world.b, api_world.sid("b", "alice"), "analytics")
    unknown_purpose = check(client, api_world.b, api_world.sid("b", "alice"), "no-such-purpose")
    for response in (unknown_subject, unshared_purpose, unknown_purpose):
        assert response.status_code == 404
        assert response["Content-Type"] == PROBLEM
    assert unknown_subject.json() == unshared_purpose.json() == unknown_purpose.json()


def test_check_takes_one_query(client, api_world, django_assert_num_queries):
    sid = api_world.sid("a", "alice")
    check(client, api_world.a, sid, "marketing")  # the first use of a token validates it fully
    with django_assert_num_queries(1):  # token, credential and partner state with the consent itself
        assert check(client, api_world.a, sid, "marketing").status_code == 200


# A subject's consents ----------------------------------------------------------------------------


def test_subject_consents_lists_every_purpose_the_partner_receives(client, api_world):
    response = client.get(f"/api/v1/subjects/{api_world.sid('a', 'bob')}/consents", headers=api_world.a.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["subject_id"] == api_world.sid("a", "bob")
    states = {item["purpose"]: (item["status"], item["granted"]) for item in body["consents"]}
    assert states == {
        "analytics": ("none", False),
        "fraud-prevention": ("not_required", True),
        "marketing": ("revoked", False),
    }


def test_subject_consents_lists_only_what_this_partner_receives(client, api_world):
    response = client.get(f"/api/v1/subjects/{api_world.sid('b', 'alice')}/consents", headers=api_world.b.headers)
    assert [item["purpose"] for item in response.json()["consents"]] == ["marketing"]


def test_subject_consents_of_an_unknown_subject_is_404(client, api_world):
    response = client.get("/api/v1/subjects/sub_nobody/consents", headers=api_world.a.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# Bulk check -------------------------------------------------------------------------------------


def test_bulk_check_answers_each_pair_in_order_with_per_item_not_found(client, api_world):
    a_alice, a_bob, b_alice = api_world.sid("a", "alice"), api_world.sid("a", "bob"), api_world.sid("b", "alice")
    items = [
        {"subject_id": a_bob, "purpose": "marketing"},
        {"subject_id": a_alice, "purpose": "marketing"},
        {"subject_id": b_alice, "purpose": "marketing"},
        {"subject_id": a_alice, "purpose": "fraud-prevention"},
        {"subject_id": a_alice, "purpose": "no-such-purpose"},
        {"subject_id": a_alice, "purpose": "marketing"},
    ]
    response = bulk(client, api_world.a, items)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["subject_id"], r["purpose"]) for r in results] == [(i["subject_id"], i["purpose"]) for i in items]
    assert [(r["status"], r["granted"]) for r in results] == [
        ("revoked", False),
        ("granted", True),
        ("not_found", False),
        ("not_required", True),
        ("not_found", False),
        ("granted", True),
    ]


def test_bulk_check_matches_the_single_check(client, api_world):
    sid = api_world.sid("a", "alice")
    single = check(client, api_world.a, sid, "marketing").json()
    assert bulk(client, api_world.a, [{"subject_id": sid, "purpose": "marketing"}]).json()["results"] == [single]


def test_bulk_check_of_1000_pairs_runs_a_constant_number_of_queries(client, api_world):
    purposes = [PurposeFactory(slug=f"bulk-{n}") for n in range(5)]
    for purpose in purposes:
        SharingFactory(partner=api_world.a.partner, purpose=purpose)
    users = [UserFactory() for _ in range(20)]
    sids = [partner_subject_ensure(partner=api_world.a.partner, user=user).subject_id for user in users]
    for user in users[::2]:
        consent_grant(user=user, purpose=purposes[0], actor=Actor.consumer(user))
    small = [{"subject_id": sids[0], "purpose": "bulk-0"}]
    large = [{"subject_id": sids[n % 20], "purpose": f"bulk-{n % 5}"} for n in range(999)] + small
    bulk(client, api_world.a, small)  # validates the token fully once
    with CaptureQueriesContext(connection) as few:
        bulk(client, api_world.a, small)
    with CaptureQueriesContext(connection) as many:
        response = bulk(client, api_world.a, large)
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1000
    assert len(many) == len(few) <= 5
    granted = [r for r in response.json()["results"] if r["granted"]]
    assert len(granted) == len([n for n in range(999) if n % 5 == 0 and (n % 20) % 2 == 0]) + 1


def test_bulk_check_refuses_more_than_1000_pairs(client, api_world):
    items = [{"subject_id": api_world.sid("a", "alice"), "purpose": "marketing"}] * 1001
    response = bulk(client, api_world.a, items)
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "too_many_items"


def test_bulk_check_lists_field_errors(client, api_world):
    response = bulk(client, api_world.a, [{"subject_id": "sub_x"}, {"purpose": "marketing", "subject_id": ""}])
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    fields = {(error["field"], error["code"]) for error in body["errors"]}
    assert fields == {("items.0.purpose", "required"), ("items.1.subject_id", "blank")}


def test_bulk_check_of_no_pairs_answers_no_results(client, api_world):
    response = bulk(client, api_world.a, [])
    assert response.status_code == 200
    assert response.json() == {"results": []}


def test_bulk_check_needs_a_list_of_items(client, api_world):
    response = client.post(
        "/api/v1/consents/check", {"items": "x"}, content_type="application/json", headers=api_world.a.headers
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "items"


def test_malformed_json_is_a_400_problem(client, api_world):
    response = client.post(
        "/api/v1/consents/check", "{not json", content_type="application/json", headers=api_world.a.headers
    )
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "parse_error"


def test_a_body_that_is_not_json_is_a_415_problem(client, api_world):
    response = client.post("/api/v1/consents/check", {"items": "x"}, headers=api_world.a.headers)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


# Event feed -------------------------------------------------------------------------------------


def test_feed_serves_the_partners_events_in_order_with_a_cursor(client, api_world):
    events = [outbox_event_create(partner=api_world.a.partner, user=api_world.alice) for _ in range(5)]
    first = feed(client, api_world.a, limit=2)
    assert first.status_code == 200
    body = first.json()
    assert [e["id"] for e in body["events"]] == [str(e.id) for e in events[:2]]
    assert body["events"][0] == events[0].payload
    second = feed(client, api_world.a, after=body["next_cursor"], limit=2).json()
    third = feed(client, api_world.a, after=second["next_cursor"]).json()
    assert [e["id"] for e in second["events"] + third["events"]] == [str(e.id) for e in events[2:]]
    empty = feed(client, api_world.a, after=third["next_cursor"]).json()
    assert empty == {"events": [], "next_cursor": third["next_cursor"]}


def test_feed_cursor_is_stable_across_reads(client, api_world):
    outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    cursor = feed(client, api_world.a).json()["next_cursor"]
    later = outbox_event_create(partner=api_world.a.partner, user=api_world.bob)
    assert [e["id"] for e in feed(client, api_world.a, after=cursor).json()["events"]] == [str(later.id)]
    assert [e["id"] for e in feed(client, api_world.a, after=cursor).json()["events"]] == [str(later.id)]


def test_feed_serves_an_event_that_committed_after_the_cursor_moved_past_its_timestamp(client, api_world):
    """A transaction that started earlier but commits late must not slip behind a partner's cursor."""
    now = timezone.now()
    newer = outbox_event_create(partner=api_world.a.partner, user=api_world.alice, created_at=now)
    body = feed(client, api_world.a).json()
    assert [e["id"] for e in body["events"]] == [str(newer.id)]
    # Created (id and timestamp) before `newer`, but only visible now that "its transaction committed".
    late = OutboxEvent.objects.create(
        id=uuid.UUID(int=0),
        partner=api_world.a.partner,
        subject=newer.subject,
        event_type="consent.revoked",
        payload={**newer.payload, "id": str(uuid.UUID(int=0))},
        created_at=now - timedelta(minutes=5),
        status="no_endpoint",
    )
    page = feed(client, api_world.a, after=body["next_cursor"]).json()
    assert [e["id"] for e in page["events"]] == [str(late.id)]


def test_feed_sequencer_numbers_events_in_creation_order_once(api_world):
    now = timezone.now()
    second = outbox_event_create(partner=api_world.a.partner, user=api_world.alice, created_at=now)
    first = outbox_event_create(
        partner=api_world.b.partner, user=api_world.alice, created_at=now - timedelta(seconds=1)
    )
    assert outbox_feed_sequence() == 2
    assert outbox_feed_sequence() == 0
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.feed_seq is not None
    assert second.feed_seq == first.feed_seq + 1


@pytest.mark.parametrize("limit", ["0", "501", "x"])
def test_feed_refuses_a_limit_out_of_range(client, api_world, limit):
    response = feed(client, api_world.a, limit=limit)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "limit"


def test_feed_limit_defaults_to_100_and_goes_up_to_500(client, api_world):
    subject = partner_subject_ensure(partner=api_world.a.partner, user=api_world.alice)
    OutboxEvent.objects.bulk_create(
        OutboxEvent(
            partner=api_world.a.partner,
            subject=subject,
            event_type="consent.revoked",
            payload={"n": n},
            created_at=timezone.now() + timedelta(microseconds=n),
            status="no_endpoint",
        )
        for n in range(501)
    )
    assert len(feed(client, api_world.a).json()["events"]) == 100
    assert len(feed(client, api_world.a, limit=500).json()["events"]) == 500


@pytest.mark.parametrize("cursor", ["garbage", "MTIz", "%%%", "x" * 201])
def test_feed_refuses_a_bad_cursor(client, api_world, cursor):
    response = feed(client, api_world.a, after=cursor)
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] in {"invalid_cursor", "invalid"}


@pytest.mark.parametrize(
    ("cursor", "code"),
    [
        ("0" * 200, "invalid"),  # outside the published pattern: the schema already says it is wrong
        ("0" * 62, "invalid"),
        ("0" * 80, "invalid_cursor"),  # the cursor's form, but not issued by this API
    ],
    ids=["200-zeros", "too-short", "forged"],
)
def test_feed_says_whether_a_cursor_breaks_the_schema_or_was_not_issued(client, api_world, cursor, code):
    response = feed(client, api_world.a, after=cursor)
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == code


@pytest.mark.parametrize(("partner_id", "seq"), [(1, 0), (9_223_372_036_854_775_807, 9_223_372_036_854_775_807)])
def test_every_cursor_the_feed_can_issue_matches_the_published_pattern(partner_id, seq):
    cursor = feed_cursor_encode(partner_id=partner_id, seq=seq)
    assert re.fullmatch(FEED_CURSOR_PATTERN, cursor)
    assert len(cursor) in {FEED_CURSOR_MIN_LENGTH, FEED_CURSOR_MAX_LENGTH}


def test_an_empty_cursor_still_starts_from_the_beginning(client, api_world):
    outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    assert len(feed(client, api_world.a, after="").json()["events"]) == 1


# Acknowledgements -------------------------------------------------------------------------------


def test_ack_records_the_partners_answer(client, api_world):
    event = outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    response = ack(client, api_world.a, event.id, "processed", "Deleted from CRM")
    assert response.status_code == 200
    body = response.json()
    assert body["event_id"] == str(event.id)
    assert body["status"] == "processed"
    assert body["detail"] == "Deleted from CRM"
    assert body["acknowledged_at"].endswith("Z")
    event.refresh_from_db()
    assert (event.ack_status, event.ack_detail) == ("processed", "Deleted from CRM")
    audit = AuditEvent.objects.get(action="partner.event_acknowledged")
    assert audit.subject == api_world.alice
    assert audit.actor_kind == "partner"
    assert audit.actor_id == str(api_world.a.partner.pk)
    # The partner's words may name the person: kept beside the sealed row, where they can be erased.
    assert "Deleted from CRM" not in json.dumps(audit.data)
    assert audit.note.text == "Deleted from CRM"


def test_ack_is_idempotent(client, api_world):
    event = outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    first = ack(client, api_world.a, event.id, "processed", "done").json()
    again = ack(client, api_world.a, event.id, "processed", "done again")
    assert again.status_code == 200
    assert again.json() == first
    assert AuditEvent.objects.filter(action="partner.event_acknowledged").count() == 1


def test_ack_failed_then_processed_is_allowed(client, api_world):
    event = outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    assert ack(client, api_world.a, event.id, "failed", "CRM down").status_code == 200
    assert ack(client, api_world.a, event.id, "processed", "retried").json()["status"] == "processed"


def test_ack_processed_then_failed_is_a_409_problem(client, api_world):
    event = outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    ack(client, api_world.a, event.id, "processed")
    response = ack(client, api_world.a, event.id, "failed", "oops")
    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "already_acknowledged"
    event.refresh_from_db()
    assert event.ack_status == "processed"


def test_ack_with_an_unknown_status_is_400(client, api_world):
    event = outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    response = ack(client, api_world.a, event.id, "maybe")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "status"
    event.refresh_from_db()
    assert event.ack_status == ""


@pytest.mark.parametrize("event_id", [uuid.uuid4(), "not-a-uuid"])
def test_ack_of_an_unknown_event_is_404(client, api_world, event_id):
    response = ack(client, api_world.a, event_id)
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM


def test_ack_service_refuses_another_partners_event(api_world):
    event = outbox_event_create(partner=api_world.a.partner, user=api_world.alice)
    with pytest.raises(OutboxEvent.DoesNotExist):
        outbox_event_ack(partner=api_world.b.partner, event_id=event.id, status="processed", detail="")


# Errors and docs --------------------------------------------------------------------------------


def test_unknown_api_paths_are_404_problems(client, db):
    response = client.get("/api/v1/no/such/thing")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "not_found"


def test_wrong_method_is_a_405_problem(client, api_world):
    response = client.delete("/api/v1/events", headers=api_world.a.headers)
    assert response.status_code == 405
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "method_not_allowed"


def test_problem_details_follow_the_requests_language(client, db):
    response = client.get("/api/v1/no/such/thing", headers={"accept-language": "zh-hans"})
    assert response.json()["code"] == "not_found"
    assert response["Content-Language"] == "zh-hans"


def test_api_docs_load_only_local_scripts_under_the_csp(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    csp = response["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    assert "cdn" not in html
    assert "<style" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert "javascript" in script["Content-Type"]
    assert "SwaggerUIBundle" in script.content.decode()
