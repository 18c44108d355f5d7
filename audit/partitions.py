"""The access log's monthly partitions on PostgreSQL, and its retention on every database.

On PostgreSQL ``audit_accessevent`` is partitioned by range of ``accessed_at``, one partition per
calendar month in UTC (``audit_accessevent_p202612``) and a DEFAULT partition for anything outside
them (migration 0010). A daily task creates the partitions ahead of time and drops the ones past
``ACCESS_EVENT_RETENTION_MONTHS``; on SQLite the same retention deletes rows. The rollups
(``AccessDaily``, ``AccessCategorySeen``) are counters without free text and are kept, as every
other retention in the project keeps them, so the consumer's totals per partner stay right.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AccessEvent
from audit.services import Actor, event_record

TABLE = AccessEvent._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
_MONTHLY = re.compile(rf"^{TABLE}_p(\d{{4}})(\d{{2}})$")
# One key for every change to the set of partitions: two beats' late ticks (or a manual run beside
# the scheduled one) take turns, and the second finds the work done.
_LOCK_KEY = 0x41434345  # "ACCE"


def month_start(at: datetime) -> datetime:
    """The first instant of ``at``'s month in UTC."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def is_partitioned() -> bool:
    """Whether the access log is a partitioned table here (PostgreSQL after migration 0010)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
        return cursor.fetchone() is not None


def monthly_partitions() -> dict[datetime, str]:
    """The monthly partitions attached now, by the month each holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = {}
    for name in names:
        if match := _MONTHLY.match(name):
            found[datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)] = name
    return found


def access_event_partitions_create(*, months_ahead: int, at: datetime | None = None) -> list[str]:
    """Make sure this month and the ``months_ahead`` after it have partitions; the names created.

    Idempotent. Rows that already landed in the DEFAULT partition for such a month (the task had not
    run in time) move into the new partition in the same transaction, as PostgreSQL requires.
    """
    if not is_partitioned():
        return []
    first = month_start(at or timezone.now())
    created = []
    for month in (add_months(first, n) for n in range(months_ahead + 1)):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            if month in monthly_partitions():
                continue
            name, lower, upper = partition_name(month), month, add_months(month, 1)
            cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
            cursor.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE accessed_at >= %s AND accessed_at < %s "  # noqa: S608
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                [lower, upper],
            )
            # ATTACH builds the partition's indexes and constraints from the parent's.
            cursor.execute(
                f"ALTER TABLE {TABLE} ATTACH PARTITION {name} "
                f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
            )
            created.append(name)
    return created


def retention_cutoff(at: datetime | None = None) -> datetime | None:
    """Events that happened before this instant are past retention (None: kept for ever).

    Whole months: with 24 months on any day of December 2026, December 2024 is kept and November
    2024 goes, so a partition is dropped whole, never half.
    """
    months = settings.ACCESS_EVENT_RETENTION_MONTHS
    if months <= 0:
        return None
    return add_months(month_start(at or timezone.now()), -months)


@transaction.atomic
def access_events_retention_apply(*, at: datetime | None = None) -> int:
    """Delete the access events past ``ACCESS_EVENT_RETENTION_MONTHS``; the number deleted, audited.

    PostgreSQL drops whole monthly partitions (no row-by-row delete, no bloat) and deletes the few
    old rows the DEFAULT partition holds; SQLite deletes by date. Counts what this run removed, so
    a second run finds nothing and records nothing.
    """
    cutoff = retention_cutoff(at)
    if cutoff is None:
        return 0
    dropped: list[str] = []
    if is_partitioned():
        deleted = 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            # A partition with deferred foreign-key checks still pending in this transaction cannot be
            # dropped; checking them now lets a caller that just wrote events (a test) purge too.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for month, name in sorted(monthly_partitions().items()):
                if add_months(month, 1) > cutoff:
                    continue
                cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608 (identifier from the catalogue)
                deleted += cursor.fetchone()[0]
                cursor.execute(f"DROP TABLE {name}")
                dropped.append(name)
            cursor.execute(f"DELETE FROM {DEFAULT_PARTITION} WHERE accessed_at < %s", [cutoff])  # noqa: S608
            deleted += cursor.rowcount
    else:
        deleted, _ = AccessEvent.objects.filter(accessed_at__lt=cutoff).delete()
    if deleted or dropped:
        event_record(
            actor=Actor.system("retention"),
            subject=None,
            action=AuditAction.ACCESS_EVENTS_PURGED,
            data={"count": deleted, "before": cutoff.isoformat(), "partitions": dropped},
        )
    return deleted
