"""Recording data-access events: partner reports in bulk, and staff looking at a consumer's records."""

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AccessAction, AccessCategorySeen, AccessDaily, AccessEvent, AccessVerdict
from audit.services import Actor, event_record
from consents.models import (
    Consent,
    ConsentStatus,
    DataCategory,
    LegalBasis,
    Partner,
    PartnerKind,
    PartnerSubject,
    Purpose,
    Sharing,
)
from consents.services.notices import purpose_version_publish
from portal.models import User

STAFF_PARTNER_SLUG = "customer-support-staff"
STAFF_PURPOSE_SLUG = "customer-support"


@dataclass(frozen=True)
class AccessReport:
    """One access as a partner reports it (already shape-validated by the API layer)."""

    event_id: str
    subject_id: str
    purpose: str
    categories: tuple[str, ...]
    accessed_at: datetime
    action: str
    detail: str = ""

    def content_hash(self) -> str:
        body = {
            "subject_id": self.subject_id,
            "purpose": self.purpose,
            "categories": sorted(set(self.categories)),
            "accessed_at": self.accessed_at.astimezone(UTC).isoformat(),
            "action": self.action,
            "detail": self.detail,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class ItemResult:
    event_id: str
    status: str  # created | duplicate | conflict | rejected
    verdict: str | None = None
    code: str | None = None
    detail: str | None = None
    fields: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, ())}


def _consent_covered(history: Sequence[dict[str, Any]], at: datetime) -> bool:
    """Whether the consent whose changes are ``history`` (oldest first) was in force at ``at``."""
    state = None
    for row in history:
        if row["history_date"] > at:
            break
        state = row
    if state is None or state["status"] != ConsentStatus.GRANTED:
        return False
    granted_at, expires_at = state["granted_at"], state["expires_at"]
    return granted_at is not None and granted_at <= at and (expires_at is None or expires_at > at)


def _verdict(
    *,
    purpose: Purpose,
    categories: set[int],
    shared: set[int] | None,
    history: Sequence[dict[str, Any]],
    at: datetime,
) -> str:
    if shared is None or not categories <= shared:
        return AccessVerdict.OUTSIDE_SHARING
    if purpose.legal_basis != LegalBasis.CONSENT:
        return AccessVerdict.COVERED
    return AccessVerdict.COVERED if _consent_covered(history, at) else AccessVerdict.NO_CONSENT


class _NewEvent(NamedTuple):
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


def _events_insert(events: Sequence[_NewEvent]) -> None:
    """One prepared INSERT run for every row (psycopg pipelines it; SQLite loops in C).

    The ORM's bulk_create spends most of its time building SQL; this keeps ingest cheap.
    """
    if not events:
        return
    ops = connection.ops
    categories_field = AccessEvent._meta.get_field("categories")
    table, columns = AccessEvent._meta.db_table, ", ".join(_NewEvent._fields)
    placeholders = ", ".join(["%s"] * len(_NewEvent._fields))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608 (identifiers only)
            [
                (
                    event.partner_id,
                    event.partner_event_id,
                    event.user_id,
                    event.purpose_id,
                    categories_field.get_db_prep_save(event.categories, connection),
                    event.action,
                    ops.adapt_datetimefield_value(event.accessed_at),
                    ops.adapt_datetimefield_value(event.received_at),
                    event.detail,
                    event.verdict,
                    event.content_hash,
                )
                for event in events
            ],
        )


def _rollups_add(events: Sequence[AccessEvent | _NewEvent], category_ids: dict[str, int]) -> None:
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
    ops = connection.ops
    daily_table, seen_table = AccessDaily._meta.db_table, AccessCategorySeen._meta.db_table
    _upsert(
        daily_table,
        ("user_id", "partner_id", "purpose_id", "day", "events", "flagged", "last_accessed_at"),
        conflict=("user_id", "partner_id", "purpose_id", "day"),
        added=("events", "flagged"),
        rows=[(*k, v[0], v[1], ops.adapt_datetimefield_value(v[2])) for k, v in daily.items()],
    )
    _upsert(
        seen_table,
        ("user_id", "partner_id", "category_id", "events", "last_accessed_at"),
        conflict=("user_id", "partner_id", "category_id"),
        added=("events",),
        rows=[(*k, v[0], ops.adapt_datetimefield_value(v[1])) for k, v in seen.items()],
    )


