"""The access log's monthly partitions (PostgreSQL) and its retention (every database)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AccessDaily, AccessEvent, AuditEvent
from audit.partitions import (
    DEFAULT_PARTITION,
    access_event_partitions_create,
    access_events_retention_apply,
    add_months,
    month_start,
    monthly_partitions,
    partition_name,
    retention_cutoff,
)
from audit.tasks import access_event_partitions_maintain
from consents.services.access import AccessReport, access_events_ingest
from consents.services.partners import partner_subject_ensure

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only")

# Far from any month the test database's migration or another test created partitions for.
FAR = datetime(2061, 5, 17, 9, 30, tzinfo=UTC)


def event_create(catalogue, user, at: datetime, event_id: str) -> AccessEvent:
    return AccessEvent.objects.create(
        partner=catalogue["adco"],
        partner_event_id=event_id,
        user=user,
        purpose=catalogue["offers"],
        categories=["contact-details"],
        action="read",
        accessed_at=at,
        received_at=at,
        verdict="covered",
        content_hash="x",
    )


def home_of(event: AccessEvent) -> str:
    """The partition the row is stored in."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM audit_accessevent WHERE id = %s", [event.pk])
        return cursor.fetchone()[0]


@postgresql_only
def test_access_log_is_partitioned_by_month_of_accessed_at():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.partstrat, a.attname FROM pg_partitioned_table p "
            "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
            "WHERE p.partrelid = 'audit_accessevent'::regclass"
        )
        assert cursor.fetchall() == [("r", "accessed_at")]
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [DEFAULT_PARTITION])
        assert cursor.fetchone() == (True,)


@postgresql_only
def test_partitions_are_created_ahead_once():
    created = access_event_partitions_create(months_ahead=2, at=FAR)
    assert created == ["audit_accessevent_p206105", "audit_accessevent_p206106", "audit_accessevent_p206107"]
    assert access_event_partitions_create(months_ahead=2, at=FAR) == []
    assert {m for m in monthly_partitions() if m.year == 2061} == {
        datetime(2061, 5, 1, tzinfo=UTC),
        datetime(2061, 6, 1, tzinfo=UTC),
        datetime(2061, 7, 1, tzinfo=UTC),
    }


@postgresql_only
def test_rows_land_in_their_months_partition_and_the_default_outside(consent_catalogue, consumer):
    access_event_partitions_create(months_ahead=0, at=FAR)
    last_instant_of_may = datetime(2061, 6, 1, tzinfo=UTC) - timedelta(microseconds=1)
    in_may = event_create(consent_catalogue, consumer, last_instant_of_may, "may")
    in_june = event_create(consent_catalogue, consumer, datetime(2061, 6, 1, tzinfo=UTC), "june")
    assert home_of(in_may) == "audit_accessevent_p206105"
    assert home_of(in_june) == DEFAULT_PARTITION


@postgresql_only
def test_a_new_partition_takes_over_its_rows_from_the_default(consent_catalogue, consumer):
    early = event_create(consent_catalogue, consumer, FAR, "early")
    assert home_of(early) == DEFAULT_PARTITION
    assert access_event_partitions_create(months_ahead=0, at=FAR) == ["audit_accessevent_p206105"]
    assert home_of(early) == "audit_accessevent_p206105"
    assert AccessEvent.objects.filter(user=consumer).count() == 1


@postgresql_only
def test_ingest_writes_into_the_current_months_partition(consent_catalogue, consumer):
    at = timezone.now()
    access_event_partitions_create(months_ahead=1, at=at)  # the clock may pass a month's end meanwhile
    subject = partner_subject_ensure(partner=consent_catalogue["adco"], user=consumer)
    report = AccessReport(
        event_id="e1",
        subject_id=subject.subject_id,
        purpose=consent_catalogue["offers"].slug,
        categories=("contact-details",),
        accessed_at=at,
        action="read",
        detail="",
    )
    [result] = access_events_ingest(partner=consent_catalogue["adco"], reports=[report])
    assert result.status == "created"
    [replayed] = access_events_ingest(partner=consent_catalogue["adco"], reports=[report])
    assert replayed.status == "duplicate"
    assert home_of(AccessEvent.objects.get()) == partition_name(month_start(at))


