"""The figures of the operations dashboard and the partner scorecards, for a period of whole days.

Every figure is an aggregate read in a fixed number of queries, whatever the volume: access counts
come from the daily rollups (``AccessDaily``), never from the access events themselves, except the
split of flagged accesses by verdict, which reads only flagged events through their index.
Days and weeks (starting on Monday) are counted in the organisation's time zone
(``PRIVACY_REPORTS_TIME_ZONE``), as in the regulator reports.
"""

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import AuditAction
from audit.models import AccessDaily, AccessEvent, AccessVerdict, AuditEvent
from audit.staff_access import StaffAccessJustification, staff_access_justification
from consents.models import (
    DeliveryAttempt,
    DeliveryOutcome,
    DeliveryStatus,
    EventType,
    OutboxEvent,
    Partner,
    PartnerStatus,
    Purpose,
)
from portal.models import Jurisdiction
from privacy_requests.models import ACTIVE_STATUSES, PrivacyRequest, RequestKind, RequestStatus
from privacy_requests.reports.periods import day_end, day_start, local_date, report_timezone


@dataclass(frozen=True)
class Period:
    """Whole days, ``first`` to ``last`` inclusive, in the organisation's time zone."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return day_start(self.first)

    @property
    def end(self) -> datetime:
        return day_end(self.last)

    @property
    def weeks(self) -> list[date]:
        """The Mondays of the weeks the period touches, oldest first."""
        monday = week_of(self.first)
        return [monday + timedelta(weeks=n) for n in range((self.last - monday).days // 7 + 1)]


def week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (the smallest value with at least ``share`` of the values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def _rate(part: int, whole: int) -> Decimal | None:
    """A share as a percentage with one decimal, or None when there is nothing to divide."""
    if not whole:
        return None
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _hours(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(value / 3600).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# --- Consents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentWeek:
    week: date
    purpose: Purpose
    grants: int
    withdrawals: int


def consent_weeks(period: Period) -> list[ConsentWeek]:
    """Consents given and withdrawn per purpose per week, from the audit log (which keeps every change)."""
    rows = (
        AuditEvent.objects.filter(
            action__in=(AuditAction.CONSENT_GRANTED, AuditAction.CONSENT_REVOKED),
            occurred_at__gte=period.start,
            occurred_at__lt=period.end,
        )
        .annotate(
            day=TruncDate("occurred_at", tzinfo=report_timezone()), purpose_slug=KeyTextTransform("purpose", "data")
        )
        .values("day", "purpose_slug", "action")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        counts[(week_of(row["day"]), row["purpose_slug"])][row["action"] == AuditAction.CONSENT_REVOKED] += row["n"]
    purposes = {p.slug: p for p in Purpose.objects.filter(slug__in={slug for _week, slug in counts})}
    return [
        ConsentWeek(week=week, purpose=purposes[slug], grants=grants, withdrawals=withdrawals)
        for (week, slug), (grants, withdrawals) in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1]))
        if slug in purposes
    ]


# --- Partners --------------------------------------------------------------------------------


@dataclass
class PartnerFigures:
    """One partner over the period: withdrawals and their acknowledgement, deliveries, accesses."""

    partner: Partner
    withdrawals: int = 0
    acknowledged: int = 0
    latencies: list[float] = field(default_factory=list)
    attempts: int = 0
    attempts_delivered: int = 0
    dead_letters: int = 0
    accesses: int = 0
    flagged: int = 0
    no_consent: int = 0
    outside_sharing: int = 0
    flagged_weeks: dict[date, int] = field(default_factory=dict)
    last_ack_at: datetime | None = None
    last_access_at: datetime | None = None

    @property
    def unacknowledged(self) -> int:
        return self.withdrawals - self.acknowledged

    @property
    def ack_rate(self) -> Decimal | None:
        return _rate(self.acknowledged, self.withdrawals)

    @property
    def latency_p50_hours(self) -> Decimal | None:
        return _hours(percentile(self.latencies, 0.5))

    @property
    def latency_p95_hours(self) -> Decimal | None:
        return _hours(percentile(self.latencies, 0.95))

    @property
    def flagged_rate(self) -> Decimal | None:
        return _rate(self.flagged, self.accesses)

    @property
    def webhook_success_rate(self) -> Decimal | None:
        return _rate(self.attempts_delivered, self.attempts)

    @property
    def last_contact(self) -> datetime | None:
        return max((at for at in (self.last_ack_at, self.last_access_at) if at is not None), default=None)

    @property
    def review_reasons(self) -> list[str]:
        """Which of the thresholds in settings (``PARTNER_REVIEW_*``) this partner crosses."""
        reasons = []
        ack_rate, p95 = self.ack_rate, self.latency_p95_hours
        if ack_rate is not None and ack_rate < settings.PARTNER_REVIEW_MIN_ACK_RATE:
            reasons.append(_("acknowledges %(rate)s%% of withdrawals") % {"rate": ack_rate})
        if p95 is not None and p95 > settings.PARTNER_REVIEW_MAX_ACK_P95_HOURS:
            reasons.append(_("95%% of acknowledgements within %(hours)s hours") % {"hours": p95})
        flagged_rate = self.flagged_rate
        if flagged_rate is not None and flagged_rate > settings.PARTNER_REVIEW_MAX_FLAGGED_RATE:
            reasons.append(_("%(rate)s%% of accesses flagged") % {"rate": flagged_rate})
        success = self.webhook_success_rate
        if success is not None and success < settings.PARTNER_REVIEW_MIN_WEBHOOK_SUCCESS_RATE:
            reasons.append(_("%(rate)s%% of webhook attempts delivered") % {"rate": success})
        if self.partner.webhook_disabled_at is not None:
            reasons.append(_("webhook disabled"))
        return reasons

    @property
    def needs_review(self) -> bool:
        return self.partner.status == PartnerStatus.ACTIVE and bool(self.review_reasons)


def partner_figures(period: Period, partner: Partner | None = None) -> list[PartnerFigures]:
    """Each partner's figures (or one partner's), by name; eight queries whatever the volume."""
    partners = Partner.objects.all() if partner is None else Partner.objects.filter(pk=partner.pk)
    figures = {p.pk: PartnerFigures(partner=p) for p in partners}
    only = Q() if partner is None else Q(partner=partner)
    in_period = {"created_at__gte": period.start, "created_at__lt": period.end}

    withdrawals = OutboxEvent.objects.filter(only, event_type=EventType.CONSENT_REVOKED, **in_period)
    for partner_id, created_at, acked_at in withdrawals.values_list("partner_id", "created_at", "acked_at"):
        figure = figures[partner_id]
        figure.withdrawals += 1
        if acked_at is not None:
            figure.acknowledged += 1
            figure.latencies.append((acked_at - created_at).total_seconds())

    acks = OutboxEvent.objects.filter(only, acked_at__gte=period.start, acked_at__lt=period.end)
    for partner_id, last in acks.values("partner_id").annotate(last=Max("acked_at")).values_list("partner_id", "last"):
        figures[partner_id].last_ack_at = last

    attempts = DeliveryAttempt.objects.filter(
        Q() if partner is None else Q(event__partner=partner),
        attempted_at__gte=period.start,
        attempted_at__lt=period.end,
    )
    for attempt in attempts.values("event__partner_id", "outcome").annotate(n=Count("id")).order_by():
        figures[attempt["event__partner_id"]].attempts += attempt["n"]
        if attempt["outcome"] == DeliveryOutcome.DELIVERED:
            figures[attempt["event__partner_id"]].attempts_delivered += attempt["n"]

    dead = OutboxEvent.objects.filter(only, status=DeliveryStatus.DEAD).values("partner_id").annotate(n=Count("id"))
    for dead_row in dead.order_by():
        figures[dead_row["partner_id"]].dead_letters = dead_row["n"]

    daily = AccessDaily.objects.filter(only, day__gte=period.first, day__lte=period.last)
    for day_row in (
        daily.values("partner_id", "day")
        .annotate(events=Sum("events"), flagged=Sum("flagged"), last=Max("last_accessed_at"))
        .order_by()
    ):
        figure = figures[day_row["partner_id"]]
        figure.accesses += day_row["events"]
        figure.flagged += day_row["flagged"]
        if day_row["flagged"]:
            week = week_of(day_row["day"])
            figure.flagged_weeks[week] = figure.flagged_weeks.get(week, 0) + day_row["flagged"]
        if figure.last_access_at is None or day_row["last"] > figure.last_access_at:
            figure.last_access_at = day_row["last"]

    # The verdicts are not in the rollup: read only the flagged events, through their index.
    flagged = AccessEvent.objects.filter(
        only,
        verdict__in=(AccessVerdict.NO_CONSENT, AccessVerdict.OUTSIDE_SHARING),
        received_at__gte=period.start,
        received_at__lt=period.end,
    )
    for verdict_row in flagged.values("partner_id", "verdict").annotate(n=Count("id")).order_by():
        figure = figures[verdict_row["partner_id"]]
        if verdict_row["verdict"] == AccessVerdict.NO_CONSENT:
            figure.no_consent = verdict_row["n"]
        else:
            figure.outside_sharing = verdict_row["n"]
    return list(figures.values())


@dataclass(frozen=True)
class DeliveryFigures:
    by_outcome: list[tuple[str, str, int]]
    dead_letters: int
    webhooks_disabled: list[Partner]


def delivery_figures(period: Period, partners: list[PartnerFigures]) -> DeliveryFigures:
    """Delivery attempts in the period by outcome, and what waits for staff now."""
    counts = dict(
        DeliveryAttempt.objects.filter(attempted_at__gte=period.start, attempted_at__lt=period.end)
        .values("outcome")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("outcome", "n")
    )
    return DeliveryFigures(
        by_outcome=[(value, str(label), counts.get(value, 0)) for value, label in DeliveryOutcome.choices],
        dead_letters=sum(row.dead_letters for row in partners),
        webhooks_disabled=[row.partner for row in partners if row.partner.webhook_disabled_at is not None],
    )


# --- Privacy requests ------------------------------------------------------------------------


@dataclass
class RequestLine:
    kind: str
    kind_label: str
    jurisdiction: str
    jurisdiction_label: str
    received: int = 0
    completed_on_time: int = 0
    completed_late: int = 0
    overdue: int = 0
    days: list[int] = field(default_factory=list)

    @property
    def median_days(self) -> Decimal | None:
        if not self.days:
            return None
        return Decimal(statistics.median(self.days)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def request_lines(period: Period) -> list[RequestLine]:
    """Requests received in the period by kind and jurisdiction: on time, late, overdue now, median days.

    Days run from the day received to the day completed, in the organisation's time zone, as in
    the CCPA report.
    """
    now = timezone.now()
    lines = {
        (kind, law): RequestLine(
            kind=kind, kind_label=str(kind_label), jurisdiction=law, jurisdiction_label=str(law_label)
        )
        for kind, kind_label in RequestKind.choices
        for law, law_label in Jurisdiction.choices
    }
    requests = PrivacyRequest.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    for kind, law, status, created_at, due_at, completed_at in requests.values_list(
        "kind", "jurisdiction", "status", "created_at", "due_at", "completed_at"
    ):
        line = lines[(kind, law)]
        line.received += 1
        if status == RequestStatus.COMPLETED and completed_at is not None:
            if completed_at <= due_at:
                line.completed_on_time += 1
            else:
                line.completed_late += 1
            line.days.append((local_date(completed_at) - local_date(created_at)).days)
        elif status in ACTIVE_STATUSES and due_at <= now:
            line.overdue += 1
    return [line for line in lines.values() if line.received]


@dataclass(frozen=True)
class Overview:
    period: Period
    consent_weeks: list[ConsentWeek]
    partners: list[PartnerFigures]
    deliveries: DeliveryFigures
    requests: list[RequestLine]
    staff_access: StaffAccessJustification

    @property
    def needs_review(self) -> list[PartnerFigures]:
        return [row for row in self.partners if row.needs_review]


def operations_overview(period: Period) -> Overview:
    """Everything the dashboard shows for the period, in a fixed number of queries (one more when staff
    stated privacy-request handling as a reason: their references are matched to the requests)."""
    partners = partner_figures(period)
    return Overview(
        period=period,
        consent_weeks=consent_weeks(period),
        partners=partners,
        deliveries=delivery_figures(period, partners),
        requests=request_lines(period),
        # Staff's openings of consumers' records, and those without a ticket or an open privacy request.
        staff_access=staff_access_justification(since=period.start, until=period.end),
    )
