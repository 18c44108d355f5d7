"""Reading the audit log and the access log: chain verification, the consumer's overviews and timelines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from itertools import groupby
from typing import TYPE_CHECKING, Any

from django.db.models import Max, Q, QuerySet, Sum
from django.utils import timezone

from audit.models import (
    AccessCategorySeen,
    AccessDaily,
    AccessEvent,
    AccessVerdict,
    AuditChain,
    AuditEvent,
    AuditNote,
    catalogue,
)
from audit.services import NOTE_DIGEST, event_seal, note_digest

if TYPE_CHECKING:
    from portal.models import User


# The columns of the consumer's access log wherever it leaves the portal: the CSV download and the
# data export's "access_events" section.
ACCESS_LOG_COLUMNS = (
    "accessed_at",
    "partner",
    "partner_kind",
    "purpose",
    "data_categories",
    "action",
    "verdict",
    "detail",
    # Staff accesses only: the reason code and reference the staff member stated (audit/staff_access.py).
    "staff_reason",
    "staff_reference",
)


class BreakKind(StrEnum):
    DELETED = "deleted"
    RELINKED = "relinked"
    EDITED = "edited"
    TRUNCATED = "truncated"
    HEAD_MISSING = "head_missing"
    NOTE = "note"


@dataclass(frozen=True)
class ChainBreak:
    chain: str
    seq: int
    event_id: int | None
    problem: str
    kind: BreakKind

    def __str__(self) -> str:
        row = f"event {self.event_id}" if self.event_id is not None else "a missing event"
        return f"chain {self.chain!r} broken at seq {self.seq} ({row}): {self.problem}"


def event_note(event: AuditEvent) -> AuditNote | None:
    try:
        return event.note
    except AuditNote.DoesNotExist:
        return None


def _note_problem(event: AuditEvent) -> str | None:
    """Whether the note beside a sealed row still matches the digest the row was sealed with."""
    digest = event.data.get(NOTE_DIGEST) if isinstance(event.data, dict) else None
    note = event_note(event)
    if digest is None:
        return "a note its event was not sealed with (added)" if note is not None else None
    if note is None:
        return "the event's note is missing (deleted)"
    if note.scrubbed_at is not None:
        # Erased on account deletion: by design the digest can no longer be checked against anything.
        return None
    if note_digest(salt=note.salt, text=note.text) != digest:
        return "the note does not match its sealed digest (edited)"
    return None


def _chain_break(key: str, events: Iterator[AuditEvent], head: tuple[int, str] | None) -> ChainBreak | None:
    """The first break in one chain's events (given in seq order), checked against its head row."""
    expected_seq = 1
    prev_hash = ""
    for event in events:
        if event.seq != expected_seq:
            return ChainBreak(
                key,
                expected_seq,
                event.pk,
                f"expected seq {expected_seq}, found {event.seq} (deleted)",
                BreakKind.DELETED,
            )
        if event.prev_hash != prev_hash:
            return ChainBreak(
                key, event.seq, event.pk, "previous-hash link does not match (reordered or deleted)", BreakKind.RELINKED
            )
        if event.hash != event_seal(event):
            return ChainBreak(key, event.seq, event.pk, "seal does not match the row (edited)", BreakKind.EDITED)
        if problem := _note_problem(event):
            return ChainBreak(key, event.seq, event.pk, problem, BreakKind.NOTE)
        prev_hash = event.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    if head is None:
        return ChainBreak(key, last_seq, None, "the chain's head row is missing (deleted)", BreakKind.HEAD_MISSING)
    head_seq, head_hash = head
    if last_seq != head_seq or prev_hash != head_hash:
        return ChainBreak(
            key,
            last_seq + 1,
            None,
            f"chain head says {head_seq} events, found {last_seq} (truncated)",
            BreakKind.TRUNCATED,
        )
    return None


