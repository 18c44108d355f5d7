"""The record of processing activities (GDPR Art. 30(1)) as the catalogue stood at the end of a given day.

Rebuilt from the change history (django-simple-history) of purposes, partners, sharings and data
categories, and from the notice versions, which never change once published: a purpose counts when,
at that moment, it was active with a published notice; its data categories and retention are those
of the notice then in force; its recipients are the partners it was actively shared with, with the
categories each received. "As of" a date means the end of that day in ``PRIVACY_REPORTS_TIME_ZONE``.
"""

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db.models import Model
from django.utils import timezone

from audit.csvsafe import csv_cell
from audit.timestamps import iso_utc
from consents.models import DataCategory, LegalBasis, Partner, PartnerKind, Purpose, PurposeVersion, Sharing
from privacy_requests.reports.periods import day_end, report_timezone


@dataclass(frozen=True)
class Recipient:
    slug: str
    name: str
    kind: str
    kind_label: str
    country: str
    status: str
    data_categories: list[str]


@dataclass(frozen=True)
class ProcessingActivity:
    purpose: str
    name: str
    category: str
    legal_basis: str
    legal_basis_label: str
    sale_or_sharing: bool
    notice_version: int
    notice_published_at: str
    data_categories: list[str]
    retention: str
    recipients: list[Recipient]


@dataclass(frozen=True)
class ProcessingRecord:
    as_of: date
    time_zone: str
    generated_at: datetime
    controller: dict[str, str]
    activities: list[ProcessingActivity]


def _state_at(model: type[Model], cutoff: datetime) -> dict[int, Any]:
    """Each object's last historical row before ``cutoff``, for objects that existed then."""
    latest: dict[int, Any] = {}
    for row in model.history.filter(history_date__lt=cutoff).order_by("history_date", "history_id"):  # type: ignore[attr-defined]
        latest[row.id] = row
    return {pk: row for pk, row in latest.items() if row.history_type != "-"}


def _sharing_categories(sharings: dict[int, Any]) -> dict[int, set[int]]:
    """The categories each historical sharing row recorded (simple-history's m2m history)."""
    through = Sharing.history.model._meta.get_field("historicalsharing_data_categories").related_model
    categories: dict[int, set[int]] = defaultdict(set)
    by_history = {row.history_id: pk for pk, row in sharings.items()}
    for history_id, category_id in through.objects.filter(history_id__in=by_history).values_list(
        "history_id", "datacategory_id"
    ):
        categories[by_history[history_id]].add(category_id)
    return categories


def processing_record(*, as_of: date) -> ProcessingRecord:
    """Purposes with their data categories, recipients, retention and legal basis at the end of ``as_of``."""
    cutoff = day_end(as_of)
    purposes = _state_at(Purpose, cutoff)
    partners = _state_at(Partner, cutoff)
    sharings = _state_at(Sharing, cutoff)
    category_names = {pk: row.name for pk, row in _state_at(DataCategory, cutoff).items()}
    live = [row for row in purposes.values() if row.is_active and row.current_version_id is not None]
    versions = {
        v.pk: v
        for v in PurposeVersion.objects.filter(pk__in=[row.current_version_id for row in live]).prefetch_related(
            "data_categories"
        )
    }
    shared = _sharing_categories(sharings)

    def names(ids: Iterable[int]) -> list[str]:
        wanted = set(ids)
        # A category created outside the history (none should be) reads under its live name.
        missing = {pk: c.name for pk, c in DataCategory.objects.in_bulk(wanted - category_names.keys()).items()}
        return sorted({**missing, **category_names}[pk] for pk in wanted)

    activities = []
    for row in sorted(live, key=lambda r: (r.position, r.name, r.slug)):
        version = versions[row.current_version_id]
        recipients = [
            Recipient(
                slug=partner.slug,
                name=partner.name,
                kind=partner.kind,
                kind_label=str(PartnerKind(partner.kind).label),
                country=partner.country,
                status=partner.status,
                data_categories=names(shared[pk]),
            )
            for pk, sharing in sharings.items()
            if sharing.purpose_id == row.id
            and sharing.is_active
            and (partner := partners.get(sharing.partner_id)) is not None
        ]
        activities.append(
            ProcessingActivity(
                purpose=row.slug,
                name=row.name,
                category=row.category,
                legal_basis=row.legal_basis,
                legal_basis_label=str(LegalBasis(row.legal_basis).label),
                sale_or_sharing=row.gpc_covered,
                notice_version=version.number,
                notice_published_at=iso_utc(version.published_at) or "",
                data_categories=names(c.pk for c in version.data_categories.all()),
                retention=version.retention,
                recipients=sorted(recipients, key=lambda r: (r.name, r.slug)),
            )
        )
    controller = settings.PORTAL_CONTROLLER
    return ProcessingRecord(
        as_of=as_of,
        time_zone=str(report_timezone()),
        generated_at=timezone.now(),
        controller={key: controller[key] for key in ("name", "contact", "address", "email")},
        activities=activities,
    )


CSV_COLUMNS = (
    "as_of",
    "purpose",
    "purpose_name",
    "purpose_category",
    "legal_basis",
    "sale_or_sharing",
    "notice_version",
    "notice_published_at",
    "data_categories",
    "retention",
    "recipient",
    "recipient_name",
    "recipient_kind",
    "recipient_country",
    "recipient_status",
    "recipient_data_categories",
)


def _csv_rows(record: ProcessingRecord) -> Iterable[list[Any]]:
    yield list(CSV_COLUMNS)
    for activity in record.activities:
        head = [
            record.as_of.isoformat(),
            activity.purpose,
            activity.name,
            activity.category,
            activity.legal_basis,
            "yes" if activity.sale_or_sharing else "no",
            activity.notice_version,
            activity.notice_published_at,
            "; ".join(activity.data_categories),
            activity.retention,
        ]
        # A purpose nobody receives data for is still processing: one line with no recipient.
        recipients = [
            [r.slug, r.name, r.kind, r.country, r.status, "; ".join(r.data_categories)] for r in activity.recipients
        ] or [[""] * 6]
        for recipient in recipients:
            yield [csv_cell(value) for value in [*head, *recipient]]


def processing_record_csv(record: ProcessingRecord) -> str:
    """The record as CSV: one line per purpose and recipient (per purpose when it has none)."""
    out = io.StringIO()
    csv.writer(out).writerows(_csv_rows(record))
    return out.getvalue()


def processing_record_json(record: ProcessingRecord) -> str:
    """The record as JSON: the controller, then each purpose with its recipients nested."""
    document = {
        "type": "gdpr-art30-record-of-processing",
        "as_of": record.as_of.isoformat(),
        "time_zone": record.time_zone,
        "generated_at": iso_utc(record.generated_at),
        "controller": record.controller,
        "activities": [asdict(activity) for activity in record.activities],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)