@postgresql_only
def test_retention_drops_exactly_the_partitions_before_the_cutoff(settings, consent_catalogue, consumer):
    settings.ACCESS_EVENT_RETENTION_MONTHS = 12
    at = datetime(2062, 6, 10, tzinfo=UTC)
    for month in (datetime(2061, 5, 1, tzinfo=UTC), datetime(2061, 6, 1, tzinfo=UTC), datetime(2061, 7, 1, tzinfo=UTC)):
        access_event_partitions_create(months_ahead=0, at=month)
        event_create(consent_catalogue, consumer, month + timedelta(days=3), f"in-{month:%m}")
    stray = event_create(consent_catalogue, consumer, datetime(2060, 1, 1, tzinfo=UTC), "stray-old")
    assert home_of(stray) == DEFAULT_PARTITION
    AccessDaily.objects.create(
        user=consumer,
        partner=consent_catalogue["adco"],
        purpose=consent_catalogue["offers"],
        day=datetime(2061, 5, 4, tzinfo=UTC).date(),
        events=1,
        flagged=0,
        last_accessed_at=datetime(2061, 5, 4, tzinfo=UTC),
    )
    before = set(monthly_partitions())

    assert access_events_retention_apply(at=at) == 2

    cutoff = datetime(2061, 6, 1, tzinfo=UTC)
    assert retention_cutoff(at) == cutoff
    assert set(monthly_partitions()) == {month for month in before if month >= cutoff}
    assert sorted(AccessEvent.objects.values_list("partner_event_id", flat=True)) == ["in-06", "in-07"]
    assert AccessDaily.objects.filter(user=consumer).count() == 1  # the consumer's totals stay
    [purge] = AuditEvent.objects.filter(action=AuditAction.ACCESS_EVENTS_PURGED)
    assert purge.data["count"] == 2
    assert "audit_accessevent_p206105" in purge.data["partitions"]
    assert purge.actor_label == "retention"

    assert access_events_retention_apply(at=at) == 0
    assert AuditEvent.objects.filter(action=AuditAction.ACCESS_EVENTS_PURGED).count() == 1


def test_retention_deletes_events_from_before_the_cutoff_month(settings, consent_catalogue, consumer):
    """On SQLite by date; on PostgreSQL the same through partitions and the DEFAULT partition."""
    settings.ACCESS_EVENT_RETENTION_MONTHS = 3
    now = timezone.now()
    cutoff = add_months(month_start(now), -3)
    old = event_create(consent_catalogue, consumer, cutoff - timedelta(microseconds=1), "old")
    kept = event_create(consent_catalogue, consumer, cutoff, "kept")

    assert access_events_retention_apply(at=now) >= 1

    assert not AccessEvent.objects.filter(pk=old.pk).exists()
    assert AccessEvent.objects.filter(pk=kept.pk).exists()
    assert AuditEvent.objects.filter(action=AuditAction.ACCESS_EVENTS_PURGED, subject=None).count() == 1


def test_retention_of_zero_months_keeps_everything(settings, consent_catalogue, consumer):
    settings.ACCESS_EVENT_RETENTION_MONTHS = 0
    event_create(consent_catalogue, consumer, datetime(2001, 1, 1, tzinfo=UTC), "ancient")
    assert access_events_retention_apply() == 0
    assert AccessEvent.objects.filter(user=consumer).count() == 1
    assert not AuditEvent.objects.filter(action=AuditAction.ACCESS_EVENTS_PURGED).exists()


def test_the_daily_task_is_scheduled_and_idempotent(settings, consent_catalogue, consumer):
    assert settings.CELERY_BEAT_SCHEDULE["access-event-partitions-maintain"]["task"] == (
        "audit.tasks.access_event_partitions_maintain"
    )
    settings.ACCESS_EVENT_RETENTION_MONTHS = 1
    this_month = month_start(timezone.now())
    event_create(consent_catalogue, consumer, add_months(this_month, -2), "old")
    assert access_event_partitions_maintain() == 1
    assert access_event_partitions_maintain() == 0
    if connection.vendor == "postgresql":
        # From next month on: the clock may have passed this month's end before the task ran.
        ahead = {add_months(this_month, n) for n in range(1, settings.ACCESS_EVENT_PARTITIONS_AHEAD + 1)}
        assert ahead <= set(monthly_partitions())