def audit_chain_breaks(chain: str | None = None) -> Iterator[ChainBreak]:
    """The first break of every damaged chain (or of one chain).

    One ordered pass over the log (the ``(chain, seq)`` unique index serves it), however many
    chains there are.
    """
    heads_qs = AuditChain.objects.all()
    events_qs = AuditEvent.objects.select_related("note").order_by("chain", "seq")
    if chain is not None:
        heads_qs = heads_qs.filter(key=chain)
        events_qs = events_qs.filter(chain=chain)
    heads = {c.key: (c.last_seq, c.last_hash) for c in heads_qs}
    seen: set[str] = set()
    for key, events in groupby(events_qs.iterator(chunk_size=2000), key=lambda e: e.chain):
        seen.add(key)
        if found := _chain_break(key, events, heads.get(key)):
            yield found
    for key in sorted(heads.keys() - seen):
        # A head that counts events none of which exist: the whole chain was deleted.
        if found := _chain_break(key, iter(()), heads[key]):
            yield found


@dataclass
class PartnerAccessRow:
    """One line of "who accesses my data": a partner and what it did with this consumer's data.

    ``partner``, ``purposes`` and ``categories`` are consents' rows, read through the access log's keys.
    """

    partner: Any
    purposes: list[Any]
    categories: list[Any]
    last_accessed_at: datetime
    events_30: int
    events_90: int
    flagged_90: int
    flagged_total: int


def access_overview(user: User, *, today: date | None = None) -> list[PartnerAccessRow]:
    """Per partner, from the daily rollups: a fixed handful of queries however long the history."""
    today = today or timezone.now().date()
    since_30, since_90 = today - timedelta(days=29), today - timedelta(days=89)
    rows = (
        AccessDaily.objects.filter(user=user)
        .values("partner_id", "purpose_id")
        .annotate(
            last=Max("last_accessed_at"),
            events_30=Sum("events", filter=Q(day__gte=since_30), default=0),
            events_90=Sum("events", filter=Q(day__gte=since_90), default=0),
            flagged_90=Sum("flagged", filter=Q(day__gte=since_90), default=0),
            flagged_total=Sum("flagged", default=0),
        )
    )
    by_partner: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = by_partner.setdefault(
            row["partner_id"],
            {"purposes": set(), "last": row["last"], "e30": 0, "e90": 0, "f90": 0, "ftotal": 0},
        )
        entry["purposes"].add(row["purpose_id"])
        entry["last"] = max(entry["last"], row["last"])
        entry["e30"] += row["events_30"]
        entry["e90"] += row["events_90"]
        entry["f90"] += row["flagged_90"]
        entry["ftotal"] += row["flagged_total"]
    if not by_partner:
        return []
    partners = catalogue("partner").in_bulk(list(by_partner))
    purposes = catalogue("purpose").in_bulk({p for e in by_partner.values() for p in e["purposes"]})
    categories: dict[int, list[Any]] = {}
    for seen in AccessCategorySeen.objects.filter(user=user).select_related("category").order_by("category__name"):
        categories.setdefault(seen.partner_id, []).append(seen.category)
    result = [
        PartnerAccessRow(
            partner=partners[pid],
            purposes=sorted((purposes[p] for p in e["purposes"]), key=lambda p: p.name),
            categories=categories.get(pid, []),
            last_accessed_at=e["last"],
            events_30=e["e30"],
            events_90=e["e90"],
            flagged_90=e["f90"],
            flagged_total=e["ftotal"],
        )
        for pid, e in by_partner.items()
    ]
    return sorted(result, key=lambda r: r.last_accessed_at, reverse=True)


@dataclass
class AccessSummary:
    rows: list[PartnerAccessRow]
    flagged_total: int


def access_summary(user: User, *, top: int = 3) -> AccessSummary | None:
    """The dashboard's view of the access log: the most recent partners and all flagged accesses."""
    rows = access_overview(user)
    if not rows:
        return None
    return AccessSummary(rows=rows[:top], flagged_total=sum(r.flagged_total for r in rows))


