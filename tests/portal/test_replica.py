"""Reads from a read replica: only pages that show records and the partner feed, never consent decisions.

Without ``DATABASE_REPLICA_URL`` nothing routes anywhere (SQLite and the default). The PostgreSQL pass
of ``make test`` sets it: the replica is then a second connection to the test database, which sees
committed rows only, like a replica; the tests here switch ``REPLICA_READS`` on and look at which
connection ran each query.
"""

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from audit.services import Actor
from consents.models import Consent
from consents.services.consents import consent_grant
from consents.services.partners import partner_subject_ensure
from portal.replica import PIN_COOKIE, ReplicaRouter, replica_enabled, replica_reads
from tests.factories import PurposeFactory, SharingFactory, UserFactory, outbox_event_create

needs_replica = pytest.mark.skipif(
    "replica" not in settings.DATABASES, reason="needs DATABASE_REPLICA_URL (the PostgreSQL pass of make test sets it)"
)
replica_db = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.mark.skipif("replica" in settings.DATABASES, reason="a replica is configured")
def test_without_a_replica_every_read_goes_to_the_primary(settings):
    settings.REPLICA_READS = True
    assert not replica_enabled()
    with replica_reads():
        assert ReplicaRouter().db_for_read(Consent) is None


def test_writes_and_migrations_belong_to_the_primary():
    router = ReplicaRouter()
    assert router.db_for_write(Consent) == "default"
    assert router.allow_migrate("default", "consents") is True
    assert router.allow_migrate("replica", "consents") is False


def test_replica_reads_are_off_unless_switched_on(settings):
    settings.REPLICA_READS = False
    with replica_reads():
        assert ReplicaRouter().db_for_read(Consent) is None


@pytest.mark.django_db
def test_with_replica_reads_off_a_change_sets_no_pin_cookie(client, settings):
    settings.REPLICA_READS = False
    consumer = UserFactory()
    client.force_login(consumer)
    response = client.post("/profile/time-zone/", {"time_zone": "Europe/Paris"})
    assert response.status_code == 200
    assert PIN_COOKIE not in response.cookies


@pytest.fixture
def world(api_partner_factory, client, settings):
    settings.REPLICA_READS = True
    partner = api_partner_factory("partner-r", scopes=("consents:read", "events:read"))
    alice = UserFactory(email="alice@example.com")
    marketing = PurposeFactory(slug="marketing", name="Marketing")
    SharingFactory(partner=partner.partner, purpose=marketing)
    consent_grant(user=alice, purpose=marketing, actor=Actor.consumer(alice))
    subject = partner_subject_ensure(partner=partner.partner, user=alice).subject_id
    assert PIN_COOKIE not in client.cookies  # the partner's token request set none: it has no session
    return partner, alice, subject


def _queries(request) -> tuple[list[str], list[str]]:
    """Run ``request()``; the SQL the primary and the replica ran meanwhile."""
    with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(connections["replica"]) as rep:
        request()
    return [q["sql"] for q in primary.captured_queries], [q["sql"] for q in rep.captured_queries]


@needs_replica
@replica_db
@pytest.mark.parametrize("url", ["/activity/", "/consents/receipts/", "/access/", "/requests/", "/connected/", "/"])
def test_pages_that_show_records_read_them_from_the_replica_and_the_session_from_the_primary(client, world, url):
    _partner, alice, _subject = world
    client.force_login(alice)

    response = None

    def get() -> None:
        nonlocal response
        response = client.get(url)

    primary, replica = _queries(get)

    assert response is not None
    assert response.status_code == 200
    assert replica, "the page read nothing from the replica"
    accounts = ('FROM "django_session"', 'FROM "portal_user"')
    assert [sql for sql in replica if any(table in sql for table in accounts)] == []
    assert any('FROM "django_session"' in sql for sql in primary)


@needs_replica
@replica_db
def test_the_access_csv_streams_its_rows_from_the_replica(client, world):
    _partner, alice, _subject = world
    client.force_login(alice)

    def download() -> None:
        response = client.get("/access/events.csv")
        assert response.status_code == 200
        b"".join(response.streaming_content)

    _primary, replica = _queries(download)
    assert any("audit_accessevent" in sql for sql in replica)


@needs_replica
@replica_db
def test_a_browser_that_just_changed_something_reads_the_primary(client, world, settings):
    _partner, alice, _subject = world
    client.force_login(alice)

    changed = client.post("/profile/time-zone/", {"time_zone": "Europe/Paris"})
    assert changed.status_code == 200
    cookie = changed.cookies[PIN_COOKIE]
    assert cookie["max-age"] == settings.REPLICA_PIN_SECONDS
    assert cookie["httponly"]

    _primary, replica = _queries(lambda: client.get("/activity/"))
    assert replica == []


@needs_replica
@replica_db
def test_the_consent_check_never_reads_the_replica(client, world):
    partner, _alice, subject = world

    def check() -> None:
        response = client.get(f"/api/v1/subjects/{subject}/consents/marketing", headers=partner.headers)
        assert response.status_code == 200
        assert response.json()["status"] == "granted"

    _primary, replica = _queries(check)
    assert replica == []


@needs_replica
@replica_db
def test_the_partner_feed_reads_its_page_from_the_replica(client, world):
    partner, alice, _subject = world
    event = outbox_event_create(partner=partner.partner, user=alice)
    body: dict = {}

    def feed() -> None:
        response = client.get("/api/v1/events", headers=partner.headers)
        assert response.status_code == 200
        body.update(response.json())

    _primary, replica = _queries(feed)
    assert str(event.pk) in [e["id"] for e in body["events"]]
    assert any("consents_outboxevent" in sql for sql in replica)


@needs_replica
@replica_db
def test_inside_a_transaction_on_the_primary_reads_stay_on_the_primary(world):
    router = ReplicaRouter()
    with replica_reads():
        assert router.db_for_read(Consent) == "replica"
        with transaction.atomic():
            assert router.db_for_read(Consent) is None
        assert router.db_for_read(UserFactory._meta.model) is None  # accounts always from the primary
