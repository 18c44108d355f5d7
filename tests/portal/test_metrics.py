"""/metrics: who may read it, what it says for a known database, and what a scrape costs."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from audit.models import AccessEvent, AccessVerdict
from audit.verification import audit_verification_record, audit_verify_all
from consents.models import DeliveryAttempt, DeliveryOutcome, DeliveryStatus, OutboxEvent
from privacy_requests.models import PrivacyRequest, RequestKind, RequestStatus
from tests.factories import PartnerFactory, PurposeFactory, UserFactory, outbox_event_create

NOW = datetime(2026, 5, 14, 12, 0, tzinfo=UTC)
TOKEN = "metrics-token-0123456789abcdef"
OUTSIDER = "203.0.113.9"
# The scrape's fixed cost: partners, outbox, delivery attempts, acknowledged revocations, privacy
# requests, flagged accesses (the audit verification comes from the cache).
SCRAPE_QUERIES = 6


@pytest.fixture
def metrics_access(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_ADDRESSES = ["127.0.0.1", "::1", "198.51.100.0/24"]


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def scrape(client, **headers) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    response = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}, **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    families = {}
    for family in text_string_to_metric_families(response.content.decode()):
        families[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return families


def sample(families, family: str, name: str | None = None, **labels: str) -> float:
    return families[family][(name or family, tuple(sorted(labels.items())))]


# --- Who may read it --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "authorization", "status"),
    [
        (OUTSIDER, None, 404),
        (OUTSIDER, "Bearer wrong-token-0123456789abcdef", 404),
        (OUTSIDER, f"Bearer {TOKEN}x", 404),
        (OUTSIDER, f"Basic {TOKEN}", 404),
        (OUTSIDER, "Bearer ", 404),
        # A wrong token is refused even from an allowed address: it says the caller is not the scraper.
        ("127.0.0.1", "Bearer wrong-token-0123456789abcdef", 404),
        (OUTSIDER, f"Bearer {TOKEN}", 200),
        (OUTSIDER, f"bearer {TOKEN}", 200),
        ("127.0.0.1", None, 200),
        ("198.51.100.77", None, 200),
    ],
)
def test_metrics_answer_only_the_token_or_an_allowed_address(
    client, db, metrics_access, address, authorization, status
):
    headers = {"authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers, REMOTE_ADDR=address)
    assert response.status_code == status
    if status == 404:
        assert b"portal_" not in response.content


def test_outsiders_get_a_404_whatever_the_method(client, db, metrics_access):
    for method in ("post", "put", "delete"):
        assert getattr(client, method)("/metrics", REMOTE_ADDR=OUTSIDER).status_code == 404
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


def test_without_a_token_or_addresses_nobody_reads_metrics(client, db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_ADDRESSES = []
    assert client.get("/metrics").status_code == 404
    # An empty token never matches an empty bearer.
    assert client.get("/metrics", headers={"authorization": "Bearer "}).status_code == 404


def test_allowed_addresses_follow_the_trusted_proxy_rule(client, db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_ADDRESSES = ["127.0.0.1"]
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    # Behind one proxy on loopback, the client is the address the proxy appended, not the proxy.
    assert client.get("/metrics", headers={"x-forwarded-for": OUTSIDER}).status_code == 404
    assert client.get("/metrics", headers={"x-forwarded-for": "127.0.0.1"}).status_code == 200


# --- What it says -----------------------------------------------------------------------------


@pytest.fixture
def seeded(db, frozen):
    """A database whose every business figure is known."""
    purpose = PurposeFactory(slug="offers")
    partner_a = PartnerFactory(slug="partner-a")
    partner_b = PartnerFactory(slug="partner-b")
    PartnerFactory(slug="partner-idle")
    consumer = UserFactory()

    def event(partner, *, status, created_ago, acked_after=None):
        created = outbox_event_create(partner=partner, user=consumer, purpose=purpose, created_at=NOW - created_ago)
        fields = {"status": status}
        if acked_after is not None:
            fields["acked_at"] = created.created_at + acked_after
        OutboxEvent.objects.filter(pk=created.pk).update(**fields)
        return created

    # Partner A: two events waiting, the older 5 minutes old; one delivered.
    event(partner_a, status=DeliveryStatus.PENDING, created_ago=timedelta(minutes=5))
    event(partner_a, status=DeliveryStatus.RETRYING, created_ago=timedelta(minutes=2))
    delivered = event(partner_a, status=DeliveryStatus.DELIVERED, created_ago=timedelta(hours=3))
    # Partner B: a dead letter, and three acknowledged revocations (10 s, 2 min, 2 h), one acknowledged too long ago.
    event(partner_b, status=DeliveryStatus.DEAD, created_ago=timedelta(days=2))
    for created_ago, acked_after in [
        (timedelta(hours=1), timedelta(seconds=10)),
        (timedelta(hours=2), timedelta(minutes=2)),
        (timedelta(hours=5), timedelta(hours=2)),
        (timedelta(days=3), timedelta(seconds=3)),
    ]:
        event(partner_b, status=DeliveryStatus.DELIVERED, created_ago=created_ago, acked_after=acked_after)
    event(partner_b, status=DeliveryStatus.DELIVERED, created_ago=timedelta(minutes=30), acked_after=timedelta(0))
    OutboxEvent.objects.filter(created_at=NOW - timedelta(minutes=30)).update(event_type="consent.granted")

    # Delivery attempts: in the last hour two delivered and one retry; one delivered two hours ago.
    for ago, outcome in [(1, DeliveryOutcome.DELIVERED), (20, DeliveryOutcome.DELIVERED), (30, DeliveryOutcome.RETRY)]:
        DeliveryAttempt.objects.create(event=delivered, attempted_at=NOW - timedelta(minutes=ago), outcome=outcome)
    DeliveryAttempt.objects.create(event=delivered, attempted_at=NOW - timedelta(hours=2), outcome="delivered")

    # Privacy requests: due in 3 days, due in 10 days, overdue, and a completed one past its date.
    for kind, due_in, status in [
        (RequestKind.EXPORT, timedelta(days=3), RequestStatus.RECEIVED),
        (RequestKind.DELETION, timedelta(days=10), RequestStatus.WAITING_PARTNERS),
        (RequestKind.DELETION, -timedelta(days=1), RequestStatus.PROCESSING),
        (RequestKind.EXPORT, -timedelta(days=2), RequestStatus.COMPLETED),
    ]:
        PrivacyRequest.objects.create(
            user=UserFactory(),
            kind=kind,
            status=status,
            jurisdiction="gdpr",
            created_at=NOW - timedelta(days=40),
            due_at=NOW + due_in,
            completed_at=NOW if status == RequestStatus.COMPLETED else None,
            grace_ends_at=NOW - timedelta(days=33) if kind == RequestKind.DELETION else None,
        )

    # Accesses: flagged 1 h and 23 h ago (one of each verdict), flagged 25 h ago, covered 1 h ago.
    for ago, verdict in [
        (1, AccessVerdict.NO_CONSENT),
        (23, AccessVerdict.OUTSIDE_SHARING),
        (25, AccessVerdict.NO_CONSENT),
        (1, AccessVerdict.COVERED),
    ]:
        AccessEvent.objects.create(
            partner=partner_a,
            partner_event_id=uuid.uuid4().hex,
            user=consumer,
            purpose=purpose,
            action="read",
            accessed_at=NOW - timedelta(hours=ago),
            received_at=NOW - timedelta(hours=ago),
            verdict=verdict,
            content_hash="0" * 64,
        )

    audit_verification_record(breaks=0, at=NOW - timedelta(minutes=10))


def test_scrape_reports_the_business_figures_of_the_database(client, seeded, metrics_access):
    families = scrape(client)

    assert sample(families, "portal_outbox_backlog_events", partner="partner-a") == 2
    assert sample(families, "portal_outbox_oldest_pending_age_seconds", partner="partner-a") == 300
    assert sample(families, "portal_outbox_backlog_events", partner="partner-b") == 0
    assert sample(families, "portal_outbox_oldest_pending_age_seconds", partner="partner-b") == 0
    assert sample(families, "portal_outbox_backlog_events", partner="partner-idle") == 0
    assert sample(families, "portal_outbox_dead_letters", partner="partner-b") == 1
    assert sample(families, "portal_outbox_dead_letters", partner="partner-a") == 0

    attempts = "portal_webhook_attempts_last_hour"
    assert sample(families, attempts, outcome="delivered") == 2
    assert sample(families, attempts, outcome="retry") == 1
    assert sample(families, attempts, outcome="dead") == 0

    latency = "portal_revocation_ack_latency_seconds"
    assert sample(families, latency, f"{latency}_count") == 3
    assert sample(families, latency, f"{latency}_sum") == 10 + 120 + 7200
    assert sample(families, latency, f"{latency}_bucket", le="5.0") == 0
    assert sample(families, latency, f"{latency}_bucket", le="15.0") == 1
    assert sample(families, latency, f"{latency}_bucket", le="300.0") == 2
    assert sample(families, latency, f"{latency}_bucket", le="3600.0") == 2
    assert sample(families, latency, f"{latency}_bucket", le="14400.0") == 3
    assert sample(families, latency, f"{latency}_bucket", le="+Inf") == 3

    assert sample(families, "portal_privacy_requests_due_7d", kind="export") == 1
    assert sample(families, "portal_privacy_requests_due_7d", kind="deletion") == 0
    assert sample(families, "portal_privacy_requests_overdue", kind="deletion") == 1
    assert sample(families, "portal_privacy_requests_overdue", kind="export") == 0

    assert sample(families, "portal_flagged_accesses_24h", verdict="no_consent") == 1
    assert sample(families, "portal_flagged_accesses_24h", verdict="outside_sharing") == 1

    assert sample(families, "portal_audit_chain_ok") == 1
    assert sample(families, "portal_audit_chain_breaks") == 0
    assert sample(families, "portal_audit_chain_verification_age_seconds") == 600
    assert sample(families, "portal_business_metrics_ok") == 1


def test_audit_figures_follow_the_last_full_verification(client, db, metrics_access):
    assert "portal_audit_chain_ok" not in scrape(client), "never verified must read as absent, not as intact"

    with time_machine.travel(NOW, tick=False):
        assert audit_verify_all() == []
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        families = scrape(client)
        assert sample(families, "portal_audit_chain_ok") == 1
        assert sample(families, "portal_audit_chain_verification_age_seconds") == 7200

        audit_verification_record(breaks=2)
        families = scrape(client)
        assert sample(families, "portal_audit_chain_ok") == 0
        assert sample(families, "portal_audit_chain_breaks") == 2
        assert sample(families, "portal_audit_chain_verification_age_seconds") == 0


def test_the_periodic_verification_records_a_damaged_chain(client, db, metrics_access, consumer):
    from audit.models import AuditEvent
    from audit.services import Actor, event_record
    from audit.tasks import audit_chains_verify

    event_record(actor=Actor.consumer(consumer), subject=consumer, action="profile.updated", target=consumer, data={})
    assert audit_chains_verify() == 0
    assert sample(scrape(client), "portal_audit_chain_ok") == 1

    AuditEvent.objects.update(data={"tampered": True})
    assert audit_chains_verify() == 1
    families = scrape(client)
    assert sample(families, "portal_audit_chain_ok") == 0
    assert sample(families, "portal_audit_chain_breaks") == 1


def test_a_scrape_costs_the_same_few_queries_however_much_data(
    client, seeded, metrics_access, django_assert_num_queries
):
    with django_assert_num_queries(SCRAPE_QUERIES):
        scrape(client)
    # Ten times the partners, events, requests and accesses: not one query more.
    consumer, purpose = UserFactory(), PurposeFactory()
    for index in range(10):
        partner = PartnerFactory(slug=f"more-{index}")
        for status in (DeliveryStatus.PENDING, DeliveryStatus.DEAD, DeliveryStatus.DELIVERED):
            OutboxEvent.objects.filter(
                pk=outbox_event_create(partner=partner, user=consumer, purpose=purpose).pk
            ).update(status=status, acked_at=NOW)
        PrivacyRequest.objects.create(
            user=UserFactory(), kind=RequestKind.EXPORT, jurisdiction="gdpr", due_at=NOW + timedelta(days=2)
        )
    with django_assert_num_queries(SCRAPE_QUERIES):
        families = scrape(client)
    assert sample(families, "portal_outbox_backlog_events", partner="more-9") == 1


# --- Requests by route ------------------------------------------------------------------------


def request_count(route: str, method: str = "GET", status: str = "2xx") -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("portal_http_request_duration_seconds_count", labels) or 0.0


def test_requests_are_counted_by_url_pattern_never_by_path(consumer_client, consent_catalogue, metrics_access):
    route = "/consents/<slug:slug>/card/"
    before = request_count(route, status="3xx")
    for slug in ("personalised-offers", "advertising-partners"):
        # Without htmx the card redirects to its place in the list.
        assert consumer_client.get(reverse("consents:card", args=[slug])).status_code == 302
    assert request_count(route, status="3xx") == before + 2

    text = consumer_client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).content.decode()
    request_lines = [line for line in text.splitlines() if line.startswith("portal_http_request_duration_seconds")]
    assert any(f'route="{route}"' in line for line in request_lines)
    assert not any("personalised-offers" in line or "advertising-partners" in line for line in request_lines)


def test_unmatched_paths_share_one_label(client, db):
    before = request_count("<unmatched>", status="4xx")
    client.get(f"/no-such-page/{uuid.uuid4()}/")
    client.get(f"/another/{uuid.uuid4()}")
    assert request_count("<unmatched>", status="4xx") == before + 2


def test_a_scrape_survives_an_unreachable_cache(client, db, metrics_access, settings):
    # Nothing listens on port 1: the verification record cannot be read, the rest still goes out.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    families = scrape(client)
    assert "portal_audit_chain_ok" not in families
    assert sample(families, "portal_business_metrics_ok") == 1
