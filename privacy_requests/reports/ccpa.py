"""CCPA annual metrics (Cal. Code Regs. tit. 11, § 7102) for one calendar year, computed from the data.

The year is counted in the organisation's time zone (``PRIVACY_REPORTS_TIME_ZONE``). A request counts
in the year it was received; its outcome is what it has become by the time the report is made:

- requests to know are the portal's exports and requests to delete its deletions. Complied with in
  whole: completed; in part: a deletion whose account is erased but whose partners have not all
  confirmed (``waiting_partners``); denied: rejected. Withdrawn (a deletion cancelled by the
  consumer in its grace period) and still open are shown beside them so the figures add up;
- requests to opt out of sale/sharing are the Global Privacy Control signals honoured and the
  consumer's own withdrawals (on the site or through a partner) of consent to a purpose marked as
  sale/sharing (``gpc_covered``); both take effect when they are made, so they are complied with in
  whole on day 0. Withdrawals by a consumer who later deleted their account are not counted: the
  deletion erases their consent history;
- the portal has no request to correct (consumers edit their own profile) and no request to limit
  the use of sensitive personal information: those lines say "not offered", not 0.

Days to respond are calendar days in the organisation's time zone from the day received to the day
of the response (completed, rejected, or the account erased for a partial deletion).
"""

import csv
import io
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Min
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from audit.csvsafe import csv_cell
from consents.models import Consent, ConsentMethod, ConsentStatus, GpcSignal, RevocationReason
from portal.models import Jurisdiction
from privacy_requests.models import PrivacyRequest, RequestKind, RequestStatus
from privacy_requests.reports.periods import local_date, report_timezone, year_bounds


class ReportScope:
    """Whose requests are counted: § 7102(b) lets a business report for all individuals if it says so."""

    CALIFORNIA = "california"
    ALL = "all"
    CHOICES = ((CALIFORNIA, _("California consumers (CCPA jurisdiction)")), (ALL, _("All individuals")))


@dataclass(frozen=True)
class CcpaLine:
    """One kind of request: its counts and response times, or ``offered=False`` with no figures."""

    key: str
    label: Promise
    source: Promise
    offered: bool = True
    received: int = 0
    complied_whole: int = 0
    complied_part: int = 0
    denied: int = 0
    withdrawn: int = 0
    pending: int = 0
    days: list[int] = field(default_factory=list)

    @property
    def complied(self) -> int:
        return self.complied_whole + self.complied_part

    @property
    def median_days(self) -> Decimal | None:
        return _one_decimal(statistics.median(self.days)) if self.days else None

    @property
    def mean_days(self) -> Decimal | None:
        return _one_decimal(Decimal(sum(self.days)) / len(self.days)) if self.days else None


@dataclass(frozen=True)
class CcpaReport:
    year: int
    scope: str
    time_zone: str
    generated_at: datetime
    lines: list[CcpaLine]

    @property
    def scope_label(self) -> str:
        return str(dict(ReportScope.CHOICES)[self.scope])