@dataclass(frozen=True)
class AccessFilter:
    partner: str = ""
    purpose: str = ""
    category: str = ""
    since: date | None = None
    until: date | None = None
    flagged_only: bool = False


def _parse_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw_time, raw_id = cursor.rsplit("_", 1)
        return datetime.fromisoformat(raw_time), int(raw_id)
    except ValueError:
        return None


@dataclass(frozen=True)
class KeysetPage[T]:
    """One page of a newest-first list: its rows and the cursors of the older and newer pages ("" if none)."""

    rows: list[T]
    older: str
    newer: str


def _keyset_page(queryset: QuerySet[Any], time_field: str, *, after: str, before: str, size: int) -> KeysetPage[Any]:
    """Rows in (time desc, id desc) order, strictly after ``after`` or strictly before ``before``.

    A bad cursor starts at the top. Going back (``before``) reads the rows just newer than the cursor in
    ascending order, so a "Newer" page is exactly the page the consumer came from.
    """
    if (position := _parse_cursor(before)) is not None:
        at, pk = position
        newer_rows = queryset.filter(Q(**{f"{time_field}__gt": at}) | Q(**{time_field: at, "id__gt": pk}))
        rows = list(newer_rows.order_by(time_field, "id")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        older = cursor_for(getattr(rows[-1], time_field), rows[-1].pk) if rows else ""
        newer = cursor_for(getattr(rows[0], time_field), rows[0].pk) if rows and more_newer else ""
        return KeysetPage(rows, older, newer)
    if (position := _parse_cursor(after)) is not None:
        at, pk = position
        queryset = queryset.filter(Q(**{f"{time_field}__lt": at}) | Q(**{time_field: at, "id__lt": pk}))
    rows = list(queryset[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    older = cursor_for(getattr(rows[-1], time_field), rows[-1].pk) if more and rows else ""
    # Rows after a cursor always have newer ones: the row the cursor names, at least.
    newer = cursor_for(getattr(rows[0], time_field), rows[0].pk) if position is not None and rows else ""
    return KeysetPage(rows, older, newer)


def cursor_for(at: datetime, pk: int) -> str:
    return f"{at.isoformat()}_{pk}"


def access_events_for(user: User, filters: AccessFilter) -> QuerySet[AccessEvent]:
    events = AccessEvent.objects.filter(user=user)
    if filters.partner:
        events = events.filter(partner__slug=filters.partner)
    if filters.purpose:
        events = events.filter(purpose__slug=filters.purpose)
    if filters.category:
        # Categories are stored as a JSON list of slugs; matching the quoted slug works on every backend.
        events = events.filter(categories__icontains=f'"{filters.category}"')
    if filters.since:
        events = events.filter(accessed_at__date__gte=filters.since)
    if filters.until:
        events = events.filter(accessed_at__date__lte=filters.until)
    if filters.flagged_only:
        events = events.exclude(verdict=AccessVerdict.COVERED)
    return events.order_by("-accessed_at", "-id")


def access_timeline_page(
    user: User, filters: AccessFilter, *, after: str = "", before: str = "", size: int = 50
) -> KeysetPage[AccessEvent]:
    """One page of the consumer's access log, newest first, with the cursors of its neighbours."""
    events = access_events_for(user, filters).select_related("partner", "purpose")
    return _keyset_page(events, "accessed_at", after=after, before=before, size=size)


def activity_page(user: User, *, after: str = "", before: str = "", size: int = 50) -> KeysetPage[AuditEvent]:
    """One page of the consumer's own audit trail, newest first, with the cursors of its neighbours."""
    # The note names the authorised agent who acted for the consumer (audit.presenters).
    events = AuditEvent.objects.filter(subject=user).select_related("note").order_by("-occurred_at", "-id")
    return _keyset_page(events, "occurred_at", after=after, before=before, size=size)
