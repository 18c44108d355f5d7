"""The consumer's time zone, and the one way times, deadlines and durations are written for them.

Every time a consumer reads — pages, emails, the export README — goes through ``format_datetime``
(``|local_datetime`` in templates): in their zone, with the zone's abbreviation, in the date format
of the active language. CSV cells take ``audit.timestamps.spreadsheet_time`` with ``user_zone``.
Machine formats (JSON, the API, ``<time datetime>``) stay ISO 8601 with their offset.

For emails and other work outside a request, render inside ``zone_override(user)`` (and the
user's language); the template filters then use the consumer's zone.
"""

import functools
import zoneinfo
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from babel import UnknownLocaleError
from babel.dates import get_timezone_location
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from audit.timestamps import zone_abbreviation

# The IANA areas offered on the profile; the other names (``EST5EDT``, ``GB``, ``Etc/GMT+5``) are
# aliases or legacy, still accepted from a browser but not worth a line in the list.
ZONE_AREAS = {
    "Africa": gettext_lazy("Africa"),
    "America": gettext_lazy("Americas"),
    "Antarctica": gettext_lazy("Antarctica"),
    "Arctic": gettext_lazy("Arctic"),
    "Asia": gettext_lazy("Asia"),
    "Atlantic": gettext_lazy("Atlantic"),
    "Australia": gettext_lazy("Australia"),
    "Europe": gettext_lazy("Europe"),
    "Indian": gettext_lazy("Indian Ocean"),
    "Pacific": gettext_lazy("Pacific"),
}
# Years and months as a consent period means: a period is stored in days.
DAYS_PER_YEAR = 365
DAYS_PER_MONTH = 30


@functools.cache
def available_zones() -> frozenset[str]:
    """Every IANA time zone name this machine's database knows."""
    return frozenset(zoneinfo.available_timezones())


def zone_is_valid(name: str) -> bool:
    return name in available_zones()


def user_zone(user: Any) -> ZoneInfo:
    """The zone ``user`` reads times in: theirs once known, else the site's (``TIME_ZONE``).

    Takes any user object (anonymous users and ``None`` get the site's zone).
    """
    name = getattr(user, "time_zone", "") or ""
    return ZoneInfo(name if zone_is_valid(name) else settings.TIME_ZONE)


def zone_override(user: Any) -> AbstractContextManager[None]:
    """Make ``user``'s zone the current one for the block (emails, tasks): ``with zone_override(user): ...``."""
    return timezone.override(user_zone(user))


def zone_choices(current: str = "") -> list[tuple[str, list[tuple[str, str]]]]:
    """The profile's zones grouped by area, sorted, each with its current UTC offset; ``current`` always in."""
    now = timezone.now()
    locale = translation.to_locale(translation.get_language() or settings.LANGUAGE_CODE)
    groups: dict[str, list[tuple[str, str]]] = {area: [] for area in ZONE_AREAS}
    extra: list[tuple[str, str]] = [("UTC", _("Coordinated Universal Time (UTC)"))]
    for name in sorted(available_zones()):
        area, _slash, place = name.partition("/")
        if area in groups and place:
            groups[area].append((name, f"{zone_place(name, locale)} ({_utc_offset(now, name)})"))
        elif name == current and name != "UTC":
            extra.append((name, name))
    return [(str(ZONE_AREAS[area]), zones) for area, zones in groups.items() if zones] + [(_("Other"), extra)]


@functools.cache
def zone_place(name: str, locale: str) -> str:
    """The place an IANA zone is named after, in ``locale`` from CLDR ("Asia/Shanghai" → "Shanghai", "上海").

    The value stays the IANA id; only the label is translated. A zone CLDR cannot name keeps its
    own place name ("Argentina/Buenos_Aires" → "Argentina, Buenos Aires").
    """
    fallback = name.partition("/")[2].replace("_", " ").replace("/", ", ")
    try:
        return str(get_timezone_location(name, locale=locale, return_city=True)) or fallback
    except (LookupError, UnknownLocaleError, ValueError):
        return fallback


def _utc_offset(now: datetime, name: str) -> str:
    offset = now.astimezone(ZoneInfo(name)).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def format_datetime(value: datetime, zone: tzinfo | None = None) -> str:
    """``3 Dec 2026, 14:05 CET`` (``2026年12月3日 14:05 CET`` in Chinese): in ``zone``, else the current one."""
    if timezone.is_naive(value):
        # As Django's own ``|date``: a naive value has no zone to convert from or to name.
        return formats.date_format(value, "DATETIME_FORMAT")
    local = timezone.localtime(value, zone)
    return f"{formats.date_format(local, 'DATETIME_FORMAT')} {zone_abbreviation(local)}"


def _day(value: datetime | date, zone: tzinfo | None) -> date:
    if not isinstance(value, datetime):
        return value
    return value.date() if timezone.is_naive(value) else timezone.localdate(value, zone)


def format_date(value: datetime | date, zone: tzinfo | None = None) -> str:
    """The calendar date of ``value`` in ``zone`` (else the current zone): ``3 Dec 2026``."""
    return formats.date_format(_day(value, zone), "DATE_FORMAT")


def days_from_today(value: datetime | date, zone: tzinfo | None = None) -> int:
    """Calendar days from today to ``value``, both read in ``zone`` (else the current zone): 0 is today."""
    return (_day(value, zone) - timezone.localdate(timezone.now(), zone)).days


def relative_days(value: datetime | date, zone: tzinfo | None = None, *, overdue: bool = False) -> str:
    """``today``, ``in 5 days``, ``3 days ago`` (``3 days overdue`` for a deadline that passed)."""
    days = days_from_today(value, zone)
    if days == 0:
        return _("today")
    if days > 0:
        return ngettext("in %(count)d day", "in %(count)d days", days) % {"count": days}
    if overdue:
        return ngettext("%(count)d day overdue", "%(count)d days overdue", -days) % {"count": -days}
    return ngettext("%(count)d day ago", "%(count)d days ago", -days) % {"count": -days}


def format_deadline(value: datetime, zone: tzinfo | None = None) -> str:
    """A deadline: its date and how far off it is, ``3 Dec 2026 (in 5 days)``, ``… (2 days overdue)``."""
    return _("%(date)s (%(relative)s)") % {
        "date": format_date(value, zone),
        "relative": relative_days(value, zone, overdue=True),
    }


def duration_words(days: int) -> str:
    """A period stored in days, in words: ``3 years``, ``6 months``, ``30 days``, ``1 year and 2 months``.

    Whole years (365 days) first; the rest is months when it is a whole number of them (30 days),
    except a single month, which people count as "30 days", else days.
    """
    years, rest = divmod(days, DAYS_PER_YEAR)
    parts = []
    if years:
        parts.append(ngettext("%(count)d year", "%(count)d years", years) % {"count": years})
    if rest % DAYS_PER_MONTH == 0 and (rest > DAYS_PER_MONTH or (years and rest)):
        months = rest // DAYS_PER_MONTH
        parts.append(ngettext("%(count)d month", "%(count)d months", months) % {"count": months})
    elif rest or not years:
        parts.append(ngettext("%(count)d day", "%(count)d days", rest) % {"count": rest})
    if len(parts) == 1:
        return parts[0]
    return _("%(first)s and %(second)s") % {"first": parts[0], "second": parts[1]}


class TimeZoneMiddleware:
    """Show each request's pages in the signed-in consumer's zone (the site's until they have one).

    Responses that render after the view returns (streamed CSV) take the zone explicitly with
    ``user_zone``, since the zone is the site's again once this middleware returns.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and getattr(user, "time_zone", ""):
            timezone.activate(user_zone(user))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
