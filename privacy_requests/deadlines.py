"""Legal deadlines per privacy law, and how far staff may extend them.

GDPR (Art. 12(3)): one calendar month from receipt, extendable by up to two further months in
total. CCPA/CPRA (Cal. Code Regs. tit. 11, § 7021): 45 days, extendable once by up to 45 more.
Elsewhere we promise 30 days and allow one extension of up to 30 days.
"""

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from portal.models import Jurisdiction

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise


@dataclass(frozen=True)
class DeadlineRule:
    months: int
    days: int
    max_extension_months: int
    max_extension_days: int
    max_extensions: int | None
    summary: "StrPromise"


RULES: dict[str, DeadlineRule] = {
    Jurisdiction.GDPR: DeadlineRule(
        months=1,
        days=0,
        max_extension_months=2,
        max_extension_days=0,
        max_extensions=None,
        summary=_("one month, which we may extend by up to two more months if the request is complex"),
    ),
    Jurisdiction.CCPA: DeadlineRule(
        months=0,
        days=45,
        max_extension_months=0,
        max_extension_days=45,
        max_extensions=1,
        summary=_("45 days, which we may extend once by up to 45 more days"),
    ),
    Jurisdiction.OTHER: DeadlineRule(
        months=0,
        days=30,
        max_extension_months=0,
        max_extension_days=30,
        max_extensions=1,
        summary=_("30 days, which we may extend once by up to 30 more days"),
    ),
}


def rule_for(jurisdiction: str) -> DeadlineRule:
    return RULES.get(jurisdiction, RULES[Jurisdiction.OTHER])


def months_add(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months later; the month's last day when it is shorter."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_at_compute(*, received_at: datetime, jurisdiction: str, extra_months: int = 0, extra_days: int = 0) -> datetime:
    rule = rule_for(jurisdiction)
    return months_add(received_at, rule.months + extra_months) + timedelta(days=rule.days + extra_days)