UPSERT_CHUNK = 1000


def _upsert(
    table: str, columns: tuple[str, ...], *, conflict: tuple[str, ...], added: tuple[str, ...], rows: list[tuple]
) -> None:
    """Add counters into existing rows (or insert them), keeping the later ``last_accessed_at``.

    One multi-row statement per chunk; the same SQL works on SQLite and PostgreSQL.
    """
    updates = [f"{c} = {table}.{c} + excluded.{c}" for c in added]
    updates.append(
        f"last_accessed_at = CASE WHEN excluded.last_accessed_at > {table}.last_accessed_at "
        f"THEN excluded.last_accessed_at ELSE {table}.last_accessed_at END"
    )
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row_sql] * len(chunk))} "  # noqa: S608
                f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {', '.join(updates)}",
                [value for row in chunk for value in row],
            )


def access_events_ingest(*, partner: Partner, reports: Sequence[AccessReport]) -> list[ItemResult]:
    """Store a partner's access reports, each with a verdict; one result per report, in order.

    Idempotent per (partner, event_id): a replay is accepted and changes nothing; the same id
    with different content is a conflict. Items that cannot be stored are rejected one by one;
    the rest are written together in one transaction.
    """
    for attempt in range(2):
        try:
            return _ingest(partner, reports)
        except IntegrityError:
            # A concurrent request stored one of these ids first; the retry sees it as a replay.
            if attempt:
                raise
    raise AssertionError("unreachable")


@transaction.atomic
def _ingest(partner: Partner, reports: Sequence[AccessReport]) -> list[ItemResult]:
    now = timezone.now()
    skew = timedelta(seconds=settings.ACCESS_EVENT_CLOCK_SKEW_SECONDS)
    subjects = dict(
        PartnerSubject.objects.filter(partner=partner, subject_id__in={r.subject_id for r in reports}).values_list(
            "subject_id", "user_id"
        )
    )
    purposes = {p.slug: p for p in Purpose.objects.filter(slug__in={r.purpose for r in reports})}
    categories = dict(
        DataCategory.objects.filter(slug__in={c for r in reports for c in r.categories}).values_list("slug", "pk")
    )
    shared: dict[int, set[int]] = defaultdict(set)
    for purpose_id, category_id in Sharing.objects.filter(partner=partner, is_active=True).values_list(
        "purpose_id", "data_categories"
    ):
        shared.setdefault(purpose_id, set())
        if category_id is not None:
            shared[purpose_id].add(category_id)
    existing: dict[str, dict[str, Any]] = {
        e["partner_event_id"]: dict(e)
        for e in AccessEvent.objects.filter(partner=partner, partner_event_id__in={r.event_id for r in reports}).values(
            "partner_event_id", "content_hash", "verdict"
        )
    }
    history: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for row in (
        Consent.history.filter(user_id__in=set(subjects.values()), purpose_id__in={p.pk for p in purposes.values()})
        .order_by("history_date", "history_id")
        .values("user_id", "purpose_id", "status", "granted_at", "expires_at", "history_date")
    ):
        history[(row["user_id"], row["purpose_id"])].append(row)

    results: list[ItemResult] = []
    new_events: list[_NewEvent] = []
    for report in reports:
        digest = report.content_hash()
        if report.event_id in existing:
            known = existing[report.event_id]
            if known["content_hash"] == digest:
                results.append(ItemResult(report.event_id, "duplicate", verdict=known["verdict"]))
            else:
                results.append(
                    ItemResult(
                        report.event_id,
                        "conflict",
                        code="event_id_conflict",
                        detail=str(_("This event_id was already used for an access with different content.")),
                    )
                )
            continue
        rejection = _rejection(report, subjects, purposes, categories, now + skew)
        if rejection is not None:
            results.append(rejection)
            continue
        purpose = purposes[report.purpose]
        user_id = subjects[report.subject_id]
        verdict = _verdict(
            purpose=purpose,
            categories={categories[c] for c in report.categories},
            shared=shared.get(purpose.pk),
            history=history[(user_id, purpose.pk)],
            at=report.accessed_at,
        )
        new_events.append(
            _NewEvent(
                partner_id=partner.pk,
                partner_event_id=report.event_id,
                user_id=user_id,
                purpose_id=purpose.pk,
                categories=sorted(set(report.categories)),
                action=report.action,
                accessed_at=report.accessed_at,
                received_at=now,
                detail=report.detail,
                verdict=verdict,
                content_hash=digest,
            )
        )
        existing[report.event_id] = {"content_hash": digest, "verdict": verdict}
        results.append(ItemResult(report.event_id, "created", verdict=verdict))
    _events_insert(new_events)
    _rollups_add(new_events, categories)
    return results


