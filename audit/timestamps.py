"""How instants are written: for partners ISO 8601 in UTC with a ``Z`` (webhooks, feed and API alike);
for people's spreadsheets in their own zone with its abbreviation."""

from datetime import UTC, date, datetime, tzinfo


def iso_utc(value: datetime | date | None) -> str | None:
    """``2026-05-01T12:00:00Z`` for an aware datetime, ``2026-05-01`` for a date, ``None`` for ``None``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"
    return value.isoformat()


def zone_abbreviation(value: datetime) -> str:
    """``NZDT``, ``PST``, ``CET`` for an aware datetime; zones without a letter abbreviation get
    ``UTC+05`` rather than the bare ``+05``."""
    name = value.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name


def spreadsheet_time(value: datetime | None, zone: tzinfo) -> str:
    """A time for a CSV cell: ``2026-12-03 14:05:07 NZDT`` in ``zone``, sortable and labelled; empty for ``None``.

    The same numeric form in every language, so that spreadsheets sort it.
    """
    if value is None:
        return ""
    local = value.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {zone_abbreviation(local)}"
