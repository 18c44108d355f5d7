"""Template filters for times, deadlines and durations; built in (``TEMPLATES["OPTIONS"]["builtins"]``).

They format in the current zone (the consumer's, set by ``TimeZoneMiddleware`` or ``zone_override``)
unless given a zone name or ``ZoneInfo``: ``{{ value|local_datetime:zone }}``.
"""

from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo

from django import template

from portal import timezones

register = template.Library()


def _zone(zone: tzinfo | str | None) -> tzinfo | None:
    if isinstance(zone, str):
        return ZoneInfo(zone) if timezones.zone_is_valid(zone) else None
    return zone


@register.filter
def local_datetime(value: datetime | None, zone: tzinfo | str | None = None) -> str:
    """``3 Dec 2026, 14:05 NZDT``; empty for no value."""
    return timezones.format_datetime(value, _zone(zone)) if value else ""


@register.filter
def local_date(value: datetime | date | None, zone: tzinfo | str | None = None) -> str:
    """``3 Dec 2026``, the date in the consumer's zone; empty for no value."""
    return timezones.format_date(value, _zone(zone)) if value else ""


@register.filter
def deadline(value: datetime | None, zone: tzinfo | str | None = None) -> str:
    """``3 Dec 2026 (in 5 days)``, ``… (today)``, ``… (2 days overdue)``; empty for no value."""
    return timezones.format_deadline(value, _zone(zone)) if value else ""


@register.filter
def relative_days(value: datetime | date | None, zone: tzinfo | str | None = None) -> str:
    """``in 5 days``, ``today``, ``3 days ago``; empty for no value."""
    return timezones.relative_days(value, _zone(zone)) if value else ""


@register.filter
def duration_words(days: int | None) -> str:
    """``3 years``, ``6 months``, ``30 days``; empty for no value."""
    return timezones.duration_words(int(days)) if days is not None and days != "" else ""