def _rejection(
    report: AccessReport,
    subjects: dict[str, int],
    purposes: dict[str, Purpose],
    categories: dict[str, int],
    latest: datetime,
) -> ItemResult | None:
    if report.subject_id not in subjects:
        return ItemResult(
            report.event_id,
            "rejected",
            code="unknown_subject",
            detail=str(_("No such subject for this partner.")),
            fields=("subject_id",),
        )
    if report.purpose not in purposes:
        return ItemResult(
            report.event_id, "rejected", code="unknown_purpose", detail=str(_("No such purpose.")), fields=("purpose",)
        )
    unknown = sorted(set(report.categories) - set(categories))
    if unknown:
        return ItemResult(
            report.event_id,
            "rejected",
            code="unknown_category",
            detail=str(_("Unknown data categories: %(categories)s.")) % {"categories": ", ".join(unknown)},
            fields=("categories",),
        )
    if report.accessed_at > latest:
        return ItemResult(
            report.event_id,
            "rejected",
            code="accessed_at_in_future",
            detail=str(_("accessed_at is in the future.")),
            fields=("accessed_at",),
        )
    return None


STAFF_NOTICE = (
    "When you contact us, or when we must check your account, our customer-support staff may open "
    "your records. Every time they do, it is recorded and shown in your data-access log."
)


def _staff_recipient() -> tuple[Partner, Purpose]:
    """Our own staff, as a recipient with a published notice like any other, so consumers see the use."""
    purpose, _created = Purpose.objects.get_or_create(
        slug=STAFF_PURPOSE_SLUG,
        defaults={"name": "Customer support", "category": "support", "legal_basis": LegalBasis.LEGITIMATE_INTEREST},
    )
    if purpose.current_version_id is None:
        purpose_version_publish(
            purpose=purpose,
            description=STAFF_NOTICE,
            retention="The access record is kept as long as your account exists.",
            data_categories=DataCategory.objects.all(),
            material=False,
            change_summary="First version.",
            actor=Actor.system("customer-support"),
        )
        purpose.refresh_from_db()
    partner, _created = Partner.objects.get_or_create(
        slug=STAFF_PARTNER_SLUG,
        defaults={
            "name": "Customer support (our staff)",
            "kind": PartnerKind.INTERNAL,
            "country": settings.PORTAL_CONTROLLER["country"],
        },
    )
    sharing, created = Sharing.objects.get_or_create(partner=partner, purpose=purpose)
    if created:
        sharing.data_categories.set(DataCategory.objects.all())
    return partner, purpose


@transaction.atomic
def access_event_record_staff(*, staff: User, consumer: User, what: str) -> AccessEvent:
    """A staff member opened a consumer's records: that is access too, and the consumer sees it."""
    partner, purpose = _staff_recipient()
    now = timezone.now()
    event = AccessEvent.objects.create(
        partner=partner,
        partner_event_id=f"staff-{uuid.uuid4()}",
        user=consumer,
        purpose=purpose,
        categories=[],
        action=AccessAction.READ,
        accessed_at=now,
        received_at=now,
        detail=what[:500],
        verdict=AccessVerdict.COVERED,
        staff_user=staff,
        content_hash="",
    )
    _rollups_add([event], {})  # staff accesses name no categories
    event_record(
        actor=Actor.staff(staff),
        subject=consumer,
        action="access.staff_viewed",
        target=event,
        data={"what": what[:200]},
    )
    return event