def _one_decimal(value: float | int | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


_KNOW_SOURCE = _("Requests for a copy of the consumer's data (exports).")
_DELETE_SOURCE = _(
    "Account deletions. In part: the account is erased but not every partner has confirmed its erasure yet."
)
_OPT_OUT_SOURCE = _(
    "Global Privacy Control signals honoured, and consumers' withdrawals of consent to a purpose that sells "
    "or shares data; both take effect at once. Withdrawals by consumers who later deleted their account "
    "are not counted: the deletion erases their consent history."
)
_CORRECT_SOURCE = _("Not offered as a request: consumers correct their profile themselves.")
_LIMIT_SOURCE = _("Not offered: the portal has no request to limit the use of sensitive personal information.")


def _request_lines(start: datetime, end: datetime, scope: str) -> dict[str, CcpaLine]:
    requests = PrivacyRequest.objects.filter(created_at__gte=start, created_at__lt=end)
    if scope == ReportScope.CALIFORNIA:
        requests = requests.filter(jurisdiction=Jurisdiction.CCPA)
    rows = list(requests.order_by().values("pk", "kind", "status", "created_at", "completed_at", "rejected_at"))
    partial = [row["pk"] for row in rows if row["status"] == RequestStatus.WAITING_PARTNERS]
    # When the account was erased: the first time the request's history says it waited for partners.
    erased_at = dict(
        PrivacyRequest.history.filter(id__in=partial, status=RequestStatus.WAITING_PARTNERS)
        .order_by()
        .values("id")
        .annotate(at=Min("history_date"))
        .values_list("id", "at")
    )
    tallies: dict[str, dict[str, Any]] = {
        kind: {"complied_whole": 0, "complied_part": 0, "denied": 0, "withdrawn": 0, "pending": 0, "days": []}
        for kind in RequestKind.values
    }
    received = dict.fromkeys(RequestKind.values, 0)
    for row in rows:
        tally = tallies[row["kind"]]
        received[row["kind"]] += 1
        match row["status"]:
            case RequestStatus.COMPLETED:
                tally["complied_whole"] += 1
                answered = row["completed_at"]
            case RequestStatus.WAITING_PARTNERS:
                tally["complied_part"] += 1
                answered = erased_at.get(row["pk"])
            case RequestStatus.REJECTED:
                tally["denied"] += 1
                answered = row["rejected_at"]
            case RequestStatus.CANCELLED:
                tally["withdrawn"] += 1
                continue
            case _:
                tally["pending"] += 1
                continue
        # A partial deletion written without history (a bulk update) has no known erasure day.
        if answered is not None:
            tally["days"].append((local_date(answered) - local_date(row["created_at"])).days)
    return {
        RequestKind.EXPORT: CcpaLine(
            key="know",
            label=_("Requests to know"),
            source=_KNOW_SOURCE,
            received=received[RequestKind.EXPORT],
            **tallies[RequestKind.EXPORT],
        ),
        RequestKind.DELETION: CcpaLine(
            key="delete",
            label=_("Requests to delete"),
            source=_DELETE_SOURCE,
            received=received[RequestKind.DELETION],
            **tallies[RequestKind.DELETION],
        ),
    }


def _opt_out_line(start: datetime, end: datetime, scope: str) -> CcpaLine:
    signals = GpcSignal.objects.filter(honoured_at__gte=start, honoured_at__lt=end)
    # A withdrawal is saved once but may be followed by other saves of the same state: one per
    # (consent, withdrawal time).
    withdrawals = Consent.history.filter(
        status=ConsentStatus.REVOKED,
        revocation_reason=RevocationReason.USER_ACTION,
        method__in=[ConsentMethod.WEB, ConsentMethod.API],
        purpose__gpc_covered=True,
        revoked_at__gte=start,
        revoked_at__lt=end,
    )
    if scope == ReportScope.CALIFORNIA:
        signals = signals.filter(user__jurisdiction=Jurisdiction.CCPA)
        withdrawals = withdrawals.filter(user__jurisdiction=Jurisdiction.CCPA)
    count = signals.count() + withdrawals.order_by().values("id", "revoked_at").distinct().count()
    return CcpaLine(
        key="opt_out",
        label=_("Requests to opt out of sale/sharing"),
        source=_OPT_OUT_SOURCE,
        received=count,
        complied_whole=count,
        days=[0] * count,
    )


def ccpa_metrics(*, year: int, scope: str = ReportScope.CALIFORNIA) -> CcpaReport:
    """The § 7102(a)(1) metrics for requests received in ``year`` (organisation's time zone)."""
    start, end = year_bounds(year)
    by_kind = _request_lines(start, end, scope)
    lines = [
        by_kind[RequestKind.EXPORT],
        by_kind[RequestKind.DELETION],
        CcpaLine(key="correct", label=_("Requests to correct"), source=_CORRECT_SOURCE, offered=False),
        _opt_out_line(start, end, scope),
        CcpaLine(key="limit", label=_("Requests to limit"), source=_LIMIT_SOURCE, offered=False),
    ]
    return CcpaReport(
        year=year, scope=scope, time_zone=str(report_timezone()), generated_at=timezone.now(), lines=lines
    )


CSV_COLUMNS = (
    "year",
    "scope",
    "time_zone",
    "request_type",
    "request_type_label",
    "offered",
    "received",
    "complied_in_whole_or_in_part",
    "complied_in_whole",
    "complied_in_part",
    "denied",
    "withdrawn",
    "still_open",
    "median_days_to_respond",
    "mean_days_to_respond",
    "source",
)


def _csv_rows(report: CcpaReport) -> Iterable[list[Any]]:
    yield list(CSV_COLUMNS)
    for line in report.lines:
        figures: list[Any] = (
            [
                line.received,
                line.complied,
                line.complied_whole,
                line.complied_part,
                line.denied,
                line.withdrawn,
                line.pending,
                line.median_days,
                line.mean_days,
            ]
            if line.offered
            else [""] * 9
        )
        head = [report.year, report.scope, report.time_zone, line.key, str(line.label), "yes" if line.offered else "no"]
        yield [csv_cell(value) for value in [*head, *figures, str(line.source)]]


def ccpa_metrics_csv(report: CcpaReport) -> str:
    """The report as CSV, one line per kind of request; "not offered" lines have empty figures."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows(_csv_rows(report))
    return out.getvalue()
