"""The organisation's calendar: reporting years, days and "as of" dates in ``PRIVACY_REPORTS_TIME_ZONE``."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone


def report_timezone() -> ZoneInfo:
    return ZoneInfo(settings.PRIVACY_REPORTS_TIME_ZONE)


def day_start(day: date) -> datetime:
    """The instant the day begins in the organisation's time zone."""
    return datetime.combine(day, time.min, tzinfo=report_timezone())


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """The calendar year as a half-open range of instants ``[start, end)``."""
    return day_start(date(year, 1, 1)), day_start(date(year + 1, 1, 1))


def day_end(day: date) -> datetime:
    """The first instant after the day (the next midnight), so "as of" a date includes all of it."""
    return day_start(day + timedelta(days=1))


def local_date(instant: datetime) -> date:
    return instant.astimezone(report_timezone()).date()


def local_today() -> date:
    return local_date(timezone.now())
