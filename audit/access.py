"""Writing the access log: events with their rollups, and staff's own looks at a consumer's records.

Partners' reports are judged and ingested by ``consents.services.access``, which decides each
verdict; this module owns only the tables. Our staff appear in the log as a recipient like any other
partner, with a published notice: consents' migration 0005 creates that partner and purpose, and
audit reaches them through the access log's foreign keys (``audit.models.catalogue``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from django.db import connection, transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import (
    AccessAction,
    AccessCategorySeen,
    AccessDaily,
    AccessEvent,
    AccessVerdict,
    StaffAccessReason,
    catalogue,
)
from audit.services import Actor, event_record

if TYPE_CHECKING:
    from portal.models import User

# The rows consents' migration 0005 creates (it keeps its own frozen copy of these slugs).
STAFF_PARTNER_SLUG = "customer-support-staff"
STAFF_PURPOSE_SLUG = "customer-support"


class NewAccessEvent(NamedTuple):
    """An access event about to be inserted; the field names are its table's columns."""

    partner_id: int
    partner_event_id: str
    user_id: int
    purpose_id: int
    categories: list[str]
    action: str
    accessed_at: datetime
    received_at: datetime
    detail: str
    verdict: str
    content_hash: str


def access_events_insert(events: Sequence[NewAccessEvent]) -> None:
    """Insert the rows in one statement on PostgreSQL, one prepared INSERT run on SQLite (it loops in C).

    The ORM's bulk_create spends most of its time building SQL. On PostgreSQL the batch travels as
    one JSON document that the server unpacks into the table's row type: one short statement parsed
    and planned once per batch (one INSERT per row cost the server a parse and a plan each), and one
    ``json.dumps`` in C instead of the driver quoting every value.
    """
    if not events:
        return
    table, columns = AccessEvent._meta.db_table, ", ".join(NewAccessEvent._fields)
    if connection.vendor == "postgresql":
        rows = [
            {
                **event._asdict(),
                "accessed_at": event.accessed_at.isoformat(),
                "received_at": event.received_at.isoformat(),
            }
            for event in events
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608 (identifiers only)
                f"FROM json_populate_recordset(NULL::{table}, %s::json)",
                [json.dumps(rows)],
            )
        return
    placeholders = ", ".join(["%s"] * len(NewAccessEvent._fields))
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608 (identifiers only)
            [
                (
                    e.partner_id,
                    e.partner_event_id,
                    e.user_id,
                    e.purpose_id,
                    json.dumps(e.categories),
                    e.action,
                    adapt(e.accessed_at),
                    adapt(e.received_at),
                    e.detail,
                    e.verdict,
                    e.content_hash,
                )
                for e in events
            ],
        )


def access_rollups_add(events: Sequence[AccessEvent | NewAccessEvent], category_ids: dict[str, int]) -> None:
    """Fold new events into the per-day and per-category counters with one upsert each."""
    daily: dict[tuple[int, int, int, str], list[Any]] = {}
    seen: dict[tuple[int, int, int], list[Any]] = {}
    for event in events:
        day = event.accessed_at.astimezone(UTC).date().isoformat()
        key = (event.user_id, event.partner_id, event.purpose_id, day)
        row = daily.setdefault(key, [0, 0, event.accessed_at])
        row[0] += 1
        row[1] += event.verdict != AccessVerdict.COVERED
        row[2] = max(row[2], event.accessed_at)
        for slug in event.categories:
            ckey = (event.user_id, event.partner_id, category_ids[slug])
            crow = seen.setdefault(ckey, [0, event.accessed_at])
            crow[0] += 1
            crow[1] = max(crow[1], event.accessed_at)
    adapt = connection.ops.adapt_datetimefield_value
    _upsert(
        AccessDaily._meta.db_table,
        {
            "user_id": "bigint",
            "partner_id": "bigint",
            "purpose_id": "bigint",
            "day": "date",
            "events": "integer",
            "flagged": "integer",
            "last_accessed_at": "timestamptz",
        },
        conflict=("user_id", "partner_id", "purpose_id", "day"),
        added=("events", "flagged"),
        rows=[(*k, v[0], v[1], adapt(v[2])) for k, v in daily.items()],
    )
    _upsert(
        AccessCategorySeen._meta.db_table,
        {
            "user_id": "bigint",
            "partner_id": "bigint",
            "category_id": "bigint",
            "events": "integer",
            "last_accessed_at": "timestamptz",
        },
        conflict=("user_id", "partner_id", "category_id"),
        added=("events",),
        rows=[(*k, v[0], adapt(v[1])) for k, v in seen.items()],
    )


UPSERT_CHUNK = 1000


def _upsert(
    table: str, columns: dict[str, str], *, conflict: tuple[str, ...], added: tuple[str, ...], rows: list[tuple]
) -> None:
    """Add counters into existing rows (or insert them), keeping the later ``last_accessed_at``.

    ``columns`` maps each column to its PostgreSQL type. On PostgreSQL the rows travel as one array
    per column (``unnest``): one short statement the server plans once, whose text the driver
    need not rescan for every batch. Elsewhere, one multi-row statement per chunk.
    """
    if not rows:
        return
    names = ", ".join(columns)
    updates = [f"{c} = {table}.{c} + excluded.{c}" for c in added]
    updates.append(
        f"last_accessed_at = CASE WHEN excluded.last_accessed_at > {table}.last_accessed_at "
        f"THEN excluded.last_accessed_at ELSE {table}.last_accessed_at END"
    )
    on_conflict = f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {', '.join(updates)}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{sql_type}[]" for sql_type in columns.values())
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {on_conflict}",  # noqa: S608
                [list(column) for column in zip(*rows, strict=True)],
            )
            return
        row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([row_sql] * len(chunk))} {on_conflict}",  # noqa: S608
                [value for row in chunk for value in row],
            )


def _staff_recipient_id(field: Literal["partner", "purpose"], slug: str) -> int:
    return cast(int, catalogue(field).values_list("pk", flat=True).get(slug=slug))


@transaction.atomic
def access_event_record_staff(
    *, staff: User, consumer: User, what: str, records: str = "", reason: StaffAccessReason | None = None
) -> AccessEvent:
    """A staff member opened a consumer's records: that is access too, and the consumer sees it.

    ``records`` names what was opened (a model label, "consents.consent"); ``reason`` is the reason
    the staff member stated, whose code and reference the event keeps and the consumer reads.
    """
    now = timezone.now()
    event = AccessEvent.objects.create(
        partner_id=_staff_recipient_id("partner", STAFF_PARTNER_SLUG),
        partner_event_id=f"staff-{uuid.uuid4()}",
        user=consumer,
        purpose_id=_staff_recipient_id("purpose", STAFF_PURPOSE_SLUG),
        categories=[],
        action=AccessAction.READ,
        accessed_at=now,
        received_at=now,
        detail=what[:500],
        verdict=AccessVerdict.COVERED,
        staff_user=staff,
        staff_reason=reason.code if reason is not None else "",
        staff_reference=reason.reference if reason is not None else "",
        staff_records=records,
        content_hash="",
    )
    access_rollups_add([event], {})  # staff accesses name no categories
    event_record(
        actor=Actor.staff(staff),
        subject=consumer,
        action=AuditAction.ACCESS_STAFF_VIEWED,
        target=event,
        data={"what": what[:200], "staff_reason": reason.code if reason is not None else ""},
        # The reference is free text a staff member typed: an erasable note beside the sealed row.
        note=reason.reference if reason is not None else "",
    )
    return event
