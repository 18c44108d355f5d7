"""Ingesting partners' access reports: each stored with a verdict on whether consent covered it.

The access log's tables belong to audit (``audit.access`` writes them); deciding whether an access
was covered (the purpose's legal basis, the partner's sharing, the consent in force at the time)
is consent logic, so it lives here.
"""

import hashlib
import json
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.access import NewAccessEvent, access_events_insert, access_rollups_add
from audit.models import AccessEvent, AccessVerdict
from consents.models import (
    AppGrant,
    Consent,
    ConsentStatus,
    DataCategory,
    LegalBasis,
    Partner,
    PartnerSubject,
    Purpose,
    PurposeVersion,
    Sharing,
)
from consents.notifications import flagged_access_notify_schedule


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


@dataclass(frozen=True)
class Notices:
    """A purpose's notice versions as the verdict needs them: each one's number, and the material ones' dates."""

    numbers: dict[int, int]  # version id → number
    material: list[tuple[datetime, int]]  # (published at, number) of material versions, oldest first

    def material_number_at(self, at: datetime) -> int:
        """The number of the latest material notice published by ``at`` (0: none)."""
        return max((number for published_at, number in self.material if published_at <= at), default=0)


def _consent_covered(history: Sequence[dict[str, Any]], at: datetime, notices: Notices | None = None) -> bool:
    """Whether the consent whose changes are ``history`` (oldest first) was in force at ``at``.

    A consent given to a notice older than a material one published by then no longer counts,
    even before the publication run has reached it (consents/services/publication.py).
    """
    state = None
    for row in history:
        if row["history_date"] > at:
            break
        state = row
    if state is None or state["status"] != ConsentStatus.GRANTED:
        return False
    granted_at, expires_at = state["granted_at"], state["expires_at"]
    if granted_at is None or granted_at > at or (expires_at is not None and expires_at <= at):
        return False
    if notices is None or state.get("version_id") is None:
        return True
    return notices.numbers.get(state["version_id"], 0) >= notices.material_number_at(at)


@dataclass(frozen=True)
class GrantTerms:
    """A connected app's grant as the verdict needs it: when it was in force and which categories it allows."""

    granted_at: datetime
    ended_at: datetime | None
    expires_at: datetime | None
    categories: frozenset[int]

    def in_force(self, at: datetime) -> bool:
        return (
            self.granted_at <= at
            and (self.ended_at is None or self.ended_at > at)
            and (self.expires_at is None or self.expires_at > at)
        )


def _verdict(
    *,
    purpose: Purpose,
    categories: set[int],
    shared: set[int] | None,
    history: Sequence[dict[str, Any]],
    grants: Sequence[GrantTerms],
    at: datetime,
    notices: Notices | None = None,
) -> str:
    """Covered by the purpose's sharing and consent, or else by a grant the consumer gave the partner's app.

    A grant in force covers only its own categories; an access beyond them is outside what was
    shared, whatever the sharing says. (Reports carry no date of the data read, so a grant's
    lookback cannot be judged here: the app's resource server enforces it.)
    """
    verdict = AccessVerdict.OUTSIDE_SHARING
    if shared is not None and categories <= shared:
        if purpose.legal_basis != LegalBasis.CONSENT or _consent_covered(history, at, notices):
            return AccessVerdict.COVERED
        verdict = AccessVerdict.NO_CONSENT
    in_force = [grant for grant in grants if grant.in_force(at)]
    if not in_force:
        return verdict
    return (
        AccessVerdict.COVERED
        if any(categories <= grant.categories for grant in in_force)
        else AccessVerdict.OUTSIDE_SHARING
    )


def _notices(purpose_ids: set[int]) -> dict[int, Notices]:
    """Each purpose's notice versions, in one query (a purpose has a handful)."""
    numbers: dict[int, dict[int, int]] = defaultdict(dict)
    material: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    versions = PurposeVersion.objects.filter(purpose_id__in=purpose_ids).order_by("number")
    for pk, purpose_id, number, is_material, published_at in versions.values_list(
        "pk", "purpose_id", "number", "material", "published_at"
    ):
        numbers[purpose_id][pk] = number
        if is_material:
            material[purpose_id].append((published_at, number))
    return {purpose_id: Notices(numbers[purpose_id], material[purpose_id]) for purpose_id in numbers}


def _grant_terms(
    partner: Partner, user_ids: set[int], purpose_ids: set[int]
) -> dict[tuple[int, int], list[GrantTerms]]:
    """The partner's apps' grants for these consumers and purposes, by (consumer, purpose): two queries."""
    grants = list(
        AppGrant.objects.filter(app__partner=partner, user_id__in=user_ids, purpose_id__in=purpose_ids)
        .exclude(status=ConsentStatus.RECONSENT_REQUIRED)
        .values("pk", "user_id", "purpose_id", "granted_at", "revoked_at", "expires_at")
    )
    categories: dict[Any, set[int]] = defaultdict(set)
    for grant_id, category_id in AppGrant.data_categories.through.objects.filter(
        appgrant_id__in=[g["pk"] for g in grants]
    ).values_list("appgrant_id", "datacategory_id"):
        categories[grant_id].add(category_id)
    terms: dict[tuple[int, int], list[GrantTerms]] = defaultdict(list)
    for g in grants:
        terms[(g["user_id"], g["purpose_id"])].append(
            GrantTerms(g["granted_at"], g["revoked_at"], g["expires_at"], frozenset(categories[g["pk"]]))
        )
    return terms


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


EVENT_ID_LOCK_STRIPES = 64


def _event_ids_lock(partner: Partner, event_ids: set[str]) -> None:
    """On PostgreSQL, hold the partner's event-id stripes of these ids until the transaction ends.

    Access events are partitioned by month there, so the database's unique key has to include
    ``accessed_at`` and no longer stops two concurrent reports of one event id with different
    times. Each id falls in one of a fixed number of stripes per partner (a stable hash); the
    stripes are taken in ascending order (no deadlock between batches), before the lookup of
    known ids, so a concurrent batch with one of these ids waits and then sees it as a replay or
    a conflict. At most ``EVENT_ID_LOCK_STRIPES`` locks per batch, whatever its size.
    """
    if connection.vendor != "postgresql" or not event_ids:
        return
    stripes = sorted({zlib.crc32(event_id.encode()) % EVENT_ID_LOCK_STRIPES for event_id in event_ids})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, stripe))"
            " FROM (SELECT stripe FROM unnest(%s::int[]) AS stripe ORDER BY stripe) AS ordered",
            [partner.pk, stripes],
        )


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
    _event_ids_lock(partner, {r.event_id for r in reports})
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
        .values("user_id", "purpose_id", "status", "granted_at", "expires_at", "history_date", "version_id")
    ):
        history[(row["user_id"], row["purpose_id"])].append(row)
    notices = _notices({p.pk for p in purposes.values()})
    grants = _grant_terms(partner, set(subjects.values()), {p.pk for p in purposes.values()})

    results: list[ItemResult] = []
    new_events: list[NewAccessEvent] = []
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
            grants=grants.get((user_id, purpose.pk), []),
            at=report.accessed_at,
            notices=notices.get(purpose.pk),
        )
        new_events.append(
            NewAccessEvent(
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
    access_events_insert(new_events)
    access_rollups_add(new_events, categories)
    flagged_users = sorted({event.user_id for event in new_events if event.verdict != AccessVerdict.COVERED})
    if flagged_users:
        # The consumer hears of it within minutes, in one email per burst (consents.tasks.notifications).
        transaction.on_commit(partial(flagged_access_notify_schedule, flagged_users), robust=True)
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
